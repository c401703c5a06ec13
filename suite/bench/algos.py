"""``m3po bench algos``: agent steps per second of every registered algorithm, ``cpu`` preset.

Each algorithm trains a short run on cartpole-swingup (multi-task algorithms on the 2-task set
cartpole-swingup + reacher-easy) in a temporary run directory, without evaluation, one torch thread
(``--threads``); the figure is agent steps over training seconds between its first and last
train.jsonl rows (so start-up, and SAC's random warm-up before the first row, are left out). The run's
length and the few preset overrides that keep it short are the registry's ``bench`` entry
(:class:`suite.registry.Algorithm`). An algorithm whose Python modules are missing is reported as such.
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


def measure(algo: Algorithm, threads: int, root: Path) -> dict[str, Any]:
    """Train ``algo``'s bench run in ``root`` and return its steps/s figures."""
    missing = algo.missing_requirements()
    if missing:
        return {"status": "missing", "missing": missing}
    task = TASK_SET if algo.task_mode == "multi" else TASK
    steps = int(algo.bench.get("steps", 2048))
    cfg = algo.make_config(
        "cpu", task=task, steps=steps, eval_episodes=0, checkpoint_every=0, threads=threads,
        **algo.bench.get("overrides", {}),
    )  # fmt: skip
    run_dir = root / algo.name
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


def run(threads: int = 1, algos: list[str] | None = None) -> dict[str, Any]:
    """Measure every registered algorithm (or ``algos``); see the module docstring."""
    import torch

    names = algos or list(ALGORITHMS)
    out: dict[str, Any] = {"preset": "cpu", "threads": threads, "cores": torch.get_num_threads()}
    with tempfile.TemporaryDirectory(prefix="m3po-bench-algos-") as tmp:
        out["algos"] = {name: measure(ALGORITHMS[name], threads, Path(tmp)) for name in names}
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=at_least(int), default=1, help="torch threads")
    parser.add_argument("--algos", default="", help="comma list of algorithms (default: all)")


def main(args: argparse.Namespace) -> dict[str, Any]:
    names = args.algos.split(",") if args.algos else None
    for name in names or []:
        get_algorithm(name)  # an unknown name fails here, listing the valid ones
    return run(threads=args.threads, algos=names)
