"""``m3po bench algos``: agent steps per second of every registered algorithm, ``cpu`` preset.

Each algorithm trains a short run on cartpole-swingup (multi-task algorithms on the 2-task set
cartpole-swingup + reacher-easy) in a temporary run directory, without evaluation, one torch thread
(``--threads``); the figure is agent steps over training seconds between its first and last
train.jsonl rows (so start-up, and SAC's random warm-up before the first row, are left out). The run's
length and the few preset overrides that keep it short are the registry's ``bench`` entry
(:class:`suite.registry.Algorithm`). An algorithm whose Python modules are missing is reported as such.

``ratios`` are measured in the same run: M3PO over stable-baselines3's PPO and TD-MPC2 over its SAC,
beside the targets of issue 16 (1.2 and 0.55). ``--compile`` also measures M3PO and TD-MPC2 with their
``compile`` switch on (``m3po+compile``, ``tdmpc2+compile``); ``--profile`` adds where the time of one
M3PO iteration and one TD-MPC2 agent step goes (:mod:`suite.bench.profiling`, docs/performance.md).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from suite.bench import at_least
from suite.registry import ALGORITHMS, Algorithm, get_algorithm

TASK = "cartpole-swingup"
TASK_SET = "cartpole-swingup,reacher-easy"


# (numerator, denominator, target) of each ratio, by the names in the JSON line
RATIOS = {
    "m3po/ppo": ("m3po", "ppo", 1.2),
    "tdmpc2/sac": ("tdmpc2", "sac", 0.55),
    "m3po+compile/ppo": ("m3po+compile", "ppo", 1.2),
    "tdmpc2+compile/sac": ("tdmpc2+compile", "sac", 0.55),
}
COMPILED = ("m3po", "tdmpc2")  # the algorithms with a ``compile`` switch


def measure(algo: Algorithm, threads: int, root: Path, **extra: Any) -> dict[str, Any]:
    """Train ``algo``'s bench run in ``root`` (with ``extra`` config updates) and return its steps/s."""
    missing = algo.missing_requirements()
    if missing:
        return {"status": "missing", "missing": missing}
    task = TASK_SET if algo.task_mode == "multi" else TASK
    steps = int(algo.bench.get("steps", 2048))
    cfg = algo.make_config(
        "cpu", task=task, steps=steps, eval_episodes=0, checkpoint_every=0, threads=threads,
        **algo.bench.get("overrides", {}), **extra,
    )  # fmt: skip
    run_dir = root / (algo.name + "".join(f"+{k}" for k in extra))
    start = time.perf_counter()
    algo.load_train()(cfg, run_dir, progress=False)
    total = time.perf_counter() - start
    rows = [json.loads(line) for line in (run_dir / "train.jsonl").read_text().splitlines()]
    first, last = rows[0], rows[-1]
    seconds = last["time/wall"] - first["time/wall"]
    measured = last["step"] - first["step"]
    return {
        "status": "ok",
        "task": task,
        "num_envs": cfg.num_envs,
        "sps": round(measured / seconds, 1) if seconds > 0 else None,
        "measured_steps": measured,
        "steps": last["step"],
        "seconds_total": round(total, 1),
    }


def ratios(measured: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    """The :data:`RATIOS` whose two algorithms were both measured, with their targets."""
    out = {}
    for name, (num, den, target) in RATIOS.items():
        a, b = measured.get(num, {}).get("sps"), measured.get(den, {}).get("sps")
        if a and b:
            out[name] = {"ratio": round(a / b, 3), "target": target}
    return out


def run(
    threads: int = 1, algos: list[str] | None = None, compile: bool = False, profile: bool = False
) -> dict[str, Any]:
    """Measure every registered algorithm (or ``algos``); see the module docstring."""
    import os

    import torch

    names = algos or list(ALGORITHMS)
    out: dict[str, Any] = {
        "preset": "cpu", "threads": threads, "cores": torch.get_num_threads(),
        "load": [round(x, 2) for x in os.getloadavg()],
    }  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="m3po-bench-algos-") as tmp:
        measured = {name: measure(ALGORITHMS[name], threads, Path(tmp)) for name in names}
        if compile:
            for name in (n for n in COMPILED if n in names):
                measured[f"{name}+compile"] = measure(ALGORITHMS[name], threads, Path(tmp), compile=True)
    out["algos"] = measured
    out["ratios"] = ratios(measured)
    if profile:
        from suite.bench import profiling

        torch.set_num_threads(threads)
        out["profile"] = profiling.run()
    out["load_after"] = [round(x, 2) for x in os.getloadavg()]
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=at_least(int), default=1, help="torch threads")
    parser.add_argument("--algos", default="", help="comma list of algorithms (default: all)")
    parser.add_argument(
        "--compile", action="store_true", help="also measure M3PO and TD-MPC2 with compile=True"
    )
    parser.add_argument(
        "--profile", action="store_true", help="also profile M3PO (8, 32 envs) and a TD-MPC2 step"
    )


def main(args: argparse.Namespace) -> dict[str, Any]:
    names = args.algos.split(",") if args.algos else None
    for name in names or []:
        get_algorithm(name)  # an unknown name fails here, listing the valid ones
    return run(
        threads=args.threads,
        algos=names,
        compile=getattr(args, "compile", False),
        profile=getattr(args, "profile", False),
    )
