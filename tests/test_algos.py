"""The algorithm registry and the shared run record: dispatch, task-mode checks, evaluation protocol."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from m3po.config import ConfigError, M3POConfig
from m3po.evaluation import evaluate
from suite.registry import ALGORITHMS, ALGOS, Algorithm, get_algorithm


def test_registry_lists_m3po_and_unknown_names_list_the_valid_ones():
    assert "m3po" in ALGOS and ALGORITHMS["m3po"].config_class is M3POConfig
    with pytest.raises(ConfigError, match=r"unknown algo 'nope'; valid: .*m3po"):
        get_algorithm("nope")


@pytest.mark.parametrize(
    ("mode", "task", "message"),
    [
        ("single", "cartpole-swingup,mw-reach", "is single-task"),
        ("multi", "cartpole-swingup", "needs a task set"),
    ],
)
def test_task_mode_mismatch_fails_with_a_clear_message(mode, task, message):
    algo = dataclasses.replace(get_algorithm("m3po"), name="probe", task_mode=mode)
    with pytest.raises(ConfigError, match=message):
        algo.make_config("cpu", task=task, num_envs=2)


def test_any_mode_accepts_one_task_and_a_set():
    algo = get_algorithm("m3po")
    assert algo.make_config("cpu", task="cartpole-swingup").task == "cartpole-swingup"
    assert algo.check_tasks("cartpole-swingup,mw-reach") == ("cartpole-swingup", "mw-reach")


def test_every_registered_algorithm_has_cpu_and_paper_presets():
    for algo in ALGORITHMS.values():
        assert isinstance(algo, Algorithm) and algo.task_mode in ("single", "multi", "any")
        assert {"cpu", "paper"} <= set(algo.presets), algo.name
        for preset in ("cpu", "paper"):
            task = "cartpole-swingup" if algo.task_mode != "multi" else "cartpole-swingup,reacher-easy"
            cfg = algo.make_config(preset, task=task)
            assert cfg.preset == preset and cfg.to_dict()["task"] == task


def test_evaluation_protocol_scores_returns_and_success_at_the_end():
    calls = []

    def zero_policy(obs, task_ids):
        calls.append(obs.shape)
        return np.zeros((obs.shape[0], 6), dtype=np.float32)

    rows = evaluate(zero_policy, ["mw-reach", "cheetah-run"], seed=1, step=7, episodes=1)
    assert [r["task"] for r in rows] == ["mw-reach", "cheetah-run"]
    reach, cheetah = rows
    assert reach["success"] in (0.0, 1.0) and reach["score"] == 100 * reach["success"]
    assert cheetah["success"] is None and cheetah["score"] == cheetah["return"]
    assert all(r["step"] == 7 and r["episodes"] == 1 for r in rows)
    assert len(calls) == 500  # the longer task's episode, both envs stepped together
    assert evaluate(zero_policy, ["mw-reach"], seed=1, step=0, episodes=0) == []


def test_config_json_records_the_algorithm(tmp_path):
    from suite.cli import main

    run_dir = tmp_path / "run"
    args = [
        "train", "with", "task=mw-reach", "steps=16", "num_envs=1", "eval_episodes=0", "progress=False",
        "ppo.rollout_len=16", "ppo.minibatch_size=16", "ppo.epochs=1", f"run_dir={run_dir}",
        "model.latent_dim=16", "model.mlp_dim=32", "model.enc_dim=32",
        "planner.num_samples=16", "planner.num_pi_trajs=4", "planner.num_elites=4",
    ]  # fmt: skip
    assert main(args) == 0
    assert json.loads((run_dir / "config.json").read_text())["algo"] == "m3po"


def test_bench_reports_an_algorithm_with_missing_modules_without_running_it(tmp_path):
    from suite.bench.algos import measure

    missing = "no_such_module_m3po"
    algo = dataclasses.replace(get_algorithm("m3po"), name="needs-more", requires=(missing,))
    assert measure(algo, threads=1, root=tmp_path) == {"status": "missing", "missing": [missing]}
    with pytest.raises(ConfigError, match="no_such_module_m3po"):
        algo.load_train()
    assert not any(tmp_path.iterdir())


def test_module_level_make_config_is_the_registry_entrys():
    from baselines.tdmpc2 import registration as tdmpc2
    from m3po import registration as m3po

    for module, name in ((m3po, "m3po"), (tdmpc2, "tdmpc2")):
        assert module.make_config.__self__ is ALGORITHMS[name]
        assert module.make_config.__func__ is Algorithm.make_config
        assert module.preset_dict.__func__ is Algorithm.preset_dict
