"""Aggregate statistics over runs and tasks: IQM, mean, median, optimality gap, performance
profiles and probability of improvement, each with 95% stratified-bootstrap confidence intervals.

Shapes: ``R`` runs (seeds) per task, ``T`` tasks, ``S`` evaluation steps, ``B`` bootstrap
repetitions. Metrics are rliable's (``rliable.metrics``): point estimates always come from
rliable's own functions.

Two ways to the intervals, with the same statistics:

* :func:`interval_estimates_rliable` calls ``rliable.library.get_interval_estimates`` (the
  reference). rliable draws its bootstrap indices from NumPy's *global* generator
  (``np.random.choice``); the ``random_state`` it accepts does not reach those draws. So it is
  seeded through the global state, which is restored afterwards.
* :func:`interval_estimates` is a vectorised stratified bootstrap: per repetition it draws, for
  every task, ``R`` runs with replacement (as rliable's ``StratifiedBootstrap``), keeps the draws as
  counts per run, and evaluates every metric on all repetitions at once. rliable evaluates its
  metric once per repetition in Python (50,000 calls per step); this is how a paper-size grid gets
  aggregated in seconds. One draw of counts serves all steps of a curve (each step's marginal
  bootstrap distribution is the one rliable resamples). Tests compare the two.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis._rliable import library, metrics

METRICS: tuple[str, ...] = ("iqm", "mean", "median", "optimality_gap")
CI_SIZE = 0.95
_CHUNK = 8192  # repetitions per block: one block's counts (T*R x _CHUNK float32) stay in cache


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its 95% interval; each array has the shape of the estimated quantity
    (``(S,)`` for a curve over steps, ``(K,)`` for a profile over thresholds, ``()`` for a scalar).

    :param point: point estimate
    :param low: lower bound of the interval
    :param high: upper bound of the interval
    """

    point: np.ndarray
    low: np.ndarray
    high: np.ndarray


def rliable_metric(name: str, gamma: float) -> Callable[[np.ndarray], float]:
    """rliable's metric function for ``name`` (one of :data:`METRICS`) on a ``(R, T)`` array.

    :param name: metric name
    :param gamma: optimality-gap threshold (the score of a solved task: 1000 for DMC returns, 100
        for success % or normalized scores)
    """
    functions: dict[str, Callable[[np.ndarray], float]] = {
        "iqm": metrics.aggregate_iqm,
        "mean": metrics.aggregate_mean,
        "median": metrics.aggregate_median,
        "optimality_gap": lambda scores: metrics.aggregate_optimality_gap(scores, gamma=gamma),
    }
    return functions[name]


@contextlib.contextmanager
def global_seed(seed: int) -> Iterator[None]:
    """Seed NumPy's global generator (which rliable's bootstrap draws from), restoring it after."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def counts_from_indices(indices: np.ndarray, n_runs: int) -> np.ndarray:
    """How often each run is drawn.

    :param indices: ``(B, R_drawn, T)`` drawn run indices, in ``[0, n_runs)``
    :param n_runs: ``R``, the runs available per task
    :returns: ``(B, R, T)`` float32 counts; each ``[b, :, t]`` sums to ``R_drawn``
    """
    counts = np.empty((indices.shape[0], n_runs, indices.shape[2]), dtype=np.float32)
    for run in range(n_runs):
        counts[:, run] = (indices == run).sum(axis=1)
    return counts


def draw_counts(rng: np.random.Generator, reps: int, n_runs: int, n_tasks: int) -> np.ndarray:
    """Stratified bootstrap draws as counts: per repetition and task, ``R`` runs with replacement.

    :returns: ``(B, R, T)`` float32 counts
    """
    indices = rng.integers(0, n_runs, size=(reps, n_runs, n_tasks), dtype=np.int8)
    return counts_from_indices(indices, n_runs)


def _percentile_interval(boot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval over the first axis (as rliable's default ``method='percentile'``)."""
    tail = 100 * (1 - CI_SIZE) / 2
    low, high = np.percentile(boot, [tail, 100 - tail], axis=0)
    return low, high


