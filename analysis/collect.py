"""Run records -> one tidy table of evaluations, plus a table of the runs left out and why.

A run directory is any directory holding ``status.json`` (see :mod:`m3po.record`): ``config.json``,
``status.json``, ``eval.jsonl`` and ``train.jsonl``. Only runs whose status is ``finished`` are
aggregated; every other run, and every run whose files are missing or corrupt, goes to the
``excluded`` table with its reason, and never into the scores.

Which algorithm and variant a run belongs to:

* ``algo``: ``config.json["algo"]``, which every trainer writes
  (:class:`m3po.trainer.run_record.RunRecord`). A record without one is never guessed from its
  path: it is left out, the reason naming the file.
* ``variant``: ``config.json["variant"]`` when present; else, for a run in the workflow's layout
  ``<algo>/<task>/<variant>/seed<n>`` (config.json's algo, task with ``,`` as ``+``, and seed), that
  ``<variant>`` (the workflow records a variant only in its run's path); else ``"default"``.

The files are read by :mod:`m3po.record` (torch-free), more strictly than its ``read_jsonl`` alone:
every line of a log must parse. That reader forgives a cut-off last line (a job killed mid-write,
which its resume rewrites); a finished run has none to forgive, so here that line is corruption,
as is a line that is not a JSON object.

Scores: ``score`` is what the run logged (DMC return 0-1000, Meta-World success in %);
``normalized`` is the multi-task normalized score of ``benchmarks.md`` (DMC return / 10 and
Meta-World success %, each capped to [0, 100]); DMLab has no normalization there, so it is NaN.

``python -m analysis.collect RESULTS_DIR OUT_DIR`` writes ``scores.{parquet,csv}``,
``excluded.{parquet,csv}`` and ``compute.{parquet,csv}``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from m3po.errors import RunDirectoryError
from m3po.record import (
    CONFIG_FILE,
    EVAL_LOG,
    FINISHED,
    STATUS_FILE,
    TRAIN_LOG,
    log_file,
    read_config,
    read_jsonl,
    read_log_text,
    read_status,
)

SCORE_COLUMNS = (
    "algo", "task_set", "task", "seed", "variant", "step", "score", "return", "success",
    "wall_clock", "sps", "normalized", "suite", "mode", "num_envs", "alpha0", "horizon", "run_dir",
)  # fmt: skip
EXCLUDED_COLUMNS = (
    "run_dir",
    "algo",
    "task_set",
    "seed",
    "variant",
    "status",
    "step",
    "steps_total",
    "reason",
)
COMPUTE_COLUMNS = (
    "run_dir",
    "algo",
    "task_set",
    "seed",
    "variant",
    "steps",
    "wall_clock",
    "sps",
    "peak_memory",
    "peak_gpu_memory",
)
EVAL_KEYS = ("step", "task", "return", "success", "score")


class RunRecordError(ValueError):
    """A run's files are missing or unreadable; the message is the reason the run is left out."""


@dataclass(frozen=True)
class Collected:
    """What :func:`collect` found.

    :param scores: one row per finished run, evaluation step and task (``SCORE_COLUMNS``)
    :param excluded: one row per run that is not aggregated, with ``reason`` (``EXCLUDED_COLUMNS``)
    :param compute: one row per finished run: steps, wall-clock seconds, median steps/s, peak resident
        and peak GPU memory in GiB (NaN where the run did not record them) (``COMPUTE_COLUMNS``)
    """

    scores: pd.DataFrame
    excluded: pd.DataFrame
    compute: pd.DataFrame


def task_domain(task: str) -> str:
    """``metaworld`` for ``mw-*``, ``dmlab`` for ``dmlab-*``, else ``dmc`` (the registry's naming)."""
    if task.startswith("mw-"):
        return "metaworld"
    if task.startswith("dmlab-"):
        return "dmlab"
    return "dmc"


