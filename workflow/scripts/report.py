"""Rule ``report`` (Snakemake ``script:``): the claims report from the tables, aggregates and figures:
``report.md``, ``report.html``, ``claims.json`` and the off-policyness diagnostics of each figure's
M3PO runs (``figures/diagnostics-<figure>.png`` and ``.pdf``).

The verdicts use the published curves each fig3* aggregate holds (stand-ins, docs/verdicts.md) and
judge final-value claims at the paper grid's budgets (``config/paper.yaml``); the fidelity section
sets the same published curves beside our runs.
"""

import pickle
from pathlib import Path
from typing import Any

import pandas as pd
from _step import TABLE_NAMES, claims, run

from analysis import aggregate, figures, report
from analysis.collect import Collected


def figure_runs(runs_csv: str) -> dict[str, list[str]]:
    """Figure -> its M3PO run directories (every variant), from the grid's ``tables/runs.csv``."""
    runs = pd.read_csv(runs_csv)
    ours = runs[runs["algo"] == aggregate.REFERENCE_ALGO]
    out: dict[str, list[str]] = {}
    for run_dir, names in zip(ours["run_dir"], ours["figures"], strict=True):
        for figure in str(names).split("+"):
            out.setdefault(figure, []).append(str(run_dir))
    return out


def report_step(smk: Any) -> None:
    results_dir = Path(smk.output.md).parent
    tables = results_dir / "tables"
    collected = Collected(*(pd.read_parquet(tables / f"{name}.parquet") for name in TABLE_NAMES))
    results, references, whole_sets = {}, {}, {}
    for path in smk.input.aggregates:
        payload = pickle.loads(Path(path).read_bytes())
        if payload["result"].algos:
            results[Path(path).stem] = payload["result"]
            references[Path(path).stem] = payload.get("reference")
            whole_sets[Path(path).stem] = payload.get("whole_set")
    runs = aggregate.final_run_scores(collected.scores)
    paper_claims = claims(smk.params.claims)
    rows = report.judge_claims(
        paper_claims, results, runs, report.paper_budgets(Path(smk.input.paper)), references, whole_sets
    )
    fidelity = None
    if smk.input.published:
        published = aggregate.load_published(Path(smk.input.published[0]))
        fidelity = aggregate.fidelity_table(collected.scores, published)
    report.write_report(
        results_dir, rows, results, collected, [Path(p) for p in smk.input.figures], smk.params.reps,
        claims=paper_claims, figure_runs=figure_runs(smk.input.runs), fidelity=fidelity,
    )  # fmt: skip
    # A figure whose M3PO runs logged no diagnostics (the page says so) still gets its declared files.
    for path in map(Path, smk.output.diagnostics):
        if path.suffix == ".png" and not path.exists():
            figure = path.stem.removeprefix("diagnostics-")
            figures.plot_diagnostics(
                figures.read_diagnostics([]), {}, f"{figure}: no diagnostics logged", path.with_suffix("")
            )
    for row in rows:
        print(f"{row.claim}: {row.verdict}")


run(snakemake, report_step)  # noqa: F821 - Snakemake's script directive defines `snakemake`
