"""``m3po bench analysis``: the grid from the registries (suite.bench.analysis), timed by analysis.bench."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

import suite.bench.analysis as suite_bench
from analysis import bench, synthetic
from analysis.aggregate import FIGURES
from m3po.envs.registry import SUITES


def test_the_grid_is_the_figures_with_the_registries_names() -> None:
    got = suite_bench.grid()
    assert got["single"] == {"dmc39": SUITES["dmc39"], "mw50": SUITES["mw50"]}
    assert got["multi"] == {"mt80": SUITES["mt80"]}
    assert set(got["single_algos"]) == {"m3po", "ppo", "sac", "dreamerv3"}
    assert set(got["multi_algos"]) == {"m3po", "tdmpc2", "mt-ppo", "mt-sac"}


def test_run_takes_no_arguments_and_hands_the_grid_to_analysis(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = {}
    monkeypatch.setattr(bench, "run", lambda **kwargs: seen.update(kwargs) or {"runs": 0})
    assert suite_bench.run() == {"runs": 0}
    assert seen == {**suite_bench.grid(), "reps": 50_000, "workers": None}


def test_a_figure_algorithm_the_registry_lacks_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    figures = {**FIGURES, "fig3a": replace(FIGURES["fig3a"], algos=("m3po", "ppo-renamed"))}
    monkeypatch.setattr(suite_bench, "FIGURES", figures)
    with pytest.raises(ValueError, match="fig3a shows 'ppo-renamed'"):
        suite_bench.grid()
    figures["fig3a"] = replace(FIGURES["fig3a"], algos=("m3po", "mt-sac"))
    with pytest.raises(ValueError, match="fig3a is single-task, which mt-sac"):
        suite_bench.grid()


def test_an_algorithm_without_a_synthetic_level_is_an_error(tmp_path: Path) -> None:
    grid = synthetic.Grid(
        single={"dmc39": ["walker-walk"]}, multi={}, single_algos=("m3po", "new-algo"), multi_algos=()
    )
    with pytest.raises(ValueError, match="no synthetic level for dmc39/new-algo"):
        synthetic.write_grid(tmp_path, grid)


def test_bench_on_a_small_grid() -> None:
    figures = bench.run(
        single={"dmc39": SUITES["dmc39"][:2], "mw50": SUITES["mw50"][:2]},
        multi={"mt80": SUITES["mt80"][:3]},
        single_algos=("m3po", "ppo", "sac", "dreamerv3"),
        multi_algos=("m3po", "tdmpc2", "mt-ppo", "mt-sac"),
        reps=100,
        workers=1,
        rliable_reps=10,
    )
    assert figures["runs"] == 4 * (2 + 2) * 5 + 4 * 5  # one run per task (single), one per seed (multi)
    assert figures["rows"] == 100 * (4 * (2 + 2) * 5 + 4 * 5 * 3)  # 100 evaluations of each run's tasks
    assert all(figures[key] >= 0 for key in ("collect_s", "aggregate_s", "rliable_estimate_s"))
