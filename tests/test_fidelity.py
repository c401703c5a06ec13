"""``m3po bench fidelity`` without training: the vendored published results, the comparison on run
directories written by hand in the run record's format (m3po/record.py), the training plan with
``m3po train`` faked, and the checks of bad input."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from m3po.config import ConfigError
from m3po.envs.registry import ACTION_REPEAT
from suite.bench import fidelity, learning
from suite.cli import main

STEP = fidelity.AGENT_STEP  # our runs' evaluation step
PUBLISHED = fidelity.PUBLISHED_STEP  # the published CSVs' row for it (environment steps)


# ------------------------------------------------------------------------------------ published data
def test_published_steps_are_environment_steps_of_our_action_repeat():
    document = yaml.safe_load(fidelity.published_path().read_text())
    assert document["action_repeat"] == fidelity.ACTION_REPEAT == ACTION_REPEAT["dmc"] == 2
    # 100k agent steps of ours repeat each action twice: the CSVs' row 200000, not 100000.
    assert fidelity.PUBLISHED_STEP == 200_000 and fidelity.AGENT_STEP == 100_000


def test_vendored_results_have_three_seeds_per_algo_and_task_at_the_compared_step():
    published = fidelity.load_published()
    assert set(published) == {"tdmpc2", "sac", "dreamerv3"}
    header = [line for line in fidelity.published_path().read_text().splitlines() if line.startswith("#")]
    for algo in fidelity.ALGOS:
        assert set(published[algo]) >= set(fidelity.TASKS), algo
        for task in fidelity.TASKS:
            entry = published[algo][task]
            assert sorted(entry["reward"]) == [0, PUBLISHED // 2, PUBLISHED], (algo, task)
            compared = entry["reward"][PUBLISHED]
            assert sorted(compared) == [1, 2, 3], (algo, task)
            assert all(isinstance(v, float) and 0.0 <= v <= 1000.0 for v in compared.values()), (algo, task)
            # Sanity: step 0 is an untrained policy, far below the compared mean (null: no step-0 row).
            at_0 = [v for v in entry["reward"][0].values() if v is not None]
            assert at_0 and all(0.0 <= v <= 1000.0 for v in at_0), (algo, task)
            assert max(at_0) < sum(compared.values()) / 3, (algo, task)
            # Provenance: the header comment names this entry's file and commit on one line.
            assert re.fullmatch(r"[0-9a-f]{40}", entry["commit"]), (algo, task)
            assert entry["path"].startswith("results/") and entry["path"].endswith(f"{task}.csv")
            assert any(
                algo in line and entry["path"] in line and entry["commit"] in line for line in header
            ), (algo, task)


# The per-task curves of every dmc39 and mw50 task (baselines/published/tdmpc2_curves.parquet), which
# the claims report reads; the YAML above is their subset that this benchmark compares at.
def test_vendored_curves_cover_every_dmc39_and_mw50_task_with_path_commit_and_units():
    from analysis.aggregate import load_published, published_metadata
    from m3po.envs.registry import SUITES

    curves = load_published()
    assert set(curves["algo"]) == set(fidelity.ALGOS)
    for algo in fidelity.ALGOS:
        for task_set in ("dmc39", "mw50"):
            rows = curves[(curves["algo"] == algo) & (curves["task_set"] == task_set)]
            assert set(rows["task"]) == set(SUITES[task_set]), (algo, task_set)
            assert (rows.groupby("task")["seed"].nunique() == 3).all(), (algo, task_set)
    assert (curves["path"] == "results/" + curves["algo"] + "/" + curves["their_task"] + ".csv").all()
    assert curves["commit"].str.fullmatch(r"[0-9a-f]{40}").all()
    assert (curves["env_step"] == 2 * curves["step"]).all()  # our agent step N is their row 2N
    mw = curves[curves["task_set"] == "mw50"]
    assert (mw["raw_column"] == "success").all() and mw["raw"].between(0, 1).all()
    assert np.allclose(mw["score"], 100 * mw["raw"])  # success % on the suite's scale
    dmc = curves[curves["task_set"] == "dmc39"]
    assert (dmc["raw_column"] == "reward").all() and (dmc["score"] == dmc["raw"]).all()
    assert dmc["score"].between(0, 1000).all()
    # Their horizons, in agent steps: 2M for DMControl (7M dog and humanoid), 1M for Meta-World.
    assert mw["step"].max() == 1_000_000 and dmc[dmc["task"] == "walker-walk"]["step"].max() == 2_000_000
    meta = published_metadata()
    assert meta["repository"] == "https://github.com/nicklashansen/tdmpc2" and re.fullmatch(
        r"[0-9a-f]{40}", meta["head"]
    )


def test_vendored_curves_agree_with_the_benchmarks_yaml():
    from analysis.aggregate import load_published

    curves = load_published().set_index(["algo", "task", "env_step", "seed"])["raw"]
    compared = 0
    for algo, tasks in fidelity.load_published().items():
        for task, entry in tasks.items():
            for step, seeds in entry["reward"].items():
                for seed, value in seeds.items():
                    if value is None:
                        assert (algo, task, step, seed) not in curves.index
                        continue
                    assert curves[(algo, task, step, seed)] == value, (algo, task, step, seed)
                    compared += 1
    assert compared == 78


def test_vendor_script_reads_a_local_git_copy(tmp_path, monkeypatch):
    from baselines.published import vendor

    repo = tmp_path / "tdmpc2"
    files = {"walker-walk": "step,reward,seed\n0,1.5,1\n100000,500.0,1\n200000,900.0,1\n",
             "mw-reach": "step,success,seed\n0,0.0,1\n100000,0.4,1\n"}  # fmt: skip
    for algo in vendor.ALGOS:
        for task, text in files.items():
            path = repo / "results" / algo / f"{task}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "results"], check=True)
    head = subprocess.run(
        [*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    monkeypatch.setattr(vendor, "SUITES", {"dmc39": ("walker-walk",), "mw50": ("mw-reach",)})
    out = tmp_path / "curves.parquet"
    table = vendor.vendor(repo, out)
    assert len(table) == 3 * 5 and set(table["commit"]) == {head}
    from analysis.aggregate import load_published, published_metadata

    back = load_published(out)
    reach = back[(back["algo"] == "sac") & (back["task"] == "mw-reach")]
    assert list(reach["step"]) == [0, 50_000] and list(reach["score"]) == [0.0, 40.0]
    walker = back[(back["algo"] == "tdmpc2") & (back["task"] == "walker-walk")]
    assert list(walker["step"]) == [0, 50_000, 100_000] and list(walker["path"].unique()) == [
        "results/tdmpc2/walker-walk.csv"
    ]
    assert published_metadata(out)["head"] == head
    (repo / "results" / "sac" / "mw-reach.csv").unlink()
    subprocess.run([*git, "commit", "-qam", "drop one"], check=True)
    with pytest.raises(FileNotFoundError, match="results/sac/mw-reach.csv"):
        vendor.vendor(repo, out)
    with pytest.raises(FileNotFoundError, match="no git directory"):
        vendor.vendor(tmp_path / "nothing", out)


# --------------------------------------------------------------------------------------- comparison
def _fake_published(low: float = 400.0, mid: float = 500.0, high: float = 600.0) -> dict:
    # The row at 100000 environment steps (50k agent steps) must not be read for 100k agent steps.
    wrong = {1: -1.0, 2: -1.0, 3: -1.0}
    rewards = {PUBLISHED // 2: wrong, PUBLISHED: {1: low, 2: mid, 3: high}}
    entry = {"path": "results/x.csv", "commit": "0" * 40, "reward": rewards}
    return {algo: {task: entry for task in fidelity.TASKS} for algo in fidelity.ALGOS}


def _write_run(
    run_dir: Path, algo: str, task: str, scores: dict[int, float], status: str = "finished"
) -> None:
    """A run record as m3po/record.py writes it: config.json, status.json, eval.jsonl (one row per step)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps({"algo": algo, "preset": "cpu", "task": task}))
    last = max(scores)
    (run_dir / "status.json").write_text(
        json.dumps({"status": status, "step": last, "steps_total": STEP, "attempts": []})
    )
    rows = [
        {
            "step": step,
            "task": task,
            "return": s,
            "success": None,
            "score": s,
            "episodes": 10,
            "score_mean": s,
        }
        for step, s in sorted(scores.items())
    ]
    (run_dir / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def _no_training(*args, **kwargs):
    raise AssertionError("--compare-only must not train")


def test_comparison_gives_inside_below_above_and_not_run(tmp_path, monkeypatch):
    monkeypatch.setattr(fidelity, "_run_one", _no_training)
    root = tmp_path / "fidelity"
    task = "cartpole-swingup"
    # tdmpc2: 450, 500, 550 -> mean 500, inside [400, 600]; the 90k and 110k evaluations are not read.
    for seed, score in {1: 450.0, 2: 500.0, 3: 550.0}.items():
        _write_run(
            root / "tdmpc2" / task / f"seed{seed}", "tdmpc2", task, {0: 5.0, 90_000: 999.0, STEP: score}
        )
    # sac: mean 200 < 400 -> below; seed 3 has no 100k evaluation, so the next one within 5% (104k) counts.
    _write_run(root / "sac" / task / "seed1", "sac", task, {0: 1.0, STEP: 100.0})
    _write_run(root / "sac" / task / "seed2", "sac", task, {0: 1.0, STEP: 200.0})
    _write_run(root / "sac" / task / "seed3", "sac", task, {0: 1.0, 90_000: 999.0, 104_000: 300.0})
    # dreamerv3: one seed finished at 900 -> above; seed 2 still running at 50k, seed 3 not started.
    _write_run(root / "dreamerv3" / task / "seed1", "dreamerv3", task, {0: 1.0, STEP: 900.0})
    _write_run(root / "dreamerv3" / task / "seed2", "dreamerv3", task, {0: 1.0, 50_000: 950.0}, "running")

    out = fidelity.run(compare_only=True, root=str(root), published=_fake_published())

    tdmpc2 = out["tdmpc2"][task]
    assert tdmpc2["verdict"] == "inside"
    assert tdmpc2["ours"]["seeds"] == [450.0, 500.0, 550.0] and tdmpc2["ours"]["mean"] == 500.0
    assert tdmpc2["published"] == {
        "seeds": [400.0, 500.0, 600.0], "min": 400.0, "max": 600.0, "mean": 500.0,
        "path": "results/x.csv", "commit": "0" * 40,
    }  # fmt: skip
    assert "command" not in tdmpc2 and tdmpc2["ours"]["presets"] == ["cpu"]

    sac = out["sac"][task]
    assert sac["verdict"] == "below" and sac["ours"]["seeds"] == [100.0, 200.0, 300.0]
    assert [r["eval_step"] for r in sac["ours"]["runs"]] == [STEP, STEP, 104_000]
    # an evaluation more than 5% past the step is no reading of it (the claims report's rule)
    _write_run(root / "late", "sac", task, {0: 1.0, 90_000: 999.0, 110_000: 300.0})
    late = fidelity.our_seed(root / "late", task)
    assert late["score"] is None and "within 5% at or past step 100000 (last: 110000)" in late["note"]

    dreamer = out["dreamerv3"][task]
    assert dreamer["verdict"] == "above" and dreamer["ours"]["seeds"] == [900.0, None, None]
    assert dreamer["missing_seeds"] == [2, 3]
    runs = dreamer["ours"]["runs"]
    assert [r["status"] for r in runs] == ["finished", "running", "not run"]
    assert "(last: 50000)" in runs[1]["note"]
    assert "--algos dreamerv3 --tasks cartpole-swingup" in dreamer["command"]

    for algo in fidelity.ALGOS:  # nothing for the other tasks
        for other in ("reacher-easy", "walker-stand"):
            entry = out[algo][other]
            assert entry["verdict"] == "not run" and entry["ours"]["mean"] is None
            assert entry["command"] == (
                f"m3po bench fidelity --algos {algo} --tasks {other} --seeds 3 --steps {STEP}"
            )
    assert out["verdicts"] == {"inside": 1, "below": 1, "above": 1, "not run": 6}


def test_verdict_bounds_are_inclusive():
    assert fidelity.fidelity_verdict(400.0, [400.0, 500.0, 600.0]) == "inside"
    assert fidelity.fidelity_verdict(600.0, [400.0, 500.0, 600.0]) == "inside"
    assert fidelity.fidelity_verdict(399.9, [400.0, 500.0, 600.0]) == "below"
    assert fidelity.fidelity_verdict(600.1, [400.0, 500.0, 600.0]) == "above"
    assert fidelity.fidelity_verdict(None, [400.0, 500.0, 600.0]) == "not run"


# ----------------------------------------------------------------------------------------- training
def test_training_starts_only_missing_runs_and_reports_a_failed_one(tmp_path, monkeypatch):
    root = tmp_path / "fidelity"
    task = "cartpole-swingup"
    _write_run(root / "tdmpc2" / task / "seed1", "tdmpc2", task, {0: 1.0, STEP: 800.0})  # finished: kept
    commands: list[list[str]] = []

    real_run = subprocess.run

    def fake_train(command, **kwargs):  # stands in for `m3po train`
        if "train" not in command:  # e.g. platform.architecture()'s `file -b` while a module imports
            return real_run(command, **kwargs)
        commands.append(command)
        updates = dict(arg.split("=", 1) for arg in command if "=" in arg)
        if updates["algo"] == "sac" and updates["seed"] == "2":
            raise subprocess.CalledProcessError(1, command)
        _write_run(Path(updates["run_dir"]), updates["algo"], updates["task"], {0: 1.0, STEP: 500.0})
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(learning.subprocess, "run", fake_train)
    out = fidelity.run(
        seeds=2, jobs=1, algos=("tdmpc2", "sac"), tasks=(task,), root=str(root), published=_fake_published()
    )

    started = [dict(arg.split("=", 1) for arg in c[c.index("with") + 1 :]) for c in commands]
    assert sorted((u["algo"], u["task"], u["seed"], u["steps"]) for u in started) == [
        ("sac", task, "1", str(STEP)),
        ("sac", task, "2", str(STEP)),
        ("tdmpc2", task, "2", str(STEP)),
    ]  # tdmpc2 seed 1 was finished already
    assert all(u["run_dir"] == str(root / u["algo"] / task / f"seed{u['seed']}") for u in started)
    assert out["tdmpc2"][task]["ours"]["seeds"] == [800.0, 500.0]
    sac = out["sac"][task]
    assert sac["ours"]["seeds"] == [500.0, None] and sac["verdict"] == "inside"
    assert "exited with status 1" in sac["ours"]["runs"][1]["error"]
    assert sac["missing_seeds"] == [2]


# -------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"algos": ("tdmpc2", "ppo")}, ["'ppo'", "tdmpc2, sac, dreamerv3"]),
        ({"tasks": ("walker-walk",)}, ["'walker-walk'", "cartpole-swingup, reacher-easy, walker-stand"]),
        ({"steps": 0}, ["steps", "got 0"]),
        ({"seeds": -1}, ["seeds", "got -1"]),
        ({"overrides": ("preset=paper",)}, ["--variant-name"]),
    ],
)
def test_bad_input_fails_before_anything_runs(tmp_path, monkeypatch, kwargs, named):
    monkeypatch.setattr(fidelity, "_run_one", _no_training)
    with pytest.raises(ConfigError) as err:
        fidelity.run(root=str(tmp_path), **kwargs)
    for text in named:
        assert text in str(err.value)


def test_cli_unknown_algo_names_the_valid_ones(capsys):
    assert main(["bench", "fidelity", "--algos", "m3po", "--compare-only"]) == 2
    err = capsys.readouterr().err
    assert "'m3po'" in err and "tdmpc2, sac, dreamerv3" in err


def test_cli_compare_only_prints_one_json_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no runs under results/bench/fidelity here
    assert main(["bench", "fidelity", "--compare-only", "--tasks", "walker-stand", "--seeds", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    out = json.loads(lines[0])
    assert out["verdicts"] == {"inside": 0, "below": 0, "above": 0, "not run": 3}
    # The CSV's row 200000 (environment steps) = 100k agent steps; its row 100000 is 390.1/424.5/209.7.
    assert out["sac"]["walker-stand"]["published"]["seeds"] == [941.9, 931.6, 342.7]
    assert (out["agent_step"], out["published_step"]) == (100_000, 200_000)
    assert not (tmp_path / "results").exists()
