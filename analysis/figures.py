"""Figures from aggregated results (no statistics here: they come from :mod:`analysis.aggregate`).

Each figure is written as PNG and PDF. Paper colours: M3PO red, TD-MPC2 purple, MT-PPO blue,
MT-SAC grey; PPO, SAC and DreamerV3 (single-task) get orange, green and brown. Any other
algorithm name gets a colour of its own from a further palette, chosen by the name, so it is the
same in every figure and every run. The paper's reported values (``paper-claims.yaml``) are drawn
as star marks at their step (at the right end of the axis where the paper gives no step); a range
is drawn as a bar with the star at its middle, and marks at the same place are set side by side.
The TD-MPC2 authors' published curves (:func:`analysis.aggregate.published_reference`), where given, are
drawn dashed in their algorithm's colour with a lighter CI band, labelled "published (TD-MPC2 authors)"
(:func:`plot_reference_curves`), over the same tasks as our runs and up to our last step.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import EngFormatter
from rliable import plot_utils

from analysis.aggregate import FigureResult, FigureSpec
from analysis.stats import Estimate
from m3po.record import TRAIN_LOG, read_jsonl

matplotlib.use("Agg")  # files only; no display on the machines that make figures

COLORS: dict[str, str] = {
    "m3po": "#d62728",  # red
    "tdmpc2": "#7b3294",  # purple
    "mt-ppo": "#1f77b4",  # blue
    "mt-sac": "#7f7f7f",  # grey
    "ppo": "#ff7f0e",  # orange
    "sac": "#2ca02c",  # green
    "dreamerv3": "#8c564b",  # brown
}
LABELS: dict[str, str] = {
    "m3po": "M3PO",
    "tdmpc2": "TD-MPC2",
    "mt-ppo": "MT-PPO",
    "mt-sac": "MT-SAC",
    "ppo": "PPO",
    "sac": "SAC",
    "dreamerv3": "DreamerV3",
}
# For algorithms without a colour above: distinct from those and from each other (tab10's pink,
# olive and cyan, then darker shades), none of them the paper's red, purple, blue or grey.
EXTRA_COLORS: tuple[str, ...] = ("#e377c2", "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39")
# Ablation sweeps: variant key (``{key}=value``) -> (title, x label), for report.build and the workflow.
ABLATIONS: dict[str, tuple[str, str]] = {
    "alpha0": (r"ablation: exploration bonus $\alpha_0$ (0: off)", r"$\alpha_0$"),
    "horizon": ("ablation: planning horizon H", "planning horizon H"),
    "num_envs": ("ablation: number of vectorized envs", "envs (2^k)"),
}
METRIC_LABELS = {"iqm": "IQM", "mean": "Mean", "median": "Median", "optimality_gap": "Optimality gap"}
# The off-policyness diagnostics M3PO's runs log in train.jsonl: key -> panel title. Mean log pi_old
# of the executed actions (falls when the planner picks actions the prior finds unlikely), PPO's
# clip fraction, and the planner's mean |action - prior mean| per action dimension.
DIAGNOSTICS: dict[str, str] = {
    "ppo/log_prob_old_mean": r"mean $\log \pi_{old}$ of executed actions",
    "ppo/clip_fraction": "PPO clip fraction",
    "planner/prior_gap": "planner vs prior: mean |a - prior mean|",
}
# At most this many runs are drawn one line each; more are drawn as their median and quartiles.
DIAGNOSTIC_LINES = 8


def label(algo: str) -> str:
    """Display name of an algorithm."""
    return LABELS.get(algo, algo)


def color(algo: str) -> str:
    """Colour of an algorithm: the paper's for its four, fixed ones for PPO, SAC and DreamerV3, and
    for any other name one of :data:`EXTRA_COLORS` picked by a checksum of the name (stable across
    figures, runs and machines, unlike Python's salted ``hash``)."""
    if algo in COLORS:
        return COLORS[algo]
    return EXTRA_COLORS[zlib.crc32(algo.encode()) % len(EXTRA_COLORS)]


def _save(fig: plt.Figure, stem: Path) -> list[Path]:
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    for path in paths:
        fig.savefig(path, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return paths


def _paper_marks(
    claims: Sequence[Mapping[str, Any]], figure: str
) -> list[tuple[str, float | None, float, float, float]]:
    """(algo, step or None, value, low, high) of the claims about ``figure`` that carry numbers; a
    range is marked at its middle, with its ends as ``low`` and ``high`` (equal to ``value`` else)."""
    marks = []
    for claim in claims:
        if claim.get("figure") != figure or "values" not in claim:
            continue
        for algo, value in claim["values"].items():
            low, high = (min(value), max(value)) if isinstance(value, list) else (value, value)
            marks.append((algo, claim.get("at_steps"), (low + high) / 2, float(low), float(high)))
    return marks


def plot_curves(
    result: FigureResult,
    spec: FigureSpec,
    figure: str,
    claims: Sequence[Mapping[str, Any]],
    stem: Path,
    metric: str = "iqm",
    reference: FigureResult | None = None,
) -> list[Path]:
    """Score vs steps, one line per algorithm with its 95% CI band (fig3a, fig3b, fig3c).

    :param result: the figure's aggregates
    :param spec: the figure's spec (labels, scale)
    :param figure: figure id, to pick the paper's marks
    :param claims: ``paper-claims.yaml``'s ``claims``
    :param stem: output path without suffix
    :param metric: the curve's metric
    :param reference: the published curves on the same tasks (:func:`plot_reference_curves`), or None
    :returns: written paths

    Each curve is its algorithm over the tasks it ran; where the algorithms ran different tasks, each
    legend entry gives its task count (``SAC (3 seeds, 2 tasks)``).
    """
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    right = max((float(r.steps[-1]) for r in result.algos.values()), default=1.0)
    # Each curve aggregates the tasks its algorithm ran; where those differ, the legend gives each count.
    own_tasks = len({tuple(sorted(r.tasks)) for r in result.algos.values()}) > 1
    for algo, res in result.algos.items():
        est = res.curves[metric]
        runs = f"{res.n_runs} seeds" + (f", {_count(len(res.tasks), 'task')}" if own_tasks else "")
        ax.plot(res.steps, est.point, color=color(algo), label=f"{label(algo)} ({runs})")
        ax.fill_between(res.steps, est.low, est.high, color=color(algo), alpha=0.2, linewidth=0)
    if reference is not None:
        plot_reference_curves(ax, reference, right, metric)
    marks = _paper_marks(claims, figure)
    # Marks that would cover each other (same step, ranges or values overlapping) are set side by side.
    places = [(step if step is not None else right, low, high) for _, step, _, low, high in marks]
    dodge = 0.02 * right
    for i, (algo, _, value, low, high) in enumerate(marks):
        x, _, _ = places[i]
        same = [j for j, (x2, lo2, hi2) in enumerate(places) if x2 == x and lo2 <= high and hi2 >= low]
        x += dodge * (same.index(i) - (len(same) - 1) / 2)
        ax.errorbar(
            x,
            value,
            yerr=[[value - low], [high - value]] if high > low else None,
            marker="*",
            markersize=12,
            linestyle="none",
            color=color(algo),
            markeredgecolor="black",
            ecolor="black",
            capsize=3,
            label=f"{label(algo)}, paper ({'mean, range' if high > low else 'mean'})",
        )
    ax.xaxis.set_major_formatter(EngFormatter(sep=""))  # 250k, 1M: no offset text to read off
    ax.set_xlabel("agent steps")
    ax.set_ylabel(f"{spec.ylabel}, {METRIC_LABELS[metric]}")
    ax.set_title(f"{figure}: {spec.suite} ({spec.mode}-task), {METRIC_LABELS[metric]} with 95% CI")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return _save(fig, stem)


PUBLISHED_LABEL = "published (TD-MPC2 authors)"


def reference_span(steps: np.ndarray, right: float) -> slice:
    """The published evaluations to draw against our curves ending at ``right``: up to and including
    the first at or after ``right`` (so the dashed line spans our axis; the axis ends at ``right``)."""
    after = np.nonzero(steps >= right)[0]
    return slice(0, int(after[0]) + 1 if len(after) else len(steps))


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' if n != 1 else ''}"


def plot_reference_curves(ax: plt.Axes, reference: FigureResult, right: float, metric: str = "iqm") -> None:
    """The published curves on ``ax``: per algorithm its ``metric`` (IQM) dashed, with its 95% CI band
    (lighter than ours), labelled ``"<algo>, published (TD-MPC2 authors) (n seeds,
    T tasks)"``. Drawn up to the first published evaluation at or after ``right`` (our last step); the
    x axis is then limited to our range, plus room for the paper's marks.

    :param ax: the axes of :func:`plot_curves`
    :param reference: :func:`analysis.aggregate.published_reference`
    :param right: our curves' last step
    :param metric: the curve's metric
    """
    for algo, res in reference.algos.items():
        est = res.curves[metric]
        span = reference_span(res.steps, right)
        ax.plot(
            res.steps[span],
            est.point[span],
            color=color(algo),
            linestyle="--",
            linewidth=1.2,
            label=f"{label(algo)}, {PUBLISHED_LABEL} ({res.n_runs} seeds, {_count(len(res.tasks), 'task')})",
        )
        ax.fill_between(
            res.steps[span], est.low[span], est.high[span], color=color(algo), alpha=0.08, linewidth=0
        )
    ax.set_xlim(left=0, right=1.05 * right)


def plot_sweep(
    runs: pd.DataFrame, x: str, algos: Sequence[str], stem: Path, title: str, xlabel: str, log2: bool = False
) -> list[Path]:
    """Final mean normalized score, mean ± std over seeds, against a swept setting (fig4, ablations).

    :param runs: :func:`analysis.aggregate.final_run_scores` rows to show
    :param x: the swept column (``num_envs``, ``alpha0``, ``horizon``)
    :param algos: algorithms, one line each
    :param stem: output path without suffix
    :param title: axis title
    :param xlabel: x-axis label
    :param log2: log-2 x axis (envs as 2^k)
    """
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    for algo in algos:
        rows = runs[runs["algo"] == algo]
        if rows.empty:
            continue
        grouped = rows.groupby(x)["final"].agg(["mean", "std", "count"]).reset_index().sort_values(x)
        ax.errorbar(
            grouped[x],
            grouped["mean"],
            yerr=grouped["std"].fillna(0.0),
            color=color(algo),
            marker="o",
            capsize=4,
            label=f"{label(algo)} (mean ± std over seeds)",
        )
    if log2:
        ax.set_xscale("log", base=2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("final normalized score (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, stem)


def plot_intervals(result: FigureResult, figure: str, stem: Path, xlabel: str) -> list[Path]:
    """The four aggregate metrics at the last step with 95% CIs (rliable's interval plot).

    :param result: the figure's aggregates
    :param figure: figure id (title)
    :param stem: output path without suffix
    :param xlabel: score scale
    """
    algos = list(result.algos)
    names = list(next(iter(result.algos.values())).final)
    points = {label(a): np.array([result.algos[a].final[m].point for m in names]) for a in algos}
    intervals = {
        label(a): np.array(
            [[result.algos[a].final[m].low for m in names], [result.algos[a].final[m].high for m in names]]
        )
        for a in algos
    }
    fig, _ = plot_utils.plot_interval_estimates(
        points,
        intervals,
        metric_names=[METRIC_LABELS[m] for m in names],
        algorithms=[label(a) for a in algos],
        colors={label(a): color(a) for a in algos},
        xlabel=xlabel,
        xlabel_y_coordinate=-0.32,  # rliable's default puts the label on the tick labels of short figures
        row_height=0.45,
    )
    fig.suptitle(f"{figure}: aggregate metrics at the last step (95% CI)", y=1.25)
    return _save(fig, stem)


def plot_profiles(
    profiles: Mapping[str, Estimate], taus: np.ndarray, figure: str, stem: Path, xlabel: str
) -> list[Path]:
    """Performance profiles (fraction of runs above tau) with 95% CIs.

    :param profiles: algorithm -> :class:`Estimate` over ``taus``
    :param taus: ``(K,)`` thresholds
    :param figure: figure id (title)
    :param stem: output path without suffix
    :param xlabel: score scale
    """
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    plot_utils.plot_performance_profiles(
        {label(a): e.point for a, e in profiles.items()},
        taus,
        performance_profile_cis={label(a): (e.low, e.high) for a, e in profiles.items()},
        colors={label(a): color(a) for a in profiles},
        xlabel=rf"{xlabel} ($\tau$)",
        ax=ax,
    )
    ax.set_title(f"{figure}: performance profiles at the last step")
    ax.legend(fontsize=10)  # rliable's ticks are large; 8 pt reads as a footnote beside them
    return _save(fig, stem)


def read_diagnostics(
    run_dirs: Sequence[Path | str], keys: Sequence[str] = tuple(DIAGNOSTICS)
) -> pd.DataFrame:
    """The :data:`DIAGNOSTICS` of runs from their ``train.jsonl``: one row per run and iteration.

    :param run_dirs: run directories (a missing or unreadable log gives no rows)
    :param keys: the logged keys to keep
    :returns: ``run_dir``, ``step`` and one column per key (NaN where an iteration did not log it);
        only iterations that logged at least one key
    """
    rows = []
    for run_dir in run_dirs:
        try:
            logged = read_jsonl(Path(run_dir) / TRAIN_LOG)
        except (OSError, ValueError):
            continue
        for row in logged:
            values = {key: float(row[key]) for key in keys if isinstance(row.get(key), int | float)}
            if values and "step" in row:
                rows.append({"run_dir": str(run_dir), "step": int(row["step"]), **values})
    return pd.DataFrame(rows, columns=["run_dir", "step", *keys])


def plot_diagnostics(
    diagnostics: pd.DataFrame, labels: Mapping[str, str], title: str, stem: Path
) -> list[Path]:
    """The off-policyness diagnostics of a figure's M3PO runs against agent steps, one panel per key.

    Up to :data:`DIAGNOSTIC_LINES` runs are one line each; more are drawn as the median over runs
    at each step with the band between the quartiles.

    :param diagnostics: :func:`read_diagnostics`
    :param labels: run_dir -> legend label (e.g. task and seed)
    :param title: the figure's title
    :param stem: output path without suffix
    """
    keys = [key for key in DIAGNOSTICS if key in diagnostics and diagnostics[key].notna().any()]
    fig, axes = plt.subplots(1, max(len(keys), 1), figsize=(4.2 * max(len(keys), 1), 3.2), squeeze=False)
    runs = list(dict.fromkeys(diagnostics["run_dir"]))
    shades = plt.get_cmap("Reds")(np.linspace(0.45, 0.95, max(len(runs), 1)))
    for ax, key in zip(axes[0], keys, strict=False):
        if len(runs) <= DIAGNOSTIC_LINES:
            for shade, run in zip(shades, runs, strict=True):
                rows = diagnostics[diagnostics["run_dir"] == run].sort_values("step")
                ax.plot(rows["step"], rows[key], color=shade, marker=".", label=labels.get(run, run))
        else:
            by_step = diagnostics.groupby("step")[key]
            q = by_step.quantile([0.25, 0.5, 0.75]).unstack()
            ax.fill_between(q.index, q[0.25], q[0.75], color=COLORS["m3po"], alpha=0.2, linewidth=0)
            ax.plot(q.index, q[0.5], color=COLORS["m3po"], label=f"median of {len(runs)} runs (quartiles)")
        ax.set_title(DIAGNOSTICS[key], fontsize=10)
        ax.set_xlabel("agent steps")
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))
        ax.grid(alpha=0.3)
    if not keys:
        axes[0][0].text(0.5, 0.5, "no diagnostics logged", ha="center", va="center")
        axes[0][0].set_axis_off()
    handles, names = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(
            handles, names, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=4, frameon=False
        )
    fig.suptitle(title, y=1.02)
    fig.tight_layout()
    return _save(fig, stem)
