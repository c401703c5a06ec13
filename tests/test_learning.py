"""M3PO learns: a short, deterministic CI run on an easy task beats a random policy by far, and the
default keeps PPO's ratio mostly inside its clip range (the spec's "known pitfall": all clipped).

Longer learning checks (100k steps, 3 tasks, 3 seeds) are benchmarks, not tests: see the README.
"""

from __future__ import annotations

import json
from pathlib import Path

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
# so the budget grew from 20k to 30k. Since evaluation draws from its own (seed, step) stream (issue 17)
# the same test measured 116 at step 0 and 418 after 30k (clip shares at most 0.27; an AVX-512 Intel
# Xeon, 2 threads). The bar leaves room for float differences on other CPUs while staying five times the
# random policy's score.
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


def _finished_run(run_dir, config, exist_ok=False):
    run_dir.mkdir(parents=True, exist_ok=exist_ok)
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
        "steps": None, "seeds": 3, "jobs": 2, "alpha0_zero": False, "task_set": "bar", "tasks": None,
        "overrides": (), "name": "default", "algo": "m3po", "with_ppo": False,
    }  # fmt: skip
    assert learning.TASK_SETS["bar"].tasks == learning.TASKS and learning.TASK_SETS["bar"].steps == 100_000
    argv = ["--steps", "512", "--tasks", "reacher-easy", "--set", "a=1", "--set", "b=2", "--alpha0-zero"]
    assert main(["bench", "learning", *argv, "--variant-name", "v", "--algo", "ppo"]) == 0
    assert calls.pop() == {
        "steps": 512, "seeds": 3, "jobs": 2, "alpha0_zero": True, "task_set": "bar",
        "tasks": ("reacher-easy",), "overrides": ("a=1", "b=2"), "name": "v", "algo": "ppo",
        "with_ppo": False,
    }  # fmt: skip
    assert main(["bench", "learning", "--task-set", "broad", "--with-ppo"]) == 0
    assert calls.pop()["task_set"] == "broad"


def test_the_broad_bar_spans_both_suites():
    from m3po.envs.registry import suite_tasks
    from suite.bench.learning import TASK_SETS

    broad = TASK_SETS["broad"]
    dmc = [t for t in broad.tasks if t in suite_tasks("dmc39")]
    mw = [t for t in broad.tasks if t in suite_tasks("mw50")]
    assert len(dmc) >= 8 and len(mw) >= 4 and len(dmc) + len(mw) == len(broad.tasks)
    assert {"walker-walk", "cheetah-run", "cup-catch", "finger-spin", *TASK_SETS["bar"].tasks} <= set(dmc)
    assert len({t.split("-")[0] for t in dmc}) >= 5  # across domains
    assert broad.steps == 500_000 and broad.at == (100_000, 500_000)


def test_published_figures_are_read_at_their_row_2n():
    # The TD-MPC2 authors' CSVs count environment steps: our agent step N is their row 2N.
    from analysis.aggregate import load_published, published_at

    table = load_published()
    sac = table[(table["algo"] == "sac") & (table["task"] == "walker-stand")]
    assert (sac["env_step"] == 2 * sac["step"]).all()
    by_env_step = {int(k): sorted(v["seed"]) for k, v in sac.groupby("env_step")}
    row = sac[sac["env_step"] == 200_000].sort_values("seed")["score"].round(1).tolist()
    assert published_at("sac", ("walker-stand",), 100_000) == {"walker-stand": row}
    assert row == [941.9, 931.6, 342.7]  # the fidelity benchmark's figures for the same row
    assert by_env_step[100_000] and sac[sac["env_step"] == 100_000]["score"].round(1).tolist() != row
    mw = published_at("tdmpc2", ("mw-reach", "mw-push"), 500_000)
    assert set(mw) == {"mw-reach", "mw-push"} and all(0 <= s <= 100 for v in mw.values() for s in v)


def _fake_run(run_dir, task, scores, clip):
    run_dir.mkdir(parents=True)
    evals = [{"step": step, "task": task, "score": score} for step, score in scores.items()]
    (run_dir / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in evals))
    (run_dir / "train.jsonl").write_text(json.dumps({"ppo/clip_fraction": clip}) + "\n")


