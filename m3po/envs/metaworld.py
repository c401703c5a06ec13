"""Meta-World v3 (goal-observable) tasks as gymnasium environments, with TD-MPC2's conventions.

Random goal at every reset (drawn from the env's own seeded generator), action repeat 2 with rewards
summed, 100 agent steps per episode, ``info["success"]`` from the last simulator step. TD-MPC2's
published curves used Meta-World v2: v3 curves are close relatives, not identical.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from m3po.envs.registry import task_info


def metaworld_env_id(task: str) -> str:
    """``mw-reach`` -> ``reach-v3-goal-observable``."""
    return task.removeprefix("mw-") + "-v3-goal-observable"


class MetaWorldEnv(gym.Env):
    """A goal-observable Meta-World v3 task.

    :param task: task name from ``mw50``, e.g. ``mw-reach``
    :param seed: seed of the env's generator (goal and object positions); ``reset(seed=s)`` reseeds it
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, task: str, seed: int) -> None:
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE

        self.task = task_info(task)
        if self.task.domain != "metaworld":
            raise ValueError(f"{task!r} is not a Meta-World task")
        self._env = ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE[metaworld_env_id(task)](seed=seed)
        # New goal at each reset, drawn from the seeded env generator rather than global numpy state.
        self._env._freeze_rand_vec = False
        self._env.seeded_rand_vec = True
        obs_dim = self._env.observation_space.shape[0]
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, self._env.action_space.shape, np.float32)
        self._steps = 0

    @property
    def mw_env(self):
        """The wrapped Meta-World environment."""
        return self._env

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._env.seed(seed)
        self._steps = 0
        obs, _ = self._env.reset()
        return obs.astype(np.float32), {"success": 0.0}

    def step(self, action: np.ndarray):
        action = np.clip(action, -1.0, 1.0).astype(np.float64)
        reward = 0.0
        for _ in range(self.task.action_repeat):
            obs, r, _, _, info = self._env.step(action)
            reward += float(r)
        self._steps += 1
        truncated = self._steps >= self.task.episode_length
        return obs.astype(np.float32), reward, False, truncated, {"success": float(info["success"])}
