"""Statistics of analysis.stats against hand computations and against rliable itself."""

from __future__ import annotations

import numpy as np
import pytest

from analysis import stats

# Two runs on each of two tasks. Hand computation: pooled 0, 10, 20, 30 -> IQM drops one value at
# each end (scipy's int(0.25 * 4) = 1): (10 + 20) / 2 = 15. Resamples: task 0 draws {0,0}, {0,20}
# or {20,20}; task 1 {10,10}, {10,30} or {30,30}. The lowest resample (0,0,10,10) has IQM and mean
# 5, the highest (20,20,30,30) 25, each with probability 1/16 > 2.5%: so the 95% percentile
# interval is exactly [5, 25].
HAND = np.array([[0.0, 10.0], [20.0, 30.0]])


@pytest.mark.parametrize("name", ["iqm", "mean"])
def test_hand_computed_interval(name: str) -> None:
    fast = stats.interval_estimates(HAND, reps=4000, seed=1, gamma=100.0, names=[name])[name]
    assert float(fast.point) == 15.0
    assert (float(fast.low), float(fast.high)) == pytest.approx((5.0, 25.0), abs=1e-4)
    ref = stats.interval_estimates_rliable(HAND, reps=1000, seed=1, gamma=100.0, names=[name])[name]
    assert (float(ref.point), float(ref.low), float(ref.high)) == pytest.approx((15.0, 5.0, 25.0))


