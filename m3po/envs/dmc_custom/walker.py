"""Custom walker tasks: walk-backwards and run-backwards.

Definitions from TD-MPC2's ``tdmpc2/envs/tasks/walker.py``: dm_control's walker reward with the
speed term mirrored. The model is dm_control's walker with a ground plane twice as long (x half-size
500 instead of 250), so moving backwards stays on the floor for the whole episode.
"""

from __future__ import annotations

from typing import Any

from dm_control.rl import control
from dm_control.suite import common
from dm_control.suite import walker as dmc_walker
from dm_control.utils import rewards

from m3po.envs.dmc_custom._common import RandomArg, make_environment, suite_model_with_longer_plane

# As dm_control's walker: 25 s at 0.025 s per control step = 1000 control steps.
_TIME_LIMIT = 25.0
_CONTROL_TIMESTEP = 0.025
_STAND_HEIGHT = 1.2  # torso height (m) above which the standing term is 1
_WALK_SPEED = 1.0
_RUN_SPEED = 8.0
_FLOOR_X_SIZE = 500.0


class BackwardsPlanarWalker(dmc_walker.PlanarWalker):
    """dm_control's walker task, rewarded for moving backwards at ``move_speed`` or faster.

    Reward: ``stand * (5 * move + 1) / 6`` where ``stand = (3 * standing + upright) / 4`` as in
    dm_control and ``move`` is linear in the backward speed, 1 at ``-move_speed``, 0.5 at
    ``-move_speed / 2``.

    :param move_speed: backward speed (m/s, positive) above which the move term is 1
    :param random: seed or random state for the initial states
    """

    def get_reward(self, physics: dmc_walker.Physics) -> float:
        """Reward in [0, 1]."""
        standing = rewards.tolerance(
            physics.torso_height(), bounds=(_STAND_HEIGHT, float("inf")), margin=_STAND_HEIGHT / 2
        )
        upright = (1 + physics.torso_upright()) / 2
        stand = (3 * standing + upright) / 4
        move = rewards.tolerance(
            physics.horizontal_velocity(),
            bounds=(-float("inf"), -self._move_speed),
            margin=self._move_speed / 2,
            value_at_margin=0.5,
            sigmoid="linear",
        )
        return stand * (5 * move + 1) / 6


def _environment(
    move_speed: float, random: RandomArg, environment_kwargs: dict[str, Any] | None
) -> control.Environment:
    xml = suite_model_with_longer_plane("walker.xml", "floor", _FLOOR_X_SIZE)
    physics = dmc_walker.Physics.from_xml_string(xml, common.ASSETS)
    task = BackwardsPlanarWalker(move_speed=move_speed, random=random)
    return make_environment(
        physics, task, environment_kwargs, time_limit=_TIME_LIMIT, control_timestep=_CONTROL_TIMESTEP
    )


def walk_backwards(
    random: RandomArg = None, environment_kwargs: dict[str, Any] | None = None
) -> control.Environment:
    """walker-walk-backwards: walk backwards at 1 m/s or faster.

    :param random: seed or random state for the initial states
    :param environment_kwargs: extra ``control.Environment`` arguments
    """
    return _environment(_WALK_SPEED, random, environment_kwargs)


def run_backwards(
    random: RandomArg = None, environment_kwargs: dict[str, Any] | None = None
) -> control.Environment:
    """walker-run-backwards: run backwards at 8 m/s or faster.

    :param random: seed or random state for the initial states
    :param environment_kwargs: extra ``control.Environment`` arguments
    """
    return _environment(_RUN_SPEED, random, environment_kwargs)
