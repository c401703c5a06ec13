"""One training job of the workflow: ``train_run.py --run-dir DIR --marker FILE -- key=value ...``.

Before training: the results directory must be writable and have ``--min-free-mb`` free, else a
clear error and nothing starts. A corrupt ``status.json`` is set aside (the run resumes from its
checkpoint, which the trainer reads, falling back to the previous one); a corrupt ``config.json`` or
a corrupt line inside ``eval.jsonl``/``train.jsonl`` sets the whole run aside, and it starts from
scratch. Each case is said on stderr, naming the file.

A job holds an exclusive lock on ``DIR.lock`` while it works: a second job for the same run (an
orphan of a killed workflow still training on a cluster, and its rerun) stops at once, naming the
holder, instead of training the run twice.

Runs ``m3po train with key=value ...`` unless the run directory already holds a finished run (the
runner refuses to train a finished run again), then writes the marker, a small JSON record:
``status`` ``finished``, or ``failed`` when the run itself failed for good (a NaN loss: training it
again would fail the same way). A failed run's marker lets the workflow draw its figures from the
runs that finished; the collect step leaves the failed run out and the report lists it. Any other
end (killed, crashed) writes no marker: rerunning the workflow resumes the run from its checkpoint.
A finished run whose recorded config differs from the asked one is an error, so a changed grid never
silently reuses stale runs.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

from sacred.arg_parser import get_config_updates

# Keys that are not part of the run's recorded config, or (threads) do not change its results.
NOT_RECORDED = {"algo", "run_dir", "progress", "mongo_url", "threads"}
RECORDS = ("eval.jsonl", "train.jsonl")


class RunSetupError(RuntimeError):
    """The run cannot start here (unwritable or full results directory); nothing was trained."""


def say(message: str) -> None:
    print(f"train_run: {message}", file=sys.stderr, flush=True)


def check_writable(run_dir: Path, min_free_mb: int) -> None:
    """Raise :class:`RunSetupError` unless ``run_dir`` can be created, written and has room."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise RunSetupError(
            f"cannot write to the run directory {run_dir}: {err}; nothing was trained"
        ) from err
    free_mb = shutil.disk_usage(run_dir).free // 2**20
    if free_mb < min_free_mb:
        raise RunSetupError(
            f"the results directory holding {run_dir} has {free_mb} MB free, less than the "
            f"{min_free_mb} MB a run needs for its checkpoints (--min-free-mb); nothing was trained"
        )


def lock_run(run_dir: Path) -> IO[str]:
    """Hold ``run_dir.lock`` (released when the process ends); raise if another job holds it."""
    path = run_dir.with_name(run_dir.name + ".lock")
    handle = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as err:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise RunSetupError(
            f"{run_dir} is being trained by another job ({holder}); not started twice"
        ) from err
    handle.seek(0)
    handle.truncate()
    handle.write(f"host {platform.node()}, pid {os.getpid()}, SLURM job {os.environ.get('SLURM_JOB_ID')}\n")
    handle.flush()
    return handle


def _set_aside(path: Path) -> Path:
    """Rename ``path`` to ``path.corrupt-N`` (the first free N), keeping it for inspection."""
    n = 1
    while (target := path.with_name(f"{path.name}.corrupt-{n}")).exists():
        n += 1
    path.rename(target)
    return target


def _corrupt_line(path: Path) -> str | None:
    """Why a JSON-lines record is corrupt (a bad line before the last), or None. The trainer drops a
    cut-off last line itself: a job killed mid-write leaves one."""
    if not path.exists():
        return None
    lines = path.read_text(errors="replace").splitlines()
    for number, line in enumerate(lines[:-1], 1):
        try:
            json.loads(line)
        except json.JSONDecodeError as err:
            return f"line {number} is corrupt ({err})"
    return None


def repair_run_dir(run_dir: Path) -> None:
    """Set aside what a resume cannot use, saying so (see the module docstring)."""
    config = run_dir / "config.json"
    problems = []
    if config.exists():
        try:
            json.loads(config.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            problems.append(f"{config} is corrupt ({err})")
    for name in RECORDS:
        reason = _corrupt_line(run_dir / name)
        if reason:
            problems.append(f"{run_dir / name}: {reason}")
    if problems:
        moved = _set_aside(run_dir)
        say(f"error: {'; '.join(problems)}. The run cannot resume: moved to {moved}; it starts from scratch")
        run_dir.mkdir(parents=True)
        return
    status = run_dir / "status.json"
    if status.exists():
        try:
            json.loads(status.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            moved = _set_aside(status)
            say(
                f"error: {status} is corrupt ({err}); moved to {moved}. "
                "The run resumes from its last checkpoint"
            )


def read_status(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "status.json"
    return json.loads(path.read_text()) if path.exists() else {}


def config_differences(run_dir: Path, updates: list[str]) -> list[str]:
    """The asked ``key=value`` updates that the recorded ``config.json`` does not hold."""
    recorded = json.loads((run_dir / "config.json").read_text())
    asked, _ = get_config_updates(updates)
    differences = []

    def walk(asked_part: dict[str, Any], recorded_part: dict[str, Any], prefix: str) -> None:
        for key, value in asked_part.items():
            if not prefix and key in NOT_RECORDED:
                continue
            have = recorded_part.get(key) if isinstance(recorded_part, dict) else None
            if isinstance(value, dict):
                walk(value, have or {}, f"{prefix}{key}.")
            elif have != value:
                differences.append(f"{prefix}{key}: recorded {have!r}, asked {value!r}")

    walk(asked, recorded, "")
    return differences


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--marker", type=Path, required=True)
    parser.add_argument(
        "--min-free-mb", type=int, default=500, help="free space the results directory needs (MB)"
    )
    parser.add_argument("updates", nargs="+", help="key=value updates for m3po train")
    args = parser.parse_args(argv)
    try:
        check_writable(args.run_dir, args.min_free_mb)
        lock = lock_run(args.run_dir)  # noqa: F841 - held until this process ends
    except RunSetupError as err:
        say(f"error: {err}")
        return 2
    repair_run_dir(args.run_dir)
    if read_status(args.run_dir).get("status") == "finished":
        differences = config_differences(args.run_dir, args.updates)
        if differences:
            say(
                f"{args.run_dir} holds a finished run with another config ({'; '.join(differences)}); "
                "delete it to train it again"
            )
            return 1
        print(f"{args.run_dir} is finished already: not trained again", flush=True)
    else:
        command = [sys.executable, "-m", "suite.cli", "train", "with", *args.updates]
        print("+", " ".join(command), flush=True)
        subprocess.run(command)
    status = read_status(args.run_dir)
    record = {"run_dir": str(args.run_dir), "status": status.get("status"), "step": status.get("step")}
    record["attempts"] = len(status.get("attempts", []))
    if status.get("status") == "failed":
        # For good (a NaN loss): the marker lets the figures be drawn from the runs that finished.
        record["error"] = status.get("error")
        say(
            f"FAILED: {args.run_dir}: {status.get('error')}. The figures leave it out and the report lists "
            f"it; delete {args.marker} and the run directory to train it again"
        )
    elif status.get("status") != "finished":
        say(f"{args.run_dir}: status {status.get('status')!r} after training, not finished")
        return 1
    args.marker.write_text(json.dumps(record) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
