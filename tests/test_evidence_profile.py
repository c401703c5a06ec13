"""The ``evidence`` profile (config/evidence.yaml, issue 18 §3): the broad learning bar's tasks and
budget, its runs the bar's runs, the steps its evaluations fall on, its cost, and a figure where one
algorithm ran on fewer tasks than the others.

Nothing here trains: the evaluation steps are those :class:`m3po.trainer.schedule.Schedule` gives at
each algorithm's update size.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from analysis.aggregate import FIGURES, aggregate_figure
from m3po.envs.registry import resolve_tasks
from m3po.record import config_differences
from m3po.trainer.schedule import Schedule
from suite import grid as grids
from suite.bench import learning
from suite.cli import main
from suite.experiment import recorded_config
from suite.publish import EVIDENCE_DIR, find_runs
from suite.registry import ALGORITHMS

ROOT = Path(__file__).resolve().parents[1]
RATES = ROOT / "config" / "rates" / "xeon-2026-12-07.json"
BROAD = learning.TASK_SETS["broad"]
SAC_TASKS = {"fig3a": ["cartpole-swingup", "reacher-easy"], "fig3b": ["mw-reach", "mw-drawer-close"]}


@pytest.fixture(scope="module")
def grid() -> grids.Grid:
    return grids.load({"profile": "evidence"}, ROOT / "config", ROOT / "workflow" / "schema")


def spec() -> dict:
    return yaml.safe_load((ROOT / "config" / "evidence.yaml").read_text())


def test_its_single_task_figures_are_the_broad_bars_tasks_and_budget():
    figures = spec()["figures"]
    dmc = [t for t in BROAD.tasks if t in set(resolve_tasks("dmc39"))]
    mw = [t for t in BROAD.tasks if t in set(resolve_tasks("mw50"))]
    assert len(dmc) >= 8 and len(mw) >= 4 and dmc + mw == list(BROAD.tasks)
    assert figures["fig3a"]["tasks"] == dmc and figures["fig3b"]["tasks"] == mw
    assert figures["ablations"]["tasks"] == list(BROAD.tasks)
    for fig in ("fig3a", "fig3b", "ablations"):
        assert figures[fig]["steps"] == BROAD.steps == 500_000
    assert spec()["seeds"] == 3
    assert figures["ablations"]["variants"] == ["default", "alpha0=0"]


def test_it_expands_into_150_runs_and_trains_each_once(grid):
    runs = grid.runs.values()
    by = {}
    for run in runs:
        by.setdefault((run.algo, run.variant, run.steps), []).append(run)
    assert {k: len(v) for k, v in by.items()} == {
        ("m3po", "default", 500_000): 36,  # fig3a + fig3b, shared with the ablations
        ("m3po", "alpha0=0", 500_000): 36,
        ("ppo", "default", 500_000): 36,
        ("sac", "default", 100_000): 12,
        ("m3po", "default", 102_400): 3,
        ("tdmpc2", "default", 102_400): 3,
        ("mt-ppo", "default", 102_400): 3,
        ("mt-sac", "default", 102_400): 3,
        **{(a, f"num_envs={n}", 49_152): 3 for a in ("m3po", "tdmpc2") for n in (2, 8, 32)},
    }
    assert len(grid.runs) == 150
    # The ablations' default runs are fig3a's and fig3b's M3PO runs: one directory, two figures.
    defaults = [k for k in grid.members["ablations"] if "/default/" in k]
    assert len(defaults) == 36
    assert all(grid.runs[k].figures in (["fig3a", "ablations"], ["fig3b", "ablations"]) for k in defaults)
    # SAC: 3 seeds on 2 tasks of each single-task figure, at 100k; the other algorithms on every task.
    for fig, tasks in SAC_TASKS.items():
        sac = {grid.runs[k].task for k in grid.members[fig] if grid.runs[k].algo == "sac"}
        assert sorted(sac) == sorted(tasks)
        for algo in ("m3po", "ppo"):
            mine = [k for k in grid.members[fig] if grid.runs[k].algo == algo]
            assert len(mine) == 3 * len(spec()["figures"][fig]["tasks"])
    # TD-MPC2's update-to-data ratio is recorded in each of its runs' arguments.
    tdmpc2 = [r for r in runs if r.algo == "tdmpc2"]
    assert tdmpc2 and all(r.overrides["utd_ratio"] == 0.125 for r in tdmpc2)


def _bench_updates(task: str, seed: int, extra: list[str]) -> list[str]:
    """What ``m3po bench learning --task-set broad`` trains a run with (learning._run_one)."""
    return [f"task={task}", f"seed={seed}", f"steps={BROAD.steps}", *extra, "progress=False", "threads=1"]


@pytest.mark.parametrize(
    ("algo", "variant", "extra"),
    [("m3po", "default", ["algo=m3po"]), ("m3po", "alpha0=0", ["algo=m3po", *learning.NO_BONUS]),
     ("ppo", "default", ["algo=ppo"])],
    ids=["m3po", "alpha0=0", "sb3-ppo"],
)  # fmt: skip
def test_its_runs_record_the_config_of_the_broad_bars_runs(grid, algo, variant, extra):
    """So the bar's finished runs, moved into this profile's run directories, are not trained again."""
    for task in (BROAD.tasks[0], BROAD.tasks[-1]):
        key = grids.run_dir("evidence", algo, task, variant, 2)
        ours, defaults = recorded_config([*grid.runs[key].updates(key), "threads=1"])
        theirs, _ = recorded_config(_bench_updates(task, 2, extra))
        assert config_differences(theirs, ours, defaults) == []


def _update_size(run: grids.Run) -> int:
    """Agent steps between two of the run's evaluation chances (its trainer's iteration or rollout)."""
    values = ALGORITHMS[run.algo].preset_dict(run.preset)
    for key, value in run.overrides.items():
        *parents, last = key.split(".")
        node = values
        for part in parents:
            node = node[part]
        node[last] = value
    per_env = {"m3po": ("ppo", "rollout_len"), "ppo": ("ppo", "n_steps"), "mt-ppo": ("ppo", "n_steps")}
    per_env |= {"sac": ("sac", "train_freq"), "mt-sac": ("sac", "train_freq")}
    section, key = per_env.get(run.algo, (None, None))
    return (values[section][key] if section else 1) * values["num_envs"]


def eval_steps(run: grids.Run) -> list[int]:
    """The steps a run evaluates at: step 0, then at its update boundaries as its Schedule says."""
    schedule = Schedule(run.steps, run.overrides["eval_every"], run.overrides["checkpoint_every"])
    state, size, steps = schedule.initial_state(), _update_size(run), [0]
    schedule.evaluated(state)
    while state.step < run.steps:
        state.step += size
        if schedule.eval_due(state):
            steps.append(state.step)
            schedule.evaluated(state)
    return steps


def test_its_evaluations_read_100k_and_500k(grid):
    for run in grid.runs.values():
        if run.task not in BROAD.tasks:
            continue
        steps = eval_steps(run)
        for at in (s for s in BROAD.at if s <= run.steps):  # as `m3po bench learning` reads a figure
            first = min(s for s in steps if s >= at)
            assert first <= at * (1 + learning.READ_TOLERANCE), (run.algo, at, steps)
        if run.algo == "sac":  # exactly at the published curves' steps (their rows 100k and 200k)
            assert {50_000, 100_000} <= set(steps)
        if run.algo in ("m3po", "ppo"):
            assert {100_352, 501_760} <= set(steps)


@pytest.mark.parametrize("figure", ["fig3c", "fig4"])
def test_fig3c_and_fig4_runs_evaluate_at_the_same_steps_and_end_together(grid, figure):
    runs = [grid.runs[k] for k in grid.members[figure]]
    steps = {(r.algo, r.variant): eval_steps(r) for r in runs}
    assert len({tuple(s) for s in steps.values()}) == 1, steps
    assert next(iter(steps.values()))[-1] == runs[0].steps


def test_its_cost_at_the_saved_rates(grid, capsys):
    assert main(["bench", "cost", "--profile", "evidence", "--rates", str(RATES)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["total"]["runs"] == len(grid.runs) == 150
    assert all(not f["without_rate"] for f in out["figures"].values())  # every algorithm has a rate
    saved = json.loads(RATES.read_text())["algos"]
    assert all(entry["source"] for entry in saved.values())  # where each figure comes from
    assert {r.algo for r in grid.runs.values()} <= set(saved)
    rates = {a: e["sps"] for a, e in saved.items()}
    expected = sum(r.steps / rates[r.algo] for r in grid.runs.values()) / 3600
    assert out["total"]["cpu_hours"] == pytest.approx(expected, abs=0.1)


def test_the_default_profile_stays_quick():
    assert yaml.safe_load((ROOT / "config" / "workflow.yaml").read_text())["profile"] == "quick"


def test_a_figure_aggregates_each_algorithm_over_the_tasks_it_ran():
    """fig3a of this profile: SAC on 2 of the 8 tasks, to 100k; M3PO on all 8 to 500k."""
    rng = np.random.default_rng(0)
    tasks = spec()["figures"]["fig3a"]["tasks"]
    rows = [
        {"algo": algo, "suite": "dmc39", "mode": "single", "variant": "default", "task": task, "seed": seed,
         "step": step, "score": level * step / steps[-1] + rng.normal(0, 5)}
        for algo, own, steps, level in (
            ("m3po", tasks, [0, 100_352, 501_760], 800),
            ("sac", SAC_TASKS["fig3a"], [0, 50_000, 100_000], 300),
        )
        for task in own
        for seed in (1, 2, 3)
        for step in steps
    ]  # fmt: skip
    result = aggregate_figure(pd.DataFrame(rows), FIGURES["fig3a"], 200, seed=0)
    assert result.algos["m3po"].tasks == sorted(tasks)
    assert result.algos["sac"].tasks == sorted(SAC_TASKS["fig3a"])
    assert list(result.algos["sac"].steps) == [0, 50_000, 100_000]
    assert result.algos["sac"].final_scores.shape == (3, 2)
    assert "sac" in result.improvement  # over the 2 tasks both ran


def test_make_figures_trains_none_of_the_shipped_evidence(grid, tmp_path):
    from test_workflow import planned_runs, snakemake

    evidence = ROOT / EVIDENCE_DIR
    shipped = find_runs(evidence / "evidence") if (evidence / "evidence").is_dir() else []
    if not shipped:
        pytest.skip(f"no run of the evidence profile is shipped yet ({EVIDENCE_DIR}/evidence)")
    # A fresh clone: the shipped runs and nothing trained.
    shutil.copytree(evidence, tmp_path / EVIDENCE_DIR)
    done = snakemake(tmp_path, "-n", "figures", profile="evidence")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "not used" not in done.stderr, done.stderr[-3000:]
    trained_here = {grids.run_dir_of_shipped(str(run.relative_to(ROOT))) for run in shipped}
    # Once every run ships, this is the empty set: `make figures` trains nothing.
    assert planned_runs(done, "evidence") == set(grid.runs) - trained_here
