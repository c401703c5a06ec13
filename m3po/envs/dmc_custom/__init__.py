"""The 11 custom DeepMind Control tasks TD-MPC2 defined on top of dm_control.

Written from their published definitions (TD-MPC2's ``tdmpc2/envs/tasks/*.py``); TD-MPC2 itself is
not a dependency. Each task is a raw dm_control ``Environment`` (native action spec, no action
repeat, dm_control's observation dict) whose time limit and control timestep are those of its
dm_control domain, i.e. 1000 control steps per episode.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dm_control.rl import control

from m3po.envs.dmc_custom import cheetah, cup, hopper, pendulum, reacher, walker
from m3po.envs.dmc_custom._common import RandomArg

__all__ = ["CUSTOM_TASKS", "load"]

# Task name (TD-MPC2's spelling) -> constructor ``(random=None, environment_kwargs=None)``.
CUSTOM_TASKS: dict[str, Callable[..., control.Environment]] = {
    "walker-walk-backwards": walker.walk_backwards,
    "walker-run-backwards": walker.run_backwards,
    "cheetah-run-backwards": cheetah.run_backwards,
    "cheetah-run-front": cheetah.run_front,
    "cheetah-run-back": cheetah.run_back,
    "cheetah-jump": cheetah.jump,
    "hopper-hop-backwards": hopper.hop_backwards,
    "reacher-three-easy": reacher.three_easy,
    "reacher-three-hard": reacher.three_hard,
    "cup-spin": cup.spin,
    "pendulum-spin": pendulum.spin,
}


def load(
    task: str, random: RandomArg = None, environment_kwargs: dict[str, Any] | None = None
) -> control.Environment:
    """Build one custom task's dm_control environment.

    :param task: task name, one of ``CUSTOM_TASKS``
    :param random: seed or ``numpy.random.RandomState`` for the task's initial states
    :param environment_kwargs: extra ``control.Environment`` arguments (e.g. ``flat_observation``)
    :raises KeyError: if ``task`` is not a custom task
    """
    try:
        factory = CUSTOM_TASKS[task]
    except KeyError:
        known = ", ".join(sorted(CUSTOM_TASKS))
        raise KeyError(f"unknown custom DMControl task {task!r}; known: {known}") from None
    return factory(random=random, environment_kwargs=environment_kwargs)