def test_a_shipped_run_that_records_the_asked_config_is_read_not_trained(tmp_path, monkeypatch):
    from suite.bench import learning

    monkeypatch.chdir(tmp_path)  # shipped runs are looked for under results/evidence, as in a checkout
    evidence = Path("results/evidence/evidence/ppo/mw-reach/default")
    for seed, steps in ((1, 100_000), (2, 200_000)):  # seed 2's shipped run has another budget
        config, _ = recorded_config(["task=mw-reach", f"seed={seed}", f"steps={steps}", "algo=ppo"])
        _fake_run(evidence / f"seed{seed}", "mw-reach", {0: 0.0, 100_000: 70.0 + seed}, 0.1)
        _finished_run(evidence / f"seed{seed}", {**config, "threads": 1}, exist_ok=True)
    trained = []

    def train(run_dir, task, seed, steps, extra):
        trained.append(str(run_dir))
        _fake_run(run_dir, task, {0: 0.0, 100_352: 50.0}, 0.4)

    monkeypatch.setattr(learning, "_run_one", train)
    out = learning.run(
        task_set="broad", tasks=("mw-reach",), steps=100_000, seeds=2, with_ppo=True, root="bench"
    )
    assert sorted(trained) == [
        "bench/default/mw-reach/seed1",
        "bench/default/mw-reach/seed2",
        "bench/sb3-ppo/mw-reach/seed2",
    ]
    assert out["shipped_runs_read"] == [str(evidence / "seed1")]
    assert out["sb3-ppo"]["mw-reach"]["seeds"] == [71.0, 50.0]


def test_the_broad_bar_json_has_per_task_iqm_published_and_goals(tmp_path, monkeypatch):
    from suite.bench import learning

    tasks = ("walker-walk", "mw-reach")
    monkeypatch.chdir(tmp_path)  # no shipped run (results/evidence) stands in for these made-up ones
    monkeypatch.setattr(learning, "_run_one", lambda *args: None)  # the runs are written here instead
    for variant, base in (("default", 600.0), (learning.PPO_VARIANT, 200.0)):
        for task in tasks:
            for seed in (1, 2, 3):
                scale = 1.0 if task.startswith("mw-") else 10.0  # success % against return
                # M3PO's evaluations fall on iteration boundaries (100,352 for "100k")
                first = 100_352 if variant == "default" else 100_000
                at = {0: 0.0, first: base / 20 * scale + seed, 500_000: base / 10 * scale + seed}
                _fake_run(tmp_path / variant / task / f"seed{seed}", task, at, 0.2)
    out = learning.run(task_set="broad", tasks=tasks, with_ppo=True, root=str(tmp_path))
    assert out["task_set"] == "broad" and out["at"] == [100_000, 500_000] and out["steps"] == 500_000
    walker = out["default"]["walker-walk"]
    assert walker["seeds"] == [601.0, 602.0, 603.0] and walker["by_step"]["100000"]["seeds"] == [
        301.0,
        302.0,
        303.0,
    ]
    assert walker["by_step"]["100000"]["read_at"] == [100_352] * 3  # M3PO's evaluation at "100k"
    for name in ("default", learning.PPO_VARIANT, "published-sac", "published-dreamerv3", "published-tdmpc2"):
        for step in ("100000", "500000"):
            entry = out["iqm"][name][step]
            assert entry["low"] <= entry["iqm"] <= entry["high"] and entry["tasks"] == 2
            # ours 3 seeds; a published algorithm has fewer where a seed ended early (DreamerV3's mw-reach)
            assert entry["seeds"] == 3 or (name.startswith("published-") and entry["seeds"] >= 2)
    # normalised (return / 10, success %): 60.1-60.3 and 61-63; the IQM drops one of six at each end
    assert out["iqm"]["default"]["500000"]["iqm"] == 60.88
    assert set(out["published"]["sac"]["500000"]) == set(tasks)
    assert out["goals"]["above_sb3_ppo_intervals_apart"] is True
    assert isinstance(out["goals"]["at_or_above_published_sac_at_500000"], bool)
    with pytest.raises(RunDirectoryError, match=r"no evaluation at agent step\(s\) \[250000\] or within 5%"):
        learning.run(task_set="broad", steps=250_000, tasks=tasks, root=str(tmp_path))
