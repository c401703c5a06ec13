"""Custom cheetah tasks: run-backwards, run-front, run-back and jump.

Definitions from TD-MPC2's ``tdmpc2/envs/tasks/cheetah.py``. The model is dm_control's cheetah with
a ground plane twice as long (x half-size 200 instead of 100), so running backwards stays on the
floor for the whole episode.
"""

from __future__ import annotations

from typing import Any

from dm_control.rl import control
from dm_control.suite import cheetah as dmc_cheetah
from dm_control.suite import common
from dm_control.utils import rewards

from m3po.envs.dmc_custom._common import RandomArg, make_environment, suite_model_with_longer_plane

_TIME_LIMIT = 10.0  # seconds; with the 0.01 s physics step, 1000 control steps as dm_control's
_RUN_SPEED = 10.0  # dm_control's cheetah-run target speed (m/s)
_FLOOR_X_SIZE = 200.0
# Height (m) above which a raised body part earns full reward.
_JUMP_HEIGHT = 1.2
# Speed band (m/s) the jump task tolerates: it asks for jumping in place.
_JUMP_MAX_SPEED = 0.5


class RunBackwards(dmc_cheetah.Cheetah):
    """Run backwards: linear reward in the negative forward speed, full at ``-move_speed``.

    :param move_speed: backward speed (m/s, positive) above which the reward is 1
    :param random: seed or random state for the initial states
    """

    def __init__(self, move_speed: float, random: RandomArg = None) -> None:
        super().__init__(random=random)
        self._move_speed = move_speed

    def get_reward(self, physics: dmc_cheetah.Physics) -> float:
        """Reward in [0, 1]; 0 at standstill or moving forwards."""
        return rewards.tolerance(
            physics.speed(),
            bounds=(-float("inf"), -self._move_speed),
            margin=self._move_speed,
            value_at_margin=0,
            sigmoid="linear",
        )


def _height_reward(height: float) -> float:
    """Gaussian-shaped reward for a height of at least ``_JUMP_HEIGHT``."""
    return rewards.tolerance(height, bounds=(_JUMP_HEIGHT, float("inf")), margin=_JUMP_HEIGHT / 2)


class RunOneFoot(dmc_cheetah.Cheetah):
    """Run forwards on one foot, with the other foot and the torso held high.

    Reward: ``up * (5 * fast + 1) / 6`` where ``up = (3 * raised_foot_high + 2 * torso_high) / 5``
    and ``fast`` is linear in the forward speed, full at ``move_speed``.

    :param raised_foot: body name of the foot that should be off the ground (``bfoot`` to run on
        the front foot, ``ffoot`` to run on the back foot)
    :param move_speed: forward speed (m/s) above which the speed term is 1
    :param random: seed or random state for the initial states
    """

    def __init__(self, raised_foot: str, move_speed: float, random: RandomArg = None) -> None:
        super().__init__(random=random)
        self._raised_foot = raised_foot
        self._move_speed = move_speed

    def get_reward(self, physics: dmc_cheetah.Physics) -> float:
        """Reward in [0, 1]."""
        torso_up = _height_reward(physics.named.data.xpos["torso", "z"])
        foot_up = _height_reward(physics.named.data.xpos[self._raised_foot, "z"])
        up = (3 * foot_up + 2 * torso_up) / 5
        fast = rewards.tolerance(
            physics.speed(),
            bounds=(self._move_speed, float("inf")),
            margin=self._move_speed,
            value_at_margin=0,
            sigmoid="linear",
        )
        return up * (5 * fast + 1) / 6


class Jump(dmc_cheetah.Cheetah):
    """Jump in place: the mean of "stand on the front foot" and "stand on the back foot".

    Each half is ``(5 * high + still) / 6`` with ``high`` rewarding the mean height of the torso and
    the raised foot, and ``still`` a linear penalty on horizontal speed beyond +-0.5 m/s. Both feet
    high at once (a jump) maximises the sum.

    :param random: seed or random state for the initial states
    """

    def get_reward(self, physics: dmc_cheetah.Physics) -> float:
        """Reward in [0, 1]."""
        torso_z = physics.named.data.xpos["torso", "z"]
        still = rewards.tolerance(
            physics.speed(),
            bounds=(-_JUMP_MAX_SPEED, _JUMP_MAX_SPEED),
            margin=_JUMP_MAX_SPEED,
            value_at_margin=0,
            sigmoid="linear",
        )
        halves = [
            (5 * _height_reward((torso_z + physics.named.data.xpos[foot, "z"]) / 2) + still) / 6
            for foot in ("bfoot", "ffoot")
        ]
        return sum(halves) / 2


def _environment(task: dmc_cheetah.Cheetah, environment_kwargs: dict[str, Any] | None) -> control.Environment:
    xml = suite_model_with_longer_plane("cheetah.xml", "ground", _FLOOR_X_SIZE)
    physics = dmc_cheetah.Physics.from_xml_string(xml, common.ASSETS)
    return make_environment(physics, task, environment_kwargs, time_limit=_TIME_LIMIT)


def run_backwards(
    random: RandomArg = None, environment_kwargs: dict[str, Any] | None = None
) -> control.Environment:
    """cheetah-run-backwards: run backwards at 0.8x dm_control's run speed (8 m/s).

    :param random: seed or random state for the initial states
    :param environment_kwargs: extra ``control.Environment`` arguments
    """
    return _environment(RunBackwards(move_speed=0.8 * _RUN_SPEED, random=random), environment_kwargs)


def run_front(
    random: RandomArg = None, environment_kwargs: dict[str, Any] | None = None
) -> control.Environment:
    """cheetah-run-front: run forwards on the front foot (back foot raised) at 6 m/s.

    :param random: seed or random state for the initial states
    :param environment_kwargs: extra ``control.Environment`` arguments
    """
    task = RunOneFoot(raised_foot="bfoot", move_speed=0.6 * _RUN_SPEED, random=random)
    return _environment(task, environment_kwargs)


def run_back(
    random: RandomArg = None, environment_kwargs: dict[str, Any] | None = None
) -> control.Environment:
    """cheetah-run-back: run forwards on the back foot (front foot raised) at 6 m/s.

    :param random: seed or random state for the initial states
    :param environment_kwargs: extra ``control.Environment`` arguments
    """
    task = RunOneFoot(raised_foot="ffoot", move_speed=0.6 * _RUN_SPEED, random=random)
    return _environment(task, environment_kwargs)


def jump(random: RandomArg = None, environment_kwargs: dict[str, Any] | None = None) -> control.Environment:
    """cheetah-jump: get the torso and both feet high while staying in place.

    :param random: seed or random state for the initial states
    :param environment_kwargs: extra ``control.Environment`` arguments
    """
    return _environment(Jump(random=random), environment_kwargs)
