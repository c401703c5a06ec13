"""What each figure aggregates, from the tidy table of :mod:`analysis.collect`.

A figure (``FIGURES``) names a suite, a mode (single-task runs, or one multi-task run per seed),
its algorithms and the score column. :func:`aggregate_figure` gives, per algorithm over the tasks it
ran, the sample-efficiency curves (metrics with 95% stratified-bootstrap intervals at every step) and
the four aggregate metrics at its last step; and the probability of improvement of M3PO over each other
algorithm, on the tasks both ran, at the last budget both evaluated (each read at its first evaluation
at or past it within 5%, :func:`analysis.verdicts.match_steps`). Each :class:`AlgoResult` keeps its
per-run scores, so that a comparison can re-aggregate it over the tasks both algorithms ran
(:func:`on_tasks`).

The TD-MPC2 authors' published curves (``baselines/published/tdmpc2_curves.parquet``, vendored by
``python -m baselines.published.vendor``) are read by :func:`load_published` and aggregated by
:func:`aggregate_published` over the same tasks as our runs, with the same statistics, into a
:class:`FigureResult` of their own: never pooled with our runs. :func:`fidelity_table` sets our
per-task scores beside the published per-seed min-max.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import stats, verdicts
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
    :param scores: ``(R', T, S')`` the per-run scores it was aggregated from, at ``score_steps`` (NaN
        where a published seed has no evaluation); None for results built without them. What
        :func:`on_tasks` re-aggregates over a subset of the tasks.
    :param score_steps: ``(S',)`` the steps of ``scores``
    :param reps: bootstrap repetitions it was aggregated with (and a subset is re-aggregated with)
    :param seed: its bootstrap seed
    :param gamma: the optimality-gap threshold of its scale
    """

    steps: np.ndarray
    curves: dict[str, stats.Estimate]
    final: dict[str, stats.Estimate]
    final_scores: np.ndarray
    tasks: list[str]
    n_runs: int
    runs_per_step: np.ndarray | None = None
    scores: np.ndarray | None = None
    score_steps: np.ndarray | None = None
    reps: int = 0
    seed: int = 0
    gamma: float = 100.0
    _subsets: dict[tuple[str, ...], AlgoResult | None] = field(
        default_factory=dict, init=False, compare=False, repr=False
    )

    def runs_at(self, index: int) -> int:
        """Runs per task behind the ``index``-th step."""
        return int(self.runs_per_step[index]) if self.runs_per_step is not None else self.n_runs


@dataclass(frozen=True)
class FigureResult:
    """:param algos: algorithm -> result over the tasks it ran (algorithms without runs are absent)
    :param improvement: baseline -> P(M3PO > baseline), on the tasks both ran, at the last budget both
        evaluated (:func:`analysis.verdicts.match_steps`)
    :param improvement_at: baseline -> where :attr:`improvement` was read: ``budget`` (agent steps),
        ``read_at`` (algorithm -> the step read) and ``tasks`` (the tasks both ran)
    """

    algos: dict[str, AlgoResult]
    improvement: dict[str, stats.Estimate]
    improvement_at: dict[str, dict] = field(default_factory=dict)


