"""Task names, task sets and per-task conventions.

Names follow TD-MPC2's spelling (which the M3PO paper follows): ``domain-task`` for DMControl
(``cup`` is dm_control's ``ball_in_cup``), ``mw-<name>`` for Meta-World v3 and ``dmlab-<level>``
for DeepMind Lab. See ``shared/spec/benchmarks.md``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# The 28 tasks of dm_control's own suite that dmc39 uses.
DMC_STANDARD: tuple[str, ...] = (
    "acrobot-swingup", "cartpole-balance", "cartpole-balance-sparse", "cartpole-swingup",
    "cartpole-swingup-sparse", "cheetah-run", "cup-catch", "dog-run", "dog-stand", "dog-trot",
    "dog-walk", "finger-spin", "finger-turn-easy", "finger-turn-hard", "fish-swim", "hopper-hop",
    "hopper-stand", "humanoid-run", "humanoid-stand", "humanoid-walk", "pendulum-swingup",
    "quadruped-run", "quadruped-walk", "reacher-easy", "reacher-hard", "walker-run", "walker-stand",
    "walker-walk",
)  # fmt: skip

# The 11 tasks TD-MPC2 defined on top of dm_control (implemented in m3po.envs.dmc_custom).
DMC_CUSTOM: tuple[str, ...] = (
    "walker-walk-backwards", "walker-run-backwards", "cheetah-run-backwards", "cheetah-run-front",
    "cheetah-run-back", "cheetah-jump", "hopper-hop-backwards", "reacher-three-easy",
    "reacher-three-hard", "cup-spin", "pendulum-spin",
)  # fmt: skip

DMC39: tuple[str, ...] = DMC_STANDARD + DMC_CUSTOM

# Meta-World MT50 in TD-MPC2's MT80 order.
MW50: tuple[str, ...] = (
    "mw-assembly", "mw-basketball", "mw-button-press-topdown", "mw-button-press-topdown-wall",
    "mw-button-press", "mw-button-press-wall", "mw-coffee-button", "mw-coffee-pull", "mw-coffee-push",
    "mw-dial-turn", "mw-disassemble", "mw-door-open", "mw-door-close", "mw-drawer-close",
    "mw-drawer-open", "mw-faucet-open", "mw-faucet-close", "mw-hammer", "mw-handle-press-side",
    "mw-handle-press", "mw-handle-pull-side", "mw-handle-pull", "mw-lever-pull", "mw-peg-insert-side",
    "mw-peg-unplug-side", "mw-pick-out-of-hole", "mw-pick-place", "mw-pick-place-wall",
    "mw-plate-slide", "mw-plate-slide-side", "mw-plate-slide-back", "mw-plate-slide-back-side",
    "mw-push-back", "mw-push", "mw-push-wall", "mw-reach", "mw-reach-wall", "mw-shelf-place",
    "mw-soccer", "mw-stick-push", "mw-stick-pull", "mw-sweep-into", "mw-sweep", "mw-window-open",
    "mw-window-close", "mw-bin-picking", "mw-box-close", "mw-door-lock", "mw-door-unlock",
    "mw-hand-insert",
)  # fmt: skip

# TD-MPC2's MT30: 19 standard DMControl tasks + the 11 custom ones, in its order.
MT30: tuple[str, ...] = (
    "walker-stand", "walker-walk", "walker-run", "cheetah-run", "reacher-easy", "reacher-hard",
    "acrobot-swingup", "pendulum-swingup", "cartpole-balance", "cartpole-balance-sparse",
    "cartpole-swingup", "cartpole-swingup-sparse", "cup-catch", "finger-spin", "finger-turn-easy",
    "finger-turn-hard", "fish-swim", "hopper-stand", "hopper-hop",
) + DMC_CUSTOM  # fmt: skip

MT80: tuple[str, ...] = MT30 + MW50

# DeepMind Lab's DMLab-30 levels (contributed/dmlab30/<level>).
DMLAB30_LEVELS: tuple[str, ...] = (
    "rooms_collect_good_objects_train", "rooms_exploit_deferred_effects_train",
    "rooms_select_nonmatching_object", "rooms_watermaze", "rooms_keys_doors_puzzle",
    "language_select_described_object", "language_select_located_object",
    "language_execute_random_task", "language_answer_quantitative_question",
    "lasertag_one_opponent_small", "lasertag_three_opponents_small", "lasertag_one_opponent_large",
    "lasertag_three_opponents_large", "natlab_fixed_large_map", "natlab_varying_map_regrowth",
    "natlab_varying_map_randomized", "skymaze_irreversible_path_hard",
    "skymaze_irreversible_path_varied", "psychlab_arbitrary_visuomotor_mapping",
    "psychlab_continuous_recognition", "psychlab_sequential_comparison", "psychlab_visual_search",
    "explore_object_locations_small", "explore_object_locations_large",
    "explore_obstructed_goals_small", "explore_obstructed_goals_large", "explore_goal_locations_small",
    "explore_goal_locations_large", "explore_object_rewards_few", "explore_object_rewards_many",
)  # fmt: skip
DMLAB30: tuple[str, ...] = tuple("dmlab-" + level.replace("_", "-") for level in DMLAB30_LEVELS)

SUITES: dict[str, tuple[str, ...]] = {
    "dmc39": DMC39,
    "mw50": MW50,
    "mt30": MT30,
    "mt80": MT80,
    "dmlab30": DMLAB30,
}

ALL_TASKS: frozenset[str] = frozenset(DMC39 + MW50 + DMLAB30)

DMC_EPISODE_LENGTH = 500  # agent steps (1000 physics-control steps at action repeat 2)
METAWORLD_EPISODE_LENGTH = 100  # agent steps (200 simulator steps at action repeat 2)
DMLAB_EPISODE_LENGTH = 2250  # agent steps: DMLab-30's common 9000 frames at action repeat 4
ACTION_REPEAT = {"dmc": 2, "metaworld": 2, "dmlab": 4}


class UnknownTaskError(ValueError):
    """A task, suite or task-set name that the registry does not know."""


@dataclass(frozen=True)
class TaskInfo:
    """Conventions of one task.

    :param name: task name, e.g. ``cartpole-swingup`` or ``mw-reach``
    :param domain: ``dmc``, ``metaworld`` or ``dmlab``
    :param episode_length: agent steps per episode (time limit only, no termination)
    :param action_repeat: simulator steps per agent step (rewards summed over them)
    :param discount: TD-MPC2's rule, ``clip((L/5 - 1) / (L/5), 0.95, 0.995)``
    """

    name: str
    domain: str
    episode_length: int
    action_repeat: int

    @property
    def discount(self) -> float:
        frac = self.episode_length / 5
        return float(min(max((frac - 1) / frac, 0.95), 0.995))

    @property
    def score_kind(self) -> str:
        """``return`` (DMControl, DMLab) or ``success`` (Meta-World: success at the episode's end)."""
        return "success" if self.domain == "metaworld" else "return"


def _closest(name: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    return difflib.get_close_matches(name, list(candidates), n=n, cutoff=0.5)


def _unknown(kind: str, name: object, candidates: Iterable[str]) -> UnknownTaskError:
    candidates = sorted(candidates)
    close = _closest(str(name), candidates)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return UnknownTaskError(
        f"unknown {kind} {name!r}.{hint} Valid {kind}s: "
        + (
            ", ".join(candidates)
            if len(candidates) <= 10
            else f"see `m3po tasks SUITE` for SUITE in {sorted(SUITES)}"
        )
    )


def task_info(task: str) -> TaskInfo:
    """Conventions of ``task``; raises :class:`UnknownTaskError` naming the closest valid tasks."""
    if not isinstance(task, str):
        raise UnknownTaskError(f"a task name must be a string, got {type(task).__name__} {task!r}")
    if task not in ALL_TASKS:
        raise _unknown("task", task, ALL_TASKS | set(SUITES))
    if task.startswith("mw-"):
        return TaskInfo(task, "metaworld", METAWORLD_EPISODE_LENGTH, ACTION_REPEAT["metaworld"])
    if task.startswith("dmlab-"):
        return TaskInfo(task, "dmlab", DMLAB_EPISODE_LENGTH, ACTION_REPEAT["dmlab"])
    return TaskInfo(task, "dmc", DMC_EPISODE_LENGTH, ACTION_REPEAT["dmc"])


def suite_tasks(suite: str) -> tuple[str, ...]:
    """The tasks of a named suite (``dmc39``, ``mw50``, ``mt30``, ``mt80``, ``dmlab30``)."""
    if suite not in SUITES:
        raise _unknown("suite", suite, SUITES)
    return SUITES[suite]


def resolve_tasks(spec: str | Sequence[str]) -> tuple[str, ...]:
    """Turn a task, a suite name, a comma-separated list or a sequence of names into task names.

    Every name is checked before anything is built; duplicates are an error, since a task set
    with a repeated task would silently weight it twice.
    """
    if isinstance(spec, str):
        names = [part.strip() for part in spec.split(",") if part.strip()]
    elif isinstance(spec, Sequence):
        names = list(spec)
    else:
        raise UnknownTaskError(f"tasks must be a name or a sequence of names, got {type(spec).__name__}")
    if not names:
        raise UnknownTaskError("empty task set: give a task name, a suite name or a list of tasks")
    tasks: list[str] = []
    for name in names:
        if isinstance(name, str) and name in SUITES:
            tasks.extend(SUITES[name])
        else:
            tasks.append(task_info(name).name)
    duplicated = sorted({t for t in tasks if tasks.count(t) > 1})
    if duplicated:
        raise UnknownTaskError(f"task set repeats {', '.join(duplicated)}; each task may appear once")
    return tuple(tasks)
