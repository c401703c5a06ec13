"""Our environments as stable-baselines3 vectorized envs.

Single-task: ``make_env(task, seed + i)`` per env, each in SB3's ``Monitor``, in a ``DummyVecEnv``
(``vec_mode=sync``) or ``SubprocVecEnv`` (``async``), as SB3 is normally used. Multi-task:
:class:`m3po.envs.VecEnv` over the task set (env ``i`` runs task ``i mod n_tasks``; observations
zero-padded to the set's largest, actions padded to its largest and the padded dims never sent; its
``async`` mode shards 1024 envs over a few processes, where SB3's ``SubprocVecEnv`` would start one
per env) behind SB3's ``VecEnv`` interface, with a one-hot task id appended to each observation.
Time limits arrive as ``TimeLimit.truncated`` (SB3 bootstraps them).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv

from m3po.envs import VecEnv as M3POVecEnv
from m3po.envs import make_env, make_vec_env


class TaskSetVecEnv(VecEnv):
    """:class:`m3po.envs.VecEnv` (padded task set, ``sync`` or sharded ``async``) as an SB3 ``VecEnv``,
    with the one-hot task id appended to every observation.

    Episodes auto-reset within the step; an ended episode's last observation is in the step's
    ``infos[i]["terminal_observation"]``, a time limit is ``infos[i]["TimeLimit.truncated"]``, and its
    return and length in ``infos[i]["episode"]`` (what SB3's ``Monitor`` reports).

    :param env: the task-set env
    """

    def __init__(self, env: M3POVecEnv) -> None:
        self.env = env
        self.num_tasks = len(env.tasks)
        space = gym.spaces.Box(-np.inf, np.inf, (env.obs_dim + self.num_tasks,), np.float32)
        super().__init__(env.num_envs, space, env.single_action_space)
        self._actions: np.ndarray | None = None
        self._returns = np.zeros(env.num_envs)
        self._lengths = np.zeros(env.num_envs, dtype=np.int64)
        self._start = time.time()

    def _with_task(self, obs: np.ndarray) -> np.ndarray:
        return append_one_hot(obs, self.env.task_ids, self.num_tasks)

    def reset(self) -> np.ndarray:
        seed = self._seeds[0]  # SB3's seed(s) sets seed + i for env i, as our VecEnv.reset(seed) does
        obs, _ = self.env.reset(seed=seed)
        self._reset_seeds()
        self._returns[:] = 0
        self._lengths[:] = 0
        return self._with_task(obs)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions, dtype=np.float32)

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict]]:
        obs, reward, terminated, truncated, info = self.env.step(self._actions)
        self._returns += reward
        self._lengths += 1
        dones = terminated | truncated
        infos: list[dict] = [{} for _ in range(self.num_envs)]
        if dones.any():
            final = self._with_task(info["final_obs"])
            for i in np.flatnonzero(dones):
                infos[i]["terminal_observation"] = final[i]
                infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
                episode = {"r": float(self._returns[i]), "l": int(self._lengths[i])}
                infos[i]["episode"] = {**episode, "t": round(time.time() - self._start, 6)}
            self._returns[dones] = 0
            self._lengths[dones] = 0
        return self._with_task(obs), reward.astype(np.float32), dones, infos

    def close(self) -> None:
        self.env.close()

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        if attr_name == "render_mode":  # read by SB3's VecEnv: these envs do not render
            return [None] * len(self._indices(indices))
        raise AttributeError(f"TaskSetVecEnv offers no per-env attribute {attr_name!r}")

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        raise AttributeError(f"TaskSetVecEnv does not set per-env attributes (asked for {attr_name!r})")

    def env_method(self, method_name: str, *args: Any, indices: Any = None, **kwargs: Any) -> list[Any]:
        raise AttributeError(f"TaskSetVecEnv does not call per-env methods (asked for {method_name!r})")

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False] * len(self._indices(indices))

    def _indices(self, indices: Any) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        return [indices] if isinstance(indices, int) else list(indices)


def append_one_hot(obs: np.ndarray, task_ids: np.ndarray, num_tasks: int) -> np.ndarray:
    """Observations with the one-hot task id appended, as :class:`TaskSetVecEnv` gives them."""
    return np.concatenate([obs, np.eye(num_tasks, dtype=np.float32)[task_ids]], axis=1)


def _builder(task: str, seed: int) -> Callable[[], gym.Env]:
    return lambda: Monitor(make_env(task, seed))


def make_sb3_vec_env(tasks: tuple[str, ...], num_envs: int, seed: int, mode: str, multi_task: bool) -> VecEnv:
    """SB3 vectorized env over ``tasks``; env ``i`` gets task ``i mod n_tasks`` and seed ``seed + i``.

    :param tasks: the run's tasks (one for single-task algorithms)
    :param num_envs: number of envs (>= the number of tasks)
    :param seed: base seed
    :param mode: ``sync`` (one process) or ``async`` (worker processes)
    :param multi_task: the padded task set with one-hot task ids (:class:`TaskSetVecEnv`)
    """
    if multi_task:
        return TaskSetVecEnv(make_vec_env(list(tasks), num_envs, seed=seed, mode=mode))
    builders = [_builder(tasks[0], seed + i) for i in range(num_envs)]
    if mode == "async":
        return SubprocVecEnv(builders, start_method="fork")
    return DummyVecEnv(builders)