def _iqm_from_counts(values: np.ndarray, count_blocks: Sequence[np.ndarray]) -> np.ndarray:
    """IQM (scipy's 25% trimmed mean, as rliable) of every resample, without sorting resamples.

    The pooled values are sorted once. A resample holds value ``i`` (in sorted order) ``c_i``
    times; with ``C_i`` the running total of counts, the trimmed mean keeps positions ``[k, N-k)``
    of the expanded sample, so ``sum(kept) = sum_i clip(C_i, k, N-k) * (v_i - v_{i+1}) - k*v_0``
    (summation by parts, ``v_N = 0``).

    :param values: ``(N,)`` pooled scores of one step (``N = R*T``, in ``(R, T)`` C order)
    :param count_blocks: ``(N, b)`` float32 counts of the same positions, blocks of repetitions
    :returns: ``(B,)`` IQM per repetition
    """
    n = values.size
    cut = int(0.25 * n)  # scipy.stats.trim_mean's rule
    order = np.argsort(values, kind="stable")
    ordered = values[order].astype(np.float64)
    steps = np.append(ordered[:-1] - ordered[1:], ordered[-1]).astype(np.float32)
    out = []
    for block in count_blocks:
        running = block[order]
        # Row by row: numpy's cumsum along axis 0 is several times slower than these adds.
        for i in range(1, n):
            np.add(running[i - 1], running[i], out=running[i])
        np.clip(running, cut, n - cut, out=running)
        out.append((steps @ running - cut * ordered[0]) / (n - 2 * cut))
    return np.concatenate(out)


def _step_bootstrap(
    values: np.ndarray,
    counts: np.ndarray,
    count_blocks: Sequence[np.ndarray],
    gamma: float,
    names: Sequence[str],
) -> dict[str, np.ndarray]:
    """Every metric in ``names`` on every resample of one step.

    :param values: ``(R, T)`` scores
    :param counts: ``(B, R, T)`` counts
    :param count_blocks: the same counts as ``(R*T, b)`` blocks (see :func:`_iqm_from_counts`)
    :returns: name -> ``(B,)``
    """
    n_runs, n = values.shape[0], values.size
    flat = counts.reshape(counts.shape[0], n)
    out: dict[str, np.ndarray] = {}
    if "mean" in names:
        out["mean"] = flat @ values.ravel().astype(np.float32) / n
    if "optimality_gap" in names:
        out["optimality_gap"] = gamma - flat @ np.minimum(values, gamma).ravel().astype(np.float32) / n
    if "median" in names:
        task_means = np.einsum("brt,rt->bt", counts, values.astype(np.float32)) / n_runs
        out["median"] = np.median(task_means, axis=1)
    if "iqm" in names:
        out["iqm"] = _iqm_from_counts(values.ravel(), count_blocks)
    return out


