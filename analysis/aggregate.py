"""What each figure aggregates, from the tidy table of :mod:`analysis.collect`.

A figure (``FIGURES``) names a suite, a mode (single-task runs, or one multi-task run per seed),
its algorithms and the score column. :func:`aggregate_figure` gives, per algorithm, the
sample-efficiency curves (metrics with 95% stratified-bootstrap intervals at every step), the
four aggregate metrics at the final common step, and the probability of improvement of M3PO over
each other algorithm there.

The TD-MPC2 authors' published curves (``baselines/published/tdmpc2_curves.parquet``, vendored by
``python -m baselines.published.vendor``) are read by :func:`load_published` and aggregated by
:func:`aggregate_published` over the same tasks as our runs, with the same statistics, into a
:class:`FigureResult` of their own: never pooled with our runs. :func:`fidelity_table` sets our
per-task scores beside the published per-seed min-max.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import stats
from analysis.verdicts import fidelity_verdict

REFERENCE_ALGO = "m3po"
# Tasks per named task set (shared/spec/benchmarks.md): the "of 39" in a claim's scope.
TASK_SET_SIZES: dict[str, int] = {"dmc39": 39, "mw50": 50, "mt30": 30, "mt80": 80, "dmlab30": 30}
# Located beside this package, not imported: analysis imports nothing of baselines.
PUBLISHED_PATH = Path(__file__).resolve().parents[1] / "baselines" / "published" / "tdmpc2_curves.parquet"
PUBLISHED_ALGOS: tuple[str, ...] = ("tdmpc2", "sac", "dreamerv3")
PUBLISHED_COLUMNS = (
    "algo", "task", "task_set", "their_task", "path", "commit", "env_step", "step", "seed", "raw",
    "raw_column", "score",
)  # fmt: skip


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


# ------------------------------------------------------------------------------------ published curves
def load_published(path: Path | None = None) -> pd.DataFrame:
    """The vendored published curves: one row per (algo, task, seed, evaluation), columns
    :data:`PUBLISHED_COLUMNS` (``step`` in agent steps; ``score`` on the suite's scale: DMControl return,
    Meta-World success in percent). Their meaning: ``baselines/published/vendor.py``.

    :raises FileNotFoundError: the file is not there (the message says how to vendor it)
    :raises ValueError: it lacks a column
    """
    path = Path(path or PUBLISHED_PATH)
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: the TD-MPC2 authors' published curves are not vendored here; write them with "
            "`python -m baselines.published.vendor --mirror <local git copy of nicklashansen/tdmpc2>`"
        )
    table = pd.read_parquet(path)
    missing = [c for c in PUBLISHED_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: no column(s) {missing}; re-vendor with baselines/published/vendor.py")
    for column in table.columns:
        if isinstance(table[column].dtype, pd.CategoricalDtype):
            table[column] = table[column].astype(str)
    return table


def published_metadata(path: Path | None = None) -> dict:
    """The file's provenance (repository, the commit read, units), from its Parquet metadata."""
    import pyarrow.parquet as pq

    raw = (pq.read_schema(Path(path or PUBLISHED_PATH)).metadata or {}).get(b"m3po.published")
    return json.loads(raw) if raw else {}


def published_rows(published: pd.DataFrame, algo: str, tasks: Iterable[str]) -> pd.DataFrame:
    """One published algorithm's rows on ``tasks``, with interior gaps filled.

    DreamerV3's CSVs skip some evaluations of some seeds. So that :func:`analysis.stats.score_array`
    (which keeps only the steps every run evaluated) does not drop those steps for every task, a
    seed's missing evaluation *between* two of its own is linearly interpolated (``filled`` True);
    nothing is extrapolated past a seed's first or last evaluation.

    :returns: columns ``task``, ``seed``, ``step``, ``score``, ``filled``
    """
    rows = published[(published["algo"] == algo) & published["task"].isin(set(tasks))]
    frames = []
    for task, per_task in rows.groupby("task"):
        grid = np.sort(per_task["step"].unique())
        for seed, per_seed in per_task.groupby("seed"):
            series = per_seed.groupby("step")["score"].mean().reindex(grid)
            filled = series.isna()
            series = series.interpolate(method="index", limit_area="inside")
            frame = pd.DataFrame({"task": task, "seed": seed, "step": grid, "score": series.to_numpy()})
            frame["filled"] = filled.to_numpy()
            frames.append(frame.dropna(subset=["score"]))
    if not frames:
        return pd.DataFrame(columns=["task", "seed", "step", "score", "filled"])
    return pd.concat(frames, ignore_index=True)


