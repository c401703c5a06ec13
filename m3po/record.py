"""The run record on disk, without torch: where a run lives, its status, its logs, its config.

Everything that reads or checks a run directory imports this module: the trainers (through
:class:`m3po.trainer.RunRecord`, which adds checkpoints), the workflow's scripts, the benchmarks and
:mod:`analysis`. It imports only the standard library, so reading results never loads torch or an
environment.

A run lives in its own directory (deterministic: no shared counters between concurrent jobs):

    run_dir/
      config.json        {"algo": ..., **resolved config} (a resume with a different config is refused)
      status.json        running | finished | failed | interrupted, step, steps_total, attempts, error;
                         each attempt: start, resumed-from step, host (a description: CPU model and
                         count, never the machine's name), SLURM job, and ``compute``: CPU
                         model and flags, torch's kernel capability and threads, numpy's SIMD
                         features, the settings in force, portable mode (m3po/portable.py)
      eval.jsonl         one line per evaluation and task: step, task, return, success, score,
                         episodes, score_mean (mean score over the run's tasks at that step)
      train.jsonl        one line per update (or logging interval): step, the algorithm's metrics,
                         time/sps, time/wall, mem/peak_rss_mib
      checkpoints/       latest.pt (+ previous.pt, the one before), each written atomically
      tensorboard/       the same metrics as TensorBoard event files (``tensorboard --logdir results/``)

A shipped run (:mod:`suite.publish`) carries its large logs gzip-compressed (``train.jsonl.gz``); every
reader of a log goes through :func:`log_file` and :func:`read_log_text`, which read either form.

Records are safe to publish (:mod:`suite.publish` ships them): what a run writes names no machine and
holds no credential. :func:`host_description` stands for the host; :func:`redact` rewrites a record's
strings: a URL's password becomes ``***``, and this machine's absolute paths become relative to the
repository (or ``<run_dir>``, ``<python>``, ``<tmp>``, ``~``: :func:`path_roots`).
"""

from __future__ import annotations

import functools
import gzip
import json
import os
import platform
import re
import sys
import tempfile
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
# The checkout this package runs from (None when installed elsewhere): records name its paths relative
# to it.
_CHECKOUT = Path(__file__).resolve().parents[1]
REPO_ROOT: Path | None = _CHECKOUT if (_CHECKOUT / "pyproject.toml").exists() else None
REDACTED = "***"  # what a URL's password becomes in a record


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


COMPRESSED = ".gz"  # the suffix of a log that ships gzip-compressed


def log_file(path: Path) -> Path | None:
    """The file that holds the log ``path``: the file itself, else its compressed form ``path.gz`` (a
    shipped run's), else None."""
    path = Path(path)
    for candidate in (path, path.with_name(path.name + COMPRESSED)):
        if candidate.is_file():
            return candidate
    return None


def read_log_text(path: Path) -> str:
    """The text of the log ``path``, from the file or its compressed form (:func:`log_file`).

    :raises FileNotFoundError: neither exists
    :raises UnicodeDecodeError: the text is not UTF-8
    :raises OSError: a compressed form that does not decompress (``gzip.BadGzipFile``, a cut-off file)
    """
    found = log_file(path)
    if found is None:
        raise FileNotFoundError(f"{path} is missing")
    if found.name.endswith(COMPRESSED):
        try:
            return gzip.decompress(found.read_bytes()).decode()
        except EOFError as err:  # a cut-off stream
            raise OSError(f"{found} is cut off: {err}") from err
    return found.read_text()


def read_jsonl(path: Path) -> list[dict]:
    """Rows of a JSON-lines file (or its compressed form, :func:`log_file`); a cut-off last line
    (killed mid-write) is dropped, other bad lines raise :class:`RunDirectoryError` naming the file and
    line."""
    if log_file(path) is None:
        return []
    lines = read_log_text(path).splitlines()
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


# ------------------------------------------------------------------------------------ publishable
def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; ``platform.processor()`` elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "cpu model"):
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def host_description() -> str:
    """The machine a run ran on, as records name it: CPU model, logical CPU count and architecture,
    e.g. ``Intel(R) Xeon(R) Processor @ 2.80GHz, 2 logical CPUs, x86_64``; never its host name, which
    identifies a machine without telling what decides speed or results."""
    return f"{cpu_model()}, {os.cpu_count()} logical CPUs, {platform.machine()}"


