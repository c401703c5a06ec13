"""The README's findings table (analysis/findings.py): it is the shipped findings file's, the file rests
on every shipped run, and the table and its markers behave."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from analysis import findings, synthetic
from suite.bench.analysis import grid
from suite.publish import scan_for_unsafe

REPO = Path(__file__).resolve().parents[1]


def _record() -> dict:
    return json.loads(findings.findings_path("evidence").read_text())


def test_the_readme_opens_its_results_with_the_shipped_findings_table() -> None:
    readme = (REPO / "README.md").read_text()
    assert readme.index("## Findings") < readme.index("## Installation details")
    assert findings.with_tables(readme, _record()) == readme, (
        "README's findings tables are stale: python -m analysis.findings readme"
    )
    assert readme.index(findings.TASKS_START) > readme.index("### The evidence profile")
    assert findings.main(["readme", "--check"]) == 0


def test_readme_check_names_a_stale_table_and_writes_nothing(tmp_path: Path, capsys) -> None:
    stale = tmp_path / "README.md"
    stale.write_text(
        f"# x\n{findings.START}\nold\n{findings.END}\n{findings.TASKS_START}\n{findings.TASKS_END}\n"
    )
    assert findings.main(["readme", "--check", "--readme", str(stale)]) == 1
    assert "findings tables are stale" in capsys.readouterr().err
    assert "old" in stale.read_text()
    assert findings.main(["readme", "--readme", str(stale)]) == 0
    assert findings.main(["readme", "--check", "--readme", str(stale)]) == 0
    stale.write_text("# no markers\n")
    assert findings.main(["readme", "--readme", str(stale)]) == 2
    assert "no findings markers" in capsys.readouterr().err


def test_the_findings_rest_on_every_shipped_run() -> None:
    record = _record()
    assert record["runs"] == findings.shipped_runs("evidence"), (
        "runs shipped since the findings were judged: python -m analysis.findings build && "
        "python -m analysis.findings readme"
    )
    assert [c["claim"] for c in record["claims"]] == [
        "dmc39-final", "mw50-final", "mt80-final", "mt80-stability", "vectorization-stability",
        "sample-efficiency-dreamer", "outperforms-single-task",
    ]  # fmt: skip
    assert record["bootstrap"]["reps"] == 50_000 and not record["dirty"]
    assert scan_for_unsafe([findings.findings_path("evidence")]) == []  # it ships, like the runs


def test_the_per_task_scores_are_the_shipped_runs() -> None:
    record = _record()
    assert record["tasks"]["runs"] == findings.task_scores("evidence"), (
        "the findings file's per-task scores are not the shipped runs': python -m analysis.findings build"
    )
    single = [r for r in record["runs"] if "+" not in Path(r).parts[-3]]  # multi-task: a+b
    assert len(record["tasks"]["runs"]) == len(single)


def test_the_per_task_tables_show_seeds_means_gaps_and_the_published_curves() -> None:
    def run(algo: str, task: str, seed: int, at: dict, variant: str = "default") -> dict:
        return {"algo": algo, "variant": variant, "task": task, "seed": seed, "at": at, "read_at": {}}

    record = {
        "tasks": {
            "steps": [100_000, 500_000],
            "order": ["walker-walk", "cup-catch", "mw-reach"],
            "runs": [
                run("ppo", "walker-walk", 1, {"100000": 100.0, "500000": 600.0}),
                run("ppo", "walker-walk", 2, {"100000": 200.0, "500000": 700.0}),
                run("m3po", "walker-walk", 1, {"100000": 542.4, "500000": None}),
                run("m3po", "mw-reach", 1, {"100000": 70.0, "500000": 90.0}, variant="alpha0=0"),
            ],
            "published": {"sac": {"walker-walk": {"100000": [900.0, 946.0], "500000": [950.0, 964.0]}}},
        }
    }
    lines = findings.task_tables(record).splitlines()
    assert "| | walker-walk | cup-catch |" in lines and "| | mw-reach |" in lines  # one table per suite
    assert "| M3PO | 542 / – | not yet |" in lines  # M3PO's default first; no evaluation at 500k
    assert "| PPO | 150 / 650 (2) | not yet |" in lines  # two seeds: their mean
    assert "| SAC (published) | 923 / 957 (2) | – / – |" in lines
    assert "| M3PO (alpha0=0) | 70 / 90 |" in lines and "| PPO | not yet |" in lines


def test_the_table_escapes_cells_and_names_what_it_rests_on() -> None:
    record = {
        "profile": "p",
        "commit": "0123456789",
        "dirty": False,
        "bootstrap": {"reps": 100, "seed": 0},
        "runs": ["results/evidence/p/ppo/t/default/seed1", "results/evidence/p/m3po/t/default/seed1"],
        "hosts": ["CPU X, 2 logical CPUs, x86_64"],
        "threads": 1,
        "compute": [{"algo": "M3PO", "runs": 1, "wall_clock_h": 1.0, "sps_median": 200.0},
                    {"algo": "PPO", "runs": 1, "wall_clock_h": 0.25, "sps_median": 1000.0}],
        "claims": [{"claim": "c", "paper": "a | b", "ours": "x", "verdict": "inconclusive", "budget": "",
                    "scope": "at 1k agent steps"}],
    }  # fmt: skip
    text = findings.table(record)
    assert "| c | a \\| b | x | inconclusive | — | at 1k agent steps |" in text.splitlines()
    assert (
        "Training them took 1.2 h of wall-clock (M3PO 1 runs, 1.0 h at a median 200 agent steps/s, PPO 1 "
        "runs, 0.2 h at a median 1,000 agent steps/s; the report's compute table) on CPU X, 2 logical CPUs, "
        "x86_64, 1 torch thread(s) per run."
    ) in text
    assert "Judged from the 2 runs of the `p` profile" in text and "(m3po, ppo)" in text and "0123456" in text
    with pytest.raises(ValueError, match="no findings markers"):
        findings.with_table("no markers here", text)
    replaced = findings.with_table(f"a\n{findings.START}\nold\n{findings.END}\nb", "new")
    assert replaced == f"a\n{findings.START}\nnew\n{findings.END}\nb"


def test_build_judges_a_profiles_shipped_runs(tmp_path: Path) -> None:
    synthetic.write_grid(
        tmp_path / "results" / "evidence" / "p",
        synthetic.Grid(**grid(), seeds=(1, 2, 3), evals=3, task_limit=2, noise=0.02),
    )
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "p.yaml").write_text("reps: 200\n")
    # write_grid puts runs under <root>/runs: ship them where a profile's runs ship.
    runs = tmp_path / "results" / "evidence" / "p" / "runs"
    for child in runs.iterdir():
        shutil.move(str(child), runs.parent / child.name)
    runs.rmdir()
    path = findings.build("p", root=tmp_path)
    record = json.loads(path.read_text())
    assert path == tmp_path / "results" / "evidence" / "p-findings.json"
    assert record["runs"] == findings.shipped_runs("p", tmp_path) and len(record["runs"]) > 4
    assert all(not r.startswith("/") for r in record["runs"]) and record["bootstrap"]["reps"] == 200
    assert {c["verdict"] for c in record["claims"]} <= set(record["claims"][0]["verdicts"])
    assert (tmp_path / "build" / "findings" / "p" / "report.html").is_file()
    single = [r for r in record["runs"] if "/mt80/" not in r]  # the synthetic grid's multi-task runs
    assert [r["seed"] for r in record["tasks"]["runs"]] == [int(Path(r).name[4:]) for r in single]
    assert all(set(r["at"]) == {"100000", "500000"} for r in record["tasks"]["runs"])
    assert "| M3PO |" in findings.task_tables(record)
    with pytest.raises(SystemExit, match="no shipped runs of profile 'q'"):
        findings.build("q", root=tmp_path)
