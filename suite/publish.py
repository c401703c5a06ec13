"""Shipping finished runs as evidence: which of a run's files ship, a scan that they are safe to
publish, and the copy into the repository's results.

What ships of a run (:data:`SHIPPED_FILES`, :data:`SACRED_FILES`): ``config.json``, ``status.json``,
``eval.jsonl``, ``train.jsonl`` and Sacred's records (``sacred/attemptN/`` run, config, info, metrics
and captured output, and ``sacred/_sources/``). The two large logs, ``train.jsonl`` and Sacred's
``metrics.json`` (:data:`COMPRESSED_FILES`), and Sacred's source snapshots (the same in every run of a
commit) ship gzip-compressed (``train.jsonl.gz``: about a fifth of the size;
:func:`m3po.record.read_log_text` reads either form, and so does everything here).
Never: ``checkpoints/`` (large, and rebuilt by training), ``tensorboard/`` (its file names hold the
host's name; the same metrics are in the logs), the job logs (``*.log``, they hold the machine's
paths) and anything else.

Safe to publish (:func:`scan_for_unsafe`) means no absolute path of a machine, no host name, and no
credential:

- absolute paths under the roots where machine-specific files live (:data:`PATH_ROOTS`: home
  directories, ``/root``, ``/tmp``, ``/work``, ``/scratch``, ``/mnt``, ``/var``, the Python
  installation's ``/usr`` and ``/opt``, …) and Windows drive paths (``C:\\``). A bare root with
  nothing after it (a lone ``/tmp``) is not a path of anything and is not flagged, nor is a URL's path
  (``https://host/home/x``); ``file://`` URLs are. Sacred's source snapshots (``_sources/``) are
  scanned like every other file: they are this repository's ``suite/`` code, which names no path of
  a machine, and if it ever did, the snapshot would publish it.
- the host names given to the scan, as whole words (case-insensitive). A user name is caught where it
  is machine-specific, inside a path (a home directory's); on its own it cannot be told from a word,
  and nothing in a run's records writes it.
- URLs with a password (a user and password before the host); the redacted form ``user:***@`` passes.

This module's own text and the rest of ``suite/`` pass the scan (a test checks it): Sacred snapshots
the experiment's sources.

The records are written safe in the first place (:func:`m3po.record.redact`, the trainers'
``status.json`` and :mod:`suite.experiment`'s Sacred observers); the scan checks what ships. ``m3po ship
RUNS DEST`` copies the finished runs under ``RUNS`` to ``DEST`` (:func:`ship_runs`).

A shipped run is also finished and complete (:func:`check_complete`: status, logs that reach the final
step, one Sacred record per attempt), and its first evaluation interval can be retrained from its
``config.json`` and compared bit for bit with what it recorded (:func:`reproduce_first_evaluation`),
where the machine can be expected to give the same bits: the same CPU, kernel capability, library
settings and versions, or a run trained in portable mode (:mod:`m3po.portable`) on any x86-64 CPU.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from m3po.errors import RunDirectoryError
from m3po.record import (
    COMPRESSED,
    CONFIG_FILE,
    EVAL_LOG,
    FINISHED,
    REDACTED,
    STATUS_FILE,
    TRAIN_LOG,
    config_differences,
    log_file,
    read_log_text,
    read_status,
)

# Where the repository's shipped runs live, relative to its root (``make figures`` reads them).
EVIDENCE_DIR = Path("results") / "evidence"
# The run's own files that ship (the run record of m3po.record), and those it must have: all of them.
SHIPPED_FILES: tuple[str, ...] = (CONFIG_FILE, STATUS_FILE, EVAL_LOG, TRAIN_LOG)
REQUIRED_FILES: tuple[str, ...] = SHIPPED_FILES
# Sacred's records: each attempt's files (sacred/attemptN/...), and its source snapshots.
SACRED_DIR = "sacred"
SACRED_FILES: tuple[str, ...] = ("run.json", "config.json", "info.json", "metrics.json", "cout.txt")
# What ships gzip-compressed (as NAME.gz, byte for byte the same whatever day it ships): the large logs,
# and every file of sacred/_sources (SACRED_SOURCES, below).
COMPRESSED_FILES: tuple[str, ...] = (TRAIN_LOG, "metrics.json")
SACRED_SOURCES = "_sources"
SACRED_COMPLETED = "COMPLETED"  # run.json's status of an attempt that returned
# Never shipped, named here for the reader: checkpoints are large, TensorBoard's file names hold the
# host's name, and the logs hold the machine's paths.
NOT_SHIPPED: tuple[str, ...] = ("checkpoints/", "tensorboard/", "*.log")

# The first components of machine-specific absolute paths. Written as names, not paths, so that this
# module's own text does not match its scan.
PATH_ROOTS: tuple[str, ...] = (
    "home", "root", "Users", "work", "tmp", "var", "mnt", "scratch", "private", "Volumes", "media",
    "opt", "usr", "srv", "data", "nfs", "gpfs", "lustre", "net", "run", "etc",
)  # fmt: skip
# A root followed by at least one more component, starting a path: not inside a word or a URL's path
# (``host/home/x``), not right after ``://`` (a URL whose host is ``tmp``), but after ``file://``. Each
# pattern starts with a literal ('/', ':', '://') and checks what precedes it behind that, so that a
# long file is passed over fast.
_ABSOLUTE_PATH = re.compile(r"/(?<![\w.~\-]/)(?<!://)(?:" + "|".join(PATH_ROOTS) + r")/[^\s\"'<>|,;:)\]}]+")
# A Windows drive path: a letter, ':', a backslash (JSON-escaped or not) or a slash, a name.
_DRIVE_PATH = re.compile(r":(?<=(?<![A-Za-z0-9])[A-Za-z]:)(?:\\{1,2}|/)[\w.$~\-]+")
# A URL's user and password before its host, with a password that is not the redacted one.
_CREDENTIAL_URL = re.compile(r"://(?<=[A-Za-z0-9+.\-]://)([^\s:/?#@'\"]*):([^\s/?#'\"]+)@")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*$")

Finding = tuple[str, int, str]  # (file, line number from 1, what is unsafe there)


class ShipError(RuntimeError):
    """A run cannot ship: unfinished, incomplete, or unsafe to publish (the message is one line)."""


def shipped_files(run_dir: Path) -> list[Path]:
    """The files of ``run_dir`` that ship, sorted, as paths under it (only those that exist).

    :param run_dir: a run's directory
    """
    run_dir = Path(run_dir)
    files = [run_dir / name for name in SHIPPED_FILES]
    sacred = run_dir / SACRED_DIR
    if sacred.is_dir():
        for attempt in sorted(sacred.iterdir()):
            if attempt.is_dir() and re.fullmatch(r"attempt\d+", attempt.name):
                files += [attempt / name for name in SACRED_FILES]
        sources = sacred / SACRED_SOURCES
        if sources.is_dir():
            files += [p for p in sources.iterdir() if p.is_file() and not p.name.endswith(".tmp")]
    # A log is there as itself or, in a shipped run, compressed.
    return sorted(found for p in files if (found := log_file(p)) is not None)


def scan_text(text: str, hostnames: Iterable[str] = ()) -> list[tuple[int, str]]:
    """What is unsafe to publish in ``text``: ``(line number from 1, what)`` per finding. A finding
    never repeats a password.

    :param text: the text to scan
    :param hostnames: host names that must not appear (whole words, case-insensitive)
    """
    lowered = text.lower()
    # Only the names that occur at all (most texts hold none): longest first.
    present = {h.strip() for h in hostnames if h.strip() and h.strip().lower() in lowered}
    names = sorted(present, key=len, reverse=True)
    host_pattern = (
        re.compile(r"(?<![\w.\-])(?:" + "|".join(map(re.escape, names)) + r")(?![\w\-])", re.IGNORECASE)
        if names
        else None
    )
    out: list[tuple[int, str]] = []
    for number, line in enumerate(text.splitlines(), 1):
        for m in _CREDENTIAL_URL.finditer(line):
            if m.group(2) != REDACTED:
                scheme = _SCHEME.search(line, 0, m.start())
                head = scheme.group(0) if scheme else ""
                out.append((number, f"credential in a URL: {head}://{m.group(1)}:{REDACTED}@"))
        drives = list(_DRIVE_PATH.finditer(line))
        after_drive = {m.start() + 1 for m in drives}  # a drive path is one finding, not two
        out += [
            (number, f"absolute path: {m.group(0)}")
            for m in _ABSOLUTE_PATH.finditer(line)
            if m.start() not in after_drive
        ]
        out += [(number, f"absolute path: {line[m.start() - 1]}{m.group(0)}") for m in drives]
        if host_pattern is not None:
            out += [(number, f"host name: {m.group(0)}") for m in host_pattern.finditer(line)]
    return out


def scan_for_unsafe(paths: Iterable[Path], hostnames: Iterable[str] = ()) -> list[Finding]:
    """Scan files for what must not be published: absolute paths of a machine, the given host names,
    and URLs with a password (see the module docstring for the rules). Reads only.

    :param paths: files, or directories (every file under them is scanned)
    :param hostnames: host names that must not appear
    :return: ``(file, line number, what)`` for each finding, in file order
    """
    hostnames = list(hostnames)
    findings: list[Finding] = []
    for path in paths:
        path = Path(path)
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            # Undecodable bytes cannot hide a path or URL written as text; replaced, they do no harm. A
            # compressed log is scanned as its text.
            data = file.read_bytes()
            if file.name.endswith(COMPRESSED):
                data = gzip.decompress(data)
            text = data.decode("utf-8", errors="replace")
            findings += [(str(file), number, what) for number, what in scan_text(text, hostnames)]
    return findings


# ---------------------------------------------------------------------------------- complete runs
def _read_json(path: Path) -> tuple[Any, str | None]:
    """A JSON file's value, or None and the one-line problem (named by the file's name)."""
    if not path.is_file():
        return None, f"{path.name} is missing"
    try:
        return json.loads(path.read_text()), None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        return None, f"{path.name} is unreadable ({type(err).__name__}: {err})"


def _read_jsonl(path: Path) -> tuple[list[tuple[int, dict[str, Any]]], list[str]]:
    """A JSON-lines log's rows as ``(line number, row)``, and its problems: missing, empty, a line that
    is not a JSON object (a cut-off last line included: a shipped log is whole), a row without an
    integer ``step``."""
    if log_file(path) is None:
        return [], [f"{path.name} is missing"]
    try:
        text = read_log_text(path)
    except (OSError, UnicodeDecodeError) as err:
        return [], [f"{path.name} is unreadable ({type(err).__name__}: {err})"]
    rows, problems = [], []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            problems.append(f"{path.name} line {number} is not JSON ({err})")
            continue
        step = row.get("step") if isinstance(row, dict) else None
        if not isinstance(step, int) or isinstance(step, bool):
            problems.append(f"{path.name} line {number} has no integer step")
            continue
        rows.append((number, row))
    if not rows and not problems:
        problems.append(f"{path.name} is empty")
    return rows, problems


def _increasing(rows: list[tuple[int, dict[str, Any]]], what: str) -> list[str]:
    """Problems where ``rows``' steps are not strictly increasing (a duplicate step included)."""
    for (_, before), (number, row) in zip(rows, rows[1:], strict=False):
        if row["step"] == before["step"]:
            return [f"{what}: step {row['step']} twice (line {number})"]
        if row["step"] < before["step"]:
            return [f"{what}: step {row['step']} after step {before['step']} (line {number})"]
    return []


