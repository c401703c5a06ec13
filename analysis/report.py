"""The claims report: ``results/report.md`` and ``results/report.html``, with the figures.

``python -m analysis.report [--results results] [--claims PATH] [--reps 50000]`` collects every
run under ``results/runs``, aggregates the figures, draws them under ``results/figures`` and writes
one row per claim of ``paper-claims.yaml`` with a verdict (rules in :data:`VERDICT_RULES`, which
the report prints).
"""

from __future__ import annotations

import argparse
import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from analysis import aggregate, figures, stats
from analysis.aggregate import FIGURES, REFERENCE_ALGO, FigureResult
from analysis.collect import Collected, collect, write_tables

# The suite ships its copy of the spec's paper-claims.yaml (tests/test_analysis_report.py checks they agree).
DEFAULT_CLAIMS = Path(__file__).resolve().parent / "paper-claims.yaml"
REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"

VERDICT_RULES = """\
All intervals are 95% stratified-bootstrap CIs over seeds (rliable's definition). "CI(a) above
CI(b)" means a's lower bound exceeds b's upper bound.

* **Claims with values** (the paper's "average" is our *mean* on the figure's scale, at the
  evaluated step nearest to the claim's step, or at the last step common to an algorithm's runs
  when the paper gives none). Per algorithm, the value check *passes* when the paper's value (or
  range) meets our CI, or when our CI lies entirely on the side the paper argues for (M3PO above
  the paper's value, a baseline below it); it *fails* otherwise. Per ordered pair of the claim's
  `order` (every algorithm of a group against every algorithm of a lower group), the order
  *holds* when CI(higher) is above CI(lower), is *contradicted* when CI(higher) is below
  CI(lower), and is *undecided* when they overlap. Verdict: **not reproduced** when a value check
  fails or an order is contradicted; else **inconclusive** when an algorithm has no data or an
  order is undecided; else **reproduced**.
* **Outperforms** (M3PO above each baseline in fig3a and fig3b): per figure and baseline, at the
  last step, the mean CIs as an ordered pair above. Any contradicted: not reproduced; else any
  undecided or missing: inconclusive; else reproduced.
* **Sample efficiency** (M3PO above DreamerV3 in fig3b): IQM CIs at each step both evaluated.
  Reproduced when M3PO's CI is above at one step or more and below at none; not reproduced when
  below at one or more and above at none; inconclusive otherwise (mixed, all overlapping, or no
  data).
* **Stability band** (TD-MPC2's CI wider than M3PO's in fig3c): mean width of the IQM CI over the
  common steps. Reproduced when TD-MPC2's is wider, not reproduced when it is not; inconclusive
  without data for both. (A comparison of point widths: no interval on the widths themselves.)
* **Vectorization** (fig4): final normalized score per run, mean and std over seeds per number of
  envs. Reproduced when TD-MPC2's mean at the most envs is below that at the fewest and its std
  above; not reproduced otherwise; inconclusive with fewer than two env settings of two seeds or
  more. M3PO's trend is shown beside it, not judged (the paper does not state it).
"""


COMPUTE_NOTES = """\
The paper reports no compute; these are this suite's runs. Wall-clock: per run, the last
`time/wall` of its train.jsonl, summed over the algorithm's finished runs. Steps/s: the median over
runs of each run's median `time/sps`. Peak memory: the largest `mem/peak_rss_mib` (peak resident
memory of the training process) over the algorithm's runs; peak GPU memory likewise from
`mem/peak_cuda_mib` (runs on a GPU only). NaN: no run of the algorithm recorded it."""


@dataclass(frozen=True)
class ClaimRow:
    """One row of the claims table.

    :param claim: claim id
    :param figure: figure id(s)
    :param paper: the paper's value(s) or statement
    :param ours: what we measured
    :param verdict: reproduced / not reproduced / inconclusive
    :param why: the deciding facts
    """

    claim: str
    figure: str
    paper: str
    ours: str
    verdict: str
    why: str


def _ci(est: stats.Estimate, index: int | None = None) -> tuple[float, float, float]:
    if index is None:
        return float(est.point), float(est.low), float(est.high)
    return float(est.point[index]), float(est.low[index]), float(est.high[index])


def _fmt(point: float, low: float, high: float) -> str:
    return f"{point:.1f} [{low:.1f}, {high:.1f}]"


