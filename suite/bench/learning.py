"""``m3po bench learning``: the learning bar, with the ``cpu`` preset.

Trains M3PO on cartpole-swingup, reacher-easy and walker-stand, 3 seeds each, 100k agent steps, as
separate ``m3po train`` processes (``--jobs`` at a time, one torch thread each), and prints one JSON
line: the mean final evaluation score per task with its per-seed values, and the share of clipped
PPO ratios in the last iteration. ``--alpha0-zero`` adds the same runs without the exploration bonus.
``--set KEY=VALUE`` (repeatable) trains a variant of the default config, stored under ``--variant-name``;
``--tasks`` picks a subset of the tasks (screening); ``--algo`` trains another registered algorithm on
the same bar (e.g. ``ppo``, stable-baselines3's, for the README's side-by-side table).
Runs live in ``results/bench/learning/{name}/{task}/seed{seed}`` (``{name}-alpha0=0`` without the
bonus); a finished run is read, not retrained, so an interrupted benchmark continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from m3po.config import check_overrides
from m3po.errors import RunDirectoryError
from m3po.record import config_differences, read_status
from suite.bench import at_least
from suite.experiment import recorded_config

TASKS = ("cartpole-swingup", "reacher-easy", "walker-stand")
NO_BONUS = ["bonus.alpha0=0.0"]


def _run_one(run_dir: Path, task: str, seed: int, steps: int, extra: list[str]) -> None:
    updates = [f"task={task}", f"seed={seed}", f"steps={steps}", *extra]
    if read_status(run_dir).get("status") == "finished":
        # A finished run is read, not retrained, but only if it is the run this command asks for: a
        # run trained under an older default or another budget would pass stale figures off as new.
        recorded = json.loads((run_dir / "config.json").read_text())
        wanted, defaults = recorded_config(updates)
        diff = config_differences(recorded, wanted, defaults)
        if diff:
            raise RunDirectoryError(
                f"{run_dir} holds a finished run with another config (differs in: {', '.join(diff)}); "
                "move it away or pick another --variant-name"
            )
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "suite.cli", "train", "with", *updates,
        f"run_dir={run_dir}", "progress=False", "threads=1",
    ]  # fmt: skip
    with (run_dir / "bench.log").open("a") as log:
        subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=True)


def _summarise(run_dir: Path) -> dict[str, float]:
    evals = [json.loads(line) for line in (run_dir / "eval.jsonl").read_text().splitlines()]
    train = [json.loads(line) for line in (run_dir / "train.jsonl").read_text().splitlines()]
    # Share of ratios outside the clip range over every minibatch of the last iteration (M3PO's key, then
    # stable-baselines3's PPO's); algorithms without a ratio have none.
    last = train[-1]
    clip = last.get("ppo/clip_fraction", last.get("train/clip_fraction"))
    return {"score": evals[-1]["score"], "clip_fraction_last": clip}


def _mean_or_none(values: list[float | None]) -> float | None:
    return None if None in values else round(sum(values) / len(values), 3)


def run(
    steps: int = 100_000,
    seeds: int = 3,
    jobs: int = 2,
    alpha0_zero: bool = False,
    tasks: tuple[str, ...] = TASKS,
    overrides: tuple[str, ...] = (),
    name: str = "default",
    algo: str = "m3po",
    root: str = "results/bench/learning",
) -> dict[str, Any]:
    """Train (or read) every run, then summarise; see the module docstring."""
    check_overrides(overrides)
    overrides = (f"algo={algo}", *overrides)
    variants = {name: list(overrides)}
    if alpha0_zero:
        variants[f"{name}-alpha0=0" if name != "default" else "alpha0=0"] = [*overrides, *NO_BONUS]
    plan = [
        (Path(root) / variant / task / f"seed{seed}", task, seed, extra)
        for variant, extra in variants.items()
        for task in tasks
        for seed in range(1, seeds + 1)
    ]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for future in [pool.submit(_run_one, d, t, s, steps, e) for d, t, s, e in plan]:
            future.result()
    figures: dict[str, Any] = {"steps": steps, "seeds": seeds, "preset": "cpu", "overrides": list(overrides)}
    for variant in variants:
        per_task = {}
        for task in tasks:
            results = [_summarise(Path(root) / variant / task / f"seed{s}") for s in range(1, seeds + 1)]
            scores = [round(r["score"], 1) for r in results]
            per_task[task] = {
                "mean": round(sum(scores) / len(scores), 1),
                "seeds": scores,
                "clip_fraction_last": _mean_or_none([r["clip_fraction_last"] for r in results]),
            }
        figures[variant] = per_task
    return figures


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--steps", type=at_least(int), default=100_000, help="agent steps per run")
    parser.add_argument("--seeds", type=at_least(int), default=3, help="seeds per task")
    parser.add_argument("--jobs", type=at_least(int), default=2, help="runs at a time")
    parser.add_argument("--alpha0-zero", action="store_true", help="also run without the exploration bonus")
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated tasks")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="config override of the runs (repeat)"
    )
    parser.add_argument("--variant-name", default="default", help="name of the variant's run folder")
    parser.add_argument("--algo", default="m3po", help="the algorithm to train")


def main(args: argparse.Namespace) -> dict[str, Any]:
    return run(
        steps=args.steps,
        seeds=args.seeds,
        jobs=args.jobs,
        alpha0_zero=args.alpha0_zero,
        tasks=tuple(args.tasks.split(",")),
        overrides=tuple(args.set),
        name=args.variant_name,
        algo=args.algo,
    )