def _attempt_number(path: Path) -> int | None:
    m = re.fullmatch(r"attempt(\d+)", path.name)
    return int(m.group(1)) if m and path.is_dir() else None


def _utc_timestamp(value: Any) -> float | None:
    """Sacred's naive UTC ISO time (``2026-12-07T04:12:18.725575``) as a POSIX timestamp, or None."""
    try:
        return dt.datetime.fromisoformat(str(value)).replace(tzinfo=dt.UTC).timestamp()
    except ValueError:
        return None


def _sacred_attempts(run_dir: Path, attempts: Any) -> tuple[dict[int, int], list[str]]:
    """Which Sacred record (``sacred/attemptN``) holds each attempt ``status.json`` lists, and the
    problems: ``({attempt number from 1: N}, problems)``.

    Each ``m3po train`` start writes a Sacred record; an attempt of ``status.json`` is the one that
    started last before it did (Sacred's ``start_time`` at or before the attempt's ``started``). A start
    refused before it trained (a resume asked with another config, say) writes a record but no attempt:
    such a record must be ``FAILED``. The records are ``attempt1`` .. ``attemptM``, each attempt has its
    own, and the last record is the last attempt's, ``COMPLETED``.
    """
    if not isinstance(attempts, list) or not attempts:
        return {}, [f"{STATUS_FILE}: no attempts recorded"]
    sacred = run_dir / SACRED_DIR
    found = sorted(n for p in sacred.iterdir() if (n := _attempt_number(p))) if sacred.is_dir() else []
    if found != list(range(1, len(found) + 1)) or not found:
        names = ", ".join(f"attempt{n}" for n in found) or "none"
        return {}, [f"{SACRED_DIR}: Sacred records {names}, not attempt1.. one per start"]
    runs, starts, problems = {}, {}, []
    for n in found:
        run, problem = _read_json(sacred / f"attempt{n}" / "run.json")
        start = _utc_timestamp(run.get("start_time")) if isinstance(run, dict) else None
        if problem or start is None:
            problems.append(f"{SACRED_DIR}/attempt{n}/{problem or 'run.json has no start_time'}")
        runs[n], starts[n] = (run if isinstance(run, dict) else {}), start
    if problems:
        return {}, problems
    which: dict[int, int] = {}
    for i, attempt in enumerate(attempts, 1):
        started = attempt.get("started") if isinstance(attempt, dict) else None
        record = max(
            (n for n in found if isinstance(started, float | int) and starts[n] <= started), default=0
        )
        if not record:
            return which, [f"{STATUS_FILE}: attempt {i} has no Sacred record started before it"]
        if record in which.values():
            return which, [
                f"{STATUS_FILE}: attempts {i - 1} and {i} both fall in {SACRED_DIR}/attempt{record}"
            ]
        which[i] = record
    for n in found:
        if n not in which.values() and runs[n].get("status") != "FAILED":
            problems.append(
                f"{SACRED_DIR}/attempt{n}: no attempt of {STATUS_FILE} ran in it, and it did not fail "
                f"(status {runs[n].get('status')!r})"
            )
    last = found[-1]
    if which[len(attempts)] != last:
        problems.append(f"{SACRED_DIR}/attempt{last}: started after the last attempt of {STATUS_FILE}")
    elif runs[last].get("status") != SACRED_COMPLETED:
        problems.append(
            f"{SACRED_DIR}/attempt{last}/run.json: the last attempt's status is "
            f"{runs[last].get('status')!r}, not {SACRED_COMPLETED}"
        )
    return which, problems