def aggregate_scores(
    values: np.ndarray,
    steps: Sequence[int],
    tasks: Sequence[str],
    reps: int,
    seed: int,
    gamma: float,
    curve_metrics: Sequence[str] = stats.CURVE_METRICS,
    workers: int = 1,
) -> AlgoResult | None:
    """Aggregate per-run scores into curves and last-step metrics, step by step over the runs present.

    Our runs evaluate at the same steps (:func:`analysis.stats.score_array`): one bootstrap draw over all
    steps. Not every published seed runs to the end nor starts at 0, so at each step every task keeps its
    ``R_s`` first runs present there, ``R_s`` the fewest any task has; a step where a task has none is
    left out. Steps that keep the same runs share one bootstrap draw (seeded ``seed``, ``seed + 1``, ...
    in the order of their first step), and ``runs_per_step`` says how many runs per task each rests on.

    :param values: ``(R, T, S)`` scores, NaN where a run has no evaluation
    :param steps: ``(S,)`` their agent steps, ascending
    :param tasks: ``(T,)`` task names
    :returns: None when no step has a run on every task
    """
    values = np.asarray(values, dtype=np.float64)
    steps = np.asarray(steps)
    present = ~np.isnan(values)
    kept: dict[int, tuple[tuple[int, ...], ...]] = {}
    for s in range(values.shape[2]):
        rows = [np.flatnonzero(present[:, t, s]) for t in range(values.shape[1])]
        n = min((len(r) for r in rows), default=0)
        if n:
            kept[s] = tuple(tuple(int(i) for i in r[:n]) for r in rows)
    if not kept:
        return None
    index = np.array(sorted(kept))
    groups: dict[tuple[tuple[int, ...], ...], list[int]] = {}
    for s in index:
        groups.setdefault(kept[int(s)], []).append(int(s))
    points = {m: np.full(len(index), np.nan) for m in curve_metrics}
    lows = {m: np.full(len(index), np.nan) for m in curve_metrics}
    highs = {m: np.full(len(index), np.nan) for m in curve_metrics}
    runs = np.zeros(len(index), dtype=int)
    final: dict[str, stats.Estimate] = {}
    final_scores = np.zeros((0, values.shape[1]))
    for g, (rows, group) in enumerate(groups.items()):
        sub = np.stack([values[list(r), t][:, group] for t, r in enumerate(rows)], axis=1)  # (R_g, T, S_g)
        curves, last = stats.curve_estimates(
            sub, reps, seed + g, gamma, curve_metrics, stats.METRICS, workers
        )
        at = np.searchsorted(index, group)
        runs[at] = len(rows[0])
        for m in curve_metrics:
            points[m][at], lows[m][at], highs[m][at] = curves[m].point, curves[m].low, curves[m].high
        if group[-1] == index[-1]:
            final, final_scores = last, sub[:, :, -1]
    curves = {m: stats.Estimate(points[m], lows[m], highs[m]) for m in curve_metrics}
    return AlgoResult(
        steps[index],
        curves,
        final,
        final_scores,
        list(tasks),
        int(runs.max()),
        runs_per_step=runs if len(set(runs.tolist())) > 1 else None,
        scores=values,
        score_steps=steps,
        reps=reps,
        seed=seed,
        gamma=gamma,
    )


def common_tasks(a: AlgoResult, b: AlgoResult) -> list[str]:
    """The tasks both ran, sorted."""
    return sorted(set(a.tasks) & set(b.tasks))


def on_tasks(res: AlgoResult, tasks: Iterable[str]) -> AlgoResult | None:
    """``res`` aggregated over ``tasks`` only (the tasks two algorithms both ran), with its own bootstrap
    repetitions and seed: ``res`` itself when they are its tasks; None when they are not among its
    tasks, are none, or ``res`` kept no per-run scores to re-aggregate (:attr:`AlgoResult.scores`).
    Computed once per subset."""
    tasks = sorted(set(tasks))
    if set(tasks) == set(res.tasks):
        return res
    if not tasks or res.scores is None or res.score_steps is None or not set(tasks) <= set(res.tasks):
        return None
    key = tuple(tasks)
    if key not in res._subsets:
        columns = [list(res.tasks).index(t) for t in tasks]
        res._subsets[key] = aggregate_scores(
            res.scores[:, columns, :],
            res.score_steps,
            tasks,
            res.reps,
            res.seed,
            res.gamma,
            tuple(res.curves),
        )
    return res._subsets[key]


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
        res = aggregate_scores(values, steps, tasks, reps, seed + offset, spec.gamma, curve_metrics, workers)
        if res is not None:
            results[algo] = res
    improvement, improvement_at = {}, {}
    if REFERENCE_ALGO in results:
        ours = results[REFERENCE_ALGO]
        for algo, other in results.items():
            if algo == REFERENCE_ALGO:
                continue
            read = improvement_scores(ours, other, (REFERENCE_ALGO, algo))
            if read is not None:
                x, y, improvement_at[algo] = read
                improvement[algo] = stats.probability_of_improvement(x, y, reps, seed)
    return FigureResult(results, improvement, improvement_at)


