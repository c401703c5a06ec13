"""Custom hopper task: hop-backwards.

Definition from TD-MPC2's ``tdmpc2/envs/tasks/hopper.py``: dm_control's hopper-hop reward with the
speed term mirrored (and its band halved). The model is dm_control's hopper, unchanged.
"""

from __future__ import annotations

from typing import Any

from dm_control.rl import control
from dm_control.suite import hopper as dmc_hopper
from dm_control.utils import rewards

from m3po.envs.dmc_custom._common import RandomArg, make_environment

# As dm_control's hopper: 20 s at 0.02 s per control step = 1000 control steps.
_TIME_LIMIT = 20.0
_CONTROL_TIMESTEP = 0.02
_STAND_HEIGHT = 0.6  # torso-over-foot height (m) from which the standing term is 1
_HOP_SPEED = 2.0  # dm_control's hopper-hop target speed (m/s)


class HopBackwards(dmc_hopper.Hopper):
    """Hop backwards: ``standing * hopping``.

    ``standing`` is dm_control's (torso 0.6 to 2 m above the foot); ``hopping`` is linear in the
    backward speed, 1 at -1 m/s or faster backwards, 0.5 at -0.5 m/s, 0 at standstill.

    :param random: seed or random state for the initial states
    """

    def __init__(self, random: RandomArg = None) -> None:
        super().__init__(hopping=True, random=random)

    def get_reward(self, physics: dmc_hopper.Physics) -> float:
        """Reward in [0, 1]."""
        standing = rewards.tolerance(physics.height(), (_STAND_HEIGHT, 2))
        hopping = rewards.tolerance(
            physics.speed(),
            bounds=(-float("inf"), -_HOP_SPEED / 2),
            margin=_HOP_SPEED / 4,
            value_at_margin=0.5,
            sigmoid="linear",
        )
        return standing * hopping


def hop_backwards(
    random: RandomArg = None, environment_kwargs: dict[str, Any] | None = None
) -> control.Environment:
    """hopper-hop-backwards: stay upright and hop backwards at 1 m/s or faster.

    :param random: seed or random state for the initial states
    :param environment_kwargs: extra ``control.Environment`` arguments
    """
    physics = dmc_hopper.Physics.from_xml_string(*dmc_hopper.get_model_and_assets())
    task = HopBackwards(random=random)
    return make_environment(
        physics, task, environment_kwargs, time_limit=_TIME_LIMIT, control_timestep=_CONTROL_TIMESTEP
    )
