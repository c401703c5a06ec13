"""Helpers shared by the custom-task modules: model edits and environment construction."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import numpy as np
from dm_control import mujoco
from dm_control.rl import control
from dm_control.suite import base, common

# What dm_control's task constructors accept as ``random``.
RandomArg = int | np.random.RandomState | None


def suite_model_with_longer_plane(model_filename: str, geom_name: str, x_size: float) -> str:
    """A dm_control suite model's XML with one plane geom's x half-size replaced.

    The custom backwards-running tasks only differ from dm_control's models in a longer ground
    plane, so we edit dm_control's own XML rather than shipping a modified copy of it.

    :param model_filename: file name of the model in ``dm_control/suite``, e.g. ``cheetah.xml``
    :param geom_name: name of the plane geom to lengthen
    :param x_size: new first ``size`` value of the geom (its half-extent along x, in metres)
    """
    root = ET.fromstring(common.read_model(model_filename))
    geom = root.find(f".//geom[@name='{geom_name}']")
    if geom is None or geom.get("type") != "plane":
        raise ValueError(f"{model_filename} has no plane geom named {geom_name!r}")
    size = geom.get("size", "").split()
    geom.set("size", " ".join([repr(float(x_size)), *size[1:]]))
    return ET.tostring(root, encoding="unicode")


def make_environment(
    physics: mujoco.Physics,
    task: base.Task,
    environment_kwargs: dict[str, Any] | None,
    *,
    time_limit: float,
    control_timestep: float | None = None,
) -> control.Environment:
    """A dm_control ``Environment`` with the domain's default time limit and control timestep.

    :param physics: the task's physics
    :param task: the task
    :param environment_kwargs: extra ``control.Environment`` arguments; a ``time_limit`` or
        ``control_timestep`` here overrides the domain's default
    :param time_limit: the domain's episode length in seconds
    :param control_timestep: the domain's control timestep in seconds; ``None`` means one physics
        step per control step (dm_control's default)
    """
    kwargs: dict[str, Any] = {"time_limit": time_limit}
    if control_timestep is not None:
        kwargs["control_timestep"] = control_timestep
    kwargs.update(environment_kwargs or {})
    return control.Environment(physics, task, **kwargs)
