"""Which steps and which tasks the claims report compares (issue 18 §1, found defining the evidence profile).

Steps: M3PO and PPO evaluate at the first 2,048-step iteration boundary past each 10k (100,352 for 100k,
501,760 for 500k), our SAC at multiples of 10k, the published curves every 50k. A comparison at budget N
reads each side's first evaluation at or past N within 5% (the reading ``m3po bench learning`` uses), and
records the step read. Tasks: in the evidence profile SAC runs 2 of fig3a's 8 tasks; a comparison uses
only the tasks both ran, and says so. Each case is constructed so the old rules (exact common steps; each
algorithm pooled over its own tasks) give another answer.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis import aggregate, figures, report, verdicts
from analysis.aggregate import FIGURES, AlgoResult, FigureResult, aggregate_figure
from analysis.stats import Estimate

DMC = ["cartpole-swingup", "reacher-easy", "walker-stand", "walker-walk", "cheetah-run", "cup-catch",
       "finger-spin", "hopper-stand"]  # fmt: skip
SAC_TASKS = ["cartpole-swingup", "reacher-easy"]  # the evidence profile's SAC tasks in fig3a
MW = ["mw-reach", "mw-drawer-close", "mw-door-open", "mw-push"]
# M3PO's and PPO's evaluations: the first 2,048-step iteration boundary at or past each 10k.
M3PO_GRID = [0, *(-(-k * 10_000 // 2048) * 2048 for k in range(1, 51))]
SAC_GRID = list(range(0, 100_001, 10_000))
REPS = 200


def _rows(algo: str, tasks: list[str], steps: list[int], level, suite: str = "dmc39") -> list[dict]:
    """Tidy rows: 3 seeds, the score rising to ``level`` (per task: a dict) at 100k, then flat."""
    rng = np.random.default_rng(len(algo) + len(tasks))
    return [
        {"algo": algo, "suite": suite, "mode": "single", "variant": "default", "task": task, "seed": seed,
         "step": step, "score": (level[task] if isinstance(level, dict) else level) * min(step, 100_000) / 1e5
         + rng.normal(0, 5)}
        for task in tasks
        for seed in (1, 2, 3)
        for step in steps
    ]  # fmt: skip


@pytest.fixture(scope="module")
def fig3a() -> FigureResult:
    """M3PO and PPO on 8 tasks to 501,760; SAC on 2 of them to 100k. M3PO is weak (200) on SAC's two
    tasks and strong (900) on the other six: pooled over its 8 tasks (725) it is above SAC (600), on
    the 2 tasks both ran below it."""
    m3po_level = {t: 200.0 if t in SAC_TASKS else 900.0 for t in DMC}
    rows = [
        *_rows("m3po", DMC, M3PO_GRID, m3po_level),
        *_rows("ppo", DMC, M3PO_GRID, 100.0),
        *_rows("sac", SAC_TASKS, SAC_GRID, 600.0),
    ]
    return aggregate_figure(pd.DataFrame(rows), FIGURES["fig3a"], REPS, seed=0)


def test_read_at_is_the_first_evaluation_at_or_past_n_within_5_percent() -> None:
    assert verdicts.read_at(M3PO_GRID, 100_000) == 100_352
    assert verdicts.read_at(M3PO_GRID, 500_000) == 501_760
    assert verdicts.read_at([110_000, 0], 100_000) is None  # 10% past: no evidence at 100k
    assert verdicts.read_at([105_000], 100_000) == 105_000  # exactly 5% past still counts
    assert verdicts.read_at([0, 50_000], 0) == 0 and verdicts.read_at([512], 0) is None
    assert verdicts.read_at([0, 50_000], 60_000) is None
    assert verdicts.read_index(M3PO_GRID, 100_000) == M3PO_GRID.index(100_352)


def test_the_learning_bar_reads_steps_by_the_same_function() -> None:
    from suite.bench import learning

    assert learning.read_at is verdicts.read_at and learning.READ_TOLERANCE == verdicts.READ_TOLERANCE == 0.05


def test_match_steps_pairs_each_evaluation_once_at_the_budgets_both_reach() -> None:
    with_sac = verdicts.match_steps(M3PO_GRID, SAC_GRID)
    assert [n for n, _, _ in with_sac] == SAC_GRID  # 0, 10k, ..., 100k: never at M3PO's own 10,240
    assert [(M3PO_GRID[i], SAC_GRID[j]) for n, i, j in with_sac if n == 100_000] == [(100_352, 100_000)]
    published = list(range(0, 1_000_001, 50_000))
    with_published = verdicts.match_steps(M3PO_GRID, published)
    assert [n for n, _, _ in with_published] == list(range(0, 500_001, 50_000))
    assert [M3PO_GRID[i] for _, i, _ in with_published][1:3] == [51_200, 100_352]
    # An evaluation serves one budget: 9,800 and 10,000 both read b's 10,000; the exact one is kept.
    assert verdicts.match_steps([0, 9_800, 10_000], [0, 10_000]) == [(0, 0, 0), (10_000, 2, 1)]
    assert verdicts.match_steps([0, 10_240], [0, 20_000]) == [(0, 0, 0)]  # 10,240 reads no b within 5%


def test_a_comparison_uses_only_the_tasks_both_ran(fig3a: FigureResult) -> None:
    m3po, sac = fig3a.algos["m3po"], fig3a.algos["sac"]
    assert len(m3po.tasks) == 8 and sac.tasks == sorted(SAC_TASKS)
    assert aggregate.common_tasks(m3po, sac) == sorted(SAC_TASKS)
    two = aggregate.on_tasks(m3po, SAC_TASKS)
    assert two.tasks == sorted(SAC_TASKS) and aggregate.on_tasks(m3po, SAC_TASKS) is two  # computed once
    assert aggregate.on_tasks(m3po, DMC) is m3po and aggregate.on_tasks(sac, DMC) is None
    # The same numbers as aggregating M3PO's rows on those two tasks alone (same bootstrap seed).
    rows = pd.DataFrame(_rows("m3po", DMC, M3PO_GRID, {t: 200.0 if t in SAC_TASKS else 900.0 for t in DMC}))
    alone = aggregate_figure(rows[rows["task"].isin(SAC_TASKS)], FIGURES["fig3a"], REPS, seed=0).algos["m3po"]
    for metric in ("mean", "iqm"):
        np.testing.assert_array_equal(two.curves[metric].point, alone.curves[metric].point)
        np.testing.assert_array_equal(two.curves[metric].low, alone.curves[metric].low)
    i = verdicts.read_index(two.steps, 100_000)
    assert two.curves["mean"].point[i] < 250 < 700 < m3po.curves["mean"].point[i]


def test_probability_of_improvement_on_the_tasks_both_ran_at_a_budget_both_reached(
    fig3a: FigureResult,
) -> None:
    # Old rule: M3PO at its last step (501,760) against SAC at its last (100k), unsaid.
    assert fig3a.improvement_at["sac"] == {
        "budget": 100_000, "read_at": {"m3po": 100_352, "sac": 100_000}, "tasks": sorted(SAC_TASKS),
    }  # fmt: skip
    assert float(fig3a.improvement["sac"].point) == 0.0  # below SAC on both tasks, every seed
    assert fig3a.improvement_at["ppo"]["budget"] == 501_760 and len(fig3a.improvement_at["ppo"]["tasks"]) == 8
    table = report._improvement_table({"fig3a": fig3a})
    sac = table[table["baseline"] == "SAC"].iloc[0]
    assert (sac["agent steps"], sac["read at"], sac["tasks both ran"]) == (
        "100k", "M3PO 100,352, SAC 100,000", 2,
    )  # fmt: skip


def test_outperforms_reads_m3po_and_sac_at_100k_on_their_two_tasks(fig3a: FigureResult) -> None:
    claim = {"id": "outperforms-single-task", "figure": ["fig3a"], "statement": "M3PO outperforms"}
    row = report.judge_outperforms(claim, {"fig3a": fig3a})
    # Old rules: SAC compared at step 0 only (undecided), and over 8 tasks against 2.
    assert "fig3a vs SAC: contradicted at 100k" in row.ours and "fig3a vs PPO: holds at 501.8k" in row.ours
    assert row.verdict == verdicts.NOT_REPRODUCED
    assert row.scope == (
        "fig3a vs PPO at 501.8k agent steps on 8 of 39 dmc39 tasks, 3 seeds; "
        "fig3a vs SAC at 100k agent steps (M3PO read at 100,352) on 2 of 39 dmc39 tasks both ran, 3 seeds"
    )
    sac = next(c for c in row.record["checks"] if c["check"] == "fig3a: m3po > sac")
    assert sac["budget"] == 100_000 and sac["read_at"] == {"m3po": 100_352, "sac": 100_000}
    assert sac["tasks"] == sorted(SAC_TASKS)
    m3po_at_100k = next(e for e in row.record["evidence"] if e["algo"] == "m3po" and e["budget"] == 100_000)
    assert m3po_at_100k["step"] == 100_352 and m3po_at_100k["tasks"] == 2


def test_a_final_claim_reads_the_budget_and_orders_on_the_tasks_both_ran(fig3a: FigureResult) -> None:
    claim = {"id": "x-final", "figure": "fig3a", "at_steps": 100_000, "values": {"m3po": [700, 750]},
             "order": ["m3po", "sac"]}  # fmt: skip
    row = report.judge_values(claim, fig3a, {})
    checks = {c["check"]: c for c in row.record["checks"]}
    # M3PO's value over the 8 tasks it ran (725) is inside the range, but the paper's is dmc39's average:
    # no evidence for it; read at 100,352.
    assert checks["m3po value"]["outcome"] == verdicts.NO_EVIDENCE
    assert checks["m3po value"]["reason"] == "M3PO averages 8 of the 39 tasks the paper's value averages"
    assert checks["m3po value"]["read_at"] == {"m3po": 100_352} and len(checks["m3po value"]["tasks"]) == 8
    assert "(read at 100,352)" in row.ours
    # M3PO > SAC on the 2 tasks both ran: contradicted (pooled over 8 it would hold).
    assert checks["m3po > sac"]["outcome"] == verdicts.CONTRADICTED
    assert checks["m3po > sac"]["tasks"] == sorted(SAC_TASKS)
    assert checks["m3po > sac"]["read_at"] == {"m3po": 100_352, "sac": 100_000}
    assert row.verdict == verdicts.NOT_REPRODUCED
    assert row.scope.endswith("; M3PO > SAC on the 2 tasks both ran")


def _flat(steps, value: float, tasks: int = 2) -> AlgoResult:
    steps = np.asarray(steps)
    point = np.full(len(steps), value)
    est = Estimate(point, point - 5, point + 5)
    return AlgoResult(
        steps, {"mean": est, "iqm": est}, {}, np.zeros((3, tasks)), [f"t{i}" for i in range(tasks)], 3
    )


def test_a_run_with_no_evaluation_within_5_percent_is_no_evidence_at_the_budget() -> None:
    claim = {"id": "x-final", "figure": "fig3a", "at_steps": 100_000, "values": {"m3po": 800, "ppo": 100},
             "order": ["m3po", "ppo"]}  # fmt: skip
    result = FigureResult(
        {"m3po": _flat([0, 100_352], 800.0, tasks=39), "ppo": _flat([0, 120_000], 100.0, tasks=39)}, {}
    )
    row = report.judge_values(claim, result, {})
    checks = {c["check"]: c["outcome"] for c in row.record["checks"]}
    # Old rule: PPO read at 120k (its first evaluation at or after 100k), and the claim reproduced.
    assert checks["ppo value"] == verdicts.NOT_READ and checks["m3po > ppo"] == verdicts.NOT_READ
    assert row.verdict == verdicts.INCONCLUSIVE
    assert "PPO: no evaluation within 5% past the budget (evaluated to 120,000)" in row.why
    # The published curve stands in where our runs are not read at the budget.
    published = FigureResult({"ppo": _flat(np.arange(0, 250_000, 50_000), 100.0, tasks=39)}, {})
    row = report.judge_values(claim, result, {}, published)
    assert row.verdict == verdicts.REPRODUCED, row.why
    assert "PPO: our runs have no evaluation within 5% past it; the published curve stands in" in row.why


def test_sample_efficiency_against_the_published_curve_reads_m3po_near_every_50k() -> None:
    rows = _rows("m3po", MW, [s for s in M3PO_GRID if s <= 100_352], 90.0, suite="mw50")
    ours = aggregate_figure(pd.DataFrame(rows), FIGURES["fig3b"], REPS, seed=0)
    published = pd.DataFrame(
        [
            {"algo": "dreamerv3", "task": t, "seed": s, "step": step, "score": 30.0 * step / 150_000 + s}
            for t in MW
            for s in (1, 2, 3)
            for step in (0, 50_000, 100_000, 150_000)
        ]  # fmt: skip
    )
    reference = aggregate.aggregate_published(published, FIGURES["fig3b"], MW, REPS, 0)
    claim = {"id": "sample-efficiency-dreamer", "figure": "fig3b", "statement": "higher sample efficiency"}
    row = report.judge_sample_efficiency(claim, ours, "dreamerv3", reference)
    # Old rule: no step in common but 0 (51,200 is not 50,000), so no evidence.
    assert row.verdict == verdicts.REPRODUCED, row.why
    assert row.scope.startswith("at 2 steps from 50k to 100k agent steps on 4 of 50 mw50 tasks, 3 seeds")
    reads = [(e["budget"], e["read_at"]["m3po"], e["read_at"]["dreamerv3"]) for e in row.record["evidence"]]
    assert reads == [(50_000, 51_200, 50_000), (100_000, 100_352, 100_000)]
    assert row.record["tasks"] == sorted(MW)


def test_band_widths_are_compared_at_the_budgets_both_reach() -> None:
    claim = {"id": "mt80-stability", "figure": "fig3c", "statement": "TD-MPC2's confidence band is wider"}
    m3po = _flat([0, 10_240, 20_480], 50.0)
    wide = Estimate(np.full(3, 50.0), np.full(3, 30.0), np.full(3, 70.0))
    tdmpc2 = AlgoResult(np.array([0, 10_000, 20_000]), {"iqm": wide}, {}, np.zeros((3, 2)), ["t0", "t1"], 3)
    row = report.judge_band(claim, FigureResult({"m3po": m3po, "tdmpc2": tdmpc2}, {}))
    assert row.verdict == verdicts.REPRODUCED
    assert row.record["steps"] == [0, 10_000, 20_000]  # the old rule: step 0 only
    assert row.record["read_at"] == {"tdmpc2": [0, 10_000, 20_000], "m3po": [0, 10_240, 20_480]}


def test_fidelity_reads_each_seed_at_its_first_evaluation_within_5_percent() -> None:
    published = pd.DataFrame(
        [
            {
                "algo": "sac",
                "task": "walker-walk",
                "seed": s,
                "step": step,
                "score": 100.0 * s,
                "path": "results/sac/walker-walk.csv",
                "commit": "0" * 40,
            }
            for s in (1, 2, 3)
            for step in (0, 50_000, 100_000)
        ]  # fmt: skip
    )
    ours = pd.DataFrame(
        [
            {
                "algo": "sac",
                "task": "walker-walk",
                "seed": s,
                "step": step,
                "score": 150.0 + s,
                "mode": "single",
                "variant": "default",
            }
            for s, step in ((1, 51_200), (2, 51_200), (3, 60_000))
        ]  # fmt: skip
    )
    (row,) = aggregate.fidelity_table(ours, published).to_dict("records")  # old rule: no exact step, no row
    assert row["step"] == 50_000 and row["ours read at"] == 51_200
    assert row["ours seeds"] == 2 and row["ours"] == pytest.approx(151.5)  # seed 3 (60k) is not read
    assert row["verdict"] == "inside"


def test_the_legend_gives_each_curves_task_count_where_they_differ(
    fig3a: FigureResult, tmp_path, monkeypatch
) -> None:
    seen: dict[str, list[str]] = {}
    save = figures._save

    def recording_save(fig, stem):  # noqa: ANN001, ANN202
        seen[stem.name] = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
        return save(fig, stem)

    monkeypatch.setattr(figures, "_save", recording_save)
    figures.plot_curves(fig3a, FIGURES["fig3a"], "fig3a", [], tmp_path / "a")
    assert seen["a"] == ["M3PO (3 seeds, 8 tasks)", "PPO (3 seeds, 8 tasks)", "SAC (3 seeds, 2 tasks)"]
    same = FigureResult({a: fig3a.algos[a] for a in ("m3po", "ppo")}, {})
    figures.plot_curves(same, FIGURES["fig3a"], "fig3a", [], tmp_path / "b")
    assert seen["b"] == ["M3PO (3 seeds)", "PPO (3 seeds)"]