def check_complete(run_dir: Path) -> list[str]:
    """Why ``run_dir`` is not a finished, complete run ([] when it is), one line per problem. Reads only.

    Complete means: ``status.json`` says ``finished`` at a step at or past its ``steps_total`` (and
    ``config.json``'s ``steps`` is that budget); ``config.json``, ``status.json``, ``eval.jsonl`` and
    ``train.jsonl`` exist and parse, every log line whole with an integer ``step``; ``eval.jsonl`` has
    an evaluation at step 0 and at the final step (``status.json``'s step), each task's steps strictly
    increasing (no step twice), none past the final step; ``train.jsonl``'s steps strictly increasing and
    ending at the final step; and one Sacred record ``sacred/attemptN`` per attempt ``status.json``
    lists, the last one ``COMPLETED`` (records numbered ``attempt1`` .. ``attemptM``; one more is allowed
    only for a start refused before it trained, ``FAILED``: :func:`_sacred_attempts`).

    :param run_dir: the run's directory
    """
    run_dir = Path(run_dir)
    problems: list[str] = []
    config, problem = _read_json(run_dir / CONFIG_FILE)
    problems += [problem] if problem else []
    status, problem = _read_json(run_dir / STATUS_FILE)
    problems += [problem] if problem else []
    status = status if isinstance(status, dict) else {}
    final = status.get("step")
    if problem is None:
        total = status.get("steps_total")
        if status.get("status") != FINISHED:
            # Its step is where it stands, not where it ends: the logs are not judged against it.
            problems.append(f"{STATUS_FILE}: the run is not finished (status {status.get('status')!r})")
            final = None
        elif not isinstance(final, int) or not isinstance(total, int):
            problems.append(f"{STATUS_FILE}: no integer step and steps_total ({final!r}, {total!r})")
            final = None
        elif final < total:
            problems.append(f"{STATUS_FILE}: step {final} is short of steps_total {total}")
        if isinstance(config, dict) and isinstance(total, int) and config.get("steps") != total:
            problems.append(f"{CONFIG_FILE}: steps {config.get('steps')!r} is not the budget {total}")

    evals, bad = _read_jsonl(run_dir / EVAL_LOG)
    problems += bad
    if evals:
        by_task: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        for number, row in evals:
            by_task.setdefault(str(row.get("task")), []).append((number, row))
        for task, rows in sorted(by_task.items()):
            problems += _increasing(rows, f"{EVAL_LOG}: task {task}")
        steps = {row["step"] for _, row in evals}
        if 0 not in steps:
            problems.append(f"{EVAL_LOG}: no evaluation at step 0")
        if final is not None:
            if final not in steps:
                problems.append(f"{EVAL_LOG}: no evaluation at the final step {final} (last: {max(steps)})")
            past = sorted(s for s in steps if s > final)
            if past:
                problems.append(f"{EVAL_LOG}: an evaluation at step {past[0]}, past the final step {final}")

    trains, bad = _read_jsonl(run_dir / TRAIN_LOG)
    problems += bad
    if trains:
        problems += _increasing(trains, TRAIN_LOG)
        last = trains[-1][1]["step"]
        if final is not None and last != final:
            problems.append(f"{TRAIN_LOG}: ends at step {last}, not at the final step {final}")

    if status:
        problems += _sacred_attempts(run_dir, status.get("attempts"))[1]
    return problems


