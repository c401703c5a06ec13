"""analysis.collect: finished runs into the table, every other run listed apart with its reason."""

from __future__ import annotations

import gzip
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
        algo="m3po",
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
        algo="m3po",
        status="running",
    )
    synthetic.write_run(
        runs / "m3po" / "x" / "seed4",
        task_set="walker-walk",
        seed=4,
        scores={100: {"walker-walk": 1.0}},
        algo="m3po",
        status="failed",
        error="NaN loss",
    )
    corrupt = synthetic.write_run(
        runs / "m3po" / "x" / "seed5",
        task_set="walker-walk",
        seed=5,
        scores={100: {"walker-walk": 1.0}},
        algo="m3po",
    )
    (corrupt / "eval.jsonl").write_text('{"step": 100, "task": "walker-walk"\n')
    no_status = synthetic.write_run(
        runs / "m3po" / "x" / "seed6",
        task_set="walker-walk",
        seed=6,
        scores={100: {"walker-walk": 1.0}},
        algo="m3po",
    )
    (no_status / "status.json").unlink()
    bad_status = synthetic.write_run(
        runs / "m3po" / "x" / "seed7",
        task_set="walker-walk",
        seed=7,
        scores={100: {"walker-walk": 1.0}},
        algo="m3po",
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


def test_a_workflow_runs_variant_is_its_paths_when_its_config_records_none(tmp_path: Path) -> None:
    # The workflow writes results/runs/<profile>/<algo>/<task>/<variant>/seed<n> and records the variant
    # nowhere else: an alpha0=0 run must not be read as M3PO's default (pooled with it in every figure).
    runs = tmp_path / "runs"
    for variant, seed in (("default", 1), ("alpha0=0", 1)):
        synthetic.write_run(runs / "m3po" / "walker-walk" / variant / f"seed{seed}", task_set="walker-walk",
                            seed=seed, scores={100: {"walker-walk": 1.0}}, algo="m3po")  # fmt: skip
    synthetic.write_run(runs / "m3po" / "walker-walk+mw-reach" / "num_envs=2" / "seed2",
                        task_set="walker-walk,mw-reach", seed=2, algo="m3po",
                        scores={100: {"walker-walk": 1.0, "mw-reach": 0.0}})  # fmt: skip
    # Not the layout (another algo, task or seed in the path): default, never a guess.
    for path, seed in (
        ("ppo/walker-walk/x/seed3", 3),
        ("m3po/cheetah-run/x/seed4", 4),
        ("m3po/walker-walk/x/seed9", 5),
    ):
        synthetic.write_run(runs / path, task_set="walker-walk", seed=seed,
                            scores={100: {"walker-walk": 1.0}}, algo="m3po")  # fmt: skip
    table = collect.collect(runs).scores
    names = table["run_dir"].map(lambda r: str(Path(r).relative_to(runs)))
    variants = dict(zip(names, table["variant"], strict=True))
    assert variants == {
        "m3po/walker-walk/default/seed1": "default", "m3po/walker-walk/alpha0=0/seed1": "alpha0=0",
        "m3po/walker-walk+mw-reach/num_envs=2/seed2": "num_envs=2", "ppo/walker-walk/x/seed3": "default",
        "m3po/cheetah-run/x/seed4": "default", "m3po/walker-walk/x/seed9": "default",
    }  # fmt: skip


def test_columns_rules_and_normalization(tmp_path: Path) -> None:
    table = collect.collect(_runs(tmp_path)).scores
    assert list(table.columns) == list(collect.SCORE_COLUMNS)
    single = table[table["seed"] == 1].set_index("step")
    # The algorithm is config.json's (every trainer writes it).
    assert set(single["algo"]) == {"m3po"} and set(single["variant"]) == {"default"}
    assert (single.loc[200, "normalized"], single.loc[100, "normalized"]) == (100.0, 40.0)  # capped at 100
    assert set(single["suite"]) == {"dmc39"} and set(single["mode"]) == {"single"}
    assert single.loc[200, "wall_clock"] == pytest.approx(4.0) and single.loc[200, "sps"] == 50.0
    multi = table[table["seed"] == 2].set_index("task")
    assert set(multi["algo"]) == {"ppo"} and set(multi["variant"]) == {"alpha0=0"}  # not the path's "other"
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


def test_a_record_without_algo_is_left_out_naming_its_file(tmp_path: Path) -> None:
    """No guess from the path: ``runs/m3po/...`` does not make a run M3PO's."""
    run = synthetic.write_run(
        tmp_path / "runs" / "m3po" / "walker-walk" / "seed1",
        task_set="walker-walk",
        seed=1,
        scores={1: {"walker-walk": 1.0}},
        algo="m3po",
    )
    config = json.loads((run / "config.json").read_text())
    del config["algo"]
    (run / "config.json").write_text(json.dumps(config))
    with pytest.raises(collect.RunRecordError, match=f"{run / 'config.json'} records no 'algo'"):
        collect.algo_of(config, run)
    got = collect.collect(tmp_path)
    assert got.scores.empty and len(got.excluded) == 1
    row = got.excluded.iloc[0]
    assert row["reason"].startswith("config.json records no 'algo'") and row["run_dir"] == str(run)
    assert row["algo"] is None and row["seed"] == 1 and row["status"] == "finished"


def test_every_line_of_a_finished_runs_log_must_parse(tmp_path: Path) -> None:
    """m3po.record.read_jsonl forgives a cut-off last line (a running job's); collect does not."""
    scores = {100: {"walker-walk": 1.0}, 200: {"walker-walk": 2.0}}
    logs = {
        1: ("train.jsonl", b'{"step": 100, "time/sps": 1.0}\n{"step": 2'),  # cut off mid-write
        2: ("eval.jsonl", b'{"step": 100}\n[1, 2]\n'),  # not an object
        3: ("eval.jsonl", b"\xff\n"),  # not UTF-8
    }
    for seed, (name, data) in logs.items():
        run = synthetic.write_run(
            tmp_path / f"seed{seed}", task_set="walker-walk", seed=seed, scores=scores, algo="m3po"
        )
        (run / name).write_bytes(data)
    reasons = dict(zip(*collect.collect(tmp_path).excluded[["seed", "reason"]].to_numpy().T, strict=True))
    assert reasons[1].startswith("train.jsonl line 2 is corrupt")
    assert reasons[2] == "eval.jsonl line 2 is not a JSON object"
    assert reasons[3].startswith("eval.jsonl is corrupt")


def test_a_shipped_runs_compressed_logs_read_as_the_plain_ones(tmp_path: Path) -> None:
    """A shipped run carries train.jsonl as train.jsonl.gz (suite.publish): the same tables."""
    scores = {0: {"walker-walk": 0.5}, 100: {"walker-walk": 1.0}, 200: {"walker-walk": 2.0}}
    for name in ("plain", "shipped"):
        synthetic.write_run(
            tmp_path / name / "seed1", task_set="walker-walk", seed=1, scores=scores, algo="m3po"
        )
    for log in ("train.jsonl", "eval.jsonl"):
        path = tmp_path / "shipped" / "seed1" / log
        path.with_name(log + ".gz").write_bytes(gzip.compress(path.read_bytes()))
        path.unlink()
    plain, shipped = (collect.collect(tmp_path / name) for name in ("plain", "shipped"))
    assert shipped.excluded.empty and len(shipped.scores) == 3
    for table in ("scores", "compute"):
        ours = getattr(shipped, table).drop(columns="run_dir")
        pd.testing.assert_frame_equal(ours, getattr(plain, table).drop(columns="run_dir"))