def interval_estimates(
    scores: np.ndarray,
    reps: int,
    seed: int,
    gamma: float,
    names: Sequence[str] = METRICS,
    workers: int = 1,
) -> dict[str, Estimate]:
    """Metrics at every step with 95% stratified-bootstrap intervals (vectorised; see module doc).

    :param scores: ``(R, T, S)`` scores of ``R`` runs on ``T`` tasks at ``S`` steps (or ``(R, T)``)
    :param reps: ``B``, bootstrap repetitions
    :param seed: seed of the draws: the same seed gives the same intervals
    :param gamma: optimality-gap threshold
    :param names: metrics to compute, from :data:`METRICS`
    :param workers: threads over steps (NumPy releases the GIL inside its kernels)
    :returns: name -> :class:`Estimate` of ``(S,)`` arrays (``()`` for 2-D input)
    """
    scores = np.asarray(scores, dtype=np.float64)
    curve = scores.ndim == 3
    if not curve:
        scores = scores[..., None]
    n_runs, n_tasks, n_steps = scores.shape
    counts = draw_counts(np.random.default_rng(seed), reps, n_runs, n_tasks)
    flat_t = counts.reshape(reps, n_runs * n_tasks).T
    blocks = [np.ascontiguousarray(flat_t[:, start : start + _CHUNK]) for start in range(0, reps, _CHUNK)]

    def one_step(step: int) -> dict[str, np.ndarray]:
        return _step_bootstrap(scores[:, :, step], counts, blocks, gamma, names)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        boots = list(pool.map(one_step, range(n_steps)))
    result = {}
    for name in names:
        metric = rliable_metric(name, gamma)
        point = np.array([metric(scores[:, :, step]) for step in range(n_steps)])
        low, high = _percentile_interval(np.stack([boot[name] for boot in boots], axis=1))
        if not curve:
            point, low, high = point[0], low[0], high[0]
        result[name] = Estimate(point=point, low=low, high=high)
    return result


def interval_estimates_rliable(
    scores: np.ndarray, reps: int, seed: int, gamma: float, names: Sequence[str] = METRICS
) -> dict[str, Estimate]:
    """The reference for :func:`interval_estimates`: ``rliable.library.get_interval_estimates``.

    :param scores: ``(R, T, S)`` (or ``(R, T)``) scores
    :param reps: ``B``, bootstrap repetitions
    :param seed: seed of NumPy's global generator for the call (restored afterwards)
    :param gamma: optimality-gap threshold
    :param names: metrics, from :data:`METRICS`
    :returns: name -> :class:`Estimate` of ``(S,)`` arrays (``()`` for 2-D input)
    """
    scores = np.asarray(scores, dtype=np.float64)
    curve = scores.ndim == 3
    if not curve:
        scores = scores[..., None]
    n_steps = scores.shape[2]
    functions = [rliable_metric(name, gamma) for name in names]

    def aggregate(sample: np.ndarray) -> np.ndarray:
        return np.array([[fn(sample[:, :, step]) for step in range(n_steps)] for fn in functions]).ravel()

    with global_seed(seed):
        points, intervals = library.get_interval_estimates({"x": scores}, aggregate, reps=reps)
    point = points["x"].reshape(len(names), n_steps)
    low, high = (bound.reshape(len(names), n_steps) for bound in intervals["x"])
    result = {}
    for i, name in enumerate(names):
        if curve:
            result[name] = Estimate(point=point[i], low=low[i], high=high[i])
        else:
            result[name] = Estimate(point=point[i, 0], low=low[i, 0], high=high[i, 0])
    return result


def performance_profiles(
    score_dict: Mapping[str, np.ndarray], taus: np.ndarray, reps: int, seed: int
) -> dict[str, Estimate]:
    """Score distributions (fraction of runs x tasks above each threshold) with 95% intervals.

    Point estimates are rliable's ``score_distributions``; the bootstrap is the stratified one of
    :func:`interval_estimates` (rliable's ``create_performance_profile`` loops over thresholds in
    Python for every repetition; :func:`performance_profiles_rliable` is the reference).

    :param score_dict: algorithm -> ``(R, T)`` scores at one step
    :param taus: ``(K,)`` thresholds
    :param reps: ``B``, bootstrap repetitions
    :param seed: seed of the draws
    :returns: algorithm -> :class:`Estimate` of ``(K,)`` arrays
    """
    taus = np.asarray(taus, dtype=np.float64)
    rng = np.random.default_rng(seed)
    out = {}
    for algo, scores in score_dict.items():
        counts = draw_counts(rng, reps, *scores.shape).reshape(reps, scores.size)
        above = (scores.reshape(-1, 1) > taus[None, :]).astype(np.float32)
        low, high = _percentile_interval(counts @ above / scores.size)
        out[algo] = Estimate(point=library.score_distributions(scores, taus), low=low, high=high)
    return out


