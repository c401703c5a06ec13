"""The ``m3po`` command line: ``m3po tasks SUITE``, ``m3po train with ...``, ``m3po bench NAME``,
``m3po ship RUNS DEST``."""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from m3po import portable
from m3po.errors import RunDirectoryError

# numpy, torch and the environments are imported inside the commands: `m3po train with ...
# portable=True` re-executes itself (m3po.portable) before any of them is loaded.


def _cmd_tasks(args: argparse.Namespace) -> int:
    from m3po.envs.registry import suite_tasks

    print("\n".join(suite_tasks(args.suite)))
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from suite.experiment import run_from_args

    result = run_from_args(args.updates)
    print(json.dumps(result, default=str), flush=True)
    return 0


def _cmd_ship(args: argparse.Namespace) -> int:
    import platform

    from suite.publish import ShipError, ship_runs, unshipped_finished_runs

    try:
        runs, passed = unshipped_finished_runs(args.runs, args.dest) if args.new else (None, 0)
        if runs == []:
            print(f"nothing new to ship from {args.runs} ({passed} run(s) not finished or shipped already)")
            return 0
        written = ship_runs(args.runs, args.dest, hostnames=[platform.node()], runs=runs)
    except ShipError as err:
        print(f"m3po: error: {err}", file=sys.stderr)
        return 1
    more = f" ({passed} passed over: not finished or shipped already)" if args.new else ""
    print(f"shipped {len(written)} run(s) to {args.dest}{more}", flush=True)
    if written and args.dest.resolve().parent.name == "evidence":  # the README's findings rest on these
        profile = args.dest.resolve().name
        print(
            f"the README's findings now lag them: python -m analysis.findings build --profile {profile} "
            f"&& python -m analysis.findings readme --profile {profile}"
        )
    return 0


BENCHMARKS = (
    "algos", "analysis", "cost", "dag", "envs", "eval-rules", "fidelity", "gpu", "learning", "planner",
    "portable", "tdmpc2",
)  # fmt: skip
"""``m3po bench NAME`` runs ``suite/bench/NAME.py`` (``-`` read as ``_``); see :mod:`suite.bench`."""


def _bench_module(name: str) -> str:
    return f"suite.bench.{name.replace('-', '_')}"


def _summary(doc: str | None) -> str:
    """A benchmark's help line: its docstring's first paragraph, without the ``m3po bench NAME`` in front."""
    first = " ".join((doc or "").split("\n\n", 1)[0].split())
    return re.sub(r"^``m3po bench [\w-]+``:\s*", "", first).replace("``", "`")


def _docstring(module: str) -> str | None:
    """``module``'s docstring, read without importing it (some benchmarks import torch)."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return f"(missing: {module.replace('.', '/')}.py)"
    return ast.get_docstring(ast.parse(Path(spec.origin).read_text()))


def _add_benchmarks(bench: argparse.ArgumentParser, chosen: str | None) -> None:
    """One subcommand per benchmark. Only ``chosen``'s module is imported, to declare its flags."""
    names = bench.add_subparsers(dest="name", required=True, metavar="NAME")
    for name in BENCHMARKS:
        module = _bench_module(name)
        if name != chosen:
            names.add_parser(name, help=_summary(_docstring(module)))
            continue
        try:
            loaded = importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:
                raise
            bench.error(f"{name}: {module.replace('.', '/')}.py is missing")
        doc = (loaded.__doc__ or "").replace("``", "`")
        parser = names.add_parser(
            name,
            help=_summary(loaded.__doc__),
            description=doc,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        if hasattr(loaded, "add_arguments"):
            loaded.add_arguments(parser)
        parser.set_defaults(func=_cmd_bench, bench=loaded)


def _cmd_bench(args: argparse.Namespace) -> int:
    declared = getattr(args.bench, "main", None)
    figures = declared(args) if declared is not None else args.bench.run()
    print(json.dumps(figures), flush=True)
    return 0


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The parser of the command line ``argv``: of the benchmarks, only the one it names gets its flags."""
    parser = argparse.ArgumentParser(prog="m3po", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    from m3po.envs.registry import SUITES

    tasks = commands.add_parser("tasks", help="print a suite's task names, one per line")
    tasks.add_argument("suite", help=f"one of: {', '.join(SUITES)}")
    tasks.set_defaults(func=_cmd_tasks)

    train = commands.add_parser(
        "train",
        help="train one run (a Sacred experiment): m3po train with algo=m3po task=cartpole-swingup seed=1",
    )
    train.add_argument("updates", nargs="*", help="'with' followed by key=value config updates")
    train.set_defaults(func=_cmd_train)

    ship = commands.add_parser(
        "ship",
        help="copy finished runs' publishable files: m3po ship results/runs/P results/evidence/P",
        description=(
            "Copy the finished runs under RUNS to the same paths under DEST: config, status, logs and "
            "Sacred's records, no checkpoints or TensorBoard files (suite/publish.py). Every run is "
            "checked first: an incomplete run (suite.publish.check_complete), or a file with an "
            "absolute path, this host's name or a password, stops it with one line."
        ),
    )
    ship.add_argument("runs", type=Path, help="a run directory, or a directory of runs")
    ship.add_argument("dest", type=Path, help="where they go (e.g. results/evidence/PROFILE)")
    ship.add_argument(
        "--new", action="store_true",
        help="ship only the finished runs not in DEST yet, passing over the others (a campaign as it goes)",
    )  # fmt: skip
    ship.set_defaults(func=_cmd_ship)

    bench = commands.add_parser(
        "bench",
        help="run a benchmark and print one JSON line of figures",
        description="Run a benchmark and print one JSON line of figures; m3po bench NAME --help: its flags.",
    )
    _add_benchmarks(bench, argv[1] if len(argv) > 1 and argv[0] == "bench" else None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The ``m3po`` command. Started as a process (``argv`` None), ``m3po train with ... portable=True``
    first re-executes itself with portable mode's environment (:func:`m3po.portable.reexec_if_asked`);
    called in-process with ``argv``, it cannot, and such a run is refused before it writes anything."""
    if argv is None and sys.argv[1:2] == ["train"]:
        portable.reexec_if_asked(sys.argv[2:])
    argv = list(sys.argv[1:] if argv is None else argv)
    from m3po.config import ConfigError
    from m3po.envs.registry import UnknownTaskError

    args = build_parser(argv).parse_args(argv)
    try:
        status = args.func(args)
        sys.stdout.flush()
        return status
    except BrokenPipeError:
        # The reader left early (m3po tasks dmc39 | head -1): as the Python docs advise (signal module,
        # "Note on SIGPIPE"), point stdout at devnull so that the flush at exit does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (UnknownTaskError, ConfigError, RunDirectoryError) as err:
        print(f"m3po: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
