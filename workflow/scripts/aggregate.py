"""Rule ``aggregate`` (Snakemake ``script:``): one figure's runs aggregated (rliable intervals).

A fig3* payload is ``spec``, ``result``, ``reference`` and ``whole_set``: the published curves on the
same tasks (:func:`analysis.aggregate.published_reference`; None for fig3c, or without the vendored
curves), which the figure draws and the report's verdicts stand in with, and over the figure's whole
task set (:func:`analysis.aggregate.published_whole_set`), which a stand-in's value check reads.
fig4's and the ablations' is ``runs`` (:func:`analysis.aggregate.final_run_scores`).
"""

import pickle
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
from _step import run

from analysis import aggregate
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
        shown = ", ".join(f"{a} ({r.n_runs} seeds on {len(r.tasks)} tasks)" for a, r in result.algos.items())
        print(f"{figure}: {shown}")
        reference = whole_set = None
        if smk.input.published:
            published = aggregate.load_published(Path(smk.input.published[0]))
            reference = aggregate.published_reference(
                result, spec, smk.params.reps, 0, published, smk.threads
            )
            whole_set = aggregate.published_whole_set(spec, smk.params.reps, 0, published, smk.threads)
        if reference is not None:
            shown = ", ".join(f"{a} ({r.n_runs} seeds)" for a, r in reference.algos.items())
            print(f"{figure} published (TD-MPC2 authors): {shown}")
        payload = {"spec": spec, "result": result, "reference": reference, "whole_set": whole_set}
    else:
        payload = {"runs": final_run_scores(rows)}
        print(f"{figure}: {len(payload['runs'])} runs")
    Path(smk.output[0]).write_bytes(pickle.dumps(payload))


run(snakemake, aggregate_step)  # noqa: F821 - Snakemake's script directive defines `snakemake`
