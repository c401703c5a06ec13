"""analysis.verdicts on constructed cases, and the claims report's rows built from constructed aggregates:
budgets (not judged below them), seeds (fewer than 3: no evidence), zero-width intervals (never evidence),
published curves standing in (marked, never pooled), the scope text and claims.json."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest

from analysis import report, verdicts
from analysis.aggregate import AlgoResult, FigureResult
from analysis.stats import Estimate
from analysis.verdicts import (
    INCONCLUSIVE,
    NOT_JUDGED,
    NOT_REPRODUCED,
    PUBLISHED,
    REPRODUCED,
    Evidence,
)


def _e(point: float, low: float, high: float, seeds: int = 3, algo: str = "m3po", **kw) -> Evidence:
    return Evidence(algo, kw.pop("label", algo.upper()), point, low, high, kw.pop("step", 1000), seeds,
                    kw.pop("tasks", 2), **kw)  # fmt: skip


# ---------------------------------------------------------------------------------------------- pure
def test_the_four_verdicts_are_exactly_these_strings() -> None:
    assert verdicts.VERDICTS == ("reproduced", "not reproduced", "inconclusive", "not judged at this budget")
    assert report.NOT_JUDGED == NOT_JUDGED and report.REPRODUCED == REPRODUCED


@pytest.mark.parametrize(
    ("evidence", "reason"),
    [
        (_e(5, 4, 6), None),
        (_e(5, 4, 6, seeds=2), "M3PO has 2 seed(s), fewer than 3"),
        (_e(5, 4, 6, seeds=1), "M3PO has 1 seed(s), fewer than 3"),
        (_e(5, 5, 5), "M3PO's interval has zero width (no evidence)"),
        (_e(5, math.nan, 6), "M3PO has no finite interval"),
        (_e(5, 4, 6, seeds=1, source=PUBLISHED), "M3PO (published) has 1 seed(s), fewer than 3"),
    ],
)
def test_what_is_no_evidence(evidence: Evidence, reason: str | None) -> None:
    assert verdicts.problem(evidence) == reason


@pytest.mark.parametrize(
    ("higher", "lower", "outcome"),
    [
        (_e(9, 8, 10), _e(5, 4, 6), verdicts.HOLDS),
        (_e(5, 4, 6), _e(9, 8, 10), verdicts.CONTRADICTED),
        (_e(7, 5, 9), _e(6, 4, 8), verdicts.UNDECIDED),
        # Two points far apart are still no evidence: one seed per task gives a zero-width interval.
        (_e(9, 9, 9, seeds=1), _e(5, 5, 5, seeds=1), verdicts.NO_EVIDENCE),
        (_e(9, 9, 9), _e(5, 5, 5), verdicts.NO_EVIDENCE),  # zero width with 3 identical seeds
        (_e(9, 8, 10), _e(5, 4, 6, seeds=2), verdicts.NO_EVIDENCE),
    ],
)
def test_order_relation(higher: Evidence, lower: Evidence, outcome: str) -> None:
    assert verdicts.order_relation(higher, lower)[0] == outcome


@pytest.mark.parametrize(
    ("paper", "ours", "reference", "outcome"),
    [
        (800, _e(800, 790, 810), True, verdicts.PASSES),  # meets the value
        (800, _e(900, 880, 920), True, verdicts.PASSES),  # M3PO beyond, on the paper's side
        (580, _e(500, 490, 510), False, verdicts.PASSES),  # a baseline below its value
        (800, _e(700, 690, 710), True, verdicts.FAILS),
        (580, _e(700, 690, 710), False, verdicts.FAILS),
        ([85, 90], _e(84, 80, 86), True, verdicts.PASSES),  # a range met
        ([85, 90], _e(70, 65, 75), True, verdicts.FAILS),
        (800, _e(700, 700, 700), True, verdicts.NO_EVIDENCE),  # zero width: never a failure
        (800, _e(700, 690, 710, seeds=1), True, verdicts.NO_EVIDENCE),
    ],
)
def test_value_check(paper, ours: Evidence, reference: bool, outcome: str) -> None:
    assert verdicts.value_check(paper, ours, reference)[0] == outcome
    assert verdicts.value_check(paper, ours, reference, tasks_total=ours.tasks)[0] == outcome


def test_a_value_check_on_part_of_the_task_set_is_no_evidence() -> None:
    # The published SAC at 1M: 83.3 on three mw50 tasks, 75.5 on all 50; the paper's value is 75.
    three = _e(83.3, 77.8, 90.0, algo="sac", label="SAC", tasks=3, source=PUBLISHED)
    assert verdicts.value_check(75, three, False) == (verdicts.FAILS, None)  # without the suite's size
    outcome, reason = verdicts.value_check(75, three, False, tasks_total=50)
    assert outcome == verdicts.NO_EVIDENCE
    assert reason == "SAC (published) averages 3 of the 50 tasks the paper's value averages"
    whole = _e(75.5, 72.0, 79.0, algo="sac", label="SAC", tasks=50, source=PUBLISHED)
    assert verdicts.value_check(75, whole, False, tasks_total=50) == (verdicts.PASSES, None)


def test_combine_and_final_verdict() -> None:
    assert verdicts.combine(["passes", "holds"]) == REPRODUCED
    assert verdicts.combine(["passes", "undecided"]) == INCONCLUSIVE
    assert verdicts.combine(["passes", "no evidence"]) == INCONCLUSIVE
    assert verdicts.combine(["no evidence", "fails"]) == NOT_REPRODUCED
    assert verdicts.combine(["holds", "contradicted", "missing"]) == NOT_REPRODUCED
    assert verdicts.combine([]) == INCONCLUSIVE
    # Below the budget nothing else counts, a failing check included.
    assert verdicts.final_verdict(False, ["fails", "contradicted"]) == NOT_JUDGED
    assert verdicts.final_verdict(True, ["passes"]) == REPRODUCED


def test_budgets() -> None:
    assert verdicts.claim_budget(1_000_000, 2_000_000, "fig3c") == (1_000_000, "the paper's")
    assert verdicts.claim_budget(None, 2_000_000, "fig3a") == (
        2_000_000,
        "the paper profile's fig3a budget; the paper gives none",
    )
    assert verdicts.claim_budget(None, None, "fig3a")[0] is None
    assert verdicts.read_index([0, 500, 1000, 1500], 1000) == 2
    assert verdicts.read_index([0, 500, 999], 1000) is None
    assert verdicts.reaches(1000, 1000) and not verdicts.reaches(999, 1000) and not verdicts.reaches(None, 1)
    text = verdicts.below_budget(128, 2_000_000, "the paper profile's fig3a budget")
    assert "128 agent steps" in text and "2M agent steps" in text
    assert [verdicts.fmt_steps(n) for n in (128, 20_000, 500_000, 1_500_000, 4_000_000)] == [
        "128", "20k", "500k", "1.5M", "4M",
    ]  # fmt: skip


def test_scope_text() -> None:
    a = _e(1, 0, 2, step=500_000, tasks=8, label="M3PO")
    b = _e(1, 0, 2, step=500_000, tasks=8, algo="ppo", label="PPO")
    assert verdicts.scope_text([a, b], 39, "dmc39") == "at 500k agent steps on 8 of 39 dmc39 tasks, 3 seeds"
    c = _e(1, 0, 2, seeds=5, step=500_000, tasks=8, algo="sac", label="SAC", source=PUBLISHED)
    assert verdicts.scope_text([a, c], 39, "dmc39") == (
        "at 500k agent steps on 8 of 39 dmc39 tasks, seeds: M3PO 3, SAC (published) 5; "
        "SAC: published (TD-MPC2 authors), not our runs"
    )
    assert verdicts.scope_text([a], 50, "mw50", steps=[0, 250_000, 500_000]) == (
        "at 3 steps from 0 to 500k agent steps on 8 of 50 mw50 tasks, 3 seeds"
    )
    assert verdicts.scope_text([], 39, "dmc39") == "no evidence"


def test_sample_efficiency_band_and_trend() -> None:
    sev = verdicts.sample_efficiency_verdict
    assert sev(["holds", "undecided"]) == REPRODUCED
    assert sev(["contradicted", "undecided"]) == NOT_REPRODUCED
    assert sev(["holds", "contradicted"]) == INCONCLUSIVE
    assert sev(["no evidence", "no evidence"]) == INCONCLUSIVE
    assert sev([]) == INCONCLUSIVE
    band = verdicts.band_verdict
    assert band(("TD-MPC2", 4.0, 3), ("M3PO", 1.0, 3))[0] == REPRODUCED
    assert band(("TD-MPC2", 1.0, 3), ("M3PO", 4.0, 3))[0] == NOT_REPRODUCED
    # Two zero-width intervals are no evidence of anything (the smoke profile's mt80-stability).
    assert band(("TD-MPC2", 0.0, 3), ("M3PO", 0.0, 3)) == (
        INCONCLUSIVE,
        "TD-MPC2's interval has zero width (no evidence)",
    )
    assert band(("TD-MPC2", 0.0, 1), ("M3PO", 0.0, 1)) == (
        INCONCLUSIVE,
        "TD-MPC2 has 1 seed(s), fewer than 3",
    )
    assert band(("TD-MPC2", 4.0, 3), ("M3PO", 1.0, 2))[0] == INCONCLUSIVE
    trend = verdicts.trend_verdict
    assert trend({2: (90, 1, 3), 16: (50, 9, 3)})[0] == REPRODUCED
    assert trend({2: (90, 1, 3), 16: (95, 9, 3)})[0] == NOT_REPRODUCED
    # The 2-seed setting is left out: 2 vs 8 envs are compared.
    assert trend({2: (90, 1, 3), 8: (60, 5, 3), 16: (95, 0, 2)}) == (
        REPRODUCED,
        "mean falls, std grows",
        [2, 8],
    )
    verdict, why, _ = trend({2: (90, 1, 1), 4: (50, 9, 1)})
    assert verdict == INCONCLUSIVE and "2 envs: 1 seed(s), 4 envs: 1 seed(s)" in why


def test_fidelity_verdict_is_the_benchmarks() -> None:
    """One rule: ``m3po bench fidelity`` and the report's fidelity section use the same function."""
    from suite.bench import fidelity

    assert fidelity.fidelity_verdict is verdicts.fidelity_verdict
    assert fidelity.VERDICTS == verdicts.FIDELITY_VERDICTS
    for mean, expected in ((None, "not run"), (399.0, "below"), (400.0, "inside"), (600.5, "above")):
        assert verdicts.fidelity_verdict(mean, [400.0, 500.0, 600.0]) == expected