def performance_profiles_rliable(
    score_dict: Mapping[str, np.ndarray], taus: np.ndarray, reps: int, seed: int
) -> dict[str, Estimate]:
    """The reference for :func:`performance_profiles`: ``rliable.library.create_performance_profile``.

    :param seed: seed of NumPy's global generator for the call (restored afterwards)
    """
    with global_seed(seed):
        profiles, cis = library.create_performance_profile(dict(score_dict), np.asarray(taus), reps=reps)
    return {algo: Estimate(point=profiles[algo], low=cis[algo][0], high=cis[algo][1]) for algo in score_dict}


def improvement_matrix(scores_x: np.ndarray, scores_y: np.ndarray) -> np.ndarray:
    """Per task, the Mann-Whitney kernel ``[x_i > y_j] + 0.5 [x_i == y_j]``.

    :param scores_x: ``(Rx, T)``
    :param scores_y: ``(Ry, T)``
    :returns: ``(T, Rx, Ry)``
    """
    x = scores_x.T[:, :, None]
    y = scores_y.T[:, None, :]
    return (x > y) + 0.5 * (x == y)


def probability_of_improvement(scores_x: np.ndarray, scores_y: np.ndarray, reps: int, seed: int) -> Estimate:
    """P(X > Y) averaged over tasks (rliable's point estimate) with a 95% interval from an
    independent stratified bootstrap of both (as rliable's ``StratifiedIndependentBootstrap``).

    :param scores_x: ``(Rx, T)`` scores of X (e.g. M3PO) at one step
    :param scores_y: ``(Ry, T)`` scores of Y on the same tasks
    :param reps: ``B``, bootstrap repetitions
    :param seed: seed of the draws
    :returns: :class:`Estimate` of scalars
    """
    rng = np.random.default_rng(seed)
    n_tasks = scores_x.shape[1]
    counts_x = draw_counts(rng, reps, scores_x.shape[0], n_tasks)
    counts_y = draw_counts(rng, reps, scores_y.shape[0], n_tasks)
    kernel = improvement_matrix(scores_x, scores_y).astype(np.float32)
    per_task = np.einsum("bit,tij,bjt->bt", counts_x, kernel, counts_y, optimize=True)
    boot = per_task.mean(axis=1) / (scores_x.shape[0] * scores_y.shape[0])
    low, high = _percentile_interval(boot)
    point = np.asarray(metrics.probability_of_improvement(scores_x, scores_y))
    return Estimate(point=point, low=np.asarray(low), high=np.asarray(high))


def score_array(table: pd.DataFrame, column: str = "score") -> tuple[np.ndarray, list[str], np.ndarray]:
    """One algorithm's rows of the tidy table as a ``(R, T, S)`` array.

    Run ``r`` of a task is its ``r``-th seed in ascending order, so tasks need not share seed
    numbers. ``R`` is the fewest runs any task has (a task's surplus seeds are dropped, the
    highest first) and the steps are those every kept run evaluated.

    :param table: rows of :data:`analysis.collect.SCORE_COLUMNS` for one algorithm, one variant
    :param column: the score column (``score`` or ``normalized``)
    :returns: (scores ``(R, T, S)``, task names ``(T,)``, steps ``(S,)``)
    """
    runs = table[["task", "seed"]].drop_duplicates().sort_values(["task", "seed"])
    runs["run"] = runs.groupby("task").cumcount()
    n_runs = int(runs.groupby("task")["run"].max().min()) + 1
    kept = table.merge(runs[runs["run"] < n_runs], on=["task", "seed"])
    grid = kept.pivot_table(index=["run", "task"], columns="step", values=column, aggfunc="mean")
    grid = grid.dropna(axis=1)
    tasks = sorted(kept["task"].unique())
    steps = grid.columns.to_numpy()
    values = grid.to_numpy().reshape(n_runs, len(tasks), len(steps))
    return values, tasks, steps