def aggregate_published(
    published: pd.DataFrame,
    spec: FigureSpec,
    tasks: Iterable[str],
    reps: int,
    seed: int,
    algos: Sequence[str] = PUBLISHED_ALGOS,
    curve_metrics: Sequence[str] = stats.CURVE_METRICS,
    workers: int = 1,
) -> FigureResult:
    """The published curves of ``algos`` on ``tasks`` (those of them the authors published), with the
    statistics :func:`aggregate_figure` computes for ours; ``improvement`` is empty (the published
    curves are a reference, never an algorithm of ours).

    :param published: :func:`load_published`
    :param spec: the figure (its ``gamma``)
    :param tasks: our runs' tasks in the figure
    """
    tasks = list(tasks)
    results: dict[str, AlgoResult] = {}
    for offset, algo in enumerate(algos):
        rows = published_rows(published, algo, tasks)
        if rows.empty:
            continue
        values, names, steps = stats.score_array(rows, "score")
        if not len(steps):
            continue
        curves, final = stats.curve_estimates(
            values, reps, seed + 101 + offset, spec.gamma, curve_metrics, stats.METRICS, workers
        )
        results[algo] = AlgoResult(steps, curves, final, values[:, :, -1], names, values.shape[0])
    return FigureResult(results, {})


def published_reference(
    result: FigureResult,
    spec: FigureSpec,
    reps: int,
    seed: int = 0,
    published: pd.DataFrame | None = None,
    workers: int = 1,
) -> FigureResult | None:
    """The published reference curves for one of our figures: over the tasks of our runs (all of its
    algorithms together), for a single-task figure whose tasks the authors published (fig3a, fig3b);
    None for any other (fig3c is multi-task: the authors' multi-task agents were trained offline)."""
    if spec.mode != "single":
        return None
    tasks = sorted({t for res in result.algos.values() for t in res.tasks})
    published = load_published() if published is None else published
    tasks = [t for t in tasks if t in set(published["task"])]
    if not tasks:
        return None
    reference = aggregate_published(published, spec, tasks, reps, seed, workers=workers)
    return reference if reference.algos else None


FIDELITY_COLUMNS = (
    "algo", "task", "step", "ours", "ours seeds", "published min", "published max", "published seeds",
    "verdict", "source",
)  # fmt: skip


def fidelity_table(scores: pd.DataFrame, published: pd.DataFrame) -> pd.DataFrame:
    """Our runs beside the published ones, for every (algorithm, task, agent step) both have.

    Ours: the mean over seeds of the default single-task runs' ``score`` at exactly that step. Published:
    the min and max over their seeds of the CSV rows at that step (rows as published: no filled gaps).
    ``verdict`` is ``m3po bench fidelity``'s (:func:`analysis.verdicts.fidelity_verdict`): ``inside``
    [min, max], ``below`` or ``above``. ``source`` is the CSV's path and commit (first 7 digits).

    :param scores: tidy scores (:data:`analysis.collect.SCORE_COLUMNS`)
    :param published: :func:`load_published`
    :returns: columns :data:`FIDELITY_COLUMNS`, sorted by algorithm, task and step
    """
    algos = set(published["algo"])
    ours = scores[
        scores["algo"].isin(algos) & (scores["mode"] == "single") & (scores["variant"] == "default")
    ]
    if ours.empty:
        return pd.DataFrame(columns=list(FIDELITY_COLUMNS))
    mine = ours.groupby(["algo", "task", "step"], as_index=False).agg(
        ours=("score", "mean"), seeds=("seed", "nunique")
    )
    theirs = published.groupby(["algo", "task", "step"], as_index=False).agg(
        values=("score", list), path=("path", "first"), commit=("commit", "first")
    )
    both = mine.merge(theirs, on=["algo", "task", "step"], how="inner")
    rows = [
        {
            "algo": r.algo,
            "task": r.task,
            "step": int(r.step),
            "ours": float(r.ours),
            "ours seeds": int(r.seeds),
            "published min": float(min(r.values)),
            "published max": float(max(r.values)),
            "published seeds": len(r.values),
            "verdict": fidelity_verdict(float(r.ours), [float(v) for v in r.values]),
            "source": f"{r.path}@{str(r.commit)[:7]}",
        }
        for r in both.itertuples(index=False)
    ]
    table = pd.DataFrame(rows, columns=list(FIDELITY_COLUMNS))
    return table.sort_values(["algo", "task", "step"], kind="stable").reset_index(drop=True)