def order_relation(higher: tuple[float, float, float], lower: tuple[float, float, float]) -> str:
    """``holds``, ``contradicted`` or ``undecided`` for two (point, low, high) intervals."""
    if higher[1] > lower[2]:
        return "holds"
    if higher[2] < lower[1]:
        return "contradicted"
    return "undecided"


def value_check(algo: str, paper: float | Sequence[float], ours: tuple[float, float, float]) -> bool:
    """Whether our CI meets the paper's value (or range), or lies on the side the paper argues for."""
    lo, hi = (min(paper), max(paper)) if isinstance(paper, list | tuple) else (paper, paper)
    _, low, high = ours
    if low <= hi and high >= lo:
        return True
    return low > hi if algo == REFERENCE_ALGO else high < lo


def _mean_at(
    result: FigureResult, algo: str, at_steps: int | None
) -> tuple[tuple[float, float, float], int] | None:
    res = result.algos.get(algo)
    if res is None:
        return None
    index = len(res.steps) - 1 if at_steps is None else int(np.argmin(np.abs(res.steps - at_steps)))
    return _ci(res.curves["mean"], index), int(res.steps[index])


def judge_values(claim: Mapping[str, Any], result: FigureResult) -> ClaimRow:
    """A claim with ``values`` and ``order`` (see :data:`VERDICT_RULES`)."""
    ours, facts, failed, missing = {}, [], False, False
    for algo, paper in claim["values"].items():
        found = _mean_at(result, algo, claim.get("at_steps"))
        if found is None:
            missing = True
            facts.append(f"{figures.label(algo)}: no data")
            continue
        ours[algo], step = found
        ok = value_check(algo, paper, ours[algo])
        failed |= not ok
        facts.append(f"{figures.label(algo)} at step {step}: value check {'passes' if ok else 'fails'}")
    groups = [group if isinstance(group, list) else [group] for group in claim.get("order", [])]
    undecided = False
    for i, upper in enumerate(groups):
        for lower_group in groups[i + 1 :]:
            for a in upper:
                for b in lower_group:
                    fa, fb = (
                        _mean_at(result, a, claim.get("at_steps")),
                        _mean_at(result, b, claim.get("at_steps")),
                    )
                    if fa is None or fb is None:
                        missing = True
                        continue
                    relation = order_relation(fa[0], fb[0])
                    failed |= relation == "contradicted"
                    undecided |= relation == "undecided"
                    if relation != "holds":
                        facts.append(f"{figures.label(a)} > {figures.label(b)}: {relation}")
    verdict = NOT_REPRODUCED if failed else INCONCLUSIVE if (missing or undecided) else REPRODUCED
    paper_text = ", ".join(f"{figures.label(a)} {v}" for a, v in claim["values"].items())
    ours_text = ", ".join(f"{figures.label(a)} {_fmt(*v)}" for a, v in ours.items()) or "no data"
    return ClaimRow(claim["id"], str(claim["figure"]), paper_text, ours_text, verdict, "; ".join(facts))


def judge_outperforms(claim: Mapping[str, Any], results: Mapping[str, FigureResult]) -> ClaimRow:
    """M3PO's final mean CI above each baseline's in each of the claim's figures."""
    relations, ours = [], []
    for figure in claim["figure"]:
        result = results.get(figure)
        spec = FIGURES[figure]
        for algo in spec.algos:
            if algo == REFERENCE_ALGO:
                continue
            a = _mean_at(result, REFERENCE_ALGO, None) if result else None
            b = _mean_at(result, algo, None) if result else None
            relation = "missing" if a is None or b is None else order_relation(a[0], b[0])
            relations.append(relation)
            ours.append(f"{figure} vs {figures.label(algo)}: {relation}")
    if "contradicted" in relations:
        verdict = NOT_REPRODUCED
    elif any(r in ("undecided", "missing") for r in relations):
        verdict = INCONCLUSIVE
    else:
        verdict = REPRODUCED
    return ClaimRow(
        claim["id"],
        ", ".join(claim["figure"]),
        claim["statement"],
        "; ".join(ours),
        verdict,
        "final mean CIs",
    )