def normalized_score(task: str, score: float) -> float:
    """Multi-task normalized score of one task's evaluation (benchmarks.md), in [0, 100].

    :param task: task name (decides the scale)
    :param score: the logged score: DMC return (0-1000) or Meta-World success in %
    """
    domain = task_domain(task)
    if domain == "dmc":
        return float(min(max(score / 10.0, 0.0), 100.0))
    if domain == "metaworld":
        return float(min(max(score, 0.0), 100.0))
    return math.nan


def _suite_of(task_set: str, tasks: set[str]) -> tuple[str, str]:
    """(suite, mode): a single-task run belongs to its benchmark (dmc39, mw50, dmlab30)."""
    if len(tasks) == 1 and task_set in tasks:
        domain = task_domain(task_set)
        return {"dmc": "dmc39", "metaworld": "mw50", "dmlab": "dmlab30"}[domain], "single"
    return task_set.replace(",", "+"), "multi"


def _read_object(run_dir: Path, name: str) -> dict[str, Any]:
    """``status.json`` or ``config.json`` of a run, read by :mod:`m3po.record`.

    :raises RunRecordError: the file is missing, corrupt or not a JSON object (the message names it)
    """
    path = run_dir / name
    if not path.exists():
        raise RunRecordError(f"{path} is missing")
    try:
        data = read_status(run_dir) if name == STATUS_FILE else read_config(run_dir)
    except RunDirectoryError as err:
        raise RunRecordError(str(err)) from err
    if not isinstance(data, dict):
        raise RunRecordError(f"{path} is not a JSON object")
    return data


def _read_log(path: Path) -> list[dict[str, Any]]:
    """Rows of a finished run's JSON-lines log (:func:`m3po.record.read_jsonl`); every line must parse.

    :raises RunRecordError: a line is corrupt (the last one too) or not a JSON object
    """
    try:
        rows = read_jsonl(path)
        lines = read_log_text(path).splitlines()
    except (UnicodeDecodeError, OSError) as err:
        raise RunRecordError(f"{path} is corrupt: {err}") from err
    except RunDirectoryError as err:
        raise RunRecordError(str(err)) from err
    numbers = [number for number, line in enumerate(lines, 1) if line.strip()]
    if len(rows) < len(numbers):  # read_jsonl dropped a cut-off last line: here it is corrupt
        try:
            json.loads(lines[numbers[-1] - 1])
        except json.JSONDecodeError as err:
            raise RunRecordError(f"{path} line {numbers[-1]} is corrupt: {err}") from err
    for number, row in zip(numbers, rows, strict=False):
        if not isinstance(row, dict):
            raise RunRecordError(f"{path} line {number} is not a JSON object")
    return rows


def algo_of(config: dict[str, Any], run_dir: Path) -> str:
    """``config.json["algo"]`` of a run.

    :raises RunRecordError: the config records no ``algo`` (the message names the file)
    """
    if not config.get("algo"):
        raise RunRecordError(
            f"{run_dir / CONFIG_FILE} records no 'algo' (every trainer writes it; "
            "a record without one is not attributed by its path)"
        )
    return str(config["algo"])


def run_variant(config: dict[str, Any], run_dir: Path) -> str:
    """A run's variant (the module docstring's rule): config.json's, the workflow layout's, or default.

    :param config: the run's ``config.json``
    :param run_dir: the run directory (its last four parts decide the layout)
    """
    if "variant" in config:
        return str(config["variant"])
    parts = Path(run_dir).parts
    layout = (str(config.get("algo")), str(config.get("task", "")).replace(",", "+"))
    if len(parts) >= 4 and tuple(parts[-4:-2]) == layout and parts[-1] == f"seed{config.get('seed')}":
        return parts[-2]
    return "default"


def _identity(config: dict[str, Any], run_dir: Path, algo: str | None) -> dict[str, Any]:
    return {
        "run_dir": str(run_dir),
        "algo": algo,
        "task_set": str(config.get("task", "")),
        "seed": config.get("seed"),
        "variant": run_variant(config, run_dir),
    }


