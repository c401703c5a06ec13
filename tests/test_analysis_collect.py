"""analysis.collect: finished runs into the table, every other run listed apart with its reason."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import collect, synthetic


def _runs(root: Path) -> Path:
    runs = root / "runs"
    synthetic.write_run(
        runs / "m3po" / "walker-walk" / "seed1",
        task_set="walker-walk",
        seed=1,
        scores={100: {"walker-walk": 400.0}, 200: {"walker-walk": 1200.0}},
        sps=50.0,
    )
    synthetic.write_run(
        runs / "other" / "mt" / "seed2",
        task_set="walker-walk,mw-reach",
        seed=2,
        algo="ppo",
        variant="alpha0=0",
        scores={100: {"walker-walk": -5.0, "mw-reach": 90.0}},
        peak_rss_mib=None,  # as runs from before memory was logged
    )
    synthetic.write_run(
        runs / "m3po" / "x" / "seed3",
        task_set="walker-walk",
        seed=3,
        scores={100: {"walker-walk": 1.0}},
        status="running",
    )
    synthetic.write_run(
        runs / "m3po" / "x" / "seed4",
        task_set="walker-walk",
        seed=4,
        scores={100: {"walker-walk": 1.0}},
        status="failed",
        error="NaN loss",
    )
    corrupt = synthetic.write_run(
        runs / "m3po" / "x" / "seed5", task_set="walker-walk", seed=5, scores={100: {"walker-walk": 1.0}}
    )
    (corrupt / "eval.jsonl").write_text('{"step": 100, "task": "walker-walk"\n')
    no_status = synthetic.write_run(
        runs / "m3po" / "x" / "seed6", task_set="walker-walk", seed=6, scores={100: {"walker-walk": 1.0}}
    )
    (no_status / "status.json").unlink()
    bad_status = synthetic.write_run(
        runs / "m3po" / "x" / "seed7", task_set="walker-walk", seed=7, scores={100: {"walker-walk": 1.0}}
    )
    (bad_status / "status.json").write_text("{not json")
    return runs


def test_only_finished_runs_are_aggregated(tmp_path: Path) -> None:
    got = collect.collect(_runs(tmp_path))
    assert sorted(got.scores["seed"].unique()) == [1, 2]
    reasons = dict(zip(got.excluded["seed"], got.excluded["reason"], strict=True))
    assert reasons[3] == "status is 'running'"
    assert reasons[4] == "status is 'failed': NaN loss"
    assert "eval.jsonl line 1 is corrupt" in reasons[5]
    assert reasons[6] == "status.json is missing"
    assert "status.json is corrupt" in reasons[7]
    assert len(got.excluded) == 5
    assert got.excluded.set_index("seed").loc[4, "status"] == "failed"


def test_columns_rules_and_normalization(tmp_path: Path) -> None:
    table = collect.collect(_runs(tmp_path)).scores
    assert list(table.columns) == list(collect.SCORE_COLUMNS)
    single = table[table["seed"] == 1].set_index("step")
    # M3PO's config has no algo: the path component after runs/ decides.
    assert set(single["algo"]) == {"m3po"} and set(single["variant"]) == {"default"}
    assert (single.loc[200, "normalized"], single.loc[100, "normalized"]) == (100.0, 40.0)  # capped at 100
    assert set(single["suite"]) == {"dmc39"} and set(single["mode"]) == {"single"}
    assert single.loc[200, "wall_clock"] == pytest.approx(4.0) and single.loc[200, "sps"] == 50.0
    multi = table[table["seed"] == 2].set_index("task")
    assert set(multi["algo"]) == {"ppo"} and set(multi["variant"]) == {"alpha0=0"}  # config beats the path
    assert multi.loc["walker-walk", "normalized"] == 0.0  # capped at 0
    assert multi.loc["mw-reach", "normalized"] == 90.0 and multi.loc["mw-reach", "success"] == 0.9
    assert set(multi["mode"]) == {"multi"}


def test_tables_written_as_parquet_and_csv(tmp_path: Path) -> None:
    got = collect.collect(_runs(tmp_path))
    paths = collect.write_tables(got, tmp_path / "tables")
    assert {p.name for p in paths} >= {"scores.parquet", "scores.csv", "excluded.parquet", "excluded.csv"}
    back = pd.read_parquet(tmp_path / "tables" / "scores.parquet")
    pd.testing.assert_frame_equal(back, got.scores, check_dtype=False)
    assert len(pd.read_csv(tmp_path / "tables" / "excluded.csv")) == 5
    compute = pd.read_csv(tmp_path / "tables" / "compute.csv").set_index("seed")
    assert compute.loc[1, "peak_memory"] == pytest.approx(2.0)  # 2048 MiB
    assert np.isnan(compute.loc[2, "peak_memory"])  # not recorded
    assert compute["peak_gpu_memory"].isna().all()  # CPU runs record no GPU memory


def test_algo_rule_without_runs_component(tmp_path: Path) -> None:
    run = synthetic.write_run(
        tmp_path / "elsewhere", task_set="walker-walk", seed=1, scores={1: {"walker-walk": 1.0}}
    )
    assert collect.algo_of(json.loads((run / "config.json").read_text()), run) == "m3po"
