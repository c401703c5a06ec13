"""The ``m3po`` command line: ``m3po tasks SUITE``, ``m3po bench NAME``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from m3po.config import ConfigError
from m3po.envs.registry import SUITES, UnknownTaskError, suite_tasks
from m3po.errors import RunDirectoryError
from suite.bench.learning import TASKS as LEARNING_TASKS


def _cmd_tasks(args: argparse.Namespace) -> int:
    print("\n".join(suite_tasks(args.suite)))
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from suite.experiment import run_from_args

    result = run_from_args(args.updates)
    print(json.dumps(result, default=str), flush=True)
    return 0


def _bench_envs(args: argparse.Namespace) -> dict[str, Any]:
    from suite.bench import envs

    return envs.run(seconds=args.seconds, scale_envs=args.scale_envs, scale_tasks=args.scale_tasks)


def _bench_planner(args: argparse.Namespace) -> dict[str, Any]:
    from suite.bench import planner

    return planner.run()


def _bench_learning(args: argparse.Namespace) -> dict[str, Any]:
    from suite.bench import learning

    return learning.run(
        steps=args.steps,
        seeds=args.seeds,
        jobs=args.jobs,
        alpha0_zero=args.alpha0_zero,
        tasks=tuple(args.tasks.split(",")),
        overrides=tuple(args.set),
        name=args.variant_name,
        algo=args.algo,
    )


def _bench_algos(args: argparse.Namespace) -> dict[str, Any]:
    from suite.bench import algos
    from suite.registry import get_algorithm

    names = args.algos.split(",") if args.algos else None
    for name in names or []:
        get_algorithm(name)  # an unknown name fails here, listing the valid ones
    return algos.run(threads=args.threads, algos=names)


def _bench_fidelity(args: argparse.Namespace) -> dict[str, Any]:
    from suite.bench import fidelity

    return fidelity.run(
        steps=args.steps,
        seeds=args.seeds,
        jobs=args.jobs,
        algos=tuple(args.algos.split(",")) if args.algos else fidelity.ALGOS,
        tasks=tuple(args.tasks.split(",")),
        compare_only=args.compare_only,
        overrides=tuple(args.set),
        name=args.variant_name,
    )


def _bench_eval_rules(args: argparse.Namespace) -> dict[str, Any]:
    from suite.bench import eval_rules

    runs = [d for d in args.runs.split(",") if d]
    return eval_rules.run(runs, episodes=args.episodes or None, threads=args.threads, overrides=args.set)


def _bench_dag(args: argparse.Namespace) -> dict[str, Any]:
    from suite.bench import dag

    return dag.run()


def _bench_analysis(args: argparse.Namespace) -> dict[str, Any]:
    from analysis import bench

    return bench.run()


BENCHMARKS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "algos": _bench_algos,
    "analysis": _bench_analysis,
    "dag": _bench_dag,
    "fidelity": _bench_fidelity,
    "learning": _bench_learning,
    "envs": _bench_envs,
    "eval-rules": _bench_eval_rules,
    "planner": _bench_planner,
}


def _cmd_bench(args: argparse.Namespace) -> int:
    print(json.dumps(BENCHMARKS[args.name](args)), flush=True)
    return 0


def _positive(kind: type) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value = kind(text)
        if value < 0:
            raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="m3po", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    tasks = commands.add_parser("tasks", help="print a suite's task names, one per line")
    tasks.add_argument("suite", help=f"one of: {', '.join(SUITES)}")
    tasks.set_defaults(func=_cmd_tasks)

    train = commands.add_parser(
        "train",
        help="train one run (a Sacred experiment): m3po train with algo=m3po task=cartpole-swingup seed=1",
    )
    train.add_argument("updates", nargs="*", help="'with' followed by key=value config updates")
    train.set_defaults(func=_cmd_train)

    bench = commands.add_parser("bench", help="run a benchmark and print one JSON line of figures")
    bench.add_argument("name", choices=sorted(BENCHMARKS))
    bench.add_argument("--seconds", type=_positive(float), default=3.0, help="measuring time per setting")
    bench.add_argument(
        "--scale-envs", type=_positive(int), default=1024, help="envs of the start-up/memory test (0: skip)"
    )
    bench.add_argument("--scale-tasks", default="mt80", help="task set of the start-up/memory test")
    bench.add_argument("--steps", type=_positive(int), default=100_000, help="learning: agent steps per run")
    bench.add_argument("--seeds", type=_positive(int), default=3, help="learning: seeds per task")
    bench.add_argument("--jobs", type=_positive(int), default=2, help="learning: runs at a time")
    bench.add_argument("--alpha0-zero", action="store_true", help="learning: also run without the bonus")
    bench.add_argument("--tasks", default=",".join(LEARNING_TASKS), help="learning: comma-separated tasks")
    bench.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="learning, fidelity: config override of the runs; eval-rules: of an extra rule (repeat)",
    )
    bench.add_argument("--variant-name", default="default", help="learning: name of the variant's run folder")
    bench.add_argument("--algo", default="m3po", help="learning: the algorithm to train")
    bench.add_argument("--threads", type=_positive(int), default=1, help="algos, eval-rules: torch threads")
    bench.add_argument("--algos", default="", help="algos, fidelity: comma list of algorithms (default: all)")
    bench.add_argument("--compare-only", action="store_true", help="fidelity: no training, compare")
    bench.add_argument("--runs", default="", help="eval-rules: comma list of M3PO run directories")
    bench.add_argument(
        "--episodes", type=_positive(int), default=0, help="eval-rules: episodes (0: the run's own)"
    )
    bench.set_defaults(func=_cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (UnknownTaskError, ConfigError, RunDirectoryError) as err:
        print(f"m3po: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