def check_shippable(run_dir: Path, hostnames: Iterable[str] = ()) -> list[Path]:
    """The run's shipped files, once it is known to be finished, complete and safe to publish.

    :param run_dir: the run's directory
    :param hostnames: host names that must not appear in its files
    :raises ShipError: one line saying why the run cannot ship
    """
    run_dir = Path(run_dir)
    try:
        status = read_status(run_dir).get("status")
    except RunDirectoryError as err:
        raise ShipError(f"{run_dir}: not shipped: {err}") from err
    if status != FINISHED:
        raise ShipError(f"{run_dir}: not shipped: the run is not finished (status {status!r})")
    missing = [name for name in REQUIRED_FILES if log_file(run_dir / name) is None]
    if missing:
        raise ShipError(f"{run_dir}: not shipped: it lacks {', '.join(missing)}")
    problems = check_complete(run_dir)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ShipError(f"{run_dir}: not shipped: incomplete: {problems[0]}{more}")
    files = shipped_files(run_dir)
    findings = scan_for_unsafe(files, hostnames)
    if findings:
        file, line, what = findings[0]
        more = f" (and {len(findings) - 1} more)" if len(findings) > 1 else ""
        raise ShipError(
            f"{run_dir}: not shipped: unsafe to publish: {Path(file).relative_to(run_dir)} line {line}: "
            f"{what}{more}"
        )
    return files


