"""Custom ball-in-cup task: spin (``cup`` is dm_control's ``ball_in_cup``).

Definition from TD-MPC2's ``tdmpc2/envs/tasks/ball_in_cup.py``: keep the ball out of the cup, far
from it and fast, i.e. swing it around the cup on its string. The model is dm_control's, unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from dm_control.rl import control
from dm_control.suite import ball_in_cup as dmc_ball_in_cup
from dm_control.suite import base
from dm_control.utils import rewards

from m3po.envs.dmc_custom._common import RandomArg, make_environment

# As dm_control's ball_in_cup: 20 s at 0.02 s per control step = 1000 control steps.
_TIME_LIMIT = 20.0
_CONTROL_TIMESTEP = 0.02
_TARGET_DISTANCE = 0.5  # m from the cup's target region
_TARGET_SPEED = 6.0  # m/s of the ball in the x-z plane
# Share of episodes that start with the ball anywhere; the others start with it in the cup, so the
# task is mostly to get it out and swinging.
_START_OUT_OF_CUP_PROB = 0.1


class Spin(dmc_ball_in_cup.BallInCup):
    """Swing the ball around the cup.

    Reward: ``(1 - in_cup) * (far + 2 * fast) / 3`` where ``far`` is linear in the ball's distance
    to the cup's target region (1 at 0.5 m, 0.5 at 0.25 m) and ``fast`` linear in the ball's speed
    (1 at 6 m/s, 0.5 at 3 m/s).

    :param random: seed or random state for the initial states
    """

    def initialize_episode(self, physics: dmc_ball_in_cup.Physics) -> None:
        """Put the ball at a random collision-free spot, in the cup in 90% of episodes."""
        start_anywhere = self.random.uniform() < _START_OUT_OF_CUP_PROB
        while True:
            physics.named.data.qpos["ball_x"] = self.random.uniform(-0.2, 0.2)
            physics.named.data.qpos["ball_z"] = self.random.uniform(0.2, 0.5)
            physics.after_reset()
            if physics.data.ncon == 0 and (start_anywhere or physics.in_target()):
                break
        # Skip BallInCup.initialize_episode (it would resample the ball) but keep base.Task's.
        base.Task.initialize_episode(self, physics)

    def get_reward(self, physics: dmc_ball_in_cup.Physics) -> float:
        """Reward in [0, 1]; 0 whenever the ball is in the cup."""
        distance = float(np.linalg.norm(physics.ball_to_target()))
        speed = float(np.linalg.norm(physics.named.data.qvel[["ball_x", "ball_z"]]))
        far = rewards.tolerance(
            distance,
            bounds=(_TARGET_DISTANCE, float("inf")),
            margin=_TARGET_DISTANCE / 2,
            value_at_margin=0.5,
            sigmoid="linear",
        )
        fast = rewards.tolerance(
            speed,
            bounds=(_TARGET_SPEED, float("inf")),
            margin=_TARGET_SPEED / 2,
            value_at_margin=0.5,
            sigmoid="linear",
        )
        return (1 - physics.in_target()) * (far + 2 * fast) / 3


def spin(random: RandomArg = None, environment_kwargs: dict[str, Any] | None = None) -> control.Environment:
    """cup-spin: swing the ball around the cup, far and fast.

    :param random: seed or random state for the initial states
    :param environment_kwargs: extra ``control.Environment`` arguments
    """
    physics = dmc_ball_in_cup.Physics.from_xml_string(*dmc_ball_in_cup.get_model_and_assets())
    return make_environment(
        physics,
        Spin(random=random),
        environment_kwargs,
        time_limit=_TIME_LIMIT,
        control_timestep=_CONTROL_TIMESTEP,
    )
