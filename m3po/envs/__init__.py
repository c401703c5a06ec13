"""Benchmark environments: one registry for DMControl (dmc39), Meta-World (mw50), their task sets
(mt30, mt80) and DeepMind Lab (dmlab30). See ``shared/spec/benchmarks.md`` for the conventions.
"""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym

from m3po.envs.registry import (
    DMC39,
    DMC_CUSTOM,
    DMLAB30,
    MT30,
    MT80,
    MW50,
    SUITES,
    TaskInfo,
    UnknownTaskError,
    resolve_tasks,
    suite_tasks,
    task_info,
)
from m3po.envs.shared import ModelCache, SharedModelError
from m3po.envs.vector import MODES, VecEnv

__all__ = [
    "DMC39", "DMC_CUSTOM", "DMLAB30", "MODES", "MT30", "MT80", "MW50", "ModelCache", "SUITES",
    "SharedModelError", "TaskInfo", "UnknownTaskError", "VecEnv", "make_env", "make_vec_env",
    "resolve_tasks", "suite_tasks", "task_dims", "task_info",
]  # fmt: skip

# (observation size, action size) per task, so task sets can be padded without building every env
# first. tests/test_envs.py checks each entry against the built environment.
_DMC_DIMS: dict[str, tuple[int, int]] = {
    "acrobot": (6, 1), "cartpole": (5, 1), "cheetah": (17, 6), "cup": (8, 2), "dog": (223, 38),
    "finger-spin": (9, 2), "finger-turn": (12, 2), "fish": (24, 5), "hopper": (15, 4),
    "humanoid": (67, 21), "pendulum": (3, 1), "quadruped": (78, 12), "reacher-three": (8, 3),
    "reacher": (6, 2), "walker": (24, 6),
}  # fmt: skip
_METAWORLD_DIMS = (39, 4)
_DMLAB_DIMS = (64 * 64 * 3, 7)


def task_dims(task: str) -> tuple[int, int]:
    """(observation size, action size) of ``task`` with the default settings."""
    info = task_info(task)
    if info.domain == "metaworld":
        return _METAWORLD_DIMS
    if info.domain == "dmlab":
        return _DMLAB_DIMS
    for prefix, dims in _DMC_DIMS.items():  # longest prefixes first where they overlap
        if task.startswith(prefix):
            return dims
    raise KeyError(f"no dimensions recorded for {task!r}")


def make_env(task: str, seed: int, *, models: ModelCache | None = None) -> gym.Env:
    """Build one environment of ``task`` following the suite's conventions.

    Actions in [-1, 1]; action repeat 2 (DMControl, Meta-World) with summed rewards; 500 agent steps
    per DMControl episode, 100 per Meta-World episode (time limit only: ``terminated`` is never
    set); Meta-World's ``info["success"]``.

    :param task: a task name (``m3po tasks dmc39`` lists them)
    :param seed: a non-negative integer seed
    :param models: a :class:`~m3po.envs.shared.ModelCache`: the env shares its compiled MuJoCo model
        with the other envs built with the same cache (same dynamics, far less memory; see
        :mod:`m3po.envs.shared`). ``None`` (default): the env compiles its own.
    :raises UnknownTaskError: for an unknown task, naming the closest valid names
    """
    info = task_info(task)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return _build_env(info, seed, models)


def _build_env(info: TaskInfo, seed: int, models: ModelCache | None) -> gym.Env:
    if info.domain == "dmc":
        from m3po.envs.dmc import DMCEnv

        return DMCEnv(info.name, seed, models=models)
    if info.domain == "metaworld":
        from m3po.envs.metaworld import MetaWorldEnv

        return MetaWorldEnv(info.name, seed, models=models)
    from m3po.envs.dmlab import make_dmlab_env

    return make_dmlab_env(info.name, seed)


def make_vec_env(
    tasks: str | Sequence[str],
    num_envs: int,
    seed: int = 0,
    mode: str = "sync",
    workers: int | None = None,
    share_models: bool = True,
) -> VecEnv:
    """Vectorized environments over one task or a task set; see :class:`m3po.envs.vector.VecEnv`.

    :param tasks: a task, a suite or task-set name (``mt80``), a comma-separated list or a sequence
    :param num_envs: number of environments (>= 1, and >= the number of tasks)
    :param seed: base seed; env ``i`` gets ``seed + i``
    :param mode: ``sync`` or ``async``
    :param workers: worker processes for ``async`` (default: CPU count)
    :param share_models: envs of the same MuJoCo model share one compiled model (default; see
        :mod:`m3po.envs.shared`); ``False`` compiles one per env, as before (for comparisons)
    """
    return VecEnv(tasks, num_envs, seed=seed, mode=mode, workers=workers, share_models=share_models)
