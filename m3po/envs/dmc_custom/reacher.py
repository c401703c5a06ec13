"""Custom reacher tasks: reacher-three-easy and reacher-three-hard.

Definitions from TD-MPC2's ``tdmpc2/envs/tasks/reacher.py``: dm_control's reacher task (random
joint angles and target, sparse reward for the finger touching the target, same observations) on a
three-link arm, ``reacher_three_links.xml`` in this package.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from dm_control.rl import control
from dm_control.suite import common
from dm_control.suite import reacher as dmc_reacher

from m3po.envs.dmc_custom._common import RandomArg, make_environment

# As dm_control's reacher: 20 s at the model's 0.02 s step = 1000 control steps.
_TIME_LIMIT = 20.0
_BIG_TARGET = 0.05  # target radius (m), easy
_SMALL_TARGET = 0.015  # target radius (m), hard
_MODEL_FILE = "reacher_three_links.xml"


def get_model_and_assets() -> tuple[str, dict[str, str]]:
    """The three-link reacher's XML and the dm_control assets it includes."""
    xml = resources.files(__package__).joinpath(_MODEL_FILE).read_text(encoding="utf-8")
    return xml, common.ASSETS


def _environment(
    target_size: float, random: RandomArg, environment_kwargs: dict[str, Any] | None
) -> control.Environment:
    physics = dmc_reacher.Physics.from_xml_string(*get_model_and_assets())
    task = dmc_reacher.Reacher(target_size=target_size, random=random)
    return make_environment(physics, task, environment_kwargs, time_limit=_TIME_LIMIT)


def three_easy(
    random: RandomArg = None, environment_kwargs: dict[str, Any] | None = None
) -> control.Environment:
    """reacher-three-easy: touch a 0.05 m target with the three-link arm.

    :param random: seed or random state for the initial states and targets
    :param environment_kwargs: extra ``control.Environment`` arguments
    """
    return _environment(_BIG_TARGET, random, environment_kwargs)


def three_hard(
    random: RandomArg = None, environment_kwargs: dict[str, Any] | None = None
) -> control.Environment:
    """reacher-three-hard: touch a 0.015 m target with the three-link arm.

    :param random: seed or random state for the initial states and targets
    :param environment_kwargs: extra ``control.Environment`` arguments
    """
    return _environment(_SMALL_TARGET, random, environment_kwargs)
