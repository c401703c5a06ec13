"""The verdict rules of the claims report, as small pure functions (no I/O, no aggregation).

:mod:`analysis.report` extracts the numbers from the aggregates (:class:`analysis.aggregate.FigureResult`)
into :class:`Evidence` and asks these functions what they show; each function's rule is in its
docstring, and ``docs/verdicts.md`` sets them out for a reader. Tested on constructed cases in
``tests/test_verdicts.py``.

A verdict is one of :data:`VERDICTS`, exactly these strings (the HTML report renders them as badges):
``reproduced``, ``not reproduced``, ``inconclusive``, ``not judged at this budget``.

Three rules run through all of them:

* **Budget.** A claim about final values is judged only from evidence at its budget (the claim's
  ``at_steps``; where the paper gives none, the ``paper`` profile's budget for the claim's figure).
  M3PO below it: **not judged at this budget**, naming both budgets, never ``not reproduced``.
* **Seeds.** An algorithm with fewer than :data:`MIN_SEEDS` seeds is no evidence in any comparison:
  the comparison is *no evidence* (inconclusive), and the reason says so.
* **Width.** A zero-width interval (or a missing one) is never evidence: a bootstrap interval over one
  seed per task is a point, and two points say nothing about a difference.

Two more say what is compared with what:

* **Steps.** Algorithms evaluate on different grids (M3PO and PPO at the first iteration boundary
  past each ``eval_every`` multiple, e.g. 100,352 for 100k; SAC at multiples of 10k; the published
  curves every 50k). A comparison at budget ``N`` reads each side's first evaluation at or past ``N``
  within :data:`READ_TOLERANCE` (:func:`read_at`, the rule ``m3po bench learning`` reads its bar
  by), and records the step read; a side with no such evaluation is no evidence at ``N``.
  :func:`match_steps` gives the budgets two curves can be compared at.
* **Tasks.** A comparison between two algorithms uses only the tasks both ran (the report
  re-aggregates each side over them, :func:`analysis.aggregate.on_tasks`) and says so.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
INCONCLUSIVE = "inconclusive"
NOT_JUDGED = "not judged at this budget"
VERDICTS: tuple[str, ...] = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_JUDGED)
MIN_SEEDS = 3

# Outcomes of one check (a value check or an ordered pair); how they combine: see :func:`combine`.
PASSES, FAILS = "passes", "fails"  # value checks
HOLDS, CONTRADICTED, UNDECIDED = "holds", "contradicted", "undecided"  # ordered pairs
NO_EVIDENCE, MISSING, BELOW_BUDGET = "no evidence", "missing", "below budget"
NOT_READ = "no evaluation within 5% past the budget"  # runs past the budget, none evaluated near it
POSITIVE = frozenset({PASSES, HOLDS})
NEGATIVE = frozenset({FAILS, CONTRADICTED})

OURS, PUBLISHED = "ours", "published"
PUBLISHED_BY = "published (TD-MPC2 authors)"

# A run evaluates at the first iteration boundary at or past each eval_every multiple (M3PO's cpu preset:
# 2,048 agent steps an iteration, so "100k" is its evaluation at 100,352). Its value at N is that
# evaluation, if it comes within this share of N (:func:`read_at`).
READ_TOLERANCE = 0.05


def read_at(steps: Iterable[int], budget: int, tolerance: float = READ_TOLERANCE) -> int | None:
    """The step a run (or a curve) is read at for budget ``budget``: its first evaluation at or past
    ``budget``, if it comes within ``tolerance`` of it (at most ``budget * (1 + tolerance)``); None when
    there is none (the run is no evidence at ``budget``).

    The one reading of "at N agent steps" for the claims report and ``m3po bench learning``.

    :param steps: the evaluation steps (any order)
    :param budget: agent steps ``N``
    """
    first = min((int(s) for s in steps if s >= budget), default=None)
    if first is None or first > budget * (1 + tolerance):
        return None
    return first


def read_index(steps: Sequence[int], budget: int, tolerance: float = READ_TOLERANCE) -> int | None:
    """Index in the ascending ``steps`` of :func:`read_at` (None: not evaluated within tolerance)."""
    step = read_at(steps, budget, tolerance)
    return None if step is None else [int(s) for s in steps].index(step)


def match_steps(
    a: Sequence[int], b: Sequence[int], tolerance: float = READ_TOLERANCE
) -> list[tuple[int, int, int]]:
    """The budgets two curves can be compared at: ``(N, index read in a, index read in b)``, N ascending.

    The candidate budgets are the evaluation steps of either curve; at each, both are read by
    :func:`read_at`, and a budget where either has no such evaluation is left out. An evaluation serves
    one budget at most: where several budgets read the same evaluation of either curve, the one read
    with the least lag (``read step - N``, summed over both) is kept. M3PO (evaluated at 100,352) and
    SAC (at 100,000) compare at 100k, M3PO read at 100,352; M3PO's own step 100,352 is no budget, as
    SAC's next evaluation (110,000) is more than 5% past it.

    :param a: ascending evaluation steps of one curve
    :param b: ascending evaluation steps of the other
    """
    candidates = []
    for budget in sorted({int(s) for s in (*a, *b)}):
        i, j = read_index(a, budget, tolerance), read_index(b, budget, tolerance)
        if i is not None and j is not None:
            candidates.append((int(a[i]) - budget + int(b[j]) - budget, budget, i, j))
    used_a: set[int] = set()
    used_b: set[int] = set()
    kept = []
    for _, budget, i, j in sorted(candidates):
        if i in used_a or j in used_b:
            continue
        used_a.add(i)
        used_b.add(j)
        kept.append((budget, i, j))
    return sorted(kept)


@dataclass(frozen=True)
class Evidence:
    """One algorithm's interval at one step, and where it comes from.

    :param algo: algorithm id (``m3po``, ``sac``)
    :param label: display name (``SAC``); :attr:`name` adds `` (published)`` for published evidence
    :param point: point estimate
    :param low: lower bound of the 95% interval
    :param high: upper bound of the 95% interval
    :param step: agent step of the evaluation read (:func:`read_at`)
    :param seeds: seeds (runs per task) behind the interval
    :param tasks: tasks behind the interval
    :param source: :data:`OURS` or :data:`PUBLISHED` (the TD-MPC2 authors' curves; never pooled with ours)
    :param budget: the budget ``N`` the evaluation was read for (``step`` is its first evaluation at or
        past ``N``, within :data:`READ_TOLERANCE`); None: read at its own step
    """

    algo: str
    label: str
    point: float
    low: float
    high: float
    step: int
    seeds: int
    tasks: int
    source: str = OURS
    budget: int | None = None

    @property
    def at(self) -> int:
        """The budget it was read for (its own step when none)."""
        return int(self.step if self.budget is None else self.budget)

    @property
    def name(self) -> str:
        """The label, marked `` (published)`` for the published curves."""
        return f"{self.label} (published)" if self.source == PUBLISHED else self.label

    @property
    def width(self) -> float:
        """``high - low``."""
        return float(self.high - self.low)

    def as_dict(self) -> dict[str, object]:
        """The numbers, for ``claims.json``."""
        return {
            "algo": self.algo,
            "source": self.source,
            "point": float(self.point),
            "low": float(self.low),
            "high": float(self.high),
            "step": int(self.step),
            "seeds": int(self.seeds),
            "tasks": int(self.tasks),
        }


def problem(evidence: Evidence, min_seeds: int = MIN_SEEDS) -> str | None:
    """Why ``evidence`` is no evidence, or None when it is.

    Not evidence: fewer than ``min_seeds`` seeds; a bound that is not finite; a zero-width interval
    (``high <= low``).
    """
    if evidence.seeds < min_seeds:
        return f"{evidence.name} has {evidence.seeds} seed(s), fewer than {min_seeds}"
    if not (math.isfinite(evidence.low) and math.isfinite(evidence.high)):
        return f"{evidence.name} has no finite interval"
    if not evidence.high > evidence.low:
        return f"{evidence.name}'s interval has zero width (no evidence)"
    return None


def order_relation(higher: Evidence, lower: Evidence, min_seeds: int = MIN_SEEDS) -> tuple[str, str | None]:
    """Whether ``higher`` is above ``lower``: (outcome, reason).

    :data:`HOLDS` when ``higher.low > lower.high``, :data:`CONTRADICTED` when ``higher.high <
    lower.low``, :data:`UNDECIDED` when the intervals overlap; :data:`NO_EVIDENCE` (with the reason)
    when either side is no evidence (:func:`problem`).
    """
    for side in (higher, lower):
        why = problem(side, min_seeds)
        if why:
            return NO_EVIDENCE, why
    if higher.low > lower.high:
        return HOLDS, None
    if higher.high < lower.low:
        return CONTRADICTED, None
    return UNDECIDED, None


def value_check(
    paper: float | Sequence[float],
    ours: Evidence,
    reference: bool,
    min_seeds: int = MIN_SEEDS,
    tasks_total: int | None = None,
) -> tuple[str, str | None]:
    """Our interval against the paper's value (or ``[low, high]`` range): (outcome, reason).

    :data:`PASSES` when the interval meets the value (or range), or lies entirely on the side the paper
    argues for (``reference``, i.e. M3PO: above it; a baseline: below it); :data:`FAILS` otherwise;
    :data:`NO_EVIDENCE` when ``ours`` is no evidence (:func:`problem`), or when it averages fewer tasks
    than the ``tasks_total`` the paper's value averages: a chosen subset's mean is not the suite's (on
    mw-reach, mw-drawer-close and mw-door-open the published SAC at 1M averages 83.3, over all 50 mw50
    tasks 75.5; the paper says 75).
    """
    why = problem(ours, min_seeds)
    if why:
        return NO_EVIDENCE, why
    if tasks_total is not None and ours.tasks < tasks_total:
        return NO_EVIDENCE, (
            f"{ours.name} averages {ours.tasks} of the {tasks_total} tasks the paper's value averages"
        )
    lo, hi = (min(paper), max(paper)) if isinstance(paper, list | tuple) else (paper, paper)
    if ours.low <= hi and ours.high >= lo:
        return PASSES, None
    on_side = ours.low > hi if reference else ours.high < lo
    return (PASSES, None) if on_side else (FAILS, None)


def combine(outcomes: Iterable[str]) -> str:
    """One verdict from the outcomes of a claim's checks.

    Any :data:`FAILS` or :data:`CONTRADICTED`: **not reproduced**. Else any other non-positive outcome
    (undecided, no evidence, missing, below budget), or no outcome at all: **inconclusive**. Else
    (every check passes or holds): **reproduced**.
    """
    outcomes = list(outcomes)
    if any(o in NEGATIVE for o in outcomes):
        return NOT_REPRODUCED
    if not outcomes or any(o not in POSITIVE for o in outcomes):
        return INCONCLUSIVE
    return REPRODUCED


def claim_budget(at_steps: int | None, profile_steps: int | None, figure: str) -> tuple[int | None, str]:
    """A final-value claim's budget in agent steps, and where it comes from.

    The claim's own ``at_steps`` when the paper gives one; else the ``paper`` profile's budget for the
    claim's figure (``profile_steps``); else None (no budget known: the claim cannot be judged).
    """
    if at_steps is not None:
        return int(at_steps), "the paper's"
    if profile_steps is not None:
        return int(profile_steps), f"the paper profile's {figure} budget; the paper gives none"
    return None, "none: the paper gives none and no paper-profile budget was given"


def reaches(last_step: int | None, budget: int) -> bool:
    """Whether a curve whose last evaluation is ``last_step`` reached ``budget``."""
    return last_step is not None and last_step >= budget


def fmt_steps(steps: float) -> str:
    """Agent steps as ``128``, ``20k``, ``1.5M``."""
    steps = float(steps)
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(steps) >= scale:
            return f"{steps / scale:.4g}{suffix}"
    return f"{steps:.4g}"


def below_budget(reached: int | None, budget: int, source: str) -> str:
    """The reason of a **not judged at this budget** verdict, naming both budgets."""
    ours = "no evaluation" if reached is None else f"{fmt_steps(reached)} agent steps"
    return f"M3PO's runs reach {ours}; the claim's budget is {fmt_steps(budget)} agent steps ({source})"


def final_verdict(reference_reached: bool, outcomes: Iterable[str]) -> str:
    """A final-value claim's verdict: **not judged at this budget** when M3PO's runs exist but do not
    reach the budget (whatever the other checks say); else :func:`combine` of the outcomes."""
    return combine(outcomes) if reference_reached else NOT_JUDGED


def seeds_text(evidence: Sequence[Evidence]) -> str:
    """``3 seeds`` when every algorithm has the same count, else ``seeds: M3PO 3, SAC (published) 3``."""
    counts = {e.name: e.seeds for e in evidence}
    if len(set(counts.values())) == 1:
        n = next(iter(counts.values()))
        return f"{n} seed{'s' if n != 1 else ''}"
    return "seeds: " + ", ".join(f"{name} {n}" for name, n in counts.items())


def read_text(evidence: Sequence[Evidence]) -> str:
    """Where an evidence was read past its budget: `` (M3PO read at 100,352)``; empty when none was."""
    late = {e.name: e.step for e in evidence if e.step != e.at}
    if not late:
        return ""
    return " (" + ", ".join(f"{name} read at {step:,}" for name, step in late.items()) + ")"


def scope_text(
    evidence: Sequence[Evidence],
    tasks_total: int | None,
    task_set: str,
    steps: Sequence[int] | None = None,
    both: bool = False,
) -> str:
    """What a row was judged on: agent steps, how many of the figure's tasks, how many seeds, and which
    evidence is published, e.g. ``at 500k agent steps on 8 of 39 dmc39 tasks, 3 seeds``, or for a
    comparison restricted to the tasks both algorithms ran, read past its budget, ``at 100k agent steps
    (M3PO read at 100,352) on 2 of 39 dmc39 tasks both ran, 3 seeds``.

    :param evidence: the evidence the row used
    :param tasks_total: tasks in the figure's task set (39 for dmc39), None when unknown
    :param task_set: the figure's task set name
    :param steps: several budgets judged at (sample-efficiency curves): ``at N steps up to X``; default:
        the budgets the evidence was read for (:attr:`Evidence.at`)
    :param both: the evidence is restricted to the tasks both algorithms of a comparison ran, leaving
        out some one of them ran: says ``tasks both ran``
    """
    if not evidence:
        return "no evidence"
    steps = sorted(set(steps if steps is not None else (e.at for e in evidence)))
    if len(steps) == 1:
        at = f"at {fmt_steps(steps[0])} agent steps{read_text(evidence)}"
    else:
        at = f"at {len(steps)} steps from {fmt_steps(steps[0])} to {fmt_steps(steps[-1])} agent steps"
    tasks = sorted({e.tasks for e in evidence})
    of = f" of {tasks_total}" if tasks_total else ""
    n_tasks = str(tasks[0]) if len(tasks) == 1 else f"{tasks[0]}-{tasks[-1]}"
    text = f"{at} on {n_tasks}{of} {task_set} tasks{' both ran' if both else ''}, {seeds_text(evidence)}"
    published = [e.label for e in evidence if e.source == PUBLISHED]
    if published:
        text += f"; {', '.join(dict.fromkeys(published))}: {PUBLISHED_BY}, not our runs"
    return text


def sample_efficiency_verdict(outcomes: Sequence[str]) -> str:
    """M3PO above a baseline over a curve, from the per-step :func:`order_relation` outcomes.

    **reproduced** when it holds at one step or more and is contradicted at none; **not reproduced**
    when contradicted at one or more and holds at none; **inconclusive** otherwise (mixed, all
    undecided, no step with evidence, no common step).
    """
    above = sum(o == HOLDS for o in outcomes)
    below = sum(o == CONTRADICTED for o in outcomes)
    if above and not below:
        return REPRODUCED
    if below and not above:
        return NOT_REPRODUCED
    return INCONCLUSIVE


def band_verdict(
    wider: tuple[str, float, int], narrower: tuple[str, float, int], min_seeds: int = MIN_SEEDS
) -> tuple[str, str]:
    """Whether the first algorithm's interval band is wider than the second's: (verdict, reason).

    :param wider: (label, mean CI width over the common steps, seeds) of the algorithm claimed wider
    :param narrower: the same for the other
    :returns: **inconclusive** when either has fewer than ``min_seeds`` seeds or a zero (or non-finite)
        mean width, saying why; else **reproduced** when the first is wider, **not reproduced** when not.
        (A comparison of point widths: no interval on the widths themselves.)
    """
    for name, width, seeds in (wider, narrower):
        if seeds < min_seeds:
            return INCONCLUSIVE, f"{name} has {seeds} seed(s), fewer than {min_seeds}"
        if not (math.isfinite(width) and width > 0):
            return INCONCLUSIVE, f"{name}'s interval has zero width (no evidence)"
    if wider[1] > narrower[1]:
        return REPRODUCED, f"{wider[0]}'s band is wider"
    return NOT_REPRODUCED, f"{wider[0]}'s band is not wider than {narrower[0]}'s"


def trend_verdict(
    settings: Mapping[int, tuple[float, float, int]], min_seeds: int = MIN_SEEDS
) -> tuple[str, str, list[int]]:
    """Fig. 4: an algorithm's final score falls and its spread over seeds grows with more envs.

    :param settings: number of envs -> (mean, std over seeds, seeds) of the runs' final scores
    :returns: (verdict, reason, the env counts compared). Only settings with ``min_seeds`` seeds or more
        count; fewer than two such: **inconclusive**, saying why. Else **reproduced** when the mean at
        the most envs is below that at the fewest and the std above; **not reproduced** otherwise.
    """
    kept = sorted(n for n, (_, _, seeds) in settings.items() if seeds >= min_seeds)
    if len(kept) < 2:
        have = ", ".join(f"{n} envs: {settings[n][2]} seed(s)" for n in sorted(settings)) or "no runs"
        return INCONCLUSIVE, f"fewer than two env settings with {min_seeds} seeds or more ({have})", kept
    (m0, s0, _), (m1, s1, _) = settings[kept[0]], settings[kept[-1]]
    falls, spreads = m1 < m0, s1 > s0
    reason = f"mean {'falls' if falls else 'does not fall'}, std {'grows' if spreads else 'does not grow'}"
    return (REPRODUCED if falls and spreads else NOT_REPRODUCED), reason, [kept[0], kept[-1]]


FIDELITY_VERDICTS = ("inside", "below", "above", "not run")


def fidelity_verdict(mean: float | None, published: Sequence[float]) -> str:
    """``m3po bench fidelity``'s verdict: ``inside`` when our seed mean lies in [min, max] of the
    published per-seed values, else ``below`` / ``above``; ``not run`` when ``mean`` is None."""
    if mean is None:
        return "not run"
    if mean < min(published):
        return "below"
    if mean > max(published):
        return "above"
    return "inside"