# ----------------------------------------------------------------------------- report rows, constructed
def _algo(steps, mean, half=5.0, seeds=3, tasks=2, iqm=None, iqm_half=None) -> AlgoResult:
    """An algorithm's aggregates: ``mean`` at each of ``steps`` (a number: the same at every step), its
    CI ``mean ± half``; IQM likewise (default: the mean's)."""
    steps = np.asarray(steps)
    point = np.broadcast_to(np.asarray(mean, dtype=float), steps.shape).copy()
    half_arr = np.broadcast_to(np.asarray(half, dtype=float), steps.shape)
    est = Estimate(point, point - half_arr, point + half_arr)
    if iqm is not None or iqm_half is not None:
        ip = np.broadcast_to(np.asarray(iqm if iqm is not None else mean, dtype=float), steps.shape).copy()
        ih = np.broadcast_to(np.asarray(iqm_half if iqm_half is not None else half, dtype=float), steps.shape)
        iqm_est = Estimate(ip, ip - ih, ip + ih)
    else:
        iqm_est = est
    names = [f"t{i}" for i in range(tasks)]
    return AlgoResult(steps, {"mean": est, "iqm": iqm_est}, {}, np.zeros((seeds, tasks)), names, seeds)


DMC39_FINAL = {
    "id": "dmc39-final",
    "figure": "fig3a",
    "at_steps": None,
    "values": {"m3po": 800, "ppo": 580, "dreamerv3": 490},
    "order": ["m3po", "ppo", "dreamerv3", "sac"],
}
# config/paper.yaml's budgets (tests/test_paper_budgets.py checks the file says so).
BUDGETS = {"fig3a": 2_000_000, "fig3b": 1_000_000, "fig3c": 1_000_000}


