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
from m3po.envs.shared import ModelCache, ModelSlot


def metaworld_env_id(task: str) -> str:
    """``mw-reach`` -> ``reach-v3-goal-observable``."""
    return task.removeprefix("mw-") + "-v3-goal-observable"


class MetaWorldEnv(gym.Env):
    """A goal-observable Meta-World v3 task.

    :param task: task name from ``mw50``, e.g. ``mw-reach``
    :param seed: seed of the env's generator (goal and object positions); ``reset(seed=s)`` reseeds it
    :param models: share the compiled model with the other envs built with this cache
        (see :mod:`m3po.envs.shared`); ``None`` compiles this env's own
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, task: str, seed: int, models: ModelCache | None = None) -> None:
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE

        self.task = task_info(task)
        if self.task.domain != "metaworld":
            raise ValueError(f"{task!r} is not a Meta-World task")
        env_cls = ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE[metaworld_env_id(task)]
        self._slot: ModelSlot | None = None
        if models is None:
            self._env = env_cls(seed=seed)
        else:
            # Meta-World's constructor compiles its model in gymnasium's
            # ``MujocoEnv._initialize_simulation``; this env's own copy of that method takes the
            # model from the cache instead. The constructor resets the env (writing the model), so
            # it runs between the slot's before_reset and after_reset.
            env = env_cls.__new__(env_cls)
            env._initialize_simulation = lambda: _shared_simulation(env, models)
            env.__init__(seed=seed)
            del env._initialize_simulation
            self._slot = env.__dict__.pop("_m3po_slot")
            self._slot.after_reset()
            self._env = env
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
        if self._slot is None:
            obs, _ = self._env.reset()
        else:
            self._slot.before_reset()
            obs, _ = self._env.reset()
            self._slot.after_reset()
        return obs.astype(np.float32), {"success": 0.0}

    def step(self, action: np.ndarray):
        action = np.clip(action, -1.0, 1.0).astype(np.float64)
        reward = 0.0
        if self._slot is not None:
            self._slot.enter()
        for _ in range(self.task.action_repeat):
            obs, r, _, _, info = self._env.step(action)
            reward += float(r)
        if self._slot is not None:
            self._slot.after_step()
        self._steps += 1
        truncated = self._steps >= self.task.episode_length
        return obs.astype(np.float32), reward, False, truncated, {"success": float(info["success"])}

    def close(self) -> None:
        if self._slot is not None:
            self._slot.release()


def _shared_simulation(env, models: ModelCache):
    """gymnasium's ``MujocoEnv._initialize_simulation``, with the model from ``models``."""
    import mujoco

    shared = models.get(("mjcf-path", env.fullpath), lambda: mujoco.MjModel.from_xml_path(env.fullpath))
    model = shared.model
    # As gymnasium does: grow the offscreen framebuffer to the env's size (rendering only, not swapped).
    model.vis.global_.offwidth = max(model.vis.global_.offwidth, env.width)
    model.vis.global_.offheight = max(model.vis.global_.offheight, env.height)
    slot = shared.slot()
    slot.before_reset()
    env._m3po_slot = slot
    return model, mujoco.MjData(model)