def judge_sample_efficiency(claim: Mapping[str, Any], result: FigureResult | None, baseline: str) -> ClaimRow:
    """M3PO's IQM CI above the baseline's at some steps and below at none."""
    ours = result.algos.get(REFERENCE_ALGO) if result else None
    other = result.algos.get(baseline) if result else None
    if ours is None or other is None:
        return ClaimRow(claim["id"], claim["figure"], claim["statement"], "no data", INCONCLUSIVE, "")
    common = np.intersect1d(ours.steps, other.steps)
    above = below = 0
    for step in common:
        i, j = int(np.searchsorted(ours.steps, step)), int(np.searchsorted(other.steps, step))
        relation = order_relation(_ci(ours.curves["iqm"], i), _ci(other.curves["iqm"], j))
        above += relation == "holds"
        below += relation == "contradicted"
    if above and not below:
        verdict = REPRODUCED
    elif below and not above:
        verdict = NOT_REPRODUCED
    else:
        verdict = INCONCLUSIVE
    text = f"of {len(common)} common steps, M3PO's IQM CI is above at {above}, below at {below}"
    return ClaimRow(claim["id"], claim["figure"], claim["statement"], text, verdict, "")


def judge_band(claim: Mapping[str, Any], result: FigureResult | None) -> ClaimRow:
    """TD-MPC2's IQM CI wider, on average over steps, than M3PO's."""
    widths = {}
    for algo in ("tdmpc2", REFERENCE_ALGO):
        res = result.algos.get(algo) if result else None
        if res is not None:
            widths[algo] = float(np.mean(res.curves["iqm"].high - res.curves["iqm"].low))
    if len(widths) < 2:
        return ClaimRow(claim["id"], claim["figure"], claim["statement"], "no data", INCONCLUSIVE, "")
    verdict = REPRODUCED if widths["tdmpc2"] > widths[REFERENCE_ALGO] else NOT_REPRODUCED
    text = f"mean IQM CI width: TD-MPC2 {widths['tdmpc2']:.2f}, M3PO {widths[REFERENCE_ALGO]:.2f}"
    return ClaimRow(claim["id"], claim["figure"], claim["statement"], text, verdict, "")


def fig4_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """M3PO's and TD-MPC2's default multi-task runs of the one task set run at the most env counts."""
    rows = runs[runs["algo"].isin([REFERENCE_ALGO, "tdmpc2"]) & (runs["variant"] == "default")]
    rows = rows[rows["mode"] == "multi"]
    if rows.empty:
        return rows
    spread = rows.groupby("task_set").agg(settings=("num_envs", "nunique"), runs=("run_dir", "count"))
    best = spread.sort_values(["settings", "runs"], ascending=False).index[0]
    return rows[rows["task_set"] == best]


def judge_vectorization(claim: Mapping[str, Any], runs: pd.DataFrame) -> ClaimRow:
    """TD-MPC2's final score falls and its spread grows from the fewest to the most envs."""
    rows = fig4_runs(runs)
    rows = rows[rows["algo"] == "tdmpc2"]
    grouped = rows.groupby("num_envs")["final"].agg(["mean", "std", "count"])
    grouped = grouped[grouped["count"] >= 2].sort_index()
    if len(grouped) < 2:
        return ClaimRow(
            claim["id"], claim["figure"], claim["statement"], "fewer than two env settings", INCONCLUSIVE, ""
        )
    first, last = grouped.iloc[0], grouped.iloc[-1]
    falls, spreads = last["mean"] < first["mean"], last["std"] > first["std"]
    verdict = REPRODUCED if falls and spreads else NOT_REPRODUCED
    text = (
        f"TD-MPC2 at {grouped.index[0]} envs: {first['mean']:.1f} ± {first['std']:.1f}; "
        f"at {grouped.index[-1]} envs: {last['mean']:.1f} ± {last['std']:.1f}"
    )
    return ClaimRow(claim["id"], claim["figure"], claim["statement"], text, verdict, "")


def judge_claims(
    claims: Sequence[Mapping[str, Any]], results: Mapping[str, FigureResult], runs: pd.DataFrame
) -> list[ClaimRow]:
    """One row per claim, by the rules of :data:`VERDICT_RULES`.

    :param claims: ``paper-claims.yaml``'s ``claims``
    :param results: figure id -> aggregates
    :param runs: :func:`analysis.aggregate.final_run_scores`
    """
    rows = []
    for claim in claims:
        figure = claim["figure"]
        if "values" in claim:
            rows.append(judge_values(claim, results.get(figure, FigureResult({}, {}))))
        elif isinstance(figure, list):
            rows.append(judge_outperforms(claim, results))
        elif figure == "fig4":
            rows.append(judge_vectorization(claim, runs))
        elif "band" in claim["statement"]:
            rows.append(judge_band(claim, results.get(figure)))
        else:
            rows.append(judge_sample_efficiency(claim, results.get(figure), "dreamerv3"))
    return rows


