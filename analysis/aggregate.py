"""What each figure aggregates, from the tidy table of :mod:`analysis.collect`.

A figure (``FIGURES``) names a suite, a mode (single-task runs, or one multi-task run per seed),
its algorithms and the score column. :func:`aggregate_figure` gives, per algorithm, the
sample-efficiency curves (metrics with 95% stratified-bootstrap intervals at every step), the
four aggregate metrics at the final common step, and the probability of improvement of M3PO over
each other algorithm there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis import stats

REFERENCE_ALGO = "m3po"


@dataclass(frozen=True)
class FigureSpec:
    """Which runs a figure shows.

    :param suite: ``suite`` column value (dmc39, mw50, mt80)
    :param mode: ``single`` (one task per run) or ``multi``
    :param algos: algorithms, in legend order
    :param column: score column: ``score`` (logged scale) or ``normalized``
    :param gamma: optimality-gap threshold on that scale
    :param ylabel: axis label
    """

    suite: str
    mode: str
    algos: tuple[str, ...]
    column: str
    gamma: float
    ylabel: str


FIGURES: dict[str, FigureSpec] = {
    "fig3a": FigureSpec(
        "dmc39", "single", ("m3po", "ppo", "sac", "dreamerv3"), "score", 1000.0, "episode return"
    ),
    "fig3b": FigureSpec("mw50", "single", ("m3po", "ppo", "sac", "dreamerv3"), "score", 100.0, "success (%)"),
    "fig3c": FigureSpec(
        "mt80", "multi", ("m3po", "tdmpc2", "mt-ppo", "mt-sac"), "normalized", 100.0, "normalized score (%)"
    ),
}


@dataclass(frozen=True)
class AlgoResult:
    """One algorithm's aggregates in one figure.

    :param steps: ``(S,)`` evaluation steps common to its runs
    :param curves: metric -> :class:`stats.Estimate` of ``(S,)`` arrays
    :param final: metric -> :class:`stats.Estimate` of scalars at the last step
    :param final_scores: ``(R, T)`` scores at the last step
    :param tasks: ``(T,)`` task names
    :param n_runs: ``R``
    """

    steps: np.ndarray
    curves: dict[str, stats.Estimate]
    final: dict[str, stats.Estimate]
    final_scores: np.ndarray
    tasks: list[str]
    n_runs: int


@dataclass(frozen=True)
class FigureResult:
    """:param algos: algorithm -> result (algorithms without runs are absent)
    :param improvement: baseline -> P(M3PO > baseline) at the last step, on the tasks both ran
    """

    algos: dict[str, AlgoResult]
    improvement: dict[str, stats.Estimate]


def figure_rows(table: pd.DataFrame, spec: FigureSpec, algo: str, variant: str = "default") -> pd.DataFrame:
    """The table's rows of one algorithm in one figure."""
    mask = (
        (table["algo"] == algo)
        & (table["suite"] == spec.suite)
        & (table["mode"] == spec.mode)
        & (table["variant"] == variant)
    )
    return table[mask]


def aggregate_figure(
    table: pd.DataFrame,
    spec: FigureSpec,
    reps: int,
    seed: int,
    curve_metrics: Sequence[str] = stats.CURVE_METRICS,
    workers: int = 1,
) -> FigureResult:
    """Aggregate one figure.

    :param table: tidy scores (:data:`analysis.collect.SCORE_COLUMNS`)
    :param spec: the figure
    :param reps: bootstrap repetitions
    :param seed: bootstrap seed (the same seed gives the same intervals)
    :param curve_metrics: metrics computed at every step (all four are computed at the last step;
        the curves, the report and its verdicts read IQM and mean over steps, and the other two
        only at the last step)
    :param workers: threads over steps
    """
    results: dict[str, AlgoResult] = {}
    for offset, algo in enumerate(spec.algos):
        rows = figure_rows(table, spec, algo)
        if rows.empty:
            continue
        values, tasks, steps = stats.score_array(rows, spec.column)
        if not len(steps):
            continue
        curves, final = stats.curve_estimates(
            values, reps, seed + offset, spec.gamma, curve_metrics, stats.METRICS, workers
        )
        results[algo] = AlgoResult(steps, curves, final, values[:, :, -1], tasks, values.shape[0])
    improvement = {}
    if REFERENCE_ALGO in results:
        ours = results[REFERENCE_ALGO]
        for algo, other in results.items():
            if algo == REFERENCE_ALGO:
                continue
            common = [t for t in ours.tasks if t in set(other.tasks)]
            x = ours.final_scores[:, [ours.tasks.index(t) for t in common]]
            y = other.final_scores[:, [other.tasks.index(t) for t in common]]
            improvement[algo] = stats.probability_of_improvement(x, y, reps, seed)
    return FigureResult(results, improvement)


def final_run_scores(table: pd.DataFrame) -> pd.DataFrame:
    """Per run, the mean normalized score over tasks at its last evaluation.

    :returns: one row per ``run_dir`` with ``algo``, ``variant``, ``seed``, ``num_envs``, ``alpha0``,
        ``horizon``, ``task_set``, ``mode``, ``step`` and ``final`` (mean normalized score, 0-100)
    """
    last = table.groupby("run_dir")["step"].transform("max")
    rows = table[table["step"] == last]
    keys = ["run_dir", "algo", "variant", "seed", "num_envs", "alpha0", "horizon", "task_set", "mode", "step"]
    return (
        rows.groupby(keys, as_index=False, dropna=False)["normalized"]
        .mean()
        .rename(columns={"normalized": "final"})
    )
