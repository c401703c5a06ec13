"""Rule ``report`` (Snakemake ``script:``): the claims report (Markdown and HTML) from the tables,
aggregates and figures."""

import pickle
from pathlib import Path
from typing import Any

import pandas as pd
from _step import TABLE_NAMES, claims, run

from analysis import report
from analysis.aggregate import final_run_scores
from analysis.collect import Collected


def report_step(smk: Any) -> None:
    results_dir = Path(smk.output.md).parent
    tables = results_dir / "tables"
    collected = Collected(*(pd.read_parquet(tables / f"{name}.parquet") for name in TABLE_NAMES))
    results = {}
    for path in smk.input.aggregates:
        result = pickle.loads(Path(path).read_bytes())["result"]
        if result.algos:
            results[Path(path).stem] = result
    runs = final_run_scores(collected.scores)
    rows = report.judge_claims(claims(smk.params.claims), results, runs)
    report.write_report(
        results_dir, rows, results, collected, [Path(p) for p in smk.input.figures], smk.params.reps
    )
    for row in rows:
        print(f"{row.claim}: {row.verdict}")


run(snakemake, report_step)  # noqa: F821 - Snakemake's script directive defines `snakemake`