COMPUTE_HEADERS = {
    "wall": "wall-clock (h, total)",
    "sps": "steps/s (median)",
    "mem": "peak memory (GiB, max)",
    "gpu": "peak GPU memory (GiB, max)",
}


def compute_table(compute: pd.DataFrame) -> pd.DataFrame:
    """Per algorithm (M3PO first, then by name): runs, total wall-clock hours, median steps/s, and
    the largest peak resident and GPU memory of its runs (NaN where none recorded them)."""
    if compute.empty:
        return pd.DataFrame(columns=["algo", "runs", *COMPUTE_HEADERS.values()])
    table = compute.groupby("algo").agg(
        runs=("run_dir", "count"),
        wall=("wall_clock", "sum"),
        sps=("sps", "median"),
        mem=("peak_memory", "max"),
        gpu=("peak_gpu_memory", "max"),
    )
    table["wall"] = table["wall"] / 3600
    order = sorted(table.index, key=lambda algo: (algo != REFERENCE_ALGO, algo))
    table = table.loc[order].reset_index()
    table["algo"] = table["algo"].map(figures.label)
    return table.rename(columns=COMPUTE_HEADERS)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(table: pd.DataFrame) -> str:
    """A DataFrame as a Markdown table."""
    head = "| " + " | ".join(map(str, table.columns)) + " |"
    rule = "|" + "---|" * len(table.columns)
    body = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def _aggregate_table(results: Mapping[str, FigureResult]) -> pd.DataFrame:
    rows = []
    for figure, result in results.items():
        for algo, res in result.algos.items():
            row = {
                "figure": figure,
                "algo": figures.label(algo),
                "seeds": res.n_runs,
                "step": int(res.steps[-1]),
            }
            row.update({figures.METRIC_LABELS[m]: _fmt(*_ci(e)) for m, e in res.final.items()})
            rows.append(row)
    return pd.DataFrame(rows)


def _improvement_table(results: Mapping[str, FigureResult]) -> pd.DataFrame:
    rows = [
        {
            "figure": figure,
            "baseline": figures.label(algo),
            "P(M3PO > baseline)": f"{float(e.point):.2f} [{float(e.low):.2f}, {float(e.high):.2f}]",
        }
        for figure, result in results.items()
        for algo, e in result.improvement.items()
    ]
    return pd.DataFrame(rows, columns=["figure", "baseline", "P(M3PO > baseline)"])


