"""``m3po bench learning``: a learning bar of M3PO (or another algorithm), with the ``cpu`` preset.

Trains every run of a named task set, 3 seeds each, as separate ``m3po train`` processes (``--jobs``
at a time, one torch thread each), and prints one JSON line. Task sets (``--task-set``):

- ``bar`` (default): cartpole-swingup, reacher-easy and walker-stand, 100k agent steps: the three tasks
  M3PO's first ``cpu`` defaults were tuned on.
- ``broad``: 8 DMControl tasks across 6 domains and 4 Meta-World tasks, 500k agent steps, read at 100k
  and 500k (one run, evaluated at both): the bar M3PO's defaults are chosen on, by its IQM.

The JSON line has, per variant and task, the mean final score with its per-seed values (and per step
read, ``by_step``), and the share of clipped PPO ratios in the last iteration; under ``iqm``, per
variant and step read, the IQM over tasks of the normalised score (DMControl return / 10, Meta-World
success %) with its 95% stratified-bootstrap interval (``analysis.stats``), and the same for the TD-MPC2
authors' published SAC, DreamerV3 and TD-MPC2 on the same tasks (their CSVs count environment steps:
agent step N is their row 2N); under ``published``, their per-task seeds; under ``goals``, the broad
bar's two goals where the runs to judge them exist. ``--with-ppo`` adds stable-baselines3's PPO
(rl-baselines3-zoo's settings) as the variant ``sb3-ppo`` (``{name}-sb3-ppo`` beside a
``--variant-name``); ``--alpha0-zero`` adds the same runs without the exploration bonus. ``--set
KEY=VALUE`` (repeatable) trains a variant of the default config, stored under ``--variant-name``;
``--tasks`` picks a subset of the set's tasks (screening); ``--algo`` trains another registered
algorithm in place of M3PO.
Runs live in ``results/bench/learning/{name}/{task}/seed{seed}`` (``{name}-alpha0=0`` without the
bonus); a finished run is read, not retrained, so an interrupted benchmark continues where it stopped.
A run shipped with the repository (``results/evidence/<profile>/...``: the evidence profile's runs record
the broad bar's config) that records the config asked for is read there instead of trained; the JSON
line lists them under ``shipped_runs_read``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from analysis.verdicts import READ_TOLERANCE, read_at
from m3po.config import ConfigError, check_overrides
from m3po.errors import RunDirectoryError
from m3po.record import EVAL_LOG, TRAIN_LOG, config_differences, read_config, read_jsonl, read_status
from suite.bench import at_least
from suite.experiment import recorded_config
from suite.publish import EVIDENCE_DIR


@dataclass(frozen=True)
class TaskSet:
    """A named learning bar: its tasks, the budget of each run and the steps its figures are read at."""

    tasks: tuple[str, ...]  # the tasks, DMControl first
    steps: int  # agent steps per run
    at: tuple[int, ...]  # agent steps the figures are read at (each an evaluation step of every run)


TASK_SETS = {
    # The three tasks M3PO's first cpu defaults were tuned on.
    "bar": TaskSet(("cartpole-swingup", "reacher-easy", "walker-stand"), 100_000, (100_000,)),
    # For choosing defaults: the bar, the four tasks of issue 17's first try (walker-walk, cheetah-run,
    # cup-catch, finger-spin) and hopper-stand (8 DMControl tasks, 6 domains), and 4 Meta-World tasks from
    # easy (reach, drawer-close) to harder (door-open, push).
    "broad": TaskSet(
        (
            "cartpole-swingup", "reacher-easy", "walker-stand", "walker-walk", "cheetah-run", "cup-catch",
            "finger-spin", "hopper-stand", "mw-reach", "mw-drawer-close", "mw-door-open", "mw-push",
        ),
        500_000,
        (100_000, 500_000),
    ),
}  # fmt: skip
TASKS = TASK_SETS["bar"].tasks
NO_BONUS = ["bonus.alpha0=0.0"]
PPO_VARIANT = "sb3-ppo"  # stable-baselines3's PPO with rl-baselines3-zoo's settings (baselines/sb3)
BOOTSTRAP_REPS = 10_000


def shipped_copy(
    task: str, seed: int, steps: int, extra: list[str], evidence: Path = EVIDENCE_DIR
) -> Path | None:
    """A finished run shipped with the repository (``results/evidence/<profile>/<algo>/<task>/<variant>/
    seed<n>``, e.g. the evidence profile's, which records the bar's config) that is the run asked for:
    read in place of training it. None when no shipped run records that config.

    :param evidence: where shipped runs are (relative to the working directory, as ``root``)
    """
    candidates = sorted(Path(evidence).glob(f"*/*/{task}/*/seed{seed}"))
    if not candidates:
        return None
    wanted, defaults = recorded_config([f"task={task}", f"seed={seed}", f"steps={steps}", *extra])
    for candidate in candidates:
        recorded = read_config(candidate)
        if read_status(candidate).get("status") == "finished" and recorded is not None:
            if not config_differences(recorded, wanted, defaults):
                return candidate
    return None


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


def _summarise(run_dir: Path, task: str, at: tuple[int, ...]) -> dict[str, Any]:
    """A finished run's final score, its scores at the steps ``at`` (each the run's first evaluation at
    or past it, within :data:`READ_TOLERANCE`: the claims report's rule; M3PO's 100k is 100,352), and
    its last clip share."""
    evals, train = read_jsonl(run_dir / EVAL_LOG), read_jsonl(run_dir / TRAIN_LOG)  # shipped: compressed
    by_step = {row["step"]: row["score"] for row in evals if row.get("task", task) == task}
    read = {step: read_at(by_step, step) for step in at}
    missing = [step for step, s in read.items() if s is None]
    if missing:
        raise RunDirectoryError(
            f"{run_dir}: no evaluation at agent step(s) {missing} or within {READ_TOLERANCE:.0%} past them "
            f"(evaluated at {sorted(by_step)}); train it with an eval_every that reaches them"
        )
    # Share of ratios outside the clip range over every minibatch of the last iteration (M3PO's key, then
    # stable-baselines3's PPO's); algorithms without a ratio have none.
    last = train[-1] if train else {}
    clip = last.get("ppo/clip_fraction", last.get("train/clip_fraction"))
    return {
        "score": evals[-1]["score"],
        "at": {step: by_step[s] for step, s in read.items()},
        "read_at": read,
        "clip_fraction_last": clip,
    }


def iqm_over_tasks(per_task: dict[str, list[float]]) -> dict[str, Any]:
    """IQM over tasks and seeds of normalised scores, with its 95% stratified-bootstrap interval.

    :param per_task: task -> its seeds' scores on the task's own scale (each task the same count ``R``)
    :return: ``iqm``, ``low``, ``high`` (rounded), ``tasks`` and ``seeds`` (``R``)
    """
    from analysis.collect import normalized_score
    from analysis.stats import interval_estimates

    tasks = sorted(per_task)
    counts = {len(per_task[t]) for t in tasks}
    if len(counts) != 1:
        raise ValueError(f"tasks have different seed counts: { {t: len(per_task[t]) for t in tasks} }")
    scores = np.array([[normalized_score(t, s) for s in per_task[t]] for t in tasks]).T  # (R, T)
    est = interval_estimates(scores, BOOTSTRAP_REPS, seed=0, gamma=50.0, names=("iqm",))["iqm"]
    return {
        "iqm": round(float(est.point), 2),
        "low": round(float(est.low), 2),
        "high": round(float(est.high), 2),
        "tasks": len(tasks),
        "seeds": counts.pop(),
    }


def _published(tasks: tuple[str, ...], at: tuple[int, ...]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Per published algorithm and step: the per-task seeds, and the IQM over tasks (None where a task
    has no published evaluation at that step, naming it)."""
    from analysis.aggregate import PUBLISHED_ALGOS, load_published, published_at

    published = load_published()
    seeds: dict[str, Any] = {}
    iqms: dict[str, Any] = {}
    for algo in PUBLISHED_ALGOS:
        for step in at:
            per_task = published_at(algo, tasks, step, published)
            seeds.setdefault(algo, {})[str(step)] = per_task
            missing = [t for t in tasks if t not in per_task]
            n = min((len(v) for v in per_task.values()), default=0)
            iqms.setdefault(f"published-{algo}", {})[str(step)] = (
                {"iqm": None, "missing": missing}
                if missing
                else iqm_over_tasks({t: v[:n] for t, v in per_task.items()})
            )
    return seeds, iqms


