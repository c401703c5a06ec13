"""Custom pendulum task: spin.

Definition from TD-MPC2's ``tdmpc2/envs/tasks/pendulum.py``: dm_control's pendulum swing-up (same
model, initial state and observations) rewarded for angular speed instead of being upright.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from dm_control.rl import control
from dm_control.suite import pendulum as dmc_pendulum
from dm_control.utils import rewards

from m3po.envs.dmc_custom._common import RandomArg, make_environment

# As dm_control's pendulum: 20 s at the model's 0.02 s step = 1000 control steps.
_TIME_LIMIT = 20.0
_TARGET_SPEED = 9.0  # rad/s, either direction


class Spin(dmc_pendulum.SwingUp):
    """Spin the pole: linear in the angular speed, 1 from 9 rad/s, 0.5 at 4.5 rad/s, 0 at rest.

    :param random: seed or random state for the initial states
    """

    def get_reward(self, physics: dmc_pendulum.Physics) -> float:
        """Reward in [0, 1]."""
        return rewards.tolerance(
            float(np.linalg.norm(physics.angular_velocity())),
            bounds=(_TARGET_SPEED, float("inf")),
            margin=_TARGET_SPEED / 2,
            value_at_margin=0.5,
            sigmoid="linear",
        )


def spin(random: RandomArg = None, environment_kwargs: dict[str, Any] | None = None) -> control.Environment:
    """pendulum-spin: spin the pendulum at 9 rad/s or faster, in either direction.

    :param random: seed or random state for the initial states
    :param environment_kwargs: extra ``control.Environment`` arguments
    """
    physics = dmc_pendulum.Physics.from_xml_string(*dmc_pendulum.get_model_and_assets())
    return make_environment(physics, Spin(random=random), environment_kwargs, time_limit=_TIME_LIMIT)