def _train_times(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """(step, wall-clock, steps/s) of each iteration, by step, and the peak resident and peak GPU
    memory in GiB (NaN where the run did not record ``mem/peak_rss_mib`` or ``mem/peak_cuda_mib``);
    empty when train.jsonl is absent."""
    rows = _read_log(path) if log_file(path) else []
    steps = np.array([int(r["step"]) for r in rows], dtype=np.int64)
    wall = np.array([float(r.get("time/wall", math.nan)) for r in rows])
    sps = np.array([float(r.get("time/sps", math.nan)) for r in rows])
    peaks = [
        max((float(r[key]) for r in rows if key in r), default=math.nan) / 1024
        for key in ("mem/peak_rss_mib", "mem/peak_cuda_mib")
    ]
    order = np.argsort(steps, kind="stable")
    return steps[order], wall[order], sps[order], peaks[0], peaks[1]


def read_run(run_dir: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """One finished run's evaluations and its compute row.

    :param run_dir: the run directory
    :raises RunRecordError: the run is not finished, its files are missing or corrupt, or its config
        records no ``algo`` (the message names the file)
    :returns: (``SCORE_COLUMNS`` -> column values, a ``COMPUTE_COLUMNS`` dict)
    """
    status = _read_object(run_dir, STATUS_FILE)
    config = _read_object(run_dir, CONFIG_FILE)
    if status.get("status") != FINISHED:
        error = f": {status['error']}" if status.get("error") else ""
        raise RunRecordError(f"status is {status.get('status')!r}{error}")
    ident = _identity(config, run_dir, algo_of(config, run_dir))
    eval_log = run_dir / EVAL_LOG
    if log_file(eval_log) is None:
        raise RunRecordError(f"{eval_log} is missing")
    rows = _read_log(eval_log)
    if not rows:
        raise RunRecordError(f"{eval_log} holds no evaluation")
    try:
        steps = np.array([row["step"] for row in rows], dtype=np.int64)
        score = np.array([row["score"] for row in rows], dtype=float)
        returns = np.array([row["return"] for row in rows], dtype=float)
        success = np.array(
            [math.nan if row["success"] is None else row["success"] for row in rows], dtype=float
        )
        tasks = [str(row["task"]) for row in rows]
    except KeyError as err:
        missing = [key for key in EVAL_KEYS if any(key not in row for row in rows)]
        raise RunRecordError(f"{eval_log} rows lack {', '.join(missing)}") from err
    except (TypeError, ValueError) as err:
        raise RunRecordError(f"{eval_log} holds a non-numeric value: {err}") from err
    train_steps, wall, sps, peak_gib, peak_gpu_gib = _train_times(run_dir / TRAIN_LOG)
    # The wall-clock and speed of an evaluation are those of the last iteration at or before it.
    before = np.searchsorted(train_steps, steps, side="right") - 1
    known = before >= 0
    suite, mode = _suite_of(ident["task_set"], set(tasks))
    n = len(rows)
    domains = {task: task_domain(task) for task in set(tasks)}
    domain = np.array([domains[task] for task in tasks])
    columns: dict[str, Any] = {
        **{key: np.full(n, value) for key, value in ident.items()},
        "task": np.array(tasks),
        "step": steps,
        "score": score,
        "return": returns,
        "success": success,
        "wall_clock": np.where(known, wall[np.maximum(before, 0)] if len(wall) else math.nan, math.nan),
        "sps": np.where(known, sps[np.maximum(before, 0)] if len(sps) else math.nan, math.nan),
        # normalized_score, vectorised: DMC return / 10 and Meta-World success %, in [0, 100]
        "normalized": np.where(
            domain == "dmc",
            np.clip(score / 10.0, 0.0, 100.0),
            np.where(domain == "metaworld", np.clip(score, 0.0, 100.0), math.nan),
        ),
        "suite": np.full(n, suite),
        "mode": np.full(n, mode),
        "num_envs": np.full(n, config.get("num_envs")),
        "alpha0": np.full(n, config.get("bonus", {}).get("alpha0", math.nan)),
        "horizon": np.full(n, config.get("planner", {}).get("horizon", math.nan)),
    }
    compute = {
        **{key: ident[key] for key in ("run_dir", "algo", "task_set", "seed", "variant")},
        "steps": int(status.get("step", steps.max())),
        "wall_clock": float(np.nanmax(wall)) if len(wall) else math.nan,
        "sps": float(np.nanmedian(sps)) if len(sps) else math.nan,
        "peak_memory": peak_gib,  # GiB, peak resident memory of the training process
        "peak_gpu_memory": peak_gpu_gib,  # GiB, peak CUDA memory allocated (runs on a GPU)
    }
    return columns, compute


def _excluded_row(run_dir: Path, reason: str) -> dict[str, Any]:
    """What can still be told of a left-out run (its config and status may be unreadable)."""
    row: dict[str, Any] = dict.fromkeys(EXCLUDED_COLUMNS)
    row.update(run_dir=str(run_dir), reason=reason)
    for name, keys in ((CONFIG_FILE, ()), (STATUS_FILE, ("status", "step", "steps_total"))):
        try:
            data = _read_object(run_dir, name)
        except RunRecordError:
            continue
        if name == CONFIG_FILE:
            ident = _identity(data, run_dir, str(data["algo"]) if data.get("algo") else None)
            row.update({k: v for k, v in ident.items() if k != "run_dir"})
        else:
            row.update({k: data.get(k) for k in keys})
    return row


def find_runs(root: Path) -> list[Path]:
    """Every directory under ``root`` holding a ``status.json`` or an ``eval.jsonl`` (so a run whose
    status file is lost is still found and listed), sorted: a stable table order. (Sacred's own
    records beside a run hold a ``config.json`` but neither of these.)"""
    root = Path(root)
    return sorted({path.parent for name in (STATUS_FILE, EVAL_LOG) for path in root.rglob(name)})


def collect(root: Path) -> Collected:
    """Read every run under ``root``.

    :param root: a results directory (or any directory above run directories)
    """
    columns: dict[str, list] = {name: [] for name in SCORE_COLUMNS}
    compute, excluded = [], []
    for run_dir in find_runs(root):
        try:
            evals, comp = read_run(run_dir)
        except RunRecordError as err:
            # The reason names the run's files relative to it (its own column holds the directory).
            excluded.append(_excluded_row(run_dir, str(err).replace(f"{run_dir}{os.sep}", "")))
            continue
        for name in SCORE_COLUMNS:
            columns[name].append(evals[name])
        compute.append(comp)
    # One concatenation per column: building a DataFrame per run costs more than reading it.
    scores = pd.DataFrame({name: np.concatenate(parts) if parts else [] for name, parts in columns.items()})
    return Collected(
        scores=scores,
        excluded=pd.DataFrame(excluded, columns=list(EXCLUDED_COLUMNS)),
        compute=pd.DataFrame(compute, columns=list(COMPUTE_COLUMNS)),
    )


def write_tables(collected: Collected, out_dir: Path) -> list[Path]:
    """Write ``scores``, ``excluded`` and ``compute`` as Parquet and CSV.

    :param collected: what :func:`collect` returned
    :param out_dir: created when absent
    :returns: the written paths
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in ("scores", "excluded", "compute"):
        table: pd.DataFrame = getattr(collected, name)
        # Mixed None/str/int columns (left-out runs) are stored as text so Parquet accepts them.
        if name == "excluded":
            table = table.astype(
                {col: "string" for col in ("algo", "task_set", "variant", "status", "reason")}
            )
            table = table.astype({col: "Float64" for col in ("seed", "step", "steps_total")})
        table.to_parquet(out_dir / f"{name}.parquet", index=False)
        table.to_csv(out_dir / f"{name}.csv", index=False)
        written += [out_dir / f"{name}.parquet", out_dir / f"{name}.csv"]
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.collect", description=__doc__)
    parser.add_argument("root", type=Path, help="directory above the run directories (e.g. results/runs)")
    parser.add_argument("out", type=Path, help="where the tables go (e.g. results/tables)")
    args = parser.parse_args(argv)
    collected = collect(args.root)
    write_tables(collected, args.out)
    aggregated = collected.scores["run_dir"].nunique()
    print(f"{aggregated} runs aggregated, {len(collected.excluded)} left out")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
