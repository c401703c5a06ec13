"""``m3po bench eval-rules``: one run's checkpoint re-evaluated under each evaluation rule."""

from __future__ import annotations

import json

import pytest
from test_train import rows, small_config

from m3po.config import ConfigError
from m3po.errors import RunDirectoryError
from m3po.train import Trainer
from suite.bench import eval_rules


def test_rules_reuse_the_protocol_and_the_prior_rule_repeats_the_runs_own_evaluation(tmp_path):
    # Evaluated with the prior's mode, the run's own final evaluation is deterministic, so the
    # re-evaluation of its checkpoint under the "prior" rule must give the same score.
    cfg = small_config(task="cartpole-swingup", eval_planner=False)
    Trainer(cfg, tmp_path, progress=False).run()
    recorded = rows(tmp_path / "eval.jsonl")[-1]
    figures = eval_rules.run([str(tmp_path)])
    result = figures["runs"][str(tmp_path)]
    assert result["step"] == recorded["step"] == 128
    assert result["prior"] == round(recorded["score"], 1)
    assert set(figures["mean"]) == set(eval_rules.RULES)
    assert all(0 <= result[rule] <= 1000 for rule in eval_rules.RULES)
    # An extra rule from overrides: the prior's mode again (the run's own) repeats the prior rule exactly;
    # a bad override fails before any evaluation.
    figures = eval_rules.run([str(tmp_path)], overrides=["eval_planner=False", "planner.num_samples=32"])
    assert figures["runs"][str(tmp_path)]["set"] == result["prior"]
    assert figures["set"] == ["eval_planner=False", "planner.num_samples=32"]
    with pytest.raises(ConfigError, match="planner.num_elites"):
        eval_rules.run([str(tmp_path)], overrides=["planner.num_elites=999"])
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        eval_rules.run([str(tmp_path)], overrides=["planner"])


def test_bad_run_directories_fail_before_any_evaluation(tmp_path):
    with pytest.raises(RunDirectoryError, match="checkpoints/latest.pt"):
        eval_rules.run([str(tmp_path)])
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "latest.pt").write_bytes(b"")
    (tmp_path / "config.json").write_text(json.dumps({"algo": "sac", "task": "cartpole-swingup"}))
    with pytest.raises(RunDirectoryError, match="'sac'"):
        eval_rules.run([str(tmp_path)])
    with pytest.raises(ConfigError, match="--runs"):
        eval_rules.run([])


def test_the_command_line_without_runs_is_one_clear_error(capsys):
    from suite.cli import main

    assert main(["bench", "eval-rules", "--episodes", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("m3po: error: ") and "--runs" in err and "Traceback" not in err
