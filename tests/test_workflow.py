"""The Snakemake workflow: the smoke grid end to end, resuming, the paper grid's DAG, bad config.

Expectations are computed here from the grid files (YAML) and the task registry, not from the
workflow's own expansion in suite/grid.py.
"""

import json
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pandas as pd
import pytest
import yaml

from m3po.envs.registry import resolve_tasks
from suite.experiment import ALGOS
from suite.publish import ship_runs

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config"
SNAKEFILE = ROOT / "workflow" / "Snakefile"
SUPPORTED = set(ALGOS)


def snakemake(workdir: Path, *args: str, profile: str | None = "smoke") -> subprocess.CompletedProcess:
    """Targets go before --config (it takes every name=value word after it)."""
    config = ["--config", f"profile={profile}"] if profile else []
    command = [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "--directory", str(workdir)]
    return subprocess.run([*command, *args, *config], capture_output=True, text=True)


def grid(profile: str) -> dict:
    return yaml.safe_load((CONFIG / f"{profile}.yaml").read_text())


def expected_runs(profile: str) -> dict[str, set[str]]:
    """Figure -> run directories, from the grid file by the rules the schema documents."""
    g = grid(profile)
    out = {}
    for figure, spec in g["figures"].items():
        algos = [a for a in spec["algos"] if a in SUPPORTED or not g.get("supported_algos_only", False)]
        if spec["mode"] == "single":
            tasks = [t for entry in spec["tasks"] for t in resolve_tasks(entry)]
        else:
            tasks = [entry.replace(",", "+") for entry in spec["tasks"]]
        out[figure] = {
            f"results/runs/{profile}/{a}/{t}/{v}/seed{s}"
            for a in algos
            for t in tasks
            for v in spec.get("variants", ["default"])
            for s in range(1, g["seeds"] + 1)
        }
    return out


def test_paper_dry_run_lists_the_whole_grid(tmp_path):
    done = snakemake(tmp_path, "-n", "figures", profile="paper")
    assert done.returncode == 0, done.stderr[-3000:]
    planned = set(re.findall(r"output: (results/runs/paper/\S+)\.done", done.stdout + done.stderr))
    runs = expected_runs("paper")
    # dmc39 and mw50 x 4 algorithms x 5 seeds; mt80 x 4; mt80 x 2 algorithms x 4 env counts;
    # 5 tasks x 8 variants (the default shared with fig3a).
    assert {figure: len(r) for figure, r in runs.items()} == {
        "fig3a": 39 * 4 * 5, "fig3b": 50 * 4 * 5, "fig3c": 4 * 5, "fig4": 2 * 4 * 5, "ablations": 5 * 8 * 5,
    }  # fmt: skip
    assert planned == set().union(*runs.values())
    assert len(planned) == 2015


def _status(workdir: Path, run: str) -> dict:
    return json.loads((workdir / run / "status.json").read_text())


def interrupted_smoke_run(workdir: Path) -> tuple[list[str], dict[str, list]]:
    """The smoke profile run locally in ``workdir``, first in part, then to the end: (the runs of the
    first part, their attempts before the second). The ``smoke_run`` fixture (conftest.py) runs it
    once per session: tests/test_slurm.py compares its SLURM run with it."""
    runs = expected_runs("smoke")
    first = sorted(runs["fig3a"] | runs["fig3b"])
    # An interrupted workflow: only some runs got done.
    done = snakemake(workdir, "--cores", "2", *[f"{r}.done" for r in first])
    assert done.returncode == 0, done.stderr[-3000:]
    attempts = {r: _status(workdir, r)["attempts"] for r in first}
    # ... and one was killed between finishing and writing its marker.
    (workdir / f"{first[0]}.done").unlink()

    done = snakemake(workdir, "--cores", "2", "figures")
    assert done.returncode == 0, done.stderr[-3000:]
    return first, attempts


@pytest.mark.slow
def test_smoke_runs_end_to_end_and_resumes_without_redoing_finished_runs(smoke_run):
    tmp_path, first, attempts = smoke_run
    runs = expected_runs("smoke")
    for r in first:
        assert _status(tmp_path, r)["attempts"] == attempts[r], f"{r} was trained again"
    assert (
        "is finished already: not trained again"
        in (tmp_path / "results/logs/smoke/train" / Path(first[0]).relative_to("results/runs/smoke"))
        .with_suffix(".log")
        .read_text()
    )
    every = set().union(*runs.values())
    assert all(_status(tmp_path, r)["status"] == "finished" for r in every)

    out = tmp_path / "results" / "smoke"
    pngs = {p.name for p in (out / "figures").glob("*.png")}
    figures = {name for name in pngs if not name.startswith("diagnostics-")}
    assert figures == {
        "fig3a.png", "fig3a-intervals.png", "fig3a-profiles.png", "fig3b.png", "fig3b-intervals.png",
        "fig3b-profiles.png", "fig3c.png", "fig3c-intervals.png", "fig3c-profiles.png", "fig4.png",
        "ablation-alpha0.png", "ablation-horizon.png", "ablation-num_envs.png",
    }  # fmt: skip
    # The report draws the off-policyness of each figure's M3PO runs (declared outputs of its rule).
    assert pngs - figures == {f"diagnostics-{figure}.png" for figure in runs}
    assert all((out / "figures" / f"diagnostics-{figure}.pdf").exists() for figure in runs)
    for name in pngs:
        image = matplotlib.image.imread(out / "figures" / name)
        assert image.ndim == 3 and min(image.shape[:2]) > 100
    assert "## Claims of the paper against this suite" in (out / "report.md").read_text()
    assert "## Fidelity: our runs beside the published (TD-MPC2 authors)" in (out / "report.md").read_text()
    # claims.json: one record per claim of the paper, each with one of the four verdicts.
    claims = yaml.safe_load((ROOT / "analysis" / "paper-claims.yaml").read_text())["claims"]
    records = json.loads((out / "claims.json").read_text())
    assert [r["claim"] for r in records] == [c["id"] for c in claims]
    assert all(r["verdict"] in r["verdicts"] and len(r["verdicts"]) == 4 for r in records)
    # report.html: one page with the figures embedded.
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64") >= len(pngs)
    # fig3a and fig3b carry the published curves on their tasks; fig3c (multi-task) none.
    for figure in ("fig3a", "fig3b", "fig3c"):
        reference = pickle.loads((out / "aggregates" / f"{figure}.pkl").read_bytes())["reference"]
        assert (reference is None) == (figure == "fig3c"), figure
        if reference is not None:
            assert {"tdmpc2", "sac", "dreamerv3"} & set(reference.algos), figure

    # One row per run, evaluation and task: evaluations at step 0 and every eval_every up to steps.
    g = grid("smoke")
    scores = pd.read_csv(out / "tables" / "scores.csv")
    assert set(scores["run_dir"]) == every
    for figure, members in runs.items():
        spec = g["figures"][figure]
        n_evals = spec["steps"] // g["overrides"]["eval_every"] + 1
        n_tasks = 1 if spec["mode"] == "single" else len(resolve_tasks(spec["tasks"][0]))
        for r in members:
            assert (scores["run_dir"] == r).sum() == n_evals * n_tasks, r
    assert set(scores["variant"]) == {"default", "alpha0=0", "horizon=1", "num_envs=4"}
    assert set(scores["algo"]) == SUPPORTED & {a for s in g["figures"].values() for a in s["algos"]}

    done = snakemake(tmp_path, "-n", "figures")
    assert done.returncode == 0 and "Nothing to be done" in done.stdout + done.stderr