def find_runs(root: Path) -> list[Path]:
    """The run directories under ``root`` (each holds a ``status.json``), sorted; ``root`` itself if it
    is one. A run the workflow set aside as corrupt (``seed1.corrupt-1``) is not one of them.

    :param root: a run directory, or a directory of them (``results/runs/PROFILE``)
    """
    root = Path(root)
    if (root / STATUS_FILE).is_file():
        return [root]
    runs = (p.parent for p in root.rglob(STATUS_FILE))
    return sorted(
        r for r in runs if ".corrupt-" not in r.name and SACRED_DIR not in r.relative_to(root).parts
    )


def unshipped_finished_runs(root: Path, dest: Path) -> tuple[list[Path], int]:
    """The finished runs under ``root`` not in ``dest`` yet (what a campaign ships as it goes), and how
    many others there are (not finished, or shipped already).

    :param root: a run directory or a directory of runs
    :param dest: where shipped runs go
    """
    root, dest = Path(root), Path(dest)
    every = find_runs(root)
    new = [
        r
        for r in every
        if read_status(r).get("status") == FINISHED
        and not (dest / r.relative_to(root) / STATUS_FILE).exists()
    ]
    return new, len(every) - len(new)


def ship_runs(
    root: Path, dest: Path, hostnames: Iterable[str] = (), runs: Sequence[Path] | None = None
) -> list[Path]:
    """Copy the shipped files of the finished runs under ``root`` to ``dest``, each run to the same
    path under ``dest`` as under ``root``. Every run is checked before anything is copied: one that is
    unfinished, incomplete or unsafe stops the whole shipment, and a run already in ``dest`` is not
    overwritten (delete it there to ship it again).

    :param root: a run directory or a directory of runs
    :param dest: where the runs go (e.g. ``results/evidence/PROFILE``)
    :param hostnames: host names that must not appear (e.g. ``[platform.node()]``)
    :param runs: the run directories to ship (default: :func:`find_runs` of ``root``)
    :return: the run directories written under ``dest``
    :raises ShipError: one line saying which run cannot ship and why
    """
    root, dest = Path(root), Path(dest)
    hostnames = list(hostnames)
    runs = find_runs(root) if runs is None else [Path(r) for r in runs]
    if not runs:
        raise ShipError(f"{root}: no runs to ship (no {STATUS_FILE} under it)")
    plan = []
    for run_dir in runs:
        files = check_shippable(run_dir, hostnames)
        target = dest / run_dir.relative_to(root)
        if target.exists() and any(target.iterdir()):
            raise ShipError(f"{run_dir}: not shipped: {target} exists already (delete it to ship again)")
        plan.append((run_dir, target, files))
    for run_dir, target, files in plan:
        for file in files:
            out = target / file.relative_to(run_dir)
            out.parent.mkdir(parents=True, exist_ok=True)
            if file.name in COMPRESSED_FILES or file.parent.name == SACRED_SOURCES:
                # mtime 0 and no file name in the header: the same bytes whenever it ships.
                out.with_name(file.name + COMPRESSED).write_bytes(gzip.compress(file.read_bytes(), mtime=0))
            else:
                shutil.copy2(file, out)
    return [target for _, target, _ in plan]


# ------------------------------------------------------------------------------- reproduction
# What decides a CPU run's bits besides its config (each attempt's ``compute`` in status.json, from
# m3po.trainer.run_record.compute_facts): outside portable mode all of them must be this machine's; in
# portable mode only the architecture and C library (the code paths are the ones every x86-64 CPU has).
EXACT_FACTS: tuple[str, ...] = (
    "cpu_model", "cpu_flags", "machine", "libc", "torch_cpu_capability", "numpy_simd", "settings",
)  # fmt: skip
PORTABLE_FACTS: tuple[str, ...] = ("machine", "libc")
# Settings of the process, not of the machine: the retrain sets them as the run recorded them (the
# workflow's train jobs export them), as it does torch's thread count.
THREAD_SETTINGS: tuple[str, ...] = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
PORTABLE_MACHINES = ("x86_64", "AMD64")
# The libraries whose versions decide the bits (Sacred's info.json ``versions``); the suite's own code is
# the checkout's (a mismatch names the recorded commit).
VERSIONED = ("torch", "numpy", "mujoco", "dm-control", "metaworld", "gymnasium", "stable-baselines3")
# An evaluation row's numbers that must be identical.
EVAL_FIELDS = ("return", "success", "score", "episodes", "score_mean")
# The config keys a retrain sets itself (runtime keys: they do not change what is computed, except threads,
# set to the recorded count).
_RETRAIN_SETS = ("steps", "threads", "device", "tensorboard")
_ROOT = Path(__file__).resolve().parents[1]


