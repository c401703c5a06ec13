"""Synthetic run directories in the exact format of the trainers' run record (:mod:`m3po.record`),
with known statistics.

:func:`write_run` writes one run from given scores (tests compute the expected statistics by
hand). :func:`write_grid` writes a whole benchmark grid whose final levels are the paper's claims
(DMC return, Meta-World success %, MT80 normalized score), for the figures and the benchmark.
Which tasks and algorithms make up a grid is the caller's to give (:class:`Grid`): this module knows
no registry (``suite/bench/analysis.py`` builds the paper's grid from the registries).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from analysis.collect import task_domain
from m3po.record import CONFIG_FILE, EVAL_LOG, STATUS_FILE, TRAIN_LOG

# Final levels as a fraction of a task's maximum (1000 return / 100 %): the paper's readings.
LEVELS: dict[str, dict[str, float]] = {
    "dmc39": {"m3po": 0.80, "ppo": 0.58, "dreamerv3": 0.49, "sac": 0.40},
    "mw50": {"m3po": 0.95, "ppo": 0.93, "dreamerv3": 0.79, "sac": 0.75},
    "mt80": {"m3po": 0.87, "tdmpc2": 0.87, "mt-ppo": 0.60, "mt-sac": 0.55},
}
EPISODES = 10


def _dump(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2))


def _dump_lines(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def write_run(
    run_dir: Path,
    *,
    task_set: str,
    seed: int,
    scores: Mapping[int, Mapping[str, float]],
    algo: str,
    status: str = "finished",
    variant: str | None = None,
    num_envs: int = 8,
    alpha0: float = 0.1,
    horizon: int = 3,
    sps: float = 1000.0,
    peak_rss_mib: float | None = 2048.0,
    error: str | None = None,
) -> Path:
    """Write one run directory.

    :param run_dir: created when absent
    :param task_set: ``config.json["task"]``
    :param seed: run seed
    :param scores: step -> task -> score (DMC return, or Meta-World success in %)
    :param algo: ``config.json["algo"]`` (as every trainer writes it)
    :param status: ``finished``, ``running``, ``interrupted`` or ``failed``
    :param variant: written to ``config.json`` when given
    :param num_envs: vectorized envs
    :param alpha0: ``bonus.alpha0``
    :param horizon: ``planner.horizon``
    :param sps: agent steps per second of every iteration (wall-clock follows from it)
    :param peak_rss_mib: ``mem/peak_rss_mib`` of every iteration (None: not recorded, as older runs)
    :param error: ``status.json["error"]`` when given
    :returns: ``run_dir``
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    steps = sorted(scores)
    last = steps[-1] if steps else 0
    config: dict[str, Any] = {"algo": algo, "task": task_set, "seed": seed, "steps": last}
    config.update(num_envs=num_envs, preset="cpu", bonus={"alpha0": alpha0}, planner={"horizon": horizon})
    if variant is not None:
        config["variant"] = variant
    _dump(run_dir / CONFIG_FILE, config)
    record: dict[str, Any] = {
        "status": status,
        "step": last,
        "steps_total": last,
        "attempts": [{"start_step": 0}],
    }
    evals = []
    for step in steps:
        by_task = scores[step]
        mean = float(np.mean(list(by_task.values())))
        for task, score in by_task.items():
            success = task_domain(task) == "metaworld"
            evals.append(
                {
                    "step": step,
                    "task": task,
                    "return": float(score) * (5.0 if success else 1.0),
                    "success": float(score) / 100 if success else None,
                    "score": float(score),
                    "episodes": EPISODES,
                    "score_mean": mean,
                }
            )
    if status == "finished":
        record["final_score"] = evals[-1]["score_mean"] if evals else None
    if error is not None:
        record["error"] = error
    _dump(run_dir / STATUS_FILE, record)
    _dump_lines(run_dir / EVAL_LOG, evals)
    train = [
        {"step": step, "iteration": i + 1, "time/sps": sps, "time/wall": step / sps, "loss/total": 1.0}
        for i, step in enumerate(steps)
    ]
    if peak_rss_mib is not None:
        for row in train:
            row["mem/peak_rss_mib"] = peak_rss_mib
    _dump_lines(run_dir / TRAIN_LOG, train)
    return run_dir