def build(
    results_dir: Path, claims_path: Path, reps: int, seed: int = 0, profile_reps: int = 2000, workers: int = 1
) -> dict[str, Any]:
    """Collect, aggregate, draw and write the report.

    :param results_dir: holds ``runs/``; receives ``tables/``, ``figures/``, ``report.md``, ``report.html``
    :param claims_path: ``paper-claims.yaml``
    :param reps: bootstrap repetitions of every interval
    :param seed: bootstrap seed
    :param profile_reps: bootstrap repetitions of the performance profiles (rliable's loop is slow)
    :param workers: threads over steps
    :returns: ``claims`` (list of :class:`ClaimRow`), ``figures`` (written paths), ``collected``
    """
    claims = yaml.safe_load(Path(claims_path).read_text())["claims"]
    collected: Collected = collect(results_dir / "runs")
    write_tables(collected, results_dir / "tables")
    table = collected.scores
    fig_dir = results_dir / "figures"
    results: dict[str, FigureResult] = {}
    written: list[Path] = []
    for figure, spec in FIGURES.items():
        result = aggregate.aggregate_figure(table, spec, reps, seed, workers=workers)
        if not result.algos:
            continue
        results[figure] = result
        xlabel = spec.ylabel
        written += figures.plot_curves(result, spec, figure, claims, fig_dir / figure)
        written += figures.plot_intervals(result, figure, fig_dir / f"{figure}-intervals", xlabel)
        taus = np.linspace(0, spec.gamma, 101)
        profiles = stats.performance_profiles(
            {a: r.final_scores for a, r in result.algos.items()}, taus, profile_reps, seed
        )
        written += figures.plot_profiles(profiles, taus, figure, fig_dir / f"{figure}-profiles", xlabel)
    runs = (
        aggregate.final_run_scores(table)
        if len(table)
        else pd.DataFrame(columns=["algo", "variant", "final", "num_envs", "mode", "task_set", "run_dir"])
    )
    fig4 = fig4_runs(runs)
    if fig4["num_envs"].nunique() > 1:
        written += figures.plot_sweep(
            fig4,
            "num_envs",
            ["m3po", "tdmpc2"],
            fig_dir / "fig4",
            "fig4: final score vs vectorized envs",
            "envs (2^k)",
            log2=True,
        )
    for key, (title, xlabel) in figures.ABLATIONS.items():
        variants = runs[(runs["algo"] == REFERENCE_ALGO) & runs["variant"].str.startswith(f"{key}=")]
        if variants.empty:
            continue
        sets = set(variants["task_set"])
        shown = runs[(runs["algo"] == REFERENCE_ALGO) & runs["task_set"].isin(sets)]
        shown = shown[(shown["variant"] == "default") | shown["variant"].str.startswith(f"{key}=")]
        written += figures.plot_sweep(
            shown,
            key,
            [REFERENCE_ALGO],
            fig_dir / f"ablation-{key}",
            title,
            xlabel,
            log2=key == "num_envs",
        )
    rows = judge_claims(claims, results, runs)
    write_report(results_dir, rows, results, collected, written, reps)
    return {"claims": rows, "figures": written, "collected": collected}


def write_report(
    results_dir: Path,
    rows: Sequence[ClaimRow],
    results: Mapping[str, FigureResult],
    collected: Collected,
    written: Sequence[Path],
    reps: int,
) -> tuple[Path, Path]:
    """``report.md`` and ``report.html`` in ``results_dir``."""
    claims = pd.DataFrame([r.__dict__ for r in rows])
    excluded = collected.excluded[["run_dir", "algo", "status", "step", "reason"]]
    sections: list[tuple[str, str | pd.DataFrame]] = [
        ("Claims of the paper against this suite", claims),
        (
            "Verdict rules",
            VERDICT_RULES + f"\nBootstrap repetitions: {reps}; seeded, so a rerun gives the same CIs.",
        ),
        ("Aggregate metrics at the last step (95% CI)", _aggregate_table(results)),
        ("Probability of improvement at the last step (95% CI)", _improvement_table(results)),
        ("Compute", compute_table(collected.compute)),
        ("Compute notes", COMPUTE_NOTES),
        ("Runs left out (not finished, or unreadable)", excluded),
        ("Figures", "\n".join(f"- {p.relative_to(results_dir)}" for p in written if p.suffix == ".png")),
    ]
    md = ["# M3PO reproduction: claims report", ""]
    body = ["<h1>M3PO reproduction: claims report</h1>"]
    for title, content in sections:
        md += [f"## {title}", ""]
        body.append(f"<h2>{html.escape(title)}</h2>")
        if isinstance(content, pd.DataFrame):
            md.append(markdown_table(content) if len(content) else "(none)")
            body.append(content.to_html(index=False, na_rep="NaN") if len(content) else "<p>(none)</p>")
        else:
            md.append(content)
            body.append(f"<pre>{html.escape(content)}</pre>")
        md.append("")
    body += [
        f'<p><img src="{p.relative_to(results_dir)}" width="640"></p>' for p in written if p.suffix == ".png"
    ]
    md_path, html_path = results_dir / "report.md", results_dir / "report.html"
    md_path.write_text("\n".join(md))
    html_path.write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>M3PO report</title></head><body>"
        + "\n".join(body)
        + "</body></html>"
    )
    return md_path, html_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.report", description=__doc__)
    parser.add_argument("--results", type=Path, default=Path("results"))
    parser.add_argument("--claims", type=Path, default=DEFAULT_CLAIMS)
    parser.add_argument("--reps", type=int, default=50_000, help="bootstrap repetitions")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument("--workers", type=int, default=2, help="threads")
    args = parser.parse_args(argv)
    out = build(args.results, args.claims, args.reps, args.seed, workers=args.workers)
    for row in out["claims"]:
        print(f"{row.claim}: {row.verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