def test_a_final_claim_below_its_budget_is_not_judged_naming_both_budgets() -> None:
    # The smoke profile: 128 agent steps, one seed; values that would "fail" are not judged.
    result = FigureResult(
        {a: _algo([64, 128], v, half=0.0, seeds=1, tasks=1) for a, v in
         {"m3po": 100.0, "ppo": 900.0, "sac": 5.0, "dreamerv3": 990.0}.items()}, {}
    )  # fmt: skip
    row = report.judge_values(DMC39_FINAL, result, BUDGETS)
    assert row.verdict == NOT_JUDGED
    assert "128 agent steps" in row.why and "2M agent steps" in row.why
    assert row.budget == "2M agent steps (the paper profile's fig3a budget; the paper gives none)"
    assert row.scope == "at 128 agent steps on 1 of 39 dmc39 tasks, 1 seed"
    assert "M3PO 100.0 [100.0, 100.0] at 128 (below the budget)" in row.ours
    # The claim's own at_steps wins over the profile's budget.
    mt80 = {**DMC39_FINAL, "id": "mt80-final", "figure": "fig3c", "at_steps": 1_000_000,
            "values": {"m3po": [85, 90]}, "order": []}  # fmt: skip
    row = report.judge_values(mt80, FigureResult({"m3po": _algo([500_000], 87.0, tasks=2)}, {}), {})
    assert row.verdict == NOT_JUDGED and row.budget == "1M agent steps (the paper's)"
    # No budget at all: inconclusive, never a verdict on the last step.
    row = report.judge_values(DMC39_FINAL, result, {})
    assert row.verdict == INCONCLUSIVE and "no budget" in row.why


