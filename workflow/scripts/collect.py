"""Rule ``collect`` (Snakemake ``script:``): the grid's finished runs into tables, labelled by the grid."""

from pathlib import Path
from typing import Any

import pandas as pd
from _step import TABLE_NAMES, run

from analysis.collect import Collected, collect, write_tables


def _relabel(table: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """The grid's runs of ``table``, with their algorithm and variant from the grid."""
    table = table[table["run_dir"].isin(runs.index)].copy()
    for column in ("algo", "variant"):
        table[column] = table["run_dir"].map(runs[column])
    return table


def collect_step(smk: Any) -> None:
    runs = pd.DataFrame(smk.params.runs).set_index("run_dir")
    found = collect(Path(smk.params.root))
    collected = Collected(*(_relabel(getattr(found, name), runs) for name in TABLE_NAMES))
    stale = found.scores["run_dir"].nunique() - collected.scores["run_dir"].nunique()
    write_tables(collected, Path(smk.output.runs).parent)
    runs.reset_index().to_csv(smk.output.runs, index=False)
    kept = collected.scores["run_dir"].nunique()
    print(f"{kept} runs of the grid collected; {stale} others under the root left out")


run(snakemake, collect_step)  # noqa: F821 - Snakemake's script directive defines `snakemake`
