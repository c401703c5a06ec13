"""The workflow's analysis steps (Snakemake ``script:``): collect, aggregate, figure_*, report.

Each step calls :mod:`analysis`; what is added here is the workflow's knowledge the run records
lack: which figure each run belongs to, and its algorithm and variant (``config.json`` of an M3PO
run records neither; the grid does). So every figure is aggregated from its own runs only (fig4's
env sweep does not leak into fig3c), and a grid's stand-in task set (the quick profile's two-task
set for mt80) is aggregated under fig3c's spec with its own suite name.
"""

import pickle
import traceback
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from analysis import figures, report, stats
from analysis.aggregate import FIGURES, REFERENCE_ALGO, aggregate_figure, final_run_scores
from analysis.collect import Collected, collect, write_tables

TABLE_NAMES = ("scores", "excluded", "compute")


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


def _claims(path: str) -> list[dict[str, Any]]:
    return yaml.safe_load(Path(path or report.DEFAULT_CLAIMS).read_text())["claims"]


def figure_step(smk: Any) -> None:
    figure = smk.params.figure
    payload = pickle.loads(Path(smk.input[0]).read_bytes())
    out = Path(smk.output[0]).parent
    written: list[Path] = []
    if figure in FIGURES:
        spec, result = payload["spec"], payload["result"]
        if not result.algos:
            raise ValueError(f"{figure}: no finished runs to draw")
        written += figures.plot_curves(result, spec, figure, _claims(smk.params.claims), out / figure)
        written += figures.plot_intervals(result, figure, out / f"{figure}-intervals", spec.ylabel)
        taus = np.linspace(0, spec.gamma, 101)
        profiles = stats.performance_profiles(
            {a: r.final_scores for a, r in result.algos.items()}, taus, smk.params.reps, 0
        )
        written += figures.plot_profiles(profiles, taus, figure, out / f"{figure}-profiles", spec.ylabel)
    elif figure == "fig4":
        written += figures.plot_sweep(
            payload["runs"], "num_envs", [REFERENCE_ALGO, "tdmpc2"], out / "fig4",
            "fig4: final score vs vectorized envs", "envs (2^k)", log2=True,
        )  # fmt: skip
    else:
        runs = payload["runs"]
        ours = runs[runs["algo"] == REFERENCE_ALGO]
        for key, (title, xlabel) in figures.ABLATIONS.items():
            if not ours["variant"].str.startswith(f"{key}=").any():
                continue
            shown = ours[(ours["variant"] == "default") | ours["variant"].str.startswith(f"{key}=")]
            written += figures.plot_sweep(
                shown, key, [REFERENCE_ALGO], out / f"ablation-{key}", title, xlabel,
                log2=key == "num_envs",
            )  # fmt: skip
    missing = sorted(set(map(str, smk.output)) - set(map(str, written)))
    if missing:
        raise ValueError(f"{figure}: expected files were not drawn: {missing}")
    print("\n".join(map(str, written)))


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
    rows = report.judge_claims(_claims(smk.params.claims), results, runs)
    report.write_report(
        results_dir, rows, results, collected, [Path(p) for p in smk.input.figures], smk.params.reps
    )
    for row in rows:
        print(f"{row.claim}: {row.verdict}")


def main(smk: Any) -> None:
    steps = {"collect": collect_step, "aggregate": aggregate_step, "report": report_step}
    step = figure_step if smk.rule.startswith("figure_") else steps[smk.rule]
    with open(smk.log[0], "w") as log, redirect_stdout(log), redirect_stderr(log):
        try:
            step(smk)
        except BaseException:
            traceback.print_exc()
            raise


main(snakemake)  # noqa: F821 - Snakemake's script directive defines `snakemake`
