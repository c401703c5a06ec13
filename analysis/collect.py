"""Run records -> one tidy table of evaluations, plus a table of the runs left out and why.

A run directory is any directory holding ``status.json`` (see ``m3po/train.py``): ``config.json``,
``status.json``, ``eval.jsonl`` and ``train.jsonl``. Only runs whose status is ``finished`` are
aggregated; every other run, and every run whose files are missing or corrupt, goes to the
``excluded`` table with its reason, and never into the scores.

Which algorithm and variant a run belongs to (the rule, in order):

* ``algo``: ``config.json["algo"]`` when present; else the path component right after ``runs`` in
  the run's path (``results/runs/{algo}/...``); else ``"m3po"`` (M3PO's own config has no ``algo``).
* ``variant``: ``config.json["variant"]`` when present, else ``"default"``.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

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


def _read_json(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise RunRecordError(f"{path.name} is missing")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RunRecordError(f"{path.name} is corrupt: {err}") from err
    if not isinstance(data, dict):
        raise RunRecordError(f"{path.name} is not a JSON object")
    return data


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every line must parse: a finished run has no cut-off last line to forgive."""
    text = path.read_text()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # One parse of the whole file (per-line json.loads cost more than the rest of collect), taken
    # when every line is one object; anything else is parsed line by line for the reason.
    if all(line[0] == "{" and line[-1] == "}" for line in lines):
        try:
            rows = json.loads("[" + ",".join(lines) + "]")
        except json.JSONDecodeError:
            rows = None
        if rows is not None and len(rows) == len(lines) and all(isinstance(row, dict) for row in rows):
            return rows
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise RunRecordError(f"{path.name} line {number} is corrupt: {err}") from err
        if not isinstance(row, dict):
            raise RunRecordError(f"{path.name} line {number} is not a JSON object")
        rows.append(row)
    return rows


def algo_of(config: dict[str, Any], run_dir: Path) -> str:
    """The algorithm by the module's rule: config ``algo``, else the path component after ``runs``."""
    if config.get("algo"):
        return str(config["algo"])
    parts = run_dir.resolve().parts
    if "runs" in parts[:-1]:
        return parts[parts.index("runs") + 1]
    return "m3po"


def _identity(config: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    return {
        "run_dir": str(run_dir),
        "algo": algo_of(config, run_dir),
        "task_set": str(config.get("task", "")),
        "seed": config.get("seed"),
        "variant": str(config.get("variant", "default")),
    }


def _train_times(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """(step, wall-clock, steps/s) of each iteration, by step, and the peak resident and peak GPU
    memory in GiB (NaN where the run did not record ``mem/peak_rss_mib`` or ``mem/peak_cuda_mib``);
    empty when train.jsonl is absent."""
    rows = _read_jsonl(path) if path.exists() else []
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
    :raises RunRecordError: the run is not finished, or its files are missing or corrupt
    :returns: (``SCORE_COLUMNS`` -> column values, a ``COMPUTE_COLUMNS`` dict)
    """
    status = _read_json(run_dir / "status.json")
    config = _read_json(run_dir / "config.json")
    if status.get("status") != "finished":
        error = f": {status['error']}" if status.get("error") else ""
        raise RunRecordError(f"status is {status.get('status')!r}{error}")
    if not (run_dir / "eval.jsonl").exists():
        raise RunRecordError("eval.jsonl is missing")
    rows = _read_jsonl(run_dir / "eval.jsonl")
    if not rows:
        raise RunRecordError("eval.jsonl holds no evaluation")
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
        raise RunRecordError(f"eval.jsonl rows lack {', '.join(missing)}") from err
    except (TypeError, ValueError) as err:
        raise RunRecordError(f"eval.jsonl holds a non-numeric value: {err}") from err
    train_steps, wall, sps, peak_gib, peak_gpu_gib = _train_times(run_dir / "train.jsonl")
    # The wall-clock and speed of an evaluation are those of the last iteration at or before it.
    before = np.searchsorted(train_steps, steps, side="right") - 1
    known = before >= 0
    ident = _identity(config, run_dir)
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
    for name, keys in (("config.json", ()), ("status.json", ("status", "step", "steps_total"))):
        try:
            data = _read_json(run_dir / name)
        except RunRecordError:
            continue
        if name == "config.json":
            row.update({k: v for k, v in _identity(data, run_dir).items() if k != "run_dir"})
        else:
            row.update({k: data.get(k) for k in keys})
    return row


def find_runs(root: Path) -> list[Path]:
    """Every directory under ``root`` holding a ``status.json`` or an ``eval.jsonl`` (so a run whose
    status file is lost is still found and listed), sorted: a stable table order. (Sacred's own
    records beside a run hold a ``config.json`` but neither of these.)"""
    root = Path(root)
    return sorted({path.parent for name in ("status.json", "eval.jsonl") for path in root.rglob(name)})


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
            excluded.append(_excluded_row(run_dir, str(err)))
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