def test_a_final_claim_at_its_budget_is_judged_there() -> None:
    steps = [0, 1_000_000, 2_000_000, 5_000_000]
    result = FigureResult(
        {
            "m3po": _algo(steps, [0, 500, 800, 100], tasks=39),  # judged at 2M, not at its last step
            "ppo": _algo(steps, [0, 400, 580, 900], tasks=39),
            "dreamerv3": _algo(steps, [0, 300, 490, 900], tasks=39),
            "sac": _algo(steps, [0, 200, 300, 900], tasks=39),
        },
        {},
    )
    row = report.judge_values(DMC39_FINAL, result, BUDGETS)
    assert row.verdict == REPRODUCED, row.why
    assert row.scope == "at 2M agent steps on 39 of 39 dmc39 tasks, 3 seeds"
    fewer = FigureResult({**result.algos, "ppo": _algo(steps, [0, 400, 580, 900], seeds=2, tasks=39)}, {})
    row = report.judge_values(DMC39_FINAL, fewer, BUDGETS)
    assert row.verdict == INCONCLUSIVE and "PPO has 2 seed(s), fewer than 3" in row.why
    wrong = FigureResult({**result.algos, "m3po": _algo(steps, [0, 500, 700, 700], tasks=39)}, {})
    assert report.judge_values(DMC39_FINAL, wrong, BUDGETS).verdict == NOT_REPRODUCED


def test_published_curves_stand_in_below_the_budget_marked_and_never_pooled() -> None:
    ours_steps = [0, 1_000_000, 2_000_000]
    result = FigureResult(
        {
            "m3po": _algo(ours_steps, 800, tasks=39),
            "ppo": _algo(ours_steps, 580, tasks=39),
            "sac": _algo([0, 20_000], 999.0, tasks=39),  # ours on a CPU: far below the budget
        },
        {},
    )
    published = FigureResult(
        {
            "sac": _algo(np.arange(0, 2_050_000, 50_000), 300.0, tasks=39),
            "dreamerv3": _algo(np.arange(0, 2_050_000, 50_000), 490.0, tasks=39),
        },
        {},
    )
    row = report.judge_values(DMC39_FINAL, result, {"fig3a": 2_000_000}, published)
    assert row.verdict == REPRODUCED, row.why
    assert "SAC (published) 300.0 [295.0, 305.0]" in row.ours and "DreamerV3 (published) 490.0" in row.ours
    assert "999" not in row.ours  # our SAC below the budget is not mixed into the published one
    assert "SAC: our runs reach 20k; the published curve stands in" in row.why
    assert row.scope.endswith("DreamerV3, SAC: published (TD-MPC2 authors), not our runs")
    sources = {e["algo"]: e["source"] for e in row.record["evidence"]}
    assert sources == {"m3po": "ours", "ppo": "ours", "sac": "published", "dreamerv3": "published"}
    # M3PO is never stood in for: below the budget, not judged whatever the published curves say.
    short = FigureResult({**result.algos, "m3po": _algo([0, 20_000], 800, tasks=39)}, {})
    assert report.judge_values(DMC39_FINAL, short, {"fig3a": 2_000_000}, published).verdict == NOT_JUDGED