class ReproductionError(RuntimeError):
    """The first evaluation could not be retrained at all (unreadable record, config or training error)."""


@dataclass(frozen=True)
class Reproduction:
    """What :func:`reproduce_first_evaluation` found.

    :ivar matched: True: every number of the evaluation at ``step`` is identical; False: one differs;
        None: not compared exactly (this machine cannot be expected to give the same bits, or the run has
        no evaluation after step 0): ``reason`` says why
    :ivar step: the agent step of the first evaluation after step 0 (None if there is none)
    :ivar recorded: the recorded mean score at ``step`` (``score_mean``)
    :ivar reproduced: the retrained run's mean score there (None when not retrained)
    :ivar reason: one line
    """

    matched: bool | None
    step: int | None
    recorded: float | None
    reproduced: float | None
    reason: str


def _describe(facts: dict[str, Any], threads: bool = True) -> str:
    """A machine's compute facts in a few words: CPU model, torch's kernel capability (and threads)."""
    if facts.get("portable"):
        return f"{facts.get('cpu_model')} (portable mode)"
    count = f", {facts.get('torch_threads')} thread(s)" if threads else ""
    return f"{facts.get('cpu_model')} (torch {facts.get('torch_cpu_capability')}{count})"


def _eval_rows(run_dir: Path) -> dict[int, dict[str, dict[str, Any]]]:
    """``eval.jsonl`` as ``{step: {task: row}}``."""
    rows, problems = _read_jsonl(run_dir / EVAL_LOG)
    if problems:
        raise ReproductionError(f"{run_dir}: {problems[0]}")
    out: dict[int, dict[str, dict[str, Any]]] = {}
    for _, row in rows:
        out.setdefault(row["step"], {})[str(row.get("task"))] = row
    return out


def _versions(run_dir: Path, attempt: int) -> dict[str, str]:
    """The library versions Sacred recorded for an attempt ({} when not recorded)."""
    info, problem = _read_json(run_dir / SACRED_DIR / f"attempt{attempt}" / "info.json")
    versions = info.get("versions") if problem is None and isinstance(info, dict) else None
    return versions if isinstance(versions, dict) else {}


def _here_versions() -> dict[str, str]:
    from suite.experiment import library_versions

    return library_versions()


def comparability(run_dir: Path, step: int) -> tuple[str | None, int]:
    """Whether this machine can be expected to retrain ``run_dir`` up to ``step`` bit for bit.

    The attempts that computed steps up to ``step`` (those that started, or resumed, before it) must
    agree among themselves and with this machine on :data:`EXACT_FACTS` (CPU model and SIMD flags, C
    library, torch's kernel capability, numpy's SIMD features, the library settings in force but the
    thread counts of :data:`THREAD_SETTINGS`), and record one thread count (the retrain uses it, and
    sets the recorded thread settings); or have run in portable mode, which needs only the
    same x86-64 architecture and C library (:data:`PORTABLE_FACTS`). In both cases the libraries of
    :data:`VERSIONED` must be this environment's versions, and the run must have trained on a CPU.

    :return: (None, the thread count to retrain with) when comparable; else (one line starting "not
        comparable exactly: ", 0)
    """
    from m3po.trainer.run_record import compute_facts

    run_dir = Path(run_dir)
    status = read_status(run_dir)
    config, problem = _read_json(run_dir / CONFIG_FILE)
    if problem:
        raise ReproductionError(f"{run_dir}: {problem}")
    attempts = status.get("attempts") or []
    # The attempts that computed steps up to `step` (a resume replays exactly, so each one counts).
    used = [(n, a) for n, a in enumerate(attempts, 1) if (a.get("resumed_from_step") or 0) < step]
    if not used:
        return "not comparable exactly: status.json records no attempt", 0
    lacking = [n for n, a in used if not isinstance(a.get("compute"), dict)]
    if lacking:
        return f"not comparable exactly: attempt {lacking[0]} recorded no compute facts (CPU, capability)", 0
    facts = [a["compute"] for _, a in used]
    device = str(config.get("device", "auto"))
    record = _sacred_attempts(run_dir, attempts)[0].get(used[0][0], used[0][0])
    run, _ = _read_json(run_dir / SACRED_DIR / f"attempt{record}" / "run.json")
    gpus = run.get("host", {}).get("gpus") if isinstance(run, dict) else None
    if device.startswith("cuda") or (device == "auto" and gpus):
        return f"not comparable exactly: recorded with device={device} on a machine with a GPU", 0
    here = compute_facts()
    portable = all(f.get("portable") for f in facts)
    keys = PORTABLE_FACTS if portable else EXACT_FACTS
    if portable and here.get("machine") not in PORTABLE_MACHINES:
        return f"not comparable exactly: recorded in portable mode, this machine {here['machine']}", 0
    for f in facts[1:]:
        differ = [k for k in (*keys, "torch_threads") if f.get(k) != facts[0].get(k)]
        if differ:
            return (
                f"not comparable exactly: its attempts ran on different machines or settings "
                f"({_describe(facts[0])} and {_describe(f)}; {', '.join(differ)})"
            ), 0
    differ = [k for k in keys if _of_machine(facts[0]).get(k) != _of_machine(here).get(k)]
    if differ:
        there, ours, which = _describe(facts[0]), _describe(here, threads=False), ", ".join(differ)
        return f"not comparable exactly: recorded on {there}, this machine {ours} (differs in {which})", 0
    recorded_versions, here_versions = _versions(run_dir, record), _here_versions()
    changed = [
        f"{k} {recorded_versions[k]} (this machine {here_versions.get(k)})"
        for k in VERSIONED
        if k in recorded_versions and recorded_versions[k] != here_versions.get(k)
    ]
    if changed:
        return f"not comparable exactly: recorded with {', '.join(changed)}", 0
    threads = 1 if portable else int(facts[0].get("torch_threads") or 0)
    if threads < 1:
        return "not comparable exactly: the run recorded no thread count", 0
    return None, threads