def _goals(iqm: dict[str, Any], variant: str, ppo_variant: str, at: tuple[int, ...]) -> dict[str, Any]:
    """The broad bar's goals for ``variant``: above SB3 PPO's IQM (``ppo_variant``'s runs) with intervals
    apart at every step read, and at or above the published SAC's IQM at the last; None where the runs
    to judge it are missing."""
    ours = iqm[variant]
    ppo = iqm.get(ppo_variant)
    beats_ppo = (
        None
        if ppo is None
        else all(ours[s]["iqm"] > ppo[s]["iqm"] and ours[s]["low"] > ppo[s]["high"] for s in map(str, at))
    )
    last = str(at[-1])
    sac = iqm["published-sac"][last]["iqm"]
    return {
        "above_sb3_ppo_intervals_apart": beats_ppo,
        f"at_or_above_published_sac_at_{last}": None if sac is None else ours[last]["iqm"] >= sac,
    }


def _mean_or_none(values: list[float | None]) -> float | None:
    return None if None in values else round(sum(values) / len(values), 3)


def run(
    steps: int | None = None,
    seeds: int = 3,
    jobs: int = 2,
    alpha0_zero: bool = False,
    task_set: str = "bar",
    tasks: tuple[str, ...] | None = None,
    overrides: tuple[str, ...] = (),
    name: str = "default",
    algo: str = "m3po",
    with_ppo: bool = False,
    root: str = "results/bench/learning",
) -> dict[str, Any]:
    """Train (or read) every run, then summarise; see the module docstring.

    :param steps: agent steps per run (default: the task set's); figures are read at the set's steps
        that do not exceed it, and at ``steps``
    :param task_set: a key of :data:`TASK_SETS`
    :param tasks: a subset of the set's tasks (default: all)
    """
    if task_set not in TASK_SETS:
        raise ConfigError(f"--task-set {task_set!r} is not valid; choose one of: {', '.join(TASK_SETS)}")
    bar = TASK_SETS[task_set]
    tasks = bar.tasks if tasks is None else tasks
    steps = bar.steps if steps is None else steps
    at = tuple(sorted({*(s for s in bar.at if s <= steps), steps}))
    check_overrides(overrides)
    overrides = (f"algo={algo}", *overrides)
    variants = {name: list(overrides)}
    if alpha0_zero:
        variants[f"{name}-alpha0=0" if name != "default" else "alpha0=0"] = [*overrides, *NO_BONUS]
    ppo = PPO_VARIANT if name == "default" else f"{name}-{PPO_VARIANT}"
    if with_ppo:
        variants[ppo] = ["algo=ppo"]
    # Each run's directory: the bench's own, unless only a shipped run records its config (read there).
    source: dict[tuple[str, str, int], Path] = {}
    plan = []
    for variant, extra in variants.items():
        for task in tasks:
            for seed in range(1, seeds + 1):
                own = Path(root) / variant / task / f"seed{seed}"
                shipped = None if (own / "status.json").exists() else shipped_copy(task, seed, steps, extra)
                source[variant, task, seed] = shipped or own
                if shipped is None:
                    plan.append((own, task, seed, extra))
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for future in [pool.submit(_run_one, d, t, s, steps, e) for d, t, s, e in plan]:
            future.result()
    figures: dict[str, Any] = {
        "task_set": task_set, "steps": steps, "at": list(at), "seeds": seeds, "preset": "cpu",
        "overrides": list(overrides),
        "shipped_runs_read": sorted(str(d) for d in source.values() if d.is_relative_to(EVIDENCE_DIR)),
    }  # fmt: skip
    iqm: dict[str, Any] = {}
    for variant in variants:
        per_task = {}
        for task in tasks:
            results = [_summarise(source[variant, task, s], task, at) for s in range(1, seeds + 1)]
            scores = [round(r["score"], 1) for r in results]
            by_step = {step: [round(r["at"][step], 1) for r in results] for step in at}
            per_task[task] = {
                "mean": round(sum(scores) / len(scores), 1),
                "seeds": scores,
                "by_step": {
                    str(k): {
                        "mean": round(sum(v) / len(v), 1),
                        "seeds": v,
                        "read_at": [r["read_at"][k] for r in results],  # each seed's evaluation step
                    }
                    for k, v in by_step.items()
                },
                "clip_fraction_last": _mean_or_none([r["clip_fraction_last"] for r in results]),
            }
        figures[variant] = per_task
        iqm[variant] = {
            str(step): iqm_over_tasks({t: per_task[t]["by_step"][str(step)]["seeds"] for t in tasks})
            for step in at
        }
    figures["published"], published_iqm = _published(tasks, at)
    figures["iqm"] = {**iqm, **published_iqm}
    figures["goals"] = _goals(figures["iqm"], name, ppo, at)
    return figures


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--task-set",
        default="bar",
        choices=list(TASK_SETS),
        help="the bar: bar (3 tasks, 100k) or broad (12, 500k)",
    )
    parser.add_argument(
        "--steps", type=at_least(int), default=None, help="agent steps per run (default: the set's)"
    )
    parser.add_argument("--seeds", type=at_least(int), default=3, help="seeds per task")
    parser.add_argument("--jobs", type=at_least(int), default=2, help="runs at a time")
    parser.add_argument("--alpha0-zero", action="store_true", help="also run without the exploration bonus")
    parser.add_argument("--with-ppo", action="store_true", help=f"also run SB3's PPO (variant {PPO_VARIANT})")
    parser.add_argument("--tasks", default=None, help="comma-separated tasks (default: the set's)")
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
        task_set=args.task_set,
        tasks=None if args.tasks is None else tuple(args.tasks.split(",")),
        overrides=tuple(args.set),
        name=args.variant_name,
        algo=args.algo,
        with_ppo=args.with_ppo,
    )
