"""``m3po bench envs``: raw dm_control stepping against the suite's wrappers and vector envs.

Figures are rates measured within one run, so compare them as ratios: the machine is shared.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import numpy as np

from suite.bench import at_least

TASK = "cartpole-swingup"
ACTION_REPEAT = 2  # physics-control steps per agent step (see registry.ACTION_REPEAT)


def raw_physics_rate(seconds: float) -> float:
    """dm_control control steps/s of cartpole-swingup in a plain ``env.step`` loop (no wrappers)."""
    from dm_control import suite

    env = suite.load("cartpole", "swingup", task_kwargs={"random": 0})
    spec = env.action_spec()
    rng = np.random.default_rng(0)
    actions = rng.uniform(spec.minimum, spec.maximum, size=(1000, *spec.shape))
    env.reset()
    steps = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for action in actions:
            if env.step(action).last():
                env.reset()
        steps += len(actions)
    return steps / (time.perf_counter() - start)


def vec_agent_rate(num_envs: int, mode: str, seconds: float) -> dict[str, float]:
    """Agent steps/s (summed over envs) through ``make_vec_env``, and its start-up seconds."""
    from m3po.envs import make_vec_env

    start = time.perf_counter()
    env = make_vec_env(TASK, num_envs, seed=0, mode=mode)
    startup = time.perf_counter() - start
    try:
        env.reset()
        rng = np.random.default_rng(0)
        actions = rng.uniform(-1, 1, size=(64, num_envs, env.act_dim)).astype(np.float32)
        steps = 0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            for batch in actions:
                env.step(batch)
            steps += len(actions) * num_envs
        rate = steps / (time.perf_counter() - start)
    finally:
        env.close()
    return {"agent_sps": rate, "startup_s": startup}


def _pss_mib(pid: int) -> float:
    """Proportional set size: shared copy-on-write pages split among the processes that map them."""
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no Pss line for pid {pid}")


def scale_figures(tasks: str, num_envs: int, steps: int, share_models: bool = True) -> dict[str, Any]:
    """Start-up time, memory per env and stepping rate of a large async multi-task vector env.

    :param share_models: the vector env's default (one compiled model per MuJoCo model, see
        ``m3po.envs.shared``); ``False`` compiles one per env, as before issue 16 (about 18 MiB per
        ``mt80`` env: 18 GiB for 1024)
    """
    from m3po.envs import make_vec_env

    load = os.getloadavg()[0]
    base = _pss_mib(os.getpid())
    start = time.perf_counter()
    env = make_vec_env(tasks, num_envs, seed=0, mode="async", share_models=share_models)
    startup = time.perf_counter() - start
    try:
        env.reset()
        workers = sum(_pss_mib(p.pid) for p in env._procs)
        # This process's growth can be negative (pages the kernel reclaimed meanwhile): said apart.
        total = _pss_mib(os.getpid()) - base + workers
        actions = np.zeros((num_envs, env.act_dim), dtype=np.float32)
        start = time.perf_counter()
        for _ in range(steps):
            env.step(actions)
        rate = steps * num_envs / (time.perf_counter() - start)
    finally:
        env.close()
    return {
        "measured": (
            "make_vec_env(tasks, num_envs, mode='async') in this process: startup_s is its wall clock; "
            "memory_mib the proportional set size (shared pages split among the processes mapping "
            "them) after reset, this process's growth plus every worker's; agent_sps over "
            f"{steps} steps with zero actions"
        ),
        "tasks": tasks,
        "num_envs": num_envs,
        "mode": "async",
        "share_models": share_models,
        "workers": len(env._procs),
        "cpus": os.cpu_count(),
        "load_average_1m": round(load, 2),
        "startup_s": round(startup, 2),
        "memory_mib": round(total, 1),
        "workers_memory_mib": round(workers, 1),
        "memory_per_env_mib": round(total / num_envs, 2),
        "agent_sps": round(rate, 1),
        "target_memory_mib": 8192,
        "target_startup_s": 40,
    }


def run(
    seconds: float = 3.0, scale_envs: int = 1024, scale_tasks: str = "mt80", scale_unshared: bool = False
) -> dict[str, Any]:
    """Measure everything; see the module docstring.

    :param seconds: measuring time per configuration
    :param scale_envs: envs of the start-up/memory measurement (0 skips it)
    :param scale_tasks: task set of that measurement
    :param scale_unshared: also measure it with one compiled model per env (the old way; 1024 mt80
        envs take about 18 GiB). Not a command-line flag: ``run(scale_unshared=True)``
    """
    raw = raw_physics_rate(seconds)
    figures: dict[str, Any] = {"task": TASK, "raw_physics_sps": round(raw, 1), "vec": {}}
    for mode in ("sync", "async"):
        for num_envs in (1, 4, 16, 64):
            result = vec_agent_rate(num_envs, mode, seconds)
            figures["vec"][f"{mode}_{num_envs}"] = {
                "agent_sps": round(result["agent_sps"], 1),
                "physics_sps": round(result["agent_sps"] * ACTION_REPEAT, 1),
                "startup_s": round(result["startup_s"], 3),
            }
    figures["sync16_over_raw"] = round(figures["vec"]["sync_16"]["physics_sps"] / raw, 3)
    figures["target_sync16_over_raw"] = 0.8
    if scale_envs:
        figures["scale"] = scale_figures(scale_tasks, scale_envs, steps=20)
        if scale_unshared:
            figures["scale_unshared"] = scale_figures(scale_tasks, scale_envs, steps=20, share_models=False)
    return figures


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=at_least(float), default=3.0, help="measuring time per setting")
    parser.add_argument(
        "--scale-envs", type=at_least(int), default=1024, help="envs of the start-up/memory test (0: skip)"
    )
    parser.add_argument("--scale-tasks", default="mt80", help="task set of the start-up/memory test")


def main(args: argparse.Namespace) -> dict[str, Any]:
    return run(
        seconds=args.seconds,
        scale_envs=args.scale_envs,
        scale_tasks=args.scale_tasks,
    )