# A URL's credentials before its host: the user stays (it says which account), the password goes. The
# password runs to the last '@' before the host's path, as a URL with an unescaped '@' in it is read.
# The pattern starts with the literal '://' (the scheme checked behind it), so that a long text without
# URLs is passed over fast (a run's captured output can be megabytes).
_CREDENTIAL_URL = re.compile(
    r"://(?<=[A-Za-z0-9+.\-]://)(?P<user>[^\s:/?#@'\"]*):(?P<password>[^\s/?#'\"]+)@"
)


def redact_url(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***`` (``scheme://user:***@host``).

    :param text: any text (a URL, a command line, a traceback)
    """
    if "://" not in text:
        return text
    return _CREDENTIAL_URL.sub(lambda m: f"://{m['user']}:{REDACTED}@", text)


def path_roots(run_dir: str | Path | None = None) -> dict[str, str]:
    """This machine's absolute path prefixes and what records write in their place: the repository's
    checkout -> paths relative to it; a run directory outside it -> ``<run_dir>``; the Python
    installation -> ``<python>``; the temporary directory -> ``<tmp>``; the home directory -> ``~``.
    Both the spelled and the resolved form of each are listed (symbolic links).

    :param run_dir: the run's directory (relative paths are taken from the working directory)
    """
    roots: dict[str, str] = {}

    def add(path: str | Path | None, replacement: str) -> None:
        if not path:
            return
        for form in {os.path.abspath(path), os.path.realpath(path)}:
            if form != os.sep and form not in roots:  # "/" itself would swallow every path
                roots[form] = replacement

    add(REPO_ROOT, "")  # "" : relative to the repository
    if run_dir is not None:
        absolute = Path(os.path.abspath(run_dir))
        inside = REPO_ROOT is not None and absolute.resolve().is_relative_to(REPO_ROOT)
        if not inside:
            add(absolute, "<run_dir>")
    for prefix in (sys.prefix, sys.base_prefix, sys.exec_prefix):
        add(prefix, "<python>")
    add(tempfile.gettempdir(), "<tmp>")
    add(os.path.expanduser("~"), "~")
    return roots


@functools.lru_cache(maxsize=32)
def _roots_pattern(roots: tuple[tuple[str, str], ...]) -> re.Pattern[str] | None:
    prefixes = sorted((prefix for prefix, _ in roots if prefix.startswith("/")), key=len, reverse=True)
    if not prefixes:
        return None
    # Longest first, so that the most specific root wins (a venv inside the repository is <python>).
    alternatives = "|".join(re.escape(prefix[1:]) for prefix in prefixes)
    # A root is matched as a whole path component: not inside a longer name (the lookbehind, after the
    # literal '/' that starts the pattern so that the search is fast), and followed by '/' (eaten with
    # it, so that a path under the repository comes out relative) or by the end of the path.
    return re.compile(rf"/(?<![\w.~\-]/)(?P<root>{alternatives})(?:(?P<slash>/)|(?![\w.\-/]))")


def redact_text(text: str, roots: Mapping[str, str] | None = None) -> str:
    """``text`` safe to publish: URL passwords replaced (:func:`redact_url`), this machine's absolute
    paths rewritten (:func:`path_roots`). Idempotent: redacting a redacted text changes nothing.

    :param text: any text
    :param roots: absolute prefix -> replacement ("" for relative to the repository); None:
        :func:`path_roots` without a run directory
    """
    text = redact_url(text)
    table = dict(path_roots() if roots is None else roots)
    if not any(prefix in text for prefix in table):  # the common case, and fast
        return text
    pattern = _roots_pattern(tuple(sorted(table.items())))
    if pattern is None:
        return text

    def replace(m: re.Match[str]) -> str:
        replacement = table["/" + m["root"]]
        if replacement == "":  # inside the repository: the path relative to it ("." for the root)
            return "" if m["slash"] else "."
        return replacement + (m["slash"] or "")

    return pattern.sub(replace, text)


def redact(value: Any, roots: Mapping[str, str] | None = None) -> Any:
    """A copy of a record (dicts, lists, tuples, strings; other values as they are) with every string
    passed through :func:`redact_text`. Keys are kept: they are names the code chose, and MongoDB's
    operators (``$set``) must stay as they are.

    :param value: the record
    :param roots: as for :func:`redact_text`
    """
    table = dict(path_roots() if roots is None else roots)

    def walk(v: Any) -> Any:
        if isinstance(v, str):
            return redact_text(v, table)
        if isinstance(v, Mapping):
            return {k: walk(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            items = [walk(x) if isinstance(x, str | Mapping | list | tuple) else x for x in v]
            return items if isinstance(v, list) else tuple(items)
        return v

    return walk(value)