def _of_machine(facts: dict[str, Any]) -> dict[str, Any]:
    """Compute facts without the settings a retrain sets itself (:data:`THREAD_SETTINGS`)."""
    settings = facts.get("settings")
    if not isinstance(settings, dict):
        return facts
    return {**facts, "settings": {k: v for k, v in settings.items() if k not in THREAD_SETTINGS}}


def recorded_thread_settings(run_dir: Path) -> dict[str, str]:
    """The :data:`THREAD_SETTINGS` the run's first attempt recorded (its retrain sets these)."""
    attempts = read_status(run_dir).get("attempts") or [{}]
    settings = (attempts[0].get("compute") or {}).get("settings") or {}
    return {k: str(v) for k, v in settings.items() if k in THREAD_SETTINGS}


def _flatten(values: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in values.items():
        if isinstance(value, dict) and value:
            out += _flatten(value, f"{prefix}{key}.")
        else:
            out.append((f"{prefix}{key}", value))
    return out


def _literal(value: Any) -> str:
    """A config value as ``m3po train with key=VALUE`` reads it back (Sacred's literal parsing)."""
    if isinstance(value, float) and math.isinf(value):
        return "1e999" if value > 0 else "-1e999"
    return repr(value)


def retrain_words(config: dict[str, Any], steps: int, threads: int) -> list[str]:
    """The ``m3po train with`` words that retrain a run's ``config.json`` with another budget: every
    recorded field as given (dotted for sections), ``steps``, ``threads``, on the CPU, without
    TensorBoard files or a progress bar.

    :raises ReproductionError: the words would not rebuild the recorded config (a field that no longer
        exists, or a value that does not read back)
    """
    from m3po.config import ConfigError
    from suite.experiment import recorded_config

    words = [f"algo={config['algo']}"]
    words += [
        f"{key}={_literal(value)}"
        for key, value in _flatten({k: v for k, v in config.items() if k != "algo"})
        if key not in _RETRAIN_SETS
    ]
    words += [f"steps={steps}", f"threads={threads}", "device='cpu'", "tensorboard=False", "progress=False"]
    try:
        wanted, defaults = recorded_config(words)
    except ConfigError as err:
        raise ReproductionError(f"its config.json no longer makes a run: {err}") from err
    differ = [k for k in config_differences(config, wanted, defaults) if k != "steps"]
    if differ:
        raise ReproductionError(f"its config.json does not read back (differs in: {', '.join(differ)})")
    return words


def first_evaluation_budget(run_dir: Path, step: int) -> int:
    """The budget that retrains ``run_dir`` up to its evaluation at ``step`` as the run computed it.

    ``step`` itself, unless a checkpoint fell due at the iteration ending at ``step`` in a run that went
    on: the trainer then marks that iteration's last step as a time-limit cut (a run's final iteration
    never is), so the retrain goes one more iteration (``step + num_envs``) to compute it the same way.
    A due checkpoint is told from ``checkpoint_every`` and the last ``train.jsonl`` row before ``step``
    (a multiple of ``checkpoint_every`` between them); when in doubt the budget is the longer one.
    """
    run_dir = Path(run_dir)
    config, _ = _read_json(run_dir / CONFIG_FILE)
    total = read_status(run_dir).get("steps_total") or config.get("steps")
    every = int(config.get("checkpoint_every") or 0)
    rows, _ = _read_jsonl(run_dir / TRAIN_LOG)
    before = max((row["step"] for _, row in rows if row["step"] < step), default=0)
    if step < total and every > 0 and step // every > before // every:
        return step + int(config.get("num_envs") or 1)
    return step


def reproduce_first_evaluation(run_dir: Path, workdir: Path) -> Reproduction:
    """Retrain a run's first evaluation interval from its ``config.json`` and compare the evaluation
    at its end, every number of every task (:data:`EVAL_FIELDS`), with ``==``.

    The retrain is ``m3po train with`` the recorded config (same algorithm, seed, task and every
    override) and the budget of :func:`first_evaluation_budget`, in a subprocess (so that portable mode
    re-executes itself), in a new run directory under ``workdir``, on the CPU with the recorded thread
    count. It runs only where an exact match can be expected (:func:`comparability`); else the result
    says why not, without training. A finished retrain in ``workdir`` for the same words is read again,
    not retrained (as ``m3po train`` never retrains a finished run).

    :param run_dir: a run's directory (a shipped one needs no checkpoints)
    :param workdir: where the retrain's run directory (and its log) go
    :raises ReproductionError: the record cannot be read, its config no longer builds, or the retrain
        failed
    """
    run_dir, workdir = Path(run_dir), Path(workdir)
    config, problem = _read_json(run_dir / CONFIG_FILE)
    if problem or not isinstance(config, dict) or "algo" not in config:
        raise ReproductionError(f"{run_dir}: {problem or 'config.json names no algo'}")
    recorded = _eval_rows(run_dir)
    step = min((s for s in recorded if s > 0), default=None)
    if step is None:
        return Reproduction(None, None, None, None, f"{run_dir} has no evaluation after step 0")
    rows = recorded[step]
    score = next(iter(rows.values())).get("score_mean")
    why, threads = comparability(run_dir, step)
    if why is not None:
        return Reproduction(None, step, score, None, why)

    words = retrain_words(config, first_evaluation_budget(run_dir, step), threads)
    rerun = _retrain(words, workdir, recorded_thread_settings(run_dir))
    again = _eval_rows(rerun).get(step, {})
    ours = next(iter(again.values()), {}).get("score_mean")
    why = _retrained_as_assumed(run_dir, rerun)
    if why is not None:
        return Reproduction(None, step, score, ours, why)
    if set(again) != set(rows):
        why = f"the retrain evaluated tasks {sorted(again)} at step {step}, the run {sorted(rows)}"
        return Reproduction(False, step, score, ours, why)
    diffs = [
        f"{task} {key} {row.get(key)!r} recorded, {again[task].get(key)!r} retrained"
        for task, row in sorted(rows.items())
        for key in EVAL_FIELDS
        if key in row and row.get(key) != again[task].get(key)
    ]
    if diffs:
        info, _ = _read_json(run_dir / SACRED_DIR / "attempt1" / "info.json")
        commit = info.get("commit") if isinstance(info, dict) else None
        more = f" (and {len(diffs) - 1} more)" if len(diffs) > 1 else ""
        why = f"differs at step {step}: {diffs[0]}{more} (trained at commit {commit}, retrained here)"
        return Reproduction(False, step, score, ours, why)
    facts = (read_status(rerun).get("attempts") or [{}])[-1].get("compute", {})
    why = f"identical at step {step} on {len(rows)} task(s), retrained on {_describe(facts)}"
    return Reproduction(True, step, score, ours, why)


def _retrain(words: list[str], workdir: Path, thread_settings: dict[str, str]) -> Path:
    """Run ``m3po train with WORDS`` in a run directory under ``workdir`` named by the words, with the
    run's :data:`THREAD_SETTINGS` (``thread_settings``, and none it did not have), unless a finished run
    is there already; return the run directory.

    :raises ReproductionError: the training process failed (its log's last line)
    """
    name = "first-eval-" + hashlib.sha256("\0".join(words).encode()).hexdigest()[:12]
    rerun, log_path = workdir / name, workdir / f"{name}.log"
    if read_status(rerun).get("status") == FINISHED:
        return rerun
    workdir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "suite.cli", "train", "with", *words, f"run_dir={rerun}"]
    with log_path.open("w") as log:
        env = {k: v for k, v in os.environ.items() if k not in THREAD_SETTINGS} | thread_settings
        done = subprocess.run(command, cwd=_ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
    if done.returncode != 0:
        lines = log_path.read_text(errors="replace").strip().splitlines()
        last = lines[-1] if lines else "no output"
        raise ReproductionError(f"the retrain failed (exit {done.returncode}): {last} (log: {log_path})")
    return rerun


def _retrained_as_assumed(run_dir: Path, rerun: Path) -> str | None:
    """None if the retrain's own compute facts are those the comparison assumed (the recorded ones that
    decide the bits), else why the retrain is no test of the run."""
    attempts = read_status(run_dir).get("attempts", [])
    first = next((a["compute"] for a in attempts if isinstance(a.get("compute"), dict)), {})
    facts = (read_status(rerun).get("attempts") or [{}])[-1].get("compute", {})
    if first.get("portable"):
        differ = [k for k in PORTABLE_FACTS if facts.get(k) != first.get(k)]
        differ += [] if facts.get("portable") else ["portable"]
    else:
        differ = [k for k in (*EXACT_FACTS, "torch_threads") if facts.get(k) != first.get(k)]
    if not differ:
        return None
    return f"not comparable exactly: the retrain ran on {_describe(facts)} (differs in {', '.join(differ)})"