def curve(level: float, steps: np.ndarray, steps_total: int) -> np.ndarray:
    """Fraction of a task's maximum reached at ``steps``: saturates at ``level``.

    :param level: final fraction (in [0, 1])
    :param steps: ``(S,)`` agent steps
    :param steps_total: the budget
    """
    return level * (1 - np.exp(-4.0 * steps / steps_total)) / (1 - np.exp(-4.0))


@dataclass(frozen=True)
class Grid:
    """A synthetic benchmark grid.

    :param single: benchmarks run one task per run: suite -> its tasks (e.g. ``dmc39``, ``mw50``)
    :param multi: task sets run as one multi-task run per seed: suite -> its tasks (e.g. ``mt80``)
    :param single_algos: algorithms of the single-task benchmarks (registry names)
    :param multi_algos: algorithms of the multi-task sets (registry names)
    :param seeds: run seeds
    :param evals: evaluation points per run
    :param steps_total: budget of every run
    :param noise: standard deviation of a run's deviation from the curve, as a fraction of the maximum
    :param task_limit: use only the first tasks of each suite (None: all)
    :param levels: suite -> algorithm -> final fraction (every suite and algorithm of the grid)
    """

    single: Mapping[str, Sequence[str]]
    multi: Mapping[str, Sequence[str]]
    single_algos: tuple[str, ...]
    multi_algos: tuple[str, ...]
    seeds: tuple[int, ...] = (1, 2, 3, 4, 5)
    evals: int = 100
    steps_total: int = 1_000_000
    noise: float = 0.05
    task_limit: int | None = None
    levels: Mapping[str, Mapping[str, float]] = field(default_factory=lambda: LEVELS)


def _task_scores(
    rng: np.random.Generator, tasks: Sequence[str], level: float, steps: np.ndarray, grid: Grid
) -> dict[int, dict[str, float]]:
    frac = curve(level, steps, grid.steps_total)[:, None] + rng.normal(
        0, grid.noise, (len(steps), len(tasks))
    )
    frac = np.clip(frac, 0.0, 1.0)
    out: dict[int, dict[str, float]] = {}
    for i, step in enumerate(steps.tolist()):
        out[step] = {}
        for j, task in enumerate(tasks):
            if task_domain(task) == "metaworld":  # success over EPISODES episodes: multiples of 10 %
                out[step][task] = float(np.round(frac[i, j] * EPISODES) * 100 / EPISODES)
            else:
                out[step][task] = float(frac[i, j] * 1000)
    return out


def write_grid(root: Path, grid: Grid, seed: int = 0) -> int:
    """Write every run of ``grid`` under ``root/runs/{algo}/{task}/seed{seed}``.

    :param root: results directory
    :param grid: what to write
    :param seed: seed of the synthetic noise
    :raises ValueError: ``grid.levels`` has no level for one of its suites and algorithms
    :returns: number of run directories written
    """
    rng = np.random.default_rng(seed)
    steps = np.linspace(grid.steps_total / grid.evals, grid.steps_total, grid.evals).astype(int)
    written = 0
    jobs: list[tuple[str, str, list[str]]] = []
    for suite, suite_tasks in grid.single.items():
        tasks = list(suite_tasks[: grid.task_limit])
        jobs += [(algo, suite, [task]) for algo in grid.single_algos for task in tasks]
    for suite, suite_tasks in grid.multi.items():
        jobs += [(algo, suite, list(suite_tasks[: grid.task_limit])) for algo in grid.multi_algos]
    unknown = sorted({f"{suite}/{algo}" for algo, suite, _ in jobs if algo not in grid.levels.get(suite, {})})
    if unknown:
        raise ValueError(f"no synthetic level for {', '.join(unknown)}; give them in Grid.levels")
    for algo, suite, tasks in jobs:
        task_set = tasks[0] if len(tasks) == 1 else suite
        for run_seed in grid.seeds:
            scores = _task_scores(rng, tasks, grid.levels[suite][algo], steps, grid)
            write_run(
                Path(root) / "runs" / algo / task_set / f"seed{run_seed}",
                task_set=task_set,
                seed=run_seed,
                scores=scores,
                algo=algo,
                num_envs=1024 if len(tasks) > 1 else 8,
            )
            written += 1
    return written
