"""``m3po bench fidelity``: our TD-MPC2, SAC and DreamerV3 beside the results their authors published.

Trains ``tdmpc2``, ``sac`` and ``dreamerv3`` on cartpole-swingup, reacher-easy and walker-stand, 3 seeds
each, 100k agent steps (the learning bar's tasks, started the way ``m3po bench learning`` starts its runs:
``m3po train`` processes, ``--jobs`` at a time, one torch thread each), then compares each algorithm and
task with the per-seed returns the TD-MPC2 authors published for the same algorithm at the same agent
step (``baselines/published/tdmpc2_results.yaml``, vendored from their repository's ``results/`` CSVs
with the path and commit of every entry). The CSVs count environment steps, the agent's steps times the
action repeat of 2 (the maintainer's word in nicklashansen/tdmpc2 issue #45): 100k agent steps of ours
are their step 200000. ``--compare-only`` trains nothing and compares whatever runs exist. Prints one
JSON line: per algorithm and task our per-seed scores at the first evaluation at or after agent step
100000, the published per-seed values at environment step 200000 with their min, max and mean, and a
verdict: ``inside`` (our seed mean within [published min, published max]), ``below``, ``above``, or
``not run`` (no seed has reached agent step 100000; ``command`` says what would produce it).

Runs live in ``results/bench/fidelity/{algo}/{task}/seed{seed}`` (``results/bench/fidelity-{name}/...``
for a variant trained with ``--set KEY=VALUE --variant-name NAME``, e.g. ``--set preset=paper``); a
finished run is read, not retrained, and an interrupted one resumes. A run that fails is reported in its
seed's entry; the others still train and are compared.
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import shlex
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from analysis.verdicts import FIDELITY_VERDICTS, READ_TOLERANCE, fidelity_verdict, read_at
from m3po.config import ConfigError, check_overrides
from m3po.envs.registry import ACTION_REPEAT as ENV_ACTION_REPEAT
from m3po.record import read_jsonl
from suite.bench import at_least
from suite.bench.learning import TASKS, _run_one

ALGOS = ("tdmpc2", "sac", "dreamerv3")
AGENT_STEP = 100_000  # where ours and the published curves are compared, in agent steps
ACTION_REPEAT = ENV_ACTION_REPEAT["dmc"]  # ours; the published CSVs count agent steps x the same 2
PUBLISHED_STEP = AGENT_STEP * ACTION_REPEAT  # the CSVs' row for AGENT_STEP (their grid: every 100000)
ROOT = "results/bench/fidelity"
VERDICTS = FIDELITY_VERDICTS


def published_path() -> Path:
    """The vendored published results (``baselines/published/tdmpc2_results.yaml``)."""
    return Path(str(importlib.resources.files("baselines.published") / "tdmpc2_results.yaml"))


def load_published(path: Path | None = None) -> dict[str, dict[str, dict[str, Any]]]:
    """``{algo: {task: {"path", "commit", "reward": {step: {seed: return or None}}}}}`` from the YAML."""
    return yaml.safe_load((path or published_path()).read_text())["results"]


def _choose(values: tuple[str, ...], valid: tuple[str, ...], kind: str) -> tuple[str, ...]:
    """``values`` without repeats; an empty list or an unknown name fails, naming the valid ones."""
    if not values:
        raise ConfigError(f"no {kind} given; valid: {', '.join(valid)}")
    for value in values:
        if value not in valid:
            raise ConfigError(
                f"unknown {kind} {value!r} for the fidelity benchmark; valid: {', '.join(valid)}"
            )
    return tuple(dict.fromkeys(values))


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def our_seed(run_dir: Path, task: str, step: int = AGENT_STEP) -> dict[str, Any]:
    """One run's score at ``step`` as the claims report reads it (:func:`analysis.verdicts.read_at`: the
    first evaluation at or past ``step``, within 5% of it), with the run's status.

    :return: ``status`` (the run record's, or ``not run``), ``score`` and ``eval_step`` (None when no
        evaluation is read at ``step``), ``preset`` (from config.json) and a ``note`` when there is no score
    """
    status = _read_json(run_dir / "status.json")
    if status is None:
        return {"status": "not run", "score": None, "eval_step": None}
    config = _read_json(run_dir / "config.json") or {}
    rows = [r for r in read_jsonl(run_dir / "eval.jsonl") if r.get("task", task) == task and "score" in r]
    read = read_at([r["step"] for r in rows], step)
    entry: dict[str, Any] = {"status": status.get("status", "unknown"), "preset": config.get("preset")}
    if read is not None:
        first = next(r for r in rows if r["step"] == read)
        entry.update(score=round(float(first["score"]), 1), eval_step=read)
    else:
        last = max((r["step"] for r in rows), default=None)
        entry.update(
            score=None,
            eval_step=None,
            note=f"no evaluation within {READ_TOLERANCE:.0%} at or past step {step} (last: {last})",
        )
    return entry


def _command(algo: str, task: str, seeds: int, steps: int, overrides: tuple[str, ...], name: str) -> str:
    argv = ["m3po", "bench", "fidelity", "--algos", algo, "--tasks", task, "--seeds", str(seeds)]
    argv += ["--steps", str(max(steps, AGENT_STEP))]
    for override in overrides:
        argv += ["--set", override]
    if name != "default":
        argv += ["--variant-name", name]
    return shlex.join(argv)


def _train(plan: list[tuple[Path, str, int, str]], steps: int, jobs: int, overrides: tuple[str, ...]) -> dict:
    """Train every planned run (finished ones are skipped by ``_run_one``); the failures by run dir."""
    from suite.registry import get_algorithm

    for algo in dict.fromkeys(a for *_, a in plan):
        missing = get_algorithm(algo).missing_requirements()
        if missing:
            raise ConfigError(
                f"algo={algo} needs the Python modules {', '.join(missing)}, which are not installed"
            )
    errors: dict[Path, str] = {}
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {
            run_dir: pool.submit(_run_one, run_dir, task, seed, steps, [f"algo={algo}", *overrides])
            for run_dir, task, seed, algo in plan
        }
        for run_dir, future in futures.items():
            try:
                future.result()
            except subprocess.CalledProcessError as err:
                errors[run_dir] = (
                    f"m3po train exited with status {err.returncode}; see {run_dir / 'bench.log'}"
                )
    return errors


def run(
    steps: int = AGENT_STEP,
    seeds: int = 3,
    jobs: int = 2,
    algos: tuple[str, ...] = ALGOS,
    tasks: tuple[str, ...] = TASKS,
    compare_only: bool = False,
    overrides: tuple[str, ...] = (),
    name: str = "default",
    root: str = ROOT,
    published: dict[str, dict[str, dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """Train the missing runs (unless ``compare_only``), then compare; see the module docstring.

    :param root: where the runs live (a variant ``name`` other than ``default`` uses ``{root}-{name}``)
    :param published: the published results (default: :func:`load_published`)
    :raises ConfigError: an unknown algorithm or task, a budget <= 0, ``--set`` without a variant name
    """
    published = published if published is not None else load_published()
    algos = _choose(tuple(algos), ALGOS, "algo")
    tasks = _choose(tuple(tasks), tuple(t for t in TASKS if all(t in published[a] for a in ALGOS)), "task")
    for label, value in (("steps", steps), ("seeds", seeds), ("jobs", jobs)):
        if value <= 0:
            raise ConfigError(f"{label} must be > 0, got {value}")
    check_overrides(overrides)
    if overrides and name == "default":
        raise ConfigError(
            "--set changes the runs' config: give --variant-name NAME so that they live apart from the "
            f"default runs (in {root}-NAME)"
        )
    base = Path(root) if name == "default" else Path(f"{root}-{name}")
    plan = [
        (base / algo / task / f"seed{seed}", task, seed, algo)
        for algo in algos
        for task in tasks
        for seed in range(1, seeds + 1)
    ]
    errors = {} if compare_only else _train(plan, steps, jobs, overrides)

    figures: dict[str, Any] = {
        "agent_step": AGENT_STEP,
        "published_step": PUBLISHED_STEP,
        "published_step_unit": f"environment steps (agent steps x action repeat {ACTION_REPEAT})",
        "steps": steps,
        "seeds": seeds,
        "root": str(base),
        "overrides": list(overrides),
        "compare_only": compare_only,
        "source": "baselines/published/tdmpc2_results.yaml (from nicklashansen/tdmpc2, results/)",
    }
    counts = dict.fromkeys(VERDICTS, 0)
    for algo in algos:
        per_task = {}
        for task in tasks:
            ours = []
            for seed in range(1, seeds + 1):
                run_dir = base / algo / task / f"seed{seed}"
                entry = {"seed": seed, **our_seed(run_dir, task)}
                if run_dir in errors:
                    entry["error"] = errors[run_dir]
                ours.append(entry)
            scores = [e["score"] for e in ours if e["score"] is not None]
            mean = round(sum(scores) / len(scores), 1) if scores else None
            ref = published[algo][task]
            values = [float(v) for _, v in sorted(ref["reward"][PUBLISHED_STEP].items())]
            result: dict[str, Any] = {
                "verdict": fidelity_verdict(mean, values),
                "ours": {
                    "mean": mean,
                    "seeds": [e["score"] for e in ours],
                    "n": len(scores),
                    "runs": ours,
                    "presets": sorted({e["preset"] for e in ours if e.get("preset")}),
                },
                "published": {
                    "seeds": values,
                    "min": min(values),
                    "max": max(values),
                    "mean": round(sum(values) / len(values), 1),
                    "path": ref["path"],
                    "commit": ref["commit"],
                },
            }
            missing = [e["seed"] for e in ours if e["score"] is None]
            if missing:
                result["missing_seeds"] = missing
                result["command"] = _command(algo, task, seeds, steps, overrides, name)
            counts[result["verdict"]] += 1
            per_task[task] = result
        figures[algo] = per_task
    figures["verdicts"] = counts
    return figures


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--steps", type=at_least(int), default=AGENT_STEP, help="agent steps per run")
    parser.add_argument("--seeds", type=at_least(int), default=3, help="seeds per task")
    parser.add_argument("--jobs", type=at_least(int), default=2, help="runs at a time")
    parser.add_argument(
        "--algos", default="", help=f"comma list of algorithms (default: all, {', '.join(ALGOS)})"
    )
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated tasks")
    parser.add_argument(
        "--compare-only", action="store_true", help="train nothing: compare the runs that exist"
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="config override of the runs (repeat)"
    )
    parser.add_argument(
        "--variant-name", default="default", help="name of the variant (needed with --set): its runs' folder"
    )


def main(args: argparse.Namespace) -> dict[str, Any]:
    return run(
        steps=args.steps,
        seeds=args.seeds,
        jobs=args.jobs,
        algos=tuple(args.algos.split(",")) if args.algos else ALGOS,
        tasks=tuple(args.tasks.split(",")),
        compare_only=args.compare_only,
        overrides=tuple(args.set),
        name=args.variant_name,
    )