def planned_runs(done: subprocess.CompletedProcess, profile: str) -> set[str]:
    """The run directories a dry run would train."""
    return set(re.findall(rf"output: (results/runs/{profile}/\S+)\.done", done.stdout + done.stderr))


@pytest.mark.slow
def test_shipped_runs_are_not_trained_and_are_what_the_analysis_reads(smoke_run, tmp_path):
    workdir, _, _ = smoke_run
    runs = expected_runs("smoke")
    every = set().union(*runs.values())
    shipped = sorted(runs["fig3b"])
    ship_runs(
        workdir / "results/runs/smoke",
        tmp_path / "results/evidence/smoke",
        runs=[workdir / r for r in shipped],
    )
    as_shipped = {r: r.replace("results/runs/", "results/evidence/", 1) for r in shipped}

    # A clone with the shipped runs only: everything else is to be trained, none of them.
    done = snakemake(tmp_path, "-n", "figures")
    assert done.returncode == 0, done.stderr[-3000:]
    assert planned_runs(done, "smoke") == every - set(shipped)
    assert "not used" not in done.stderr

    # With the others trained here too, nothing trains, and the tables read the shipped copies.
    for r in every - set(shipped):
        shutil.copytree(workdir / r, tmp_path / r)
        shutil.copy2(workdir / f"{r}.done", tmp_path / f"{r}.done")
    done = snakemake(tmp_path, "-n", "figures")
    assert done.returncode == 0 and planned_runs(done, "smoke") == set(), done.stdout[-3000:]
    done = snakemake(tmp_path, "--cores", "1", "results/smoke/tables/runs.csv")
    assert done.returncode == 0, done.stderr[-3000:]
    scores = pd.read_csv(tmp_path / "results/smoke/tables/scores.csv")
    assert set(scores["run_dir"]) == every - set(shipped) | set(as_shipped.values())

    # A grid that asks a shipped run for another config trains it, and says why.
    done = snakemake(tmp_path, "-n", "figures", "--config", "profile=smoke", "shipped=false", profile=None)
    assert done.returncode == 0 and planned_runs(done, "smoke") == set(shipped), done.stderr[-3000:]
    config = tmp_path / as_shipped[shipped[0]] / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "seed": 7}))
    done = snakemake(tmp_path, "-n", "figures")
    assert planned_runs(done, "smoke") == {shipped[0]}
    assert f"shipped run {as_shipped[shipped[0]]} not used: differs from the grid in seed" in done.stderr


def _bad_grid(tmp_path: Path, change) -> list[str]:
    g = grid("smoke")
    change(g)
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump({"grid": g}))
    return ["--configfile", str(path)]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda g: g["figures"]["fig3a"].update(algos=["m3po", "ppo2"]), ["ppo2", "dreamerv3"]),
        (
            lambda g: g["figures"]["fig3b"].update(tasks=["cartpol-swingup"]),
            ["cartpol-swingup", "cartpole-swingup"],
        ),
        (lambda g: g["figures"]["ablations"].update(variants=["H=5"]), ["H=5", "horizon="]),
        (lambda g: g["figures"]["fig3a"].update(steps="many"), ["many"]),
    ],
    ids=["algo", "task", "variant", "steps"],
)
def test_bad_grid_values_stop_before_any_job(tmp_path, change, named):
    done = snakemake(tmp_path, "--cores", "1", "figures", *_bad_grid(tmp_path, change), profile=None)
    message = done.stdout + done.stderr
    assert done.returncode != 0
    for text in named:
        assert text in message, message[-3000:]
    assert not (tmp_path / "results").exists()


def test_unknown_profile_names_the_valid_ones(tmp_path):
    done = snakemake(tmp_path, "--cores", "1", "figures", profile="papr")
    message = done.stdout + done.stderr
    assert done.returncode != 0
    assert "'papr'" in message and "paper, quick, smoke" in message
    assert not (tmp_path / "results").exists()
