"""Rule ``aggregate`` (Snakemake ``script:``): one figure's runs aggregated (rliable intervals)."""

import pickle
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
from _step import run

from analysis.aggregate import FIGURES, aggregate_figure, final_run_scores


def _figure_rows(scores: pd.DataFrame, runs_csv: str, figure: str) -> pd.DataFrame:
    runs = pd.read_csv(runs_csv)
    members = runs.loc[runs["figures"].str.split("+").apply(lambda names: figure in names), "run_dir"]
    return scores[scores["run_dir"].isin(set(members))]


def aggregate_step(smk: Any) -> None:
    figure = smk.wildcards.figure
    rows = _figure_rows(pd.read_parquet(smk.input[0]), smk.input.runs, figure)
    payload: dict[str, Any]
    if figure in FIGURES:
        suites = sorted(rows["suite"].unique())
        if len(suites) != 1:
            raise ValueError(f"{figure}: its runs must share one suite, found {suites}")
        spec = replace(FIGURES[figure], suite=suites[0])
        result = aggregate_figure(rows, spec, smk.params.reps, seed=0, workers=smk.threads)
        print(f"{figure}: {', '.join(f'{a} ({r.n_runs} runs)' for a, r in result.algos.items())}")
        payload = {"spec": spec, "result": result}
    else:
        payload = {"runs": final_run_scores(rows)}
        print(f"{figure}: {len(payload['runs'])} runs")
    Path(smk.output[0]).write_bytes(pickle.dumps(payload))


run(snakemake, aggregate_step)  # noqa: F821 - Snakemake's script directive defines `snakemake`
