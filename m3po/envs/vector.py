"""Vectorized environments over one task or a task set, with padding and per-task action masks.

Env ``i`` runs task ``i mod n_tasks`` with seed ``seed + i``. Observations are zero-padded to the
task set's largest observation size and actions to its largest action size; each env only ever
receives its task's own action dimensions (padded dimensions are cut off before the env sees them).
Episodes auto-reset within the same step; the true last observation of an episode is returned in
``info["final_obs"]``.

Two modes:

- ``sync``: all envs in this process (gymnasium's ``SyncVectorEnv``).
- ``async``: the envs split into contiguous shards, one worker process per shard, each running a
  ``SyncVectorEnv`` of its shard. Shards rather than one process per env keep 1024 envs within a
  machine's memory and start-up time (gymnasium's ``AsyncVectorEnv`` starts a process per env).

Memory: by default the envs of one MuJoCo model share one compiled model (``share_models``; see
:mod:`m3po.envs.shared`, which keeps each env's dynamics exactly those of an env with its own
model). With ``fork`` the parent compiles each model once before starting the workers, so the
workers share its pages copy-on-write: one copy of each model on the machine, whatever the number
of workers, and no compile in the workers.
"""

from __future__ import annotations

import functools
import multiprocessing as mp
import os
import traceback
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from m3po.envs.registry import TaskInfo, resolve_tasks, task_info
from m3po.envs.shared import ModelCache

MODES = ("sync", "async")


class PaddedEnv(gym.Wrapper):
    """Pads a task's observations with zeros and drops the padded action dimensions.

    :param env: the task's environment
    :param obs_dim: padded observation size (the task set's largest)
    :param act_dim: padded action size (the task set's largest)
    """

    def __init__(self, env: gym.Env, obs_dim: int, act_dim: int) -> None:
        super().__init__(env)
        self._obs_size = env.observation_space.shape[0]
        self._act_size = env.action_space.shape[0]
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (act_dim,), np.float32)

    def _pad(self, obs: np.ndarray) -> np.ndarray:
        padded = np.zeros(self.observation_space.shape, dtype=np.float32)
        padded[: self._obs_size] = obs
        return padded

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return self._pad(obs), info

    def step(self, action: np.ndarray):
        obs, reward, terminated, truncated, info = self.env.step(action[: self._act_size])
        return self._pad(obs), reward, terminated, truncated, info


@dataclass(frozen=True)
class _EnvSpec:
    task: str
    seed: int
    obs_dim: int
    act_dim: int

    def build(self, models: ModelCache | None = None) -> gym.Env:
        from m3po.envs import make_env

        if models is None:
            env = make_env(self.task, self.seed)
        else:
            env = make_env(self.task, self.seed, models=models)
        if env.observation_space.shape[0] == self.obs_dim and env.action_space.shape[0] == self.act_dim:
            return env
        return PaddedEnv(env, self.obs_dim, self.act_dim)


class _Shard:
    """A contiguous slice of the envs, stepped in one process; returns dense arrays only.

    :param models: compiled models to share (``None``: each env compiles its own)
    """

    def __init__(self, specs: Sequence[_EnvSpec], models: ModelCache | None = None) -> None:
        self.envs = SyncVectorEnv(
            [functools.partial(spec.build, models) for spec in specs],
            copy=False,
            autoreset_mode=AutoresetMode.SAME_STEP,
        )
        self._success = np.full(len(specs), np.nan, dtype=np.float32)

    def reset(self, seeds: list[int] | None) -> np.ndarray:
        obs, _ = self.envs.reset(seed=seeds)
        return obs.copy()

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, ...]:
        obs, reward, terminated, truncated, info = self.envs.step(actions)
        obs = obs.copy()
        final_obs = obs
        success = self._success.copy()
        if "success" in info:
            success[info["_success"]] = info["success"][info["_success"]]
        if "final_obs" in info:
            final_obs = obs.copy()
            done = info["_final_obs"]
            final_obs[done] = np.stack(info["final_obs"][done])
            final_info = info["final_info"]
            if "success" in final_info:  # success at the episode's last step, not after the reset
                mask = final_info["_success"]
                success[mask] = final_info["success"][mask]
        return obs, reward.astype(np.float64), terminated.copy(), truncated.copy(), final_obs, success

    def close(self) -> None:
        self.envs.close()


