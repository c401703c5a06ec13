"""DreamerV3 (sheeprl) behind the runner: a complete run record, resume, and input checks."""

from __future__ import annotations

import json

import pytest
import torch

from m3po.errors import RunDirectoryError
from suite.cli import main
from suite.registry import get_algorithm

# Tiny: XS model, 2-sequence batches of 8 steps, training from step 16 of 48.
TINY = {
    "task": "cartpole-swingup", "steps": 48, "num_envs": 2, "eval_every": 24, "checkpoint_every": 24,
    "eval_episodes": 1, "device": "cpu",
    "dreamer": {"size": "XS", "learning_starts": 16, "batch_size": 2, "sequence_length": 8,
                "replay_ratio": 0.25, "log_every": 8, "buffer_size": 1000},
}  # fmt: skip


def rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_dreamerv3_writes_a_complete_run_record_and_resumes_from_sheeprl_checkpoints(tmp_path):
    pytest.importorskip("sheeprl", reason="sheeprl is not installed (make install installs it)")
    algo = get_algorithm("dreamerv3")
    cfg = algo.make_config("cpu", **TINY)
    train = algo.load_train()

    def interrupt(name, value, step):
        if step > 24:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path, on_metrics=interrupt, progress=False)
    assert json.loads((tmp_path / "status.json").read_text())["status"] == "interrupted"
    summary = train(cfg, tmp_path, progress=False)
    assert summary["resumed_from"] == 24 and summary["step"] == 48

    status = json.loads((tmp_path / "status.json").read_text())
    assert status["status"] == "finished" and status["sheeprl"] == "0.8.4"
    assert [a["resumed_from_step"] for a in status["attempts"]] == [None, 24]
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["algo"] == "dreamerv3" and config["dreamer"]["size"] == "XS"
    evals = rows(tmp_path / "eval.jsonl")
    assert [r["step"] for r in evals] == [0, 24, 48]
    assert all(r["task"] == "cartpole-swingup" and r["episodes"] == 1 for r in evals)
    assert all(0 <= r["score"] <= 1000 and r["score"] == r["return"] for r in evals)
    train_rows = rows(tmp_path / "train.jsonl")
    steps = [r["step"] for r in train_rows]
    assert steps == sorted(set(steps)) and steps[-1] == 48
    last = train_rows[-1]
    for key in ("train/world_model_loss", "train/policy_loss", "train/value_loss", "train/kl",
                "train/replay_ratio", "time/sps", "time/wall", "mem/peak_rss_mib"):  # fmt: skip
        assert key in last, key
    # sheeprl trained on after the resume: its gradient steps carried over, the replay ratio held.
    checkpoint = torch.load(tmp_path / "checkpoints" / "latest.pt", weights_only=False)
    assert checkpoint["state"]["step"] == 48
    assert (tmp_path / checkpoint["sheeprl_checkpoint"]).name == "ckpt_48_0.ckpt"
    sheeprl_state = torch.load(tmp_path / checkpoint["sheeprl_checkpoint"], weights_only=False)
    assert sheeprl_state["per_rank_gradient_steps"] == checkpoint["state"]["updates"] > 0
    with pytest.raises(RunDirectoryError, match="finished run"):
        train(cfg, tmp_path, progress=False)


@pytest.mark.parametrize(
    ("updates", "message"),
    [
        (["algo=dreamerv3", "task=cartpole-swingup,mw-reach"], "algo=dreamerv3 is single-task"),
        (["algo=dreamerv3", "dreamer.size=XXL"], "dreamer.size='XXL' is not valid; choose one of: XS, S"),
        (["algo=dreamerv3", "num_envs=4", "steps=1001"], "must be a multiple of num_envs=4"),
        (["algo=dreamerv3", "dreamer.replay_ratio=0"], "dreamer.replay_ratio must be > 0"),
    ],
)
def test_bad_dreamerv3_input_fails_before_any_run_directory_exists(tmp_path, capsys, updates, message):
    run_dir = tmp_path / "run"
    assert main(["train", "with", *updates, f"run_dir={run_dir}"]) == 2
    assert message in capsys.readouterr().err
    assert not run_dir.exists()


def test_sheeprl_metric_names_map_to_the_run_record():
    pytest.importorskip("sheeprl", reason="sheeprl is not installed (make install installs it)")
    from baselines.dreamerv3.train import metric_name

    assert metric_name("Loss/reward_loss") == "train/reward_loss"
    assert metric_name("State/kl") == "train/kl"
    assert metric_name("Grads/actor") == "train/grad_norm/actor"
    assert metric_name("Rewards/rew_avg") == "train/episode_return"
    assert metric_name("Time/sps_train") == "time/gradient_steps_per_s"
    assert metric_name("Something/new") == "sheeprl/Something/new"
