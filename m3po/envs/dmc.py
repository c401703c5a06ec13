"""DeepMind Control tasks as gymnasium environments, with TD-MPC2's conventions.

Actions in [-1, 1] (rescaled to the task's actuator range), action repeat 2 with rewards summed,
500 agent steps per episode (time limit only), observations flattened to one float32 vector.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from dm_control import suite

from m3po.envs.registry import DMC_CUSTOM, task_info
from m3po.envs.shared import ModelCache

# TD-MPC2's short domain names.
_DOMAIN_ALIASES = {"cup": "ball_in_cup", "pointmass": "point_mass"}


def load_dmc(task: str, seed: int):
    """The raw dm_control environment of ``task`` (native action spec, no repeat).

    :param task: a DMControl task name, e.g. ``cartpole-swingup`` or ``cheetah-run-backwards``
    :param seed: seed of the task's random state (initial states, targets)
    """
    if task in DMC_CUSTOM:
        from m3po.envs import dmc_custom

        return dmc_custom.load(task, random=seed)
    domain, name = task.replace("-", "_").split("_", 1)
    return suite.load(_DOMAIN_ALIASES.get(domain, domain), name, task_kwargs={"random": seed})


class DMCEnv(gym.Env):
    """A DMControl task with actions in [-1, 1], action repeat and a time limit.

    :param task: task name from ``dmc39``
    :param seed: seed of the task's random state; ``reset(seed=s)`` reseeds it
    :param models: share the compiled model with the other envs built with this cache
        (see :mod:`m3po.envs.shared`); ``None`` compiles this env's own
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, task: str, seed: int, models: ModelCache | None = None) -> None:
        self.task = task_info(task)
        if self.task.domain != "dmc":
            raise ValueError(f"{task!r} is not a DMControl task")
        self._slot = None
        if models is None:
            self._env = load_dmc(task, seed)
        else:
            with models.dm_control_compiles():
                self._env = load_dmc(task, seed)
            self._slot = models.of(self._env.physics.model.ptr).slot()
        spec = self._env.action_spec()
        self._low = spec.minimum.astype(np.float64)
        self._half_range = (spec.maximum - spec.minimum).astype(np.float64) / 2.0
        obs_dim = sum(int(np.prod(v.shape)) for v in self._env.observation_spec().values())
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, spec.shape, np.float32)
        self._obs = np.empty(obs_dim, dtype=np.float32)
        self._steps = 0

    @property
    def physics(self):
        """The dm_control physics, for tests and diagnostics."""
        return self._env.physics

    @property
    def dm_env(self):
        """The wrapped dm_control environment."""
        return self._env

    def _flatten(self, observation) -> np.ndarray:
        out = np.empty_like(self._obs)
        start = 0
        for value in observation.values():
            flat = np.ravel(value)
            out[start : start + flat.size] = flat
            start += flat.size
        return out

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            # dm_control draws initial states from the task's RandomState.
            self._env.task._random = np.random.RandomState(seed)
        self._steps = 0
        if self._slot is None:
            return self._flatten(self._env.reset().observation), {}
        self._slot.before_reset()
        observation = self._env.reset().observation
        self._slot.after_reset()
        return self._flatten(observation), {}

    def step(self, action: np.ndarray):
        native = self._low + (np.clip(action, -1.0, 1.0) + 1.0) * self._half_range
        reward = 0.0
        if self._slot is not None:
            self._slot.enter()
        restarted = False
        for _ in range(self.task.action_repeat):
            time_step = self._env.step(native)
            restarted = restarted or time_step.first()  # dm_control resets when stepped past the end
            reward += time_step.reward or 0.0
        if self._slot is not None:
            if restarted:
                self._slot.after_reset()
            else:
                self._slot.after_step()
        self._steps += 1
        truncated = self._steps >= self.task.episode_length or time_step.last()
        return self._flatten(time_step.observation), reward, False, truncated, {}

    def close(self) -> None:
        if self._slot is not None:
            self._slot.release()
