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
    :param n_runs: ``R`` (the published curves: the most runs any step has)
    :param runs_per_step: ``(S,)`` runs per task behind each step, where it varies over steps (the
        published curves: :func:`aggregate_published`); None: ``n_runs`` at every step
    """

    steps: np.ndarray
    curves: dict[str, stats.Estimate]
    final: dict[str, stats.Estimate]
    final_scores: np.ndarray
    tasks: list[str]
    n_runs: int
    runs_per_step: np.ndarray | None = None

    def runs_at(self, index: int) -> int:
        """Runs per task behind the ``index``-th step."""
        return int(self.runs_per_step[index]) if self.runs_per_step is not None else self.n_runs


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

    DreamerV3's CSVs skip some evaluations of some seeds (of every seed, at a few steps of its dog
    tasks). So that the aggregate over tasks does not lose those steps for every task, a seed's missing
    evaluation at a step that any of the tasks has, *between* two of the seed's own evaluations, is
    linearly interpolated (``filled`` True); nothing is extrapolated past a seed's first or last
    evaluation.

    :returns: columns ``task``, ``seed``, ``step``, ``score``, ``filled``
    """
    rows = published[(published["algo"] == algo) & published["task"].isin(set(tasks))]
    grid = np.sort(rows["step"].unique())  # every step any task has: DreamerV3's dog tasks skip some
    frames = []
    for task, per_task in rows.groupby("task"):
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


def _published_step_runs(rows: pd.DataFrame, tasks: list[str]) -> dict[int, tuple[int, ...]]:
    """Per step with an evaluation on every task: the seeds kept there, per task in ``tasks`` order.

    ``R_s`` is the fewest seeds any task has at step ``s``; each task keeps its ``R_s`` lowest seeds
    (as :func:`analysis.stats.score_array` drops surplus seeds, the highest first). A step where a
    task has no evaluation at all is left out.
    """
    present = rows.groupby(["step", "task"])["seed"].apply(lambda seeds: tuple(sorted(set(seeds))))
    kept: dict[int, tuple[int, ...]] = {}
    for step, per_task in present.groupby(level="step"):
        seeds = per_task.droplevel("step")
        if set(seeds.index) != set(tasks):
            continue
        n = min(len(seeds[t]) for t in tasks)
        kept[int(step)] = tuple(seed for t in tasks for seed in seeds[t][:n])
    return kept


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

    Unlike our runs, not every published seed runs to the end (SAC's dog-stand seed 2 stops at 1.25M
    agent steps, DreamerV3's mw-reach seed 3 at 200k) nor starts at 0. So the curve is aggregated step
    by step over the seeds present there (:func:`_published_step_runs`, interior gaps filled by
    :func:`published_rows`): every step covers all the tasks, and ``runs_per_step`` says how many seeds
    per task each step rests on (fewer than 3 is no evidence, :mod:`analysis.verdicts`). Steps with the
    same seeds share one bootstrap draw.

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
        names = sorted(rows["task"].unique())
        kept = _published_step_runs(rows, names)
        if not kept:
            continue
        table = rows.groupby(["task", "seed", "step"])["score"].mean()
        steps = np.array(sorted(kept))
        groups: dict[tuple[int, ...], list[int]] = {}
        for step in steps:
            groups.setdefault(kept[int(step)], []).append(int(step))
        points = {m: np.full(len(steps), np.nan) for m in curve_metrics}
        lows = {m: np.full(len(steps), np.nan) for m in curve_metrics}
        highs = {m: np.full(len(steps), np.nan) for m in curve_metrics}
        runs = np.zeros(len(steps), dtype=int)
        final: dict[str, stats.Estimate] = {}
        final_scores = np.zeros((0, len(names)))
        for g, (seeds, group_steps) in enumerate(groups.items()):
            n = len(seeds) // len(names)
            values = np.array(
                [
                    [
                        [table[(task, seeds[t * n + r], step)] for step in group_steps]
                        for t, task in enumerate(names)
                    ]
                    for r in range(n)
                ]
            )  # (R, T, S_g)
            curves, last = stats.curve_estimates(
                values, reps, seed + 101 + 10 * offset + g, spec.gamma, curve_metrics, stats.METRICS, workers
            )
            index = np.searchsorted(steps, group_steps)
            runs[index] = n
            for m in curve_metrics:
                points[m][index], lows[m][index], highs[m][index] = (
                    curves[m].point,
                    curves[m].low,
                    curves[m].high,
                )
            if group_steps[-1] == steps[-1]:
                final, final_scores = last, values[:, :, -1]
        curves = {m: stats.Estimate(points[m], lows[m], highs[m]) for m in curve_metrics}
        results[algo] = AlgoResult(
            steps, curves, final, final_scores, names, int(runs.max()), runs_per_step=runs
        )
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
