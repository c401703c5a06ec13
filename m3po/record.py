"""The run record on disk, without torch: where a run lives, its status, its logs, its config.

Everything that reads or checks a run directory imports this module: the trainers (through
:class:`m3po.trainer.RunRecord`, which adds checkpoints), the workflow's scripts, the benchmarks and
:mod:`analysis`. It imports only the standard library, so reading results never loads torch or an
environment.

A run lives in its own directory (deterministic: no shared counters between concurrent jobs):

    run_dir/
      config.json        {"algo": ..., **resolved config} (a resume with a different config is refused)
      status.json        running | finished | failed | interrupted, step, steps_total, attempts, error;
                         each attempt: start, resumed-from step, host, SLURM job, and ``compute``: CPU
                         model and flags, torch's kernel capability and threads, numpy's SIMD
                         features, the settings in force, portable mode (m3po/portable.py)
      eval.jsonl         one line per evaluation and task: step, task, return, success, score,
                         episodes, score_mean (mean score over the run's tasks at that step)
      train.jsonl        one line per update (or logging interval): step, the algorithm's metrics,
                         time/sps, time/wall, mem/peak_rss_mib
      checkpoints/       latest.pt (+ previous.pt, the one before), each written atomically
      tensorboard/       the same metrics as TensorBoard event files (``tensorboard --logdir results/``)
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from m3po.errors import RunDirectoryError

RUNS_ROOT = Path("results") / "runs"  # where ``m3po train`` puts a run without ``run_dir=``
CONFIG_FILE = "config.json"
STATUS_FILE = "status.json"
EVAL_LOG = "eval.jsonl"
TRAIN_LOG = "train.jsonl"
LOGS = (EVAL_LOG, TRAIN_LOG)
FINISHED = "finished"
FAILED = "failed"
# Where and how fast a run executes, not what it computes: a resume may change these.
RUNTIME_KEYS = frozenset({"threads", "device", "vec_mode", "tensorboard"})


def task_dir_name(task: str) -> str:
    """A task or task set as one path component (a comma list joined by '+')."""
    return task.replace(",", "+").replace(" ", "")


def run_dir_path(root: str | Path, algo: str, task: str, seed: int | str, variant: str | None = None) -> Path:
    """The one run-directory pattern: ``root/{algo}/{task}[/{variant}]/seed{seed}``.

    ``m3po train`` uses ``results/runs`` and no variant; the workflow uses ``results/runs/{profile}``
    and the grid's variant.

    :param root: the runs' root directory
    :param algo: registry name of the algorithm
    :param task: task or task set (a comma list becomes '+'-joined)
    :param seed: the run seed (or a pattern placeholder such as ``{seed}``)
    :param variant: the grid variant's directory name, if any
    """
    path = Path(root) / algo / task_dir_name(task)
    if variant is not None:
        path = path / variant
    return path / f"seed{seed}"


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as JSON so that a reader never sees half a file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)


def read_jsonl(path: Path) -> list[dict]:
    """Rows of a JSON-lines file; a cut-off last line (killed mid-write) is dropped, other bad lines raise
    :class:`RunDirectoryError` naming the file and line."""
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:
            if number == len(lines):
                break  # the resume rewrites it
            raise RunDirectoryError(f"{path} line {number} is corrupt: {err}") from err
    return rows


def corrupt_line(path: Path) -> str | None:
    """Why a JSON-lines log is corrupt (a bad line before the last), or None. A cut-off last line is not
    corruption: a job killed mid-write leaves one, and :func:`read_jsonl` drops it."""
    try:
        read_jsonl(path)
    except (RunDirectoryError, UnicodeDecodeError) as err:
        return str(err)
    return None


class JsonlLog:
    """Append-only JSON-lines file that a resume truncates to the checkpoint's step.

    :param path: the file
    :param keep_until_step: keep the rows up to this step (a resume); None starts the file empty
    """

    def __init__(self, path: Path, keep_until_step: int | None) -> None:
        self.path = path
        rows = read_jsonl(path)
        if keep_until_step is not None:
            rows = [r for r in rows if r["step"] <= keep_until_step]
        else:
            rows = []
        self.path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        self.rows = rows

    def append(self, row: dict) -> None:
        self.rows.append(row)
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()


def read_status(run_dir: Path) -> dict[str, Any]:
    """``status.json`` of a run ({} when there is none); a corrupt file raises :class:`RunDirectoryError`."""
    path = Path(run_dir) / STATUS_FILE
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RunDirectoryError(f"{path} is corrupt: {err}") from err


def read_config(run_dir: Path) -> dict[str, Any] | None:
    """``config.json`` of a run (None when there is none); a corrupt file raises
    :class:`RunDirectoryError`."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RunDirectoryError(f"{path} is corrupt: {err}") from err


def probe_writable(run_dir: Path) -> None:
    """Create ``run_dir`` if needed and write a probe file in it; raise :class:`RunDirectoryError` if not."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise RunDirectoryError(f"cannot write to run directory {run_dir}: {err}") from err


def as_json(value: Any) -> Any:
    """``value`` as JSON records it (tuples become lists, unknown types strings)."""
    return json.loads(json.dumps(value, default=str))


def config_differences(
    recorded: Mapping[str, Any],
    wanted: Mapping[str, Any],
    defaults: Mapping[str, Any] | None = None,
    skip: Iterable[str] = RUNTIME_KEYS,
) -> list[str]:
    """Dotted keys, sorted, where a recorded config differs from the wanted one.

    A key the record lacks (written before the field existed) differs only if the wanted value is not
    the field's default; it is then named ``key (not recorded)``. A key only the record has differs.

    :param recorded: the run's ``config.json``
    :param wanted: the config asked for now, as JSON records it (:func:`as_json`)
    :param defaults: the preset's values, for keys the record lacks (None: a missing key differs)
    :param skip: top-level keys that may differ (runtime keys: a resume may change them)
    """
    skip = frozenset(skip)

    def walk(rec: Any, want: Any, default: Any, prefix: str) -> list[str]:
        if not isinstance(want, dict):
            return [] if rec == want else [prefix.rstrip(".")]
        rec = rec if isinstance(rec, dict) else {}
        default = default if isinstance(default, dict) else {}
        out = []
        for key in want.keys() | rec.keys():
            if not prefix and key in skip:
                continue
            if key not in rec:
                if defaults is None or want[key] != default.get(key):
                    out.append(f"{prefix}{key} (not recorded)")
            elif key not in want:
                out.append(f"{prefix}{key}")
            else:
                out.extend(walk(rec[key], want[key], default.get(key), f"{prefix}{key}."))
        return out

    return sorted(walk(dict(recorded), dict(wanted), dict(defaults or {}), ""))


def format_score(value: float | None) -> str:
    """A score for a progress bar or a listing ('-' before the first evaluation)."""
    return "-" if value is None else f"{value:.1f}"
