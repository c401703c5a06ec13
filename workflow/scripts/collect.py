"""Rule ``collect`` (Snakemake ``script:``): the grid's finished runs into tables, variants from the grid."""

from pathlib import Path
from typing import Any

import pandas as pd
from _step import TABLE_NAMES, run

from analysis.collect import Collected, collect, write_tables


def _grid_labels(table: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """The grid's runs of ``table``, with their variant from the grid (a run's config.json records its
    algo but not its variant), and the grid's algo where the record gave none (a left-out run whose
    config.json is missing or unreadable)."""
    table = table[table["run_dir"].isin(runs.index)].copy()
    table["variant"] = table["run_dir"].map(runs["variant"])
    table["algo"] = table["algo"].fillna(table["run_dir"].map(runs["algo"]))
    return table


def collect_step(smk: Any) -> None:
    runs = pd.DataFrame(smk.params.runs).set_index("run_dir")
    # The runs trained here and those shipped with the repository (the grid names which it uses).
    roots = [root for root in map(Path, smk.params.roots) if root.is_dir()] or [Path(smk.params.roots[0])]
    parts = [collect(root) for root in roots]
    found = Collected(
        *(pd.concat([getattr(p, name) for p in parts], ignore_index=True) for name in TABLE_NAMES)
    )
    collected = Collected(*(_grid_labels(getattr(found, name), runs) for name in TABLE_NAMES))
    stale = found.scores["run_dir"].nunique() - collected.scores["run_dir"].nunique()
    write_tables(collected, Path(smk.output.runs).parent)
    runs.reset_index().to_csv(smk.output.runs, index=False)
    kept = collected.scores["run_dir"].nunique()
    print(f"{kept} runs of the grid collected; {stale} others under the root left out")


run(snakemake, collect_step)  # noqa: F821 - Snakemake's script directive defines `snakemake`