def improvement_scores(
    ours: AlgoResult, other: AlgoResult, names: tuple[str, str]
) -> tuple[np.ndarray, np.ndarray, dict] | None:
    """The ``(R, T)`` scores of both on the tasks both ran, at the last budget both evaluated (each read
    at its first evaluation at or past it within 5%, :func:`analysis.verdicts.match_steps`), and where:
    ``budget``, ``read_at`` (``names`` -> the step read) and ``tasks``; None when no task or no budget
    is shared (or a result kept no per-run scores)."""
    tasks = common_tasks(ours, other)
    if not tasks or ours.scores is None or other.scores is None:
        return None
    matched = verdicts.match_steps(list(ours.steps), list(other.steps))
    if not matched:
        return None
    budget, i, j = matched[-1]
    read = (int(ours.steps[i]), int(other.steps[j]))
    x = ours.scores[:, [ours.tasks.index(t) for t in tasks], list(ours.score_steps).index(read[0])]
    y = other.scores[:, [other.tasks.index(t) for t in tasks], list(other.score_steps).index(read[1])]
    return x, y, {"budget": int(budget), "read_at": dict(zip(names, read, strict=True)), "tasks": tasks}


def in_env_sweep(variant: pd.Series) -> pd.Series:
    """Which rows' variants belong to fig4's env-count sweep: the default config at any env count. The
    workflow labels fig4's runs ``default``; a run read by its path alone (analysis.collect) carries
    its ``num_envs=N`` directory.

    :param variant: a ``variant`` column
    """
    return (variant == "default") | variant.str.startswith("num_envs=")


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


def published_at(
    algo: str, tasks: Iterable[str], step: int, published: pd.DataFrame | None = None
) -> dict[str, list[float]]:
    """The TD-MPC2 authors' per-seed scores of ``algo`` at agent step ``step``: their CSV row ``2 step``
    (their ``step`` counts environment steps, the action repeat of 2 per agent step; the vendored table's
    ``step`` is already in agent steps). A seed's evaluation missing between two of its own (some of
    DreamerV3's) is interpolated, as in the figures (:func:`published_rows`).

    :param published: the vendored table (default: :func:`load_published`; pass it to read it once)
    :return: task -> scores of its seeds (seed order); a task they did not evaluate there is left out
    """
    rows = published_rows(load_published() if published is None else published, algo, tasks)
    rows = rows[rows["step"] == step]
    return {
        task: [round(float(v), 1) for v in per.sort_values("seed")["score"]]
        for task, per in rows.groupby("task")
    }


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
    by step over the seeds present there (:func:`aggregate_scores`, each task's lowest seeds first;
    interior gaps filled by :func:`published_rows`): every step covers all the tasks, and
    ``runs_per_step`` says how many seeds per task each step rests on (fewer than 3 is no evidence,
    :mod:`analysis.verdicts`). Steps with the same seeds share one bootstrap draw.

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
        grid = np.sort(rows["step"].unique())
        table = rows.groupby(["task", "seed", "step"])["score"].mean()
        seeds = {t: sorted(rows.loc[rows["task"] == t, "seed"].unique()) for t in names}
        values = np.full((max(len(v) for v in seeds.values()), len(names), len(grid)), np.nan)
        for t, task in enumerate(names):
            for r, run in enumerate(seeds[task]):
                series = table[(task, run)]
                values[r, t, np.searchsorted(grid, series.index.to_numpy())] = series.to_numpy()
        res = aggregate_scores(
            values, grid, names, reps, seed + 101 + 10 * offset, spec.gamma, curve_metrics, workers
        )
        if res is not None:
            results[algo] = res
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


