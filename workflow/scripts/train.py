"""Rule ``train``: one training job, one process: ``train.py --run-dir DIR --marker FILE -- key=value ...``.

Before training: the results directory must be writable and have ``--min-free-mb`` free, else a
clear error and nothing starts. A corrupt ``status.json`` is set aside (the run resumes from its
checkpoint, which the trainer reads, falling back to the previous one); a corrupt ``config.json`` or
a corrupt line inside ``eval.jsonl``/``train.jsonl`` sets the whole run aside, and it starts from
scratch. Each case is said on stderr, naming the file.

A job holds an exclusive lock on ``DIR.lock`` while it works: a second job for the same run (an
orphan of a killed workflow still training on a cluster, and its rerun) stops at once, naming the
holder, instead of training the run twice.

Then it trains the run in this process (``m3po train with key=value ...``, through
:func:`suite.experiment.run_from_args`), unless the run directory already holds a finished run (the
runner refuses to train a finished run again), and writes the marker, a small JSON record:
``status`` ``finished``, or ``failed`` when the run itself failed for good (a NaN loss: training it
again would fail the same way). A failed run's marker lets the workflow draw its figures from the
runs that finished; the collect step leaves the failed run out and the report lists it. Any other
end (killed, crashed) writes no marker: rerunning the workflow resumes the run from its checkpoint.
A finished run whose recorded config differs from the asked one is an error, so a changed grid never
silently reuses stale runs.

With ``portable=True`` among the updates (a grid's ``overrides: {portable: true}``, with ``threads: 1``)
the script first re-executes itself with portable mode's environment (:mod:`m3po.portable`), so that
numpy, torch and MKL load with it; ``main()`` called in-process cannot, and the run is refused.
"""

from __future__ import annotations

import sys

if __name__ == "__main__":
    # portable=True among the updates: re-execute this script with portable mode's environment
    # (m3po/portable.py) before numpy and torch are loaded; the run checks it is in force.
    from m3po.portable import reexec_if_asked

    reexec_if_asked(sys.argv[1:])

import argparse
import fcntl
import json
import os
import platform
import shutil
import traceback
from pathlib import Path
from typing import IO

from m3po.config import ConfigError
from m3po.envs.registry import UnknownTaskError
from m3po.errors import NonFiniteLossError, RunDirectoryError
from m3po.record import (
    FAILED,
    FINISHED,
    LOGS,
    STATUS_FILE,
    config_differences,
    corrupt_line,
    probe_writable,
    read_config,
    read_status,
    redact_url,
)
from suite.experiment import recorded_config


class RunSetupError(RuntimeError):
    """The run cannot start here (unwritable or full results directory, or held by another job)."""


def say(message: str) -> None:
    print(f"train: {message}", file=sys.stderr, flush=True)


def check_writable(run_dir: Path, min_free_mb: int) -> None:
    """Raise :class:`RunSetupError` unless ``run_dir`` can be created, written and has room."""
    try:
        probe_writable(run_dir)
    except RunDirectoryError as err:
        raise RunSetupError(
            f"cannot write to the run directory {run_dir}: {err.__cause__ or err}; nothing was trained"
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


def repair_run_dir(run_dir: Path) -> None:
    """Set aside what a resume cannot use, saying so (see the module docstring)."""
    problems = []
    try:
        read_config(run_dir)
    except RunDirectoryError as err:
        problems.append(str(err))
    problems += [reason for name in LOGS if (reason := corrupt_line(run_dir / name))]
    if problems:
        moved = _set_aside(run_dir)
        say(f"error: {'; '.join(problems)}. The run cannot resume: moved to {moved}; it starts from scratch")
        run_dir.mkdir(parents=True)
        return
    try:
        read_status(run_dir)
    except RunDirectoryError as err:
        moved = _set_aside(run_dir / STATUS_FILE)
        say(f"error: {err}; moved to {moved}. The run resumes from its last checkpoint")


def finished_run_differences(run_dir: Path, updates: list[str]) -> list[str]:
    """Where the finished run's recorded config differs from what ``updates`` would record."""
    wanted, defaults = recorded_config(updates)
    recorded = read_config(run_dir)
    if recorded is None:
        return ["config.json (not recorded)"]
    return config_differences(recorded, wanted, defaults)


def train(updates: list[str]) -> int | None:
    """Train the run in this process; an exit status when it cannot start (bad input), else None
    (the run's end is in its status.json: finished, failed for good, or interrupted)."""
    from suite.experiment import run_from_args

    # The job's log is no place for a password (a mongo_url given on the command line).
    print(f"training: m3po train with {redact_url(' '.join(updates))}", flush=True)
    try:
        summary = run_from_args(updates)
    except (ConfigError, RunDirectoryError, UnknownTaskError) as err:
        say(f"error: {err}")
        return 2
    except NonFiniteLossError:
        traceback.print_exc()  # status.json records the run as failed, with the loss and step
        return None
    except Exception:  # noqa: BLE001 - a crash: status.json says interrupted, and no marker is written
        traceback.print_exc()
        return None
    print(json.dumps(summary, default=str), flush=True)
    return None


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
    if read_status(args.run_dir).get("status") == FINISHED:
        try:
            differences = finished_run_differences(args.run_dir, args.updates)
        except ConfigError as err:
            say(f"error: {err}")
            return 2
        if differences:
            say(
                f"{args.run_dir} holds a finished run with another config (differs in: "
                f"{', '.join(differences)}); delete it to train it again"
            )
            return 1
        print(f"{args.run_dir} is finished already: not trained again", flush=True)
    else:
        code = train(args.updates)
        if code is not None:
            return code
    status = read_status(args.run_dir)
    record = {"run_dir": str(args.run_dir), "status": status.get("status"), "step": status.get("step")}
    record["attempts"] = len(status.get("attempts", []))
    if status.get("status") == FAILED:
        # For good (a NaN loss): the marker lets the figures be drawn from the runs that finished.
        record["error"] = status.get("error")
        say(
            f"FAILED: {args.run_dir}: {status.get('error')}. The figures leave it out and the report lists "
            f"it; delete {args.marker} and the run directory to train it again"
        )
    elif status.get("status") != FINISHED:
        say(f"{args.run_dir}: status {status.get('status')!r} after training, not finished")
        return 1
    args.marker.write_text(json.dumps(record) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
