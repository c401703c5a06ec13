"""M3PO learns: a short, deterministic CI run on an easy task beats a random policy by far, and the
default keeps PPO's ratio mostly inside its clip range (the spec's "known pitfall": all clipped).

Longer learning checks (100k steps, 3 tasks, 3 seeds) are benchmarks, not tests: see the README.
"""

from __future__ import annotations

import json

import pytest

from m3po.errors import RunDirectoryError
from m3po.registration import make_config
from m3po.train import Trainer
from suite.experiment import recorded_config

# cartpole-swingup, 500-step episodes: uniformly random actions score 40 +- 30 (10 episodes, measured
# with m3po.envs.make_env); stable-baselines3's PPO scored 240-270 after 10-20k steps on this machine.
# This run (seed 1, CPU, 2 threads) measured 146 at step 0 and 230 after 30k steps, every iteration's
# clip share at most 0.27. Observation normalisation (the default since the learning bar) starts slower
# on cartpole: at 20k it measured 198, where the previous default (observations as given) measured 303,
# so the budget grew from 20k to 30k. The bar leaves room for float differences on other CPUs while
# staying five times the random policy's score.
RANDOM_POLICY_SCORE = 40.0
REQUIRED_SCORE = 200.0
MAX_CLIP_SHARE = 0.5  # share of PPO ratios outside [1 - eps, 1 + eps] in any iteration (issue 8's target)


@pytest.mark.slow
def test_m3po_learns_cartpole_swingup_in_30k_steps(tmp_path):
    cfg = make_config("cpu", task="cartpole-swingup", steps=30_720, eval_every=0, eval_episodes=5, threads=2)
    summary = Trainer(cfg, tmp_path, progress=False).run()
    evals = [json.loads(line) for line in (tmp_path / "eval.jsonl").read_text().splitlines()]
    first, last = evals[0]["score"], evals[-1]["score"]
    assert summary["final_score"] == last
    assert REQUIRED_SCORE >= 5 * RANDOM_POLICY_SCORE
    print(f"cartpole-swingup: score {first:.0f} at step 0, {last:.0f} after 30k steps")
    assert last >= REQUIRED_SCORE, f"score {last:.0f} after 30k steps (start {first:.0f})"
    assert last > first
    train = [json.loads(line) for line in (tmp_path / "train.jsonl").read_text().splitlines()]
    clip_shares = [row["ppo/clip_fraction"] for row in train]
    print("clip share per iteration:", [round(c, 2) for c in clip_shares])
    assert max(clip_shares) < MAX_CLIP_SHARE, f"clip shares {clip_shares}"


def _finished_run(run_dir, config):
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text(json.dumps(config))
    (run_dir / "status.json").write_text(json.dumps({"status": "finished", "step": 1000}))


def test_the_learning_bar_reads_a_finished_run_only_if_it_is_the_run_asked_for(tmp_path, monkeypatch):
    from suite.bench import learning

    def no_training(*args, **kwargs):
        raise AssertionError("a finished run must not be retrained")

    updates = ["task=reacher-easy", "seed=2", "steps=1000", "algo=m3po", "ppo.adam_eps=3e-5"]
    recorded, _ = recorded_config(updates)
    monkeypatch.setattr(learning.subprocess, "run", no_training)  # after Sacred's imports, which run some
    assert recorded["ppo"]["adam_eps"] == 3e-5 and recorded["steps"] == 1000
    run_dir = tmp_path / "variant" / "reacher-easy" / "seed2"
    # A record written before a field existed (ppo.distill_coef) matches while the field is at its default.
    del recorded["ppo"]["distill_coef"]
    _finished_run(run_dir, {**recorded, "threads": 1})
    learning._run_one(run_dir, "reacher-easy", 2, 1000, ["algo=m3po", "ppo.adam_eps=3e-5"])
    with pytest.raises(RunDirectoryError, match=r"differs in: ppo\.adam_eps, steps"):
        learning._run_one(run_dir, "reacher-easy", 2, 2000, ["algo=m3po"])
    with pytest.raises(RunDirectoryError, match=r"differs in: ppo\.distill_coef \(not recorded\)"):
        learning._run_one(
            run_dir, "reacher-easy", 2, 1000, ["algo=m3po", "ppo.adam_eps=3e-5", "ppo.distill_coef=0.1"]
        )


def test_the_command_line_passes_its_flags_and_the_old_defaults(monkeypatch, capsys):
    from suite.bench import learning
    from suite.cli import main

    calls = []
    monkeypatch.setattr(learning, "run", lambda **kwargs: calls.append(kwargs) or {"ok": True})
    assert main(["bench", "learning"]) == 0
    assert json.loads(capsys.readouterr().out) == {"ok": True}
    assert calls.pop() == {
        "steps": 100_000, "seeds": 3, "jobs": 2, "alpha0_zero": False, "tasks": learning.TASKS,
        "overrides": (), "name": "default", "algo": "m3po",
    }  # fmt: skip
    argv = ["--steps", "512", "--tasks", "reacher-easy", "--set", "a=1", "--set", "b=2", "--alpha0-zero"]
    assert main(["bench", "learning", *argv, "--variant-name", "v", "--algo", "ppo"]) == 0
    assert calls.pop() == {
        "steps": 512, "seeds": 3, "jobs": 2, "alpha0_zero": True, "tasks": ("reacher-easy",),
        "overrides": ("a=1", "b=2"), "name": "v", "algo": "ppo",
    }  # fmt: skip