def test_a_stand_ins_value_check_reads_the_published_curve_over_the_whole_set() -> None:
    # mw50-final's shape: our PPO at the budget, SAC stands in; on our 3 tasks the published SAC (83)
    # would be no evidence for the paper's 75, over all 50 it is evidence and passes.
    claim = {"id": "mw50-final", "figure": "fig3b", "at_steps": None, "values": {"ppo": 93, "sac": 75},
             "order": ["ppo", "sac"]}  # fmt: skip
    steps = np.arange(0, 1_050_000, 50_000)
    result = FigureResult({"ppo": _algo(steps, 95.0, tasks=3)}, {})
    ours_tasks = FigureResult({"sac": _algo(steps, 83.3, tasks=3)}, {})
    whole = FigureResult({"sac": _algo(steps, 75.5, tasks=50)}, {})
    row = report.judge_values(claim, result, BUDGETS, ours_tasks)
    checks = {c["check"]: c for c in row.record["checks"]}
    assert checks["sac value"]["outcome"] == verdicts.NO_EVIDENCE and row.verdict == INCONCLUSIVE
    row = report.judge_values(claim, result, BUDGETS, ours_tasks, whole)
    checks = {c["check"]: c for c in row.record["checks"]}
    assert checks["sac value"]["outcome"] == verdicts.PASSES and len(checks["sac value"]["tasks"]) == 50
    assert checks["ppo > sac"]["outcome"] == verdicts.HOLDS  # orders: on our tasks (95 against 83.3)
    assert checks["ppo > sac"]["tasks"] == [f"t{i}" for i in range(3)]
    assert checks["ppo value"]["outcome"] == verdicts.NO_EVIDENCE  # ours on 3 of the 50
    assert "SAC on all 50 tasks (published) 75.5 [70.5, 80.5]" in row.ours
    assert "SAC (published) 83.3" in row.ours and row.verdict == INCONCLUSIVE, row.why


def test_a_final_claim_on_part_of_its_task_set_is_inconclusive_never_not_reproduced() -> None:
    # The evidence profile's shape: 8 of 39 tasks at the budget; M3PO's 700 and PPO's 600 would fail
    # the paper's 800 and 580 on all 39.
    steps = [0, 1_000_000, 2_000_000]
    values = {"m3po": 700.0, "ppo": 600.0, "dreamerv3": 400.0, "sac": 5.0}
    row = report.judge_values(
        DMC39_FINAL, FigureResult({a: _algo(steps, v, tasks=39) for a, v in values.items()}, {}), BUDGETS
    )
    assert row.verdict == NOT_REPRODUCED, row.why
    eight = FigureResult({a: _algo(steps, v, tasks=8) for a, v in values.items()}, {})
    row = report.judge_values(DMC39_FINAL, eight, BUDGETS)
    assert row.verdict == INCONCLUSIVE, row.why
    assert "M3PO averages 8 of the 39 tasks the paper's value averages" in row.why
    assert row.scope == "at 2M agent steps on 8 of 39 dmc39 tasks, 3 seeds"
    # The order is still judged, on the tasks both ran: M3PO below PPO contradicts it.
    below = FigureResult({**eight.algos, "m3po": _algo(steps, 100.0, tasks=8)}, {})
    row = report.judge_values(DMC39_FINAL, below, BUDGETS)
    assert row.verdict == NOT_REPRODUCED and "M3PO > PPO: contradicted" in row.why


OUTPERFORMS = {"id": "outperforms-single-task", "figure": ["fig3a", "fig3b"], "statement": "M3PO outperforms"}