@pytest.mark.parametrize(
    ("runs", "tasks", "ties", "window_sd"),
    [(5, 7, False, None), (5, 40, False, None), (3, 9, True, None), (2, 2, False, None), (5, 40, True, 0.5)],
)
def test_every_resample_matches_rliable_metrics(
    runs: int, tasks: int, ties: bool, window_sd: float | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The vectorised metrics equal rliable's functions on the same explicit resamples, at every
    step; with narrow IQM windows most resamples take the all-positions path, with the same result."""
    if window_sd is not None:
        monkeypatch.setattr(stats, "_WINDOW_SD", window_sd)
    rng = np.random.default_rng(3)
    values = rng.normal(50, 20, size=(runs, tasks, 3))
    if ties:  # success rates come in steps of 10 %: many equal scores
        values = np.round(values / 10) * 10
    indices = rng.integers(0, runs, size=(runs, tasks, 40))
    boot = stats._bootstrap(values, stats.counts_from_indices(indices, runs), 60.0, stats.METRICS, 2)
    for name in stats.METRICS:
        metric = stats.rliable_metric(name, 60.0)
        for step in range(3):
            expected = [metric(values[indices[:, :, b], np.arange(tasks), step]) for b in range(40)]
            np.testing.assert_allclose(boot[name][step], expected, rtol=1e-5, atol=1e-3, err_msg=name)


def test_curves_agree_with_rliable() -> None:
    """Same statistic, different draws: intervals agree within Monte-Carlo error."""
    rng = np.random.default_rng(0)
    scores = rng.uniform(0, 100, size=(5, 8, 2))
    fast = stats.interval_estimates(scores, reps=3000, seed=0, gamma=100.0)
    ref = stats.interval_estimates_rliable(scores, reps=600, seed=0, gamma=100.0)
    for name in stats.METRICS:
        np.testing.assert_allclose(fast[name].point, ref[name].point, rtol=1e-12)
        width = ref[name].high - ref[name].low
        np.testing.assert_allclose(fast[name].low, ref[name].low, atol=0.2 * width.max(), err_msg=name)
        np.testing.assert_allclose(fast[name].high, ref[name].high, atol=0.2 * width.max(), err_msg=name)


def test_reruns_give_identical_intervals(monkeypatch: pytest.MonkeyPatch) -> None:
    scores = np.random.default_rng(5).uniform(0, 10, size=(3, 4, 3))
    a = stats.interval_estimates(scores, reps=500, seed=7, gamma=10.0)
    b = stats.interval_estimates(scores, reps=500, seed=7, gamma=10.0, workers=2)
    c = stats.interval_estimates(scores, reps=500, seed=8, gamma=10.0)
    for name in stats.METRICS:
        np.testing.assert_array_equal(a[name].low, b[name].low)
        np.testing.assert_array_equal(a[name].high, b[name].high)
    assert not np.array_equal(a["mean"].low, c["mean"].low)
    long = np.random.default_rng(6).uniform(0, 10, size=(3, 4, 40))  # more steps than one product holds
    whole = stats.interval_estimates(long, reps=200, seed=7, gamma=10.0)
    monkeypatch.setattr(stats, "_STEPS_PER_PRODUCT", 1)
    stepwise = stats.interval_estimates(long, reps=200, seed=7, gamma=10.0)
    for name in stats.METRICS:
        # equal up to float32 summation order (a product's shape may change BLAS's blocking)
        np.testing.assert_allclose(whole[name].low, stepwise[name].low, rtol=1e-6)
        np.testing.assert_allclose(whole[name].high, stepwise[name].high, rtol=1e-6)
    np.random.seed(123)  # the rliable path must not depend on, nor disturb, the global generator
    before = np.random.get_state()[1].copy()
    r1 = stats.interval_estimates_rliable(scores, reps=100, seed=7, gamma=10.0, names=["iqm"])
    np.testing.assert_array_equal(np.random.get_state()[1], before)
    r2 = stats.interval_estimates_rliable(scores, reps=100, seed=7, gamma=10.0, names=["iqm"])
    np.testing.assert_array_equal(r1["iqm"].low, r2["iqm"].low)


def test_probability_of_improvement() -> None:
    better = np.full((3, 4), 10.0)
    worse = np.zeros((3, 4))
    up = stats.probability_of_improvement(better, worse, reps=200, seed=0)
    assert (float(up.point), float(up.low), float(up.high)) == (1.0, 1.0, 1.0)
    tie = stats.probability_of_improvement(better, better, reps=200, seed=0)
    assert (float(tie.point), float(tie.low), float(tie.high)) == (0.5, 0.5, 0.5)
    # One task of two won, one lost -> 0.5 exactly; per-task kernel as Mann-Whitney's U.
    mixed = stats.probability_of_improvement(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]]), reps=50, seed=0)
    assert float(mixed.point) == 0.5
    x = np.array([[3.0], [1.0]])
    y = np.array([[2.0], [1.0]])
    # Pairs (3>2, 3>1, 1<2, 1=1) -> (1 + 1 + 0 + 0.5) / 4.
    assert float(stats.probability_of_improvement(x, y, reps=10, seed=0).point) == pytest.approx(0.625)


def test_performance_profiles_agree_with_rliable() -> None:
    scores = {"a": np.random.default_rng(1).uniform(0, 100, size=(5, 6))}
    taus = np.linspace(0, 100, 11)
    fast = stats.performance_profiles(scores, taus, reps=2000, seed=0)["a"]
    ref = stats.performance_profiles_rliable(scores, taus, reps=300, seed=0)["a"]
    np.testing.assert_array_equal(fast.point, ref.point)
    np.testing.assert_allclose(fast.low, ref.low, atol=0.07)
    np.testing.assert_allclose(fast.high, ref.high, atol=0.07)


def test_score_array_aligns_seeds_by_rank() -> None:
    import pandas as pd

    table = pd.DataFrame(
        {
            "task": ["a", "a", "b", "b", "b"],
            "seed": [1, 2, 7, 8, 9],
            "step": [10, 10, 10, 10, 10],
            "score": [1.0, 2.0, 3.0, 4.0, 5.0],
        }
    )
    values, tasks, steps = stats.score_array(table)
    assert tasks == ["a", "b"] and list(steps) == [10]
    np.testing.assert_array_equal(values[:, :, 0], [[1.0, 3.0], [2.0, 4.0]])  # task b's seed 9 dropped
