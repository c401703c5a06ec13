"""``m3po train`` as a Sacred experiment: config coverage, run directories, errors before any work."""

from __future__ import annotations

import json

import pytest

from m3po.config import M3POConfig
from m3po.registration import make_config
from suite.cli import main
from suite.experiment import RUN_KEYS, LaunchOptions, build_experiment, default_run_dir, resolve_config
from suite.registry import ALGORITHMS


def test_sacred_config_offers_every_config_field():
    config = build_experiment().configurations[0]()
    assert set(M3POConfig.__dataclass_fields__) <= set(config)
    assert resolve_config(dict(config)) == make_config("cpu")


def test_default_run_directory_is_deterministic():
    assert str(default_run_dir("m3po", "mt80", 3)) == "results/runs/m3po/mt80/seed3"


@pytest.mark.parametrize(
    ("updates", "message"),
    [
        (["with", "algo=dreamer"], "unknown algo 'dreamer'"),
        (["with", "task=cartpole-swingp"], "cartpole-swingup"),
        (["with", "steps=-5"], "steps must be >= 0"),
        (["with", "planner.horizn=2"], "planner.horizon"),
        (["with", "preset=gpu"], "cpu, paper"),
        (["with", "lr=3"], "unknown config key 'lr'"),
        (["with", "device=tpu"], "device='tpu' is not valid; choose one of: auto, cpu, cuda, cuda:N"),
    ],
)
def test_bad_input_fails_before_any_run_directory_exists(tmp_path, capsys, updates, message):
    run_dir = tmp_path / "run"
    assert main(["train", *updates, f"run_dir={run_dir}"]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert not run_dir.exists()
    assert err.startswith("m3po: error: ") and err.count("\n") == 1, err  # one line, no traceback


def test_cuda_without_cuda_fails_before_any_run_directory_exists(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is present here")
    run_dir = tmp_path / "x"
    assert main(["train", "with", "device=cuda", f"run_dir={run_dir}", "steps=10"]) == 2
    err = capsys.readouterr().err
    assert err == "m3po: error: device='cuda', but CUDA is not available here; valid here: auto, cpu\n"
    assert not run_dir.exists()


def test_a_dmlab_task_without_deepmind_lab_fails_before_any_run_directory_exists(tmp_path, capsys):
    from importlib.util import find_spec

    if find_spec("deepmind_lab") is not None:
        pytest.skip("deepmind_lab is installed here")
    run_dir = tmp_path / "x"
    assert main(["train", "with", "task=dmlab-rooms-watermaze", f"run_dir={run_dir}", "steps=10"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("m3po: error: task='dmlab-rooms-watermaze' cannot run here: ")
    assert "`deepmind_lab` is not importable" in err and "bazel build" in err
    assert err.count("\n") == 1, err
    assert not run_dir.exists()


def test_launch_keys_are_one_dataclass_apart_from_every_config():
    assert RUN_KEYS == {"algo", "run_dir", "progress", "mongo_url"}
    config = build_experiment("m3po").configurations[0]()
    assert {k: config[k] for k in RUN_KEYS} == {**vars(LaunchOptions()), "algo": "m3po"}
    for algo in ALGORITHMS.values():
        assert not RUN_KEYS & algo.field_names, algo.name


def test_train_command_writes_a_sacred_record_per_attempt(tmp_path, capsys):
    run_dir = tmp_path / "run"
    args = [
        "train", "with", "task=mw-reach", "steps=32", "num_envs=2", "eval_episodes=1", "progress=False",
        "ppo.rollout_len=16", "ppo.minibatch_size=16", "ppo.epochs=1", f"run_dir={run_dir}",
        "model.latent_dim=16", "model.mlp_dim=32", "model.enc_dim=32",
        "planner.num_samples=16", "planner.num_pi_trajs=4", "planner.num_elites=4",
    ]  # fmt: skip
    assert main(args) == 0
    run = json.loads((run_dir / "sacred" / "attempt1" / "run.json").read_text())
    assert run["status"] == "COMPLETED"
    info = json.loads((run_dir / "sacred" / "attempt1" / "info.json").read_text())
    assert info["resolved_config"]["planner"]["num_samples"] == 16
    assert "torch" in info["versions"] and "commit" in info
    metrics = json.loads((run_dir / "sacred" / "attempt1" / "metrics.json").read_text())
    assert "eval/score" in metrics and "loss/actor" in metrics
    # Again: the run is finished, so nothing is trained and the error says so.
    assert main(args) == 2
    assert "finished run" in capsys.readouterr().err
