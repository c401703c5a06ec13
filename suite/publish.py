"""Shipping finished runs as evidence: which of a run's files ship, a scan that they are safe to
publish, and the copy into the repository's results.

What ships of a run (:data:`SHIPPED_FILES`, :data:`SACRED_FILES`): ``config.json``, ``status.json``,
``eval.jsonl``, ``train.jsonl`` and Sacred's records (``sacred/attemptN/`` run, config, info, metrics
and captured output, and ``sacred/_sources/``). Never: ``checkpoints/`` (large, and rebuilt by
training), ``tensorboard/`` (its file names hold the host's name; the same metrics are in the logs),
the job logs (``*.log``, they hold the machine's paths) and anything else.

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
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

from m3po.errors import RunDirectoryError
from m3po.record import FINISHED, REDACTED, STATUS_FILE, read_status

# Where the repository's shipped runs live, relative to its root (``make figures`` reads them).
EVIDENCE_DIR = Path("results") / "evidence"
# The run's own files that ship (the run record of m3po.record), and those it must have.
SHIPPED_FILES: tuple[str, ...] = ("config.json", "status.json", "eval.jsonl", "train.jsonl")
REQUIRED_FILES: tuple[str, ...] = ("config.json", "status.json", "eval.jsonl")
# Sacred's records: each attempt's files (sacred/attemptN/...), and its source snapshots.
SACRED_DIR = "sacred"
SACRED_FILES: tuple[str, ...] = ("run.json", "config.json", "info.json", "metrics.json", "cout.txt")
SACRED_SOURCES = "_sources"
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
    return sorted(p for p in files if p.is_file())


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
            # Undecodable bytes cannot hide a path or URL written as text; replaced, they do no harm.
            text = file.read_text(encoding="utf-8", errors="replace")
            findings += [(str(file), number, what) for number, what in scan_text(text, hostnames)]
    return findings


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
    missing = [name for name in REQUIRED_FILES if not (run_dir / name).is_file()]
    if missing:
        raise ShipError(f"{run_dir}: not shipped: it lacks {', '.join(missing)}")
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
            shutil.copy2(file, out)
    return [target for _, target, _ in plan]