def _shard_worker(
    conn: Connection, specs: list[_EnvSpec], share_models: bool, models: ModelCache | None
) -> None:
    # Workers step small MuJoCo models; extra BLAS/OpenMP threads would only fight over cores.
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        if share_models and models is None:
            models = ModelCache()
        shard = _Shard(specs, models)
        del models  # the envs hold their models
        conn.send(("ok", None))
    except Exception:  # noqa: BLE001 - any build failure is sent to the parent with its traceback
        conn.send(("error", traceback.format_exc()))
        return
    while True:
        try:
            command, data = conn.recv()
        except EOFError:  # parent went away
            break
        if command == "close":
            shard.close()
            conn.send(("ok", None))
            break
        try:
            conn.send(("ok", getattr(shard, command)(data)))
        except Exception:  # noqa: BLE001
            conn.send(("error", traceback.format_exc()))


class VecEnv:
    """A batch of environments over one task or a task set.

    :param tasks: a task name, a suite name (``mt80``), a comma-separated list or a sequence of names
    :param num_envs: number of environments; env ``i`` runs task ``i mod n_tasks``
    :param seed: base seed; env ``i`` is seeded with ``seed + i``
    :param mode: ``sync`` (one process) or ``async`` (worker processes, one per shard of envs)
    :param workers: number of worker processes in ``async`` mode (default: CPU count, at most num_envs)
    :param start_method: multiprocessing start method for ``async`` workers (default: fork where
        available, else the platform default)
    :param share_models: envs of the same MuJoCo model share one compiled model (see
        :mod:`m3po.envs.shared`); ``False`` compiles one per env

    Attributes agents use: ``tasks``, ``task_ids`` (num_envs,), ``action_mask`` (num_envs, act_dim),
    ``task_action_mask`` (n_tasks, act_dim), ``obs_dim``, ``act_dim``, ``task_obs_dims``,
    ``task_act_dims``, ``task_infos``.
    """

    def __init__(
        self,
        tasks: str | Sequence[str],
        num_envs: int,
        seed: int = 0,
        mode: str = "sync",
        workers: int | None = None,
        start_method: str | None = None,
        share_models: bool = True,
    ) -> None:
        self.tasks = resolve_tasks(tasks)
        _check_int("num_envs", num_envs, minimum=1)
        _check_int("seed", seed, minimum=0)
        if mode not in MODES:
            raise ValueError(f"unknown vector mode {mode!r}; valid modes: {', '.join(MODES)}")
        if num_envs < len(self.tasks):
            raise ValueError(
                f"num_envs={num_envs} is smaller than the task set ({len(self.tasks)} tasks): "
                "every task needs at least one env"
            )
        if workers is not None:
            _check_int("workers", workers, minimum=1)
        self.num_envs = num_envs
        self.mode = mode
        self.seed = seed
        self.share_models = bool(share_models)
        self.task_infos: tuple[TaskInfo, ...] = tuple(task_info(t) for t in self.tasks)
        self.task_obs_dims, self.task_act_dims = _task_dims(self.tasks)
        self.obs_dim = max(self.task_obs_dims)
        self.act_dim = max(self.task_act_dims)
        self.task_ids = np.arange(num_envs, dtype=np.int64) % len(self.tasks)
        self.task_action_mask = np.zeros((len(self.tasks), self.act_dim), dtype=np.float32)
        for i, size in enumerate(self.task_act_dims):
            self.task_action_mask[i, :size] = 1.0
        self.action_mask = self.task_action_mask[self.task_ids]
        self.env_tasks = tuple(self.tasks[i] for i in self.task_ids)
        self.single_observation_space = gym.spaces.Box(-np.inf, np.inf, (self.obs_dim,), np.float32)
        self.single_action_space = gym.spaces.Box(-1.0, 1.0, (self.act_dim,), np.float32)
        specs = [_EnvSpec(self.env_tasks[i], seed + i, self.obs_dim, self.act_dim) for i in range(num_envs)]
        self._closed = False
        self._shard: _Shard | None = None
        self._conns: list[Connection] = []
        self._procs: list[mp.process.BaseProcess] = []
        if mode == "sync":
            self._bounds = [(0, num_envs)]
            self._shard = _Shard(specs, ModelCache() if self.share_models else None)
        else:
            n_workers = min(workers or os.cpu_count() or 1, num_envs)
            edges = np.linspace(0, num_envs, n_workers + 1).round().astype(int)
            self._bounds = list(zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True))
            self._start_workers(specs, start_method)

    @property
    def task_counts(self) -> dict[str, int]:
        """Number of envs per task (uneven when num_envs is not a multiple of the set's size)."""
        return dict(Counter(self.env_tasks))

    def _start_workers(self, specs: list[_EnvSpec], start_method: str | None) -> None:
        if start_method is None:
            start_method = "fork" if "fork" in mp.get_all_start_methods() else None
        ctx = mp.get_context(start_method)
        # Forked workers inherit the parent's compiled models and share their pages (the parent
        # keeps its references through the Process objects, at no cost: the pages are shared).
        models = _compiled_models(specs) if self.share_models and ctx.get_start_method() == "fork" else None
        for lo, hi in self._bounds:
            parent, child = ctx.Pipe()
            args = (child, specs[lo:hi], self.share_models, models)
            proc = ctx.Process(target=_shard_worker, args=args, daemon=True)
            proc.start()
            child.close()
            self._conns.append(parent)
            self._procs.append(proc)
        try:
            self._gather()  # wait for every shard to build, surfacing the first failure
        except BaseException:
            self.close()
            raise

    def _gather(self) -> list[Any]:
        results = []
        errors = []
        for (lo, hi), conn in zip(self._bounds, self._conns, strict=True):
            try:
                status, payload = conn.recv()
            except EOFError:
                status, payload = "error", "worker process died"
            if status == "error":
                errors.append(f"envs {lo}..{hi - 1}: {payload}")
            results.append(payload)
        if errors:
            raise RuntimeError("vector env worker failed:\n" + "\n".join(errors))
        return results

    def _call(self, command: str, per_shard: list[Any]) -> list[Any]:
        if self._closed:
            raise RuntimeError("the vector env is closed")
        if self._shard is not None:
            return [getattr(self._shard, command)(per_shard[0])]
        for conn, data in zip(self._conns, per_shard, strict=True):
            conn.send((command, data))
        return self._gather()

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every env; with ``seed``, env ``i`` is reseeded with ``seed + i``.

        :return: observations (num_envs, obs_dim) float32 and ``{"task_id": task_ids}``
        """
        if seed is not None:
            _check_int("seed", seed, minimum=0)
        per_shard = [None if seed is None else list(range(seed + lo, seed + hi)) for lo, hi in self._bounds]
        obs = np.concatenate(self._call("reset", per_shard))
        return obs, {"task_id": self.task_ids}

    def step(self, actions: np.ndarray):
        """Step every env with ``actions`` (num_envs, act_dim); padded dims are zeroed, never sent.

        :return: obs (num_envs, obs_dim) float32, reward (num_envs,) float64, terminated and
            truncated (num_envs,) bool, and info with ``final_obs`` (num_envs, obs_dim: the last
            observation of an episode that ended this step, else the same as obs), ``success``
            (num_envs,) float32 (NaN for tasks without a success signal) and ``task_id``.
        """
        actions = np.asarray(actions, dtype=np.float32)
        if actions.shape != (self.num_envs, self.act_dim):
            raise ValueError(f"actions must have shape {(self.num_envs, self.act_dim)}, got {actions.shape}")
        actions = actions * self.action_mask
        results = self._call("step", [actions[lo:hi] for lo, hi in self._bounds])
        columns = (np.concatenate(column) for column in zip(*results, strict=True))
        obs, reward, terminated, truncated, final_obs, success = columns
        info = {"final_obs": final_obs, "success": success, "task_id": self.task_ids}
        return obs, reward, terminated, truncated, info

    def close(self) -> None:
        """Close the envs and stop the workers."""
        if self._closed:
            return
        self._closed = True
        if self._shard is not None:
            self._shard.close()
        for conn in self._conns:
            try:
                conn.send(("close", None))
                conn.recv()
            except (BrokenPipeError, EOFError, OSError):
                pass
            conn.close()
        for proc in self._procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()

    def __enter__(self) -> VecEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            self.close()


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


def _compiled_models(specs: Sequence[_EnvSpec]) -> ModelCache:
    """A cache holding the compiled model of every MuJoCo task in ``specs`` (one env built per task)."""
    from m3po.envs import _build_env

    models = ModelCache()
    seen: set[str] = set()
    for spec in specs:
        info = task_info(spec.task)
        if spec.task in seen or info.domain not in ("dmc", "metaworld"):
            continue
        seen.add(spec.task)
        _build_env(info, spec.seed, models).close()
    return models


def _task_dims(tasks: Sequence[str]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Observation and action sizes of each task, from a cached table or by building it once."""
    from m3po.envs import task_dims

    dims = [task_dims(t) for t in tasks]
    return tuple(d[0] for d in dims), tuple(d[1] for d in dims)