def test_ordering_claims_are_judged_at_any_budget_saying_at_which() -> None:
    steps = [0, 10_000, 20_000]
    fig3a = FigureResult(
        {"m3po": _algo(steps, 800, tasks=2), **{a: _algo(steps, 400, tasks=2) for a in ("ppo", "sac")}}, {}
    )
    fig3b = FigureResult(
        {"m3po": _algo(steps, 90, tasks=2), **{a: _algo(steps, 40, tasks=2) for a in ("ppo", "sac")}}, {}
    )
    row = report.judge_outperforms(OUTPERFORMS, {"fig3a": fig3a, "fig3b": fig3b})
    # No DreamerV3 runs and no published curve: missing, so inconclusive.
    assert row.verdict == INCONCLUSIVE and "fig3a vs DreamerV3: missing" in row.ours
    assert row.scope == (
        "fig3a at 20k agent steps on 2 of 39 dmc39 tasks, 3 seeds; "
        "fig3b at 20k agent steps on 2 of 50 mw50 tasks, 3 seeds"
    )
    # The published DreamerV3 stands in at the last step both evaluated (its grid: every 50k).
    grid = np.arange(0, 1_050_000, 50_000)
    longer = {
        f: FigureResult({**r.algos, **{a: _algo([0, 50_000, 100_000], r.algos["m3po"].curves["mean"].point[0],
                                                 tasks=2) for a in ("m3po",)}}, {})
        for f, r in (("fig3a", fig3a), ("fig3b", fig3b))
    }  # fmt: skip
    for f in longer:
        for a in ("ppo", "sac"):
            longer[f].algos[a] = _algo([0, 50_000, 100_000], 40 if f == "fig3b" else 400, tasks=2)
    published = {"fig3a": FigureResult({"dreamerv3": _algo(grid, 300.0, tasks=2)}, {}),
                 "fig3b": FigureResult({"dreamerv3": _algo(grid, 30.0, tasks=2)}, {})}  # fmt: skip
    row = report.judge_outperforms(OUTPERFORMS, longer, published)
    assert row.verdict == REPRODUCED, row.why
    assert "fig3a vs DreamerV3 (published): holds" in row.ours
    assert "DreamerV3: published (TD-MPC2 authors), not our runs" in row.scope
    # Two seeds: inconclusive, saying why.
    two = {f: FigureResult({a: _algo(steps, 800 if a == "m3po" else 400, seeds=2) for a in r.algos}, {})
           for f, r in (("fig3a", fig3a), ("fig3b", fig3b))}  # fmt: skip
    row = report.judge_outperforms(OUTPERFORMS, two)
    assert row.verdict == INCONCLUSIVE and "M3PO has 2 seed(s), fewer than 3" in row.why


def test_sample_efficiency_with_our_or_the_published_dreamer() -> None:
    claim = {"id": "sample-efficiency-dreamer", "figure": "fig3b", "statement": "higher sample efficiency"}
    steps = [0, 50_000, 100_000]
    ours = FigureResult(
        {"m3po": _algo(steps, [5, 60, 90], half=2), "dreamerv3": _algo(steps, [5, 20, 40])}, {}
    )
    row = report.judge_sample_efficiency(claim, ours, "dreamerv3")
    assert row.verdict == REPRODUCED and row.scope == (
        "at 3 steps from 0 to 100k agent steps on 2 of 50 mw50 tasks, 3 seeds"
    )
    alone = FigureResult({"m3po": ours.algos["m3po"]}, {})
    published = FigureResult({"dreamerv3": _algo(np.arange(0, 1_050_000, 50_000), 10.0)}, {})
    row = report.judge_sample_efficiency(claim, alone, "dreamerv3", published)
    assert row.verdict == REPRODUCED and "DreamerV3 (published)" in row.ours
    assert row.scope.startswith("at 2 steps from 50k to 100k")  # step 0 is not compared with the published
    assert report.judge_sample_efficiency(claim, alone, "dreamerv3").verdict == INCONCLUSIVE
    # Without M3PO's runs the row says so, not that no step was evaluated by both.
    row = report.judge_sample_efficiency(claim, FigureResult({}, {}), "dreamerv3", published)
    assert row.verdict == INCONCLUSIVE and row.why == "no runs of M3PO on fig3b"
    one = FigureResult(
        {a: _algo(steps, r.curves["mean"].point, half=0, seeds=1) for a, r in ours.algos.items()}, {}
    )
    row = report.judge_sample_efficiency(claim, one, "dreamerv3")
    assert row.verdict == INCONCLUSIVE and "fewer than 3" in row.why


