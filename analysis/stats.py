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
* :func:`interval_estimates` (and :func:`curve_estimates`, curves and last-step metrics from one
  draw) is a vectorised stratified bootstrap: per repetition it draws, for every task, ``R`` runs
  with replacement (as rliable's ``StratifiedBootstrap``), keeps the draws as counts per run, and
  evaluates every metric on all repetitions at once. rliable evaluates its metric once per
  repetition in Python (50,000 calls per step); this is how a paper-size grid gets aggregated in
  seconds. One draw of counts serves all steps of a curve (each step's marginal bootstrap
  distribution is the one rliable resamples). Mean and optimality gap are one matrix product over
  all steps; the IQM of each resample is exact but touches only windows around its two trimming
  cuts (see :func:`_iqm_plan`); the median sorts per-task means. Tests compare the two paths, and
  the vectorised metrics with rliable's functions on explicit resamples.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
from rliable import library, metrics

METRICS: tuple[str, ...] = ("iqm", "mean", "median", "optimality_gap")
CURVE_METRICS: tuple[str, ...] = ("iqm", "mean")  # what the curves and the report read at every step
CI_SIZE = 0.95
_CHUNK = 16384  # repetitions per IQM block: few numpy calls; (window x _CHUNK) float32 in cache
_STEPS_PER_PRODUCT = 32  # steps per matrix product: its (4 x 32 x B) float32 result bounds the memory
# Half-width of an IQM window, in standard deviations of a resample's running count at the cut. A
# resample whose cut falls outside its window is recomputed over all positions, so any width is exact;
# this one keeps the windows narrow and the recomputed resamples few (about 0.5%).
_WINDOW_SD = 3.0


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


def _check_names(names: Sequence[str]) -> None:
    unknown = [name for name in names if name not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; valid: {list(METRICS)}")


def rliable_metric(name: str, gamma: float) -> Callable[[np.ndarray], float]:
    """rliable's metric function for ``name`` (one of :data:`METRICS`) on a ``(R, T)`` array.

    :param name: metric name
    :param gamma: optimality-gap threshold (the score of a solved task: 1000 for DMC returns, 100
        for success % or normalized scores)
    """
    _check_names([name])
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

    :param indices: ``(R_drawn, T, B)`` drawn run indices, in ``[0, n_runs)``
    :param n_runs: ``R``, the runs available per task
    :returns: ``(R, T, B)`` float32 counts; each ``[:, t, b]`` sums to ``R_drawn``
    """
    counts = np.zeros((n_runs, *indices.shape[1:]), dtype=np.float32)
    for run in range(n_runs):
        for drawn in indices:  # adds of contiguous (T, B) slices: no reduction over a short axis
            counts[run] += drawn == run
    return counts


def draw_counts(rng: np.random.Generator, reps: int, n_runs: int, n_tasks: int) -> np.ndarray:
    """Stratified bootstrap draws as counts: per repetition and task, ``R`` runs with replacement.

    Repetitions are the last axis, so every per-resample operation runs along contiguous rows.

    :returns: ``(R, T, B)`` float32 counts
    """
    if n_runs > 127:
        raise ValueError(f"at most 127 runs per task are drawn as int8 indices, got {n_runs}")
    indices = rng.integers(0, n_runs, size=(n_runs, n_tasks, reps), dtype=np.int8)
    return counts_from_indices(indices, n_runs)


def _percentile_interval(boot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval over the last axis (as rliable's default ``method='percentile'``)."""
    tail = 100 * (1 - CI_SIZE) / 2
    low, high = np.percentile(boot, [tail, 100 - tail], axis=-1)
    return low, high


@dataclass(frozen=True)
class _IqmPlan:
    """How the IQM of every resample of one step is computed (see :func:`_iqm`).

    :param order: ``(N,)`` positions (``r*T + t``) in ascending order of score
    :param values: ``(N,)`` the sorted scores minus ``ref``
    :param ref: centre subtracted before float32 sums (their rounding then scales with the spread)
    :param segments: (start, stop, cut before, cut at the end) in sorted positions: the windows
    :param middle: sorted positions kept whole between the windows (empty when they merged)
    """

    order: np.ndarray
    values: np.ndarray
    ref: float
    segments: tuple[tuple[int, int, int, int], ...]
    middle: tuple[int, int]


def _iqm_plan(values: np.ndarray, n_runs: int) -> _IqmPlan:
    """Windows around the two trimming cuts of one step.

    The IQM (scipy's 25% trimmed mean, as rliable) of a resample keeps positions ``[k, N-k)`` of its
    sorted expansion; with ``C_i`` the resample's running count over sorted positions, a position
    is dropped, partly kept or wholly kept as ``C_i`` lies below ``k``, straddles a cut, or lies
    between the cuts. ``C_i`` has mean ``i + 1`` and, per task, the variance
    ``m (R - m) / R`` of a binomial draw (``m`` of the task's runs at or below ``i``): the windows span
    :data:`_WINDOW_SD` standard deviations either side of each cut.

    :param values: ``(R, T)`` scores of one step
    :param n_runs: ``R``
    """
    n_tasks = values.shape[1]
    flat = values.ravel()
    n = flat.size
    order = np.argsort(flat, kind="stable")
    ordered = flat[order]
    ref = float(ordered[n // 2])
    below = np.zeros((n, n_tasks))
    below[np.arange(n), order % n_tasks] = 1.0
    below = below.cumsum(axis=0)
    spread = _WINDOW_SD * np.sqrt((below * (n_runs - below)).sum(axis=1) / n_runs)
    mean = np.arange(1, n + 1)
    cut = int(0.25 * n)  # scipy.stats.trim_mean's rule

    def window(at: int) -> tuple[int, int]:
        reach = mean + spread >= at
        start = int(np.argmax(reach)) if reach.any() else n
        past = mean - spread >= at
        return start, (int(np.argmax(past)) + 1 if past.any() else n)

    (a, b), (c, d) = window(cut), window(n - cut)
    if b >= c:
        segments, middle = ((a, max(b, d), cut, n - cut),), (0, 0)
    else:
        segments, middle = ((a, b, cut, cut), (c, d, n - cut, n - cut)), (b, c)
    return _IqmPlan(order, ordered - ref, ref, segments, middle)


def _kept_sum(running: np.ndarray, before: np.ndarray, values: np.ndarray, cut: int, n: int) -> np.ndarray:
    """Kept part of a window, ``sum_i v_i (K_i - K_{i-1})`` with ``K = clip(C, cut, n - cut)``, summed
    by parts: ``v_last K_last - v_first K_before - sum_i K_i (v_{i+1} - v_i)``.

    :param running: ``(W, b)`` running counts ``C`` at the window's positions (clipped in place)
    :param before: ``(b,)`` running count before the window
    :param values: ``(W,)`` centred sorted scores of the window
    """
    np.clip(running, cut, n - cut, out=running)
    first = np.clip(before, cut, n - cut).astype(np.float64) * values[0]
    steps = np.diff(values).astype(np.float32)
    # einsum, not BLAS: this runs in worker threads, where a threaded BLAS oversubscribes the cores
    return values[-1] * running[-1].astype(np.float64) - first - np.einsum("w,wb->b", steps, running[:-1])


def _running(rows: np.ndarray, before: np.ndarray) -> np.ndarray:
    """Running counts over the rows (in place), starting from ``before``."""
    rows[0] += before
    for i in range(1, len(rows)):  # row adds: numpy's cumsum along axis 0 is several times slower
        np.add(rows[i - 1], rows[i], out=rows[i])
    return rows


def _iqm(plan: _IqmPlan, blocks: Sequence[np.ndarray], linear: np.ndarray) -> np.ndarray:
    """IQM of every resample of one step, exactly, touching only the windows' positions.

    :param plan: the step's :class:`_IqmPlan`
    :param blocks: ``(N, b)`` float32 counts, consecutive blocks of repetitions (contiguous, so
        a window's rows are gathered as whole rows)
    :param linear: ``(len(segments) + 1, B)``: the running count before each window, then the
        centred sum of the middle positions (both from one matrix product over all steps)
    :returns: ``(B,)``
    """
    n = blocks[0].shape[0]
    cut = int(0.25 * n)
    out = np.empty(linear.shape[1])
    start = 0
    for block in blocks:
        cols = slice(start, start + block.shape[1])
        total = linear[-1, cols].astype(np.float64)
        outside = np.zeros(total.shape, dtype=bool)
        for (first, stop, cut_before, cut_end), before in zip(plan.segments, linear, strict=False):
            running = _running(block[plan.order[first:stop]], before[cols])
            outside |= (before[cols] > cut_before) | (running[-1] < cut_end)
            total += _kept_sum(running, before[cols], plan.values[first:stop], cut, n)
        out[cols] = total
        if outside.any():  # the few resamples whose cut fell outside a window: all positions
            idx = np.flatnonzero(outside)
            zero = np.zeros(len(idx), np.float32)
            running = _running(block[np.ix_(plan.order, idx)], zero)
            out[idx + start] = _kept_sum(running, zero, plan.values, cut, n)
        start = cols.stop
    return out / (n - 2 * cut) + plan.ref


def _linear_columns(
    scores: np.ndarray,
    steps: range,
    plans: Sequence[_IqmPlan],
    refs: np.ndarray,
    gamma: float,
    names: Sequence[str],
) -> tuple[np.ndarray, dict[tuple[str, int], slice]]:
    """The columns whose products with the counts give, per step of ``steps``: the centred sums of
    the mean and the optimality gap, and the IQM's running counts before its windows and middle sum.

    :returns: (``(columns, N)`` float32, (metric, step) -> its rows of the product)
    """
    n = scores.shape[0] * scores.shape[1]
    per_step = scores.reshape(n, -1)
    columns: list[np.ndarray] = []
    where: dict[tuple[str, int], slice] = {}

    def add(key: tuple[str, int], *cols: np.ndarray) -> None:
        where[key] = slice(len(columns), len(columns) + len(cols))
        columns.extend(cols)

    for s in steps:
        if "mean" in names:
            add(("mean", s), per_step[:, s] - refs[s])
        if "optimality_gap" in names:
            add(("optimality_gap", s), np.minimum(per_step[:, s], gamma) - refs[s])
        if "iqm" in names:
            plan = plans[s]
            rank = np.empty(n, dtype=np.int64)
            rank[plan.order] = np.arange(n)
            befores = [(rank < first).astype(np.float64) for first, *_ in plan.segments]
            middle = np.where((rank >= plan.middle[0]) & (rank < plan.middle[1]), plan.values[rank], 0.0)
            add(("iqm", s), *befores, middle)
    return np.stack(columns).astype(np.float32) if columns else np.empty((0, n), np.float32), where


def _bootstrap(
    scores: np.ndarray, counts: np.ndarray, gamma: float, names: Sequence[str], workers: int
) -> dict[str, np.ndarray]:
    """Every metric in ``names`` on every resample at every step.

    Everything linear in the counts (mean, optimality gap, and the IQM's running counts before its
    windows and its middle sums) comes from a float32 matrix product, :data:`_STEPS_PER_PRODUCT`
    steps at a time (so memory does not grow with the number of steps); scores are centred per step
    first, so its rounding scales with their spread. The IQM's windows and the median are then
    computed per step, ``workers`` steps at a time.

    :param scores: ``(R, T, S)`` scores
    :param counts: ``(R, T, B)`` counts
    :returns: name -> ``(S, B)`` float32 (relative rounding ~1e-7, far below any interval's width)
    """
    n_runs, n_tasks, n_steps = scores.shape
    n, reps = n_runs * n_tasks, counts.shape[-1]
    flat = counts.reshape(n, reps)
    plans = [_iqm_plan(scores[:, :, s], n_runs) for s in range(n_steps)] if "iqm" in names else []
    refs = np.array([plan.ref for plan in plans]) if plans else np.median(scores.reshape(n, -1), axis=0)
    blocks = [np.ascontiguousarray(flat[:, i : i + _CHUNK]) for i in range(0, reps, _CHUNK)] if plans else []
    out = {name: np.empty((n_steps, reps), dtype=np.float32) for name in names}  # float32: faster percentiles

    def one_step(s: int, linear: np.ndarray, where: Mapping[tuple[str, int], slice]) -> None:
        if "mean" in names:
            out["mean"][s] = linear[where["mean", s]][0] / n + refs[s]
        if "optimality_gap" in names:
            out["optimality_gap"][s] = gamma - (linear[where["optimality_gap", s]][0] / n + refs[s])
        if "iqm" in names:
            out["iqm"][s] = _iqm(plans[s], blocks, linear[where["iqm", s]])
        if "median" in names:
            task_means = np.zeros((n_tasks, reps), dtype=np.float32)
            for run in range(n_runs):
                task_means += counts[run] * scores[run, :, s, None].astype(np.float32)
            out["median"][s] = np.median(task_means, axis=0) / n_runs

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for first in range(0, n_steps, _STEPS_PER_PRODUCT):
            steps = range(first, min(first + _STEPS_PER_PRODUCT, n_steps))
            columns, where = _linear_columns(scores, steps, plans, refs, gamma, names)
            linear = columns @ flat
            list(pool.map(lambda s, linear=linear, where=where: one_step(s, linear, where), steps))
    return out


def _estimates(scores: np.ndarray, boot: Mapping[str, np.ndarray], gamma: float) -> dict[str, Estimate]:
    """rliable's point estimates and the percentile intervals of ``boot`` (name -> ``(S, B)``)."""
    result = {}
    for name, values in boot.items():
        metric = rliable_metric(name, gamma)
        point = np.array([metric(scores[:, :, step]) for step in range(scores.shape[2])])
        low, high = _percentile_interval(values)
        result[name] = Estimate(point=point, low=low, high=high)
    return result


def curve_estimates(
    scores: np.ndarray,
    reps: int,
    seed: int,
    gamma: float,
    names: Sequence[str] = CURVE_METRICS,
    final_names: Sequence[str] = METRICS,
    workers: int = 1,
) -> tuple[dict[str, Estimate], dict[str, Estimate]]:
    """Curves (metrics at every step) and the metrics at the last step, from one set of draws.

    :param scores: ``(R, T, S)`` scores of ``R`` runs on ``T`` tasks at ``S`` steps
    :param reps: ``B``, bootstrap repetitions
    :param seed: seed of the draws: the same seed gives the same intervals
    :param gamma: optimality-gap threshold
    :param names: metrics at every step, from :data:`METRICS`
    :param final_names: metrics at the last step (those also in ``names`` are read off the curve)
    :param workers: threads over steps (NumPy releases the GIL inside its kernels)
    :returns: (name -> :class:`Estimate` of ``(S,)`` arrays, name -> :class:`Estimate` of scalars)
    """
    _check_names([*names, *final_names])
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 3:
        raise ValueError(f"scores must be (runs, tasks, steps), got shape {scores.shape}")
    if reps < 1:
        raise ValueError(f"reps must be >= 1, got {reps}")
    n_runs, n_tasks, _ = scores.shape
    counts = draw_counts(np.random.default_rng(seed), reps, n_runs, n_tasks)
    curves = _estimates(scores, _bootstrap(scores, counts, gamma, names, workers), gamma)
    last = scores[:, :, -1:]
    extra = [name for name in final_names if name not in names]
    boot_last = _bootstrap(last, counts, gamma, extra, workers)
    final = {}
    for name in final_names:
        if name in curves:
            est = curves[name]
            final[name] = Estimate(point=est.point[-1], low=est.low[-1], high=est.high[-1])
        else:
            est = _estimates(last, {name: boot_last[name]}, gamma)[name]
            final[name] = Estimate(point=est.point[0], low=est.low[0], high=est.high[0])
    return curves, final


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
    curves, _ = curve_estimates(scores if curve else scores[..., None], reps, seed, gamma, names, (), workers)
    if curve:
        return curves
    return {name: Estimate(point=e.point[0], low=e.low[0], high=e.high[0]) for name, e in curves.items()}


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
        counts = draw_counts(rng, reps, *scores.shape).reshape(scores.size, reps)
        above = (scores.reshape(-1, 1) > taus[None, :]).astype(np.float32)
        low, high = _percentile_interval(above.T @ counts / scores.size)
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
    per_task = np.einsum("itb,tij,jtb->tb", counts_x, kernel, counts_y, optimize=True)
    boot = per_task.mean(axis=0) / (scores_x.shape[0] * scores_y.shape[0])
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