def published_whole_set(
    spec: FigureSpec,
    reps: int,
    seed: int = 0,
    published: pd.DataFrame | None = None,
    workers: int = 1,
) -> FigureResult | None:
    """The published curves over every task of a single-task figure's task set that the authors
    published (their mean only), for the value checks of final-value claims: the paper's values
    average a whole set, which a mean over our tasks does not estimate (the figures and every
    comparison take :func:`published_reference`, on our tasks). None for a multi-task figure or a
    set they published nothing of."""
    if spec.mode != "single":
        return None
    published = load_published() if published is None else published
    tasks = sorted(set(published.loc[published["task_set"] == spec.suite, "task"]))
    if not tasks:
        return None
    whole = aggregate_published(published, spec, tasks, reps, seed, curve_metrics=("mean",), workers=workers)
    return whole if whole.algos else None


FIDELITY_COLUMNS = (
    "algo", "task", "step", "ours read at", "ours", "ours seeds", "published min", "published max",
    "published seeds", "verdict", "source",
)  # fmt: skip


def _read_span(steps: Sequence[int]) -> int | str:
    """The step our seeds were read at: one number, or ``low-high`` when they differ."""
    low, high = min(steps), max(steps)
    return int(low) if low == high else f"{low:,}-{high:,}"


def fidelity_table(scores: pd.DataFrame, published: pd.DataFrame) -> pd.DataFrame:
    """Our runs beside the published ones, for every (algorithm, task, published agent step N) our runs
    have an evaluation for.

    Ours: the mean over seeds of the default single-task runs' ``score``, each seed read at its first
    evaluation at or past N within 5% (:func:`analysis.verdicts.read_at`; ``ours read at`` gives the
    step read, ``low-high`` where seeds differ); a seed without one is left out, and a step no seed has
    one for has no row. Published: the min and max over their seeds of the CSV rows at N (rows as
    published: no filled gaps). ``verdict`` is ``m3po bench fidelity``'s
    (:func:`analysis.verdicts.fidelity_verdict`): ``inside`` [min, max], ``below`` or ``above``.
    ``source`` is the CSV's path and commit (first 7 digits).

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
    theirs = published.groupby(["algo", "task", "step"], as_index=False).agg(
        values=("score", list), path=("path", "first"), commit=("commit", "first")
    )
    mine = ours.groupby(["algo", "task", "seed", "step"])["score"].mean()
    rows = []
    for (algo, task), per_task in theirs.groupby(["algo", "task"]):
        if (algo, task) not in mine.index.droplevel(["seed", "step"]):
            continue
        seeds = {
            seed: series.droplevel("seed") for seed, series in mine.loc[(algo, task)].groupby(level="seed")
        }
        for r in per_task.itertuples(index=False):
            read = {seed: verdicts.read_at(series.index, int(r.step)) for seed, series in seeds.items()}
            read = {seed: step for seed, step in read.items() if step is not None}
            if not read:
                continue
            mean = float(np.mean([seeds[seed][step] for seed, step in read.items()]))
            rows.append(
                {
                    "algo": algo,
                    "task": task,
                    "step": int(r.step),
                    "ours read at": _read_span(list(read.values())),
                    "ours": mean,
                    "ours seeds": len(read),
                    "published min": float(min(r.values)),
                    "published max": float(max(r.values)),
                    "published seeds": len(r.values),
                    "verdict": fidelity_verdict(mean, [float(v) for v in r.values]),
                    "source": f"{r.path}@{str(r.commit)[:7]}",
                }
            )
    table = pd.DataFrame(rows, columns=list(FIDELITY_COLUMNS))
    return table.sort_values(["algo", "task", "step"], kind="stable").reset_index(drop=True)