def test_band_claim_from_zero_width_intervals_is_inconclusive() -> None:
    claim = {"id": "mt80-stability", "figure": "fig3c", "statement": "TD-MPC2's confidence band is wider"}
    point = FigureResult({a: _algo([64, 128], 50, half=0.0, seeds=1) for a in ("m3po", "tdmpc2")}, {})
    row = report.judge_band(claim, point)
    assert row.verdict == INCONCLUSIVE and row.why == "TD-MPC2 has 1 seed(s), fewer than 3"
    flat = FigureResult({a: _algo([64, 128], 50, half=0.0, seeds=3) for a in ("m3po", "tdmpc2")}, {})
    assert report.judge_band(claim, flat).verdict == INCONCLUSIVE
    wide = FigureResult(
        {"m3po": _algo([64, 128], 50, half=1.0), "tdmpc2": _algo([64, 128, 192], 50, half=5.0)}, {}
    )
    row = report.judge_band(claim, wide)
    assert row.verdict == REPRODUCED and row.record["steps"] == [64, 128]  # the steps both evaluated
    assert row.scope == "at 2 steps from 64 to 128 agent steps on 2 of 80 mt80 tasks, 3 seeds"


def test_vectorization_needs_three_seeds_per_setting() -> None:
    claim = {"id": "vectorization-stability", "figure": "fig4", "statement": "falls"}

    def runs(seeds: int) -> pd.DataFrame:
        rows = [
            {"algo": "tdmpc2", "variant": "default", "mode": "multi", "task_set": "walker-walk,mw-reach",
             "num_envs": n, "seed": s, "final": level + s * spread, "step": 10_000, "run_dir": f"{n}/{s}"}
            for n, level, spread in ((2, 90.0, 0.5), (16, 50.0, 5.0))
            for s in range(seeds)
        ]  # fmt: skip
        return pd.DataFrame(rows)

    row = report.judge_vectorization(claim, runs(3))
    assert row.verdict == REPRODUCED
    assert (
        row.scope == "at 10k agent steps on 2 of 80 mt80 tasks, seeds per env count (2 envs: 3, 16 envs: 3)"
    )
    row = report.judge_vectorization(claim, runs(2))
    assert row.verdict == INCONCLUSIVE and "with 3 seeds or more" in row.why


def test_claims_json_holds_verdict_budget_scope_and_numbers(tmp_path) -> None:
    result = FigureResult({"m3po": _algo([0, 128], 100.0, half=0.0, seeds=1, tasks=1)}, {})
    rows = report.judge_claims([DMC39_FINAL], {"fig3a": result}, pd.DataFrame(), BUDGETS)
    path = report.write_claims_json(tmp_path / "claims.json", rows)
    (record,) = json.loads(path.read_text())
    assert record["claim"] == "dmc39-final" and record["verdict"] == NOT_JUDGED
    assert record["verdict"] in record["verdicts"]
    assert record["budget"].startswith("2M agent steps") and record["scope"].startswith("at 128 agent steps")
    details = record["details"]
    assert details["budget"] == {
        "steps": 2_000_000,
        "source": "the paper profile's fig3a budget; the paper gives none",
    }
    assert details["tasks_total"] == 39 and details["task_set"] == "dmc39"
    (m3po,) = details["evidence"]
    assert m3po == {
        "algo": "m3po", "source": "ours", "point": 100.0, "low": 100.0, "high": 100.0, "step": 128,
        "seeds": 1, "tasks": 1, "name": "M3PO", "at_budget": False,
    }  # fmt: skip
    assert {c["check"]: c["outcome"] for c in details["checks"]}["ppo value"] == "missing"


def test_a_published_step_resting_on_two_seeds_is_no_evidence() -> None:
    # Not every published seed runs to the end (SAC's dog-stand seed 2 stops at 1.25M agent steps).
    steps = [0, 2_000_000]
    result = FigureResult(
        {a: _algo(steps, v) for a, v in {"m3po": 800, "ppo": 580, "dreamerv3": 490}.items()}, {}
    )
    grid = np.arange(0, 2_050_000, 50_000)
    sac = dataclasses.replace(_algo(grid, 300.0), runs_per_step=np.where(grid >= 1_250_000, 2, 3))
    row = report.judge_values(DMC39_FINAL, result, {"fig3a": 2_000_000}, FigureResult({"sac": sac}, {}))
    assert row.verdict == INCONCLUSIVE
    assert "SAC (published) has 2 seed(s), fewer than 3" in row.why
    assert "seeds: M3PO 3, PPO 3, DreamerV3 3, SAC (published) 2" in row.scope
