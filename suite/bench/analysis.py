"""``m3po bench analysis``: seconds to collect and aggregate a synthetic paper-size grid.

The grid is that of the paper's figures (``analysis.aggregate.FIGURES``): their suites' tasks from the
env registry (``m3po.envs.registry``; dmc39 and mw50 one task per run, mt80 one run per seed) and their
algorithms as the algorithm registry (``suite.registry``) names them, in its order. A figure's
algorithm that the registry lacks, or whose task mode does not fit the figure, is an error. The timing
itself is ``analysis.bench.run``, which knows no registry.
"""

from __future__ import annotations

import argparse
from typing import Any

from analysis import bench
from analysis.aggregate import FIGURES
from m3po.envs.registry import SUITES
from suite.bench import at_least
from suite.registry import ALGORITHMS, ALGOS

# Task modes that can run a figure's mode: one task per run, or a task set per run.
MODES = {"single": ("single", "any"), "multi": ("multi", "any")}


def grid() -> dict[str, Any]:
    """The figures' grid: ``single`` and ``multi`` (suite -> tasks), ``single_algos`` and ``multi_algos``.

    :raises ValueError: a figure shows an algorithm the registry does not hold, or one that cannot run
        the figure's mode
    """
    shown: dict[str, set[str]] = {"single": set(), "multi": set()}
    tasks: dict[str, dict[str, tuple[str, ...]]] = {"single": {}, "multi": {}}
    for name, spec in FIGURES.items():
        for algo in spec.algos:
            if algo not in ALGORITHMS:
                raise ValueError(
                    f"{name} shows {algo!r}, which suite.registry does not hold: {', '.join(ALGOS)}"
                )
            if ALGORITHMS[algo].task_mode not in MODES[spec.mode]:
                mode = ALGORITHMS[algo].task_mode
                raise ValueError(f"{name} is {spec.mode}-task, which {algo} (task_mode {mode!r}) cannot run")
        shown[spec.mode].update(spec.algos)
        tasks[spec.mode][spec.suite] = SUITES[spec.suite]
    return {
        "single": tasks["single"],
        "multi": tasks["multi"],
        "single_algos": tuple(algo for algo in ALGOS if algo in shown["single"]),
        "multi_algos": tuple(algo for algo in ALGOS if algo in shown["multi"]),
    }


def run(reps: int = 50_000, workers: int | None = None) -> dict[str, Any]:
    """Time collection and aggregation of the figures' grid (:func:`analysis.bench.run`).

    :param reps: bootstrap repetitions
    :param workers: threads (None: all cores)
    """
    return bench.run(**grid(), reps=reps, workers=workers)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reps", type=at_least(int, 1), default=50_000, help="bootstrap repetitions")
    parser.add_argument("--workers", type=at_least(int, 1), default=None, help="threads (default: all cores)")


def main(args: argparse.Namespace) -> dict[str, Any]:
    return run(reps=args.reps, workers=args.workers)
