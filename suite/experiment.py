"""Training runs as Sacred experiments.

``m3po train with algo=m3po task=cartpole-swingup seed=1 steps=100000``: ``algo`` is any name of
the registry (:mod:`suite.registry`), whose config dataclass gives the other keys (flat run fields,
dotted section fields: ``planner.horizon=5``, ``sac.learning_rate=1e-4``).

Each run gets its own deterministic directory (default ``results/runs/{algo}/{task}/seed{seed}``),
and each attempt at it (a first start, then every resume) its own Sacred record
``run_dir/sacred/attemptN``, so concurrent jobs never race for Sacred's numeric run ids. A MongoDB
observer is added when ``mongo_url=...`` or the ``M3PO_MONGO_URL`` environment variable is given.

Sacred's records are safe to publish (:mod:`suite.publish`): both observers write through
:func:`m3po.record.redact`, so a URL's password is ``***`` (the config's ``mongo_url`` included) and
this machine's absolute paths come out relative to the repository (``experiment.base_dir`` is
``suite``) or as ``<run_dir>``, ``<python>``, ``<tmp>``, ``~``; the captured output (``cout.txt``) goes
through the same rewrite (Sacred's ``captured_out_filter``); and the host is described, not named:
``host.hostname`` holds :func:`m3po.record.host_description` (CPU model and count). Sacred's other
host facts (OS, Python, CPU, GPUs) are kept; it captures no environment variables here.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import os
import re
import signal
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sacred import SETTINGS, Experiment
from sacred.arg_parser import get_config_updates
from sacred.observers import FileStorageObserver, MongoObserver, RunObserver

from m3po.config import ConfigError, RunConfig
from m3po.record import host_description, path_roots, redact, redact_text
from suite.registry import ALGOS, get_algorithm

# tqdm draws the progress bar on stderr; Sacred's default fd capture would swallow its redraws.
SETTINGS.CAPTURE_MODE = "sys"

__all__ = [
    "ALGOS", "RUN_KEYS", "CapturedOutRedactor", "LaunchOptions", "SafeFileStorageObserver",
    "SafeMongoObserver", "add_observers", "build_experiment", "check_portable", "default_run_dir",
    "mongo_observer", "resolve_config", "run_from_args",
]  # fmt: skip


@dataclass(frozen=True)
class LaunchOptions:
    """The keys of ``m3po train`` that are not fields of the algorithm's config: which algorithm runs,
    where the run is recorded and how it reports (the run's ``config.json`` records ``algo`` alone)."""

    algo: str = "m3po"  # algorithm (suite.registry lists them)
    run_dir: str | None = None  # None: results/runs/{algo}/{task}/seed{seed}
    progress: bool = True  # progress bar on stderr
    mongo_url: str | None = None  # also record to MongoDB (or set M3PO_MONGO_URL)


# The launch keys' names: a run's keys are these and the fields of the algorithm's config.
RUN_KEYS: frozenset[str] = frozenset(f.name for f in dataclasses.fields(LaunchOptions))


def default_run_dir(algo: str, task: str, seed: int) -> Path:
    """``results/runs/{algo}/{task}/seed{seed}``; task sets given as lists use their names joined by '+'."""
    return Path("results") / "runs" / algo / task.replace(",", "+").replace(" ", "") / f"seed{seed}"


def build_experiment(algo: str = "m3po", preset: str = "cpu") -> Experiment:
    """The Sacred experiment of ``algo``: its config holds the run keys and the full values of the
    algorithm's config for ``preset`` (every field overridable: ``steps=...``, ``planner.horizon=5``)."""
    spec = get_algorithm(algo)
    ex = Experiment("m3po", save_git_info=False)
    ex.add_config({**dataclasses.asdict(LaunchOptions(algo=algo)), **spec.preset_dict(preset)})

    @ex.main
    def main(_config: dict[str, Any], _run: Any) -> dict[str, Any]:
        cfg = resolve_config(_config)
        train = get_algorithm(_config["algo"]).load_train()
        run_dir = Path(_config["run_dir"])
        _run.info["resolved_config"] = {"algo": _config["algo"], **cfg.to_dict()}
        _run.info["run_dir"] = str(run_dir)
        _run.info["versions"] = library_versions()
        _run.info["commit"] = git_commit()
        return train(cfg, run_dir, on_metrics=_run.log_scalar, progress=_config["progress"])

    return ex


def resolve_config(values: dict[str, Any]) -> RunConfig:
    """Sacred's config dict -> the algorithm's validated config (errors name the bad field)."""
    spec = get_algorithm(values.get("algo"))
    config_fields = spec.field_names
    unknown = sorted(set(values) - config_fields - RUN_KEYS)
    if unknown:
        raise ConfigError(
            f"unknown config key {unknown[0]!r} for algo={spec.name}; "
            f"valid: {', '.join(sorted(config_fields | RUN_KEYS))}"
        )
    updates = {k: v for k, v in values.items() if k in config_fields and k != "preset"}
    return spec.make_config(values.get("preset", RunConfig.preset), **updates)


def check_portable(cfg: RunConfig) -> None:
    """A ``portable=True`` run needs portable mode in force from the process's start (``m3po train``
    and the workflow's train script re-execute themselves with it; an in-process call cannot).

    :raises ConfigError: one line naming what is missing (:func:`m3po.portable.refusal`)
    """
    from m3po.portable import refusal

    if cfg.portable and (why := refusal(cfg.threads)):
        raise ConfigError(why)


def library_versions() -> dict[str, str]:
    """Versions of the libraries a run depends on (for the run record)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    names = ("torch", "numpy", "mujoco", "dm-control", "metaworld", "gymnasium", "sacred")
    for name in (*names, "stable-baselines3", "m3po-suite"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_commit() -> str | None:
    """The suite's git commit (with ``-dirty`` for uncommitted changes), or None outside a checkout."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("-dirty" if dirty else "")


# ------------------------------------------------------------------------------- safe records
def described_host(host_info: Mapping[str, Any]) -> dict[str, Any]:
    """Sacred's host facts with the host's name replaced by its description (CPU model and count);
    the key stays ``hostname`` so that tools reading Sacred's records (Omniboard, incense) still work."""
    return {**host_info, "hostname": host_description()}


class _DescribedHostEvents:
    """Sacred observer events that record the host by :func:`described_host`; ``_event_id`` picks the
    id the observer is given (the file observer's ``attemptN``; MongoDB's own next id for Mongo)."""

    def _event_id(self, _id: Any) -> Any:
        return _id

    def queued_event(
        self,
        ex_info: dict,
        command: str,
        host_info: dict,
        queue_time: Any,
        config: dict,
        meta_info: dict,
        _id: Any,
    ) -> Any:
        return super().queued_event(
            ex_info, command, described_host(host_info), queue_time, config, meta_info, self._event_id(_id)
        )

    def started_event(
        self,
        ex_info: dict,
        command: str,
        host_info: dict,
        start_time: Any,
        config: dict,
        meta_info: dict,
        _id: Any,
    ) -> Any:
        return super().started_event(
            ex_info, command, described_host(host_info), start_time, config, meta_info, self._event_id(_id)
        )


class SafeFileStorageObserver(_DescribedHostEvents, FileStorageObserver):
    """Sacred's file observer, writing records that are safe to publish: the JSON files it writes
    (run.json, config.json, info.json) through :func:`m3po.record.redact`, the host by
    description, and ``cout.txt`` rewritten too, line by line (Sacred appends from a cursor, but a
    rewrite may change the unfinished last line already written).

    :param basedir: the directory of the records (``run_dir/sacred``)
    :param roots: the path roots to rewrite (:func:`m3po.record.path_roots` of the run directory)
    :param kwargs: :class:`sacred.observers.FileStorageObserver`'s other arguments
    """

    def __init__(self, basedir: str | Path, roots: Mapping[str, str], **kwargs: Any) -> None:
        self.roots = dict(roots)
        self._cout_lines = self._cout_bytes = 0  # cout.txt's complete lines: characters read, bytes written
        super().__init__(basedir, **kwargs)

    def started_event(self, *args: Any, **kwargs: Any) -> Any:
        # The sources are copied from the real base_dir first; only what is written is rewritten.
        self._cout_lines = self._cout_bytes = 0  # a new attempt's cout.txt
        return super().started_event(*args, **kwargs)

    def save_json(self, obj: Any, filename: str) -> None:
        from sacred.serializer import flatten

        if filename == "metrics.json":
            # Metric names the code chose, numbers and times: nothing to rewrite, and the file is
            # written whole at every save, so a walk over it would cost for nothing.
            return super().save_json(obj, filename)
        return super().save_json(redact(flatten(obj), self.roots), filename)

    def save_cout(self) -> None:
        # Complete lines are rewritten and written once; the last, unfinished line is rewritten again
        # at each save (a path cut in two is whole only later), so the file is cut back to the lines.
        lines_end = max(self.cout.rfind("\n"), self.cout.rfind("\r")) + 1
        if lines_end < self._cout_lines:  # the text was rewritten before the lines written: again
            self._cout_lines, self._cout_bytes = 0, 0
        lines = redact_text(self.cout[self._cout_lines : lines_end], self.roots).encode("utf-8")
        partial = redact_text(self.cout[lines_end:], self.roots).encode("utf-8")
        path = os.path.join(self.dir, "cout.txt")
        with open(path, "r+b" if os.path.exists(path) else "wb") as f:
            f.seek(self._cout_bytes)
            f.write(lines + partial)
            f.truncate()
        self._cout_lines, self._cout_bytes = lines_end, self._cout_bytes + len(lines)
        self.cout_write_cursor = len(self.cout)


class CapturedOutRedactor:
    """Sacred's ``captured_out_filter`` that rewrites the captured output (:func:`m3po.record.redact_text`).
    Sacred filters the whole output at every heartbeat (what it filtered before, and what came since):
    this filter rewrites each complete line once, so that a long run's output (megabytes of progress
    bar) is not rewritten again at every heartbeat.

    :param roots: the path roots to rewrite
    """

    def __init__(self, roots: Mapping[str, str]) -> None:
        self.roots = dict(roots)
        self.lines = ""  # what this filter returned up to the last line end (rewritten)

    def __call__(self, text: str) -> str:
        if not text.startswith(self.lines):  # another run's output (the experiment ran again)
            self.lines = ""
        tail = text[len(self.lines) :]
        end = max(tail.rfind("\n"), tail.rfind("\r")) + 1
        self.lines += redact_text(tail[:end], self.roots)
        return self.lines + redact_text(tail[end:], self.roots)


class _RedactingWrites:
    """A MongoDB collection or GridFS store whose writes go through :func:`m3po.record.redact` (the
    documents, and the file names GridFS records); reads and everything else pass through."""

    def __init__(self, target: Any, roots: Mapping[str, str]) -> None:
        self._target = target
        self._roots = dict(roots)

    def insert_one(self, document: Any, *args: Any, **kwargs: Any) -> Any:
        return self._target.insert_one(redact(document, self._roots), *args, **kwargs)

    def update_one(self, filter: Any, update: Any, *args: Any, **kwargs: Any) -> Any:
        return self._target.update_one(filter, redact(update, self._roots), *args, **kwargs)

    def replace_one(self, filter: Any, document: Any, *args: Any, **kwargs: Any) -> Any:
        return self._target.replace_one(filter, redact(document, self._roots), *args, **kwargs)

    def find_one(self, filter: Any = None, *args: Any, **kwargs: Any) -> Any:
        # GridFS looks a source up by the name it was stored under: the rewritten one.
        return self._target.find_one(redact(filter, self._roots), *args, **kwargs)

    def put(self, data: Any, **kwargs: Any) -> Any:
        return self._target.put(data, **redact(kwargs, self._roots))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)


class SafeMongoObserver(_DescribedHostEvents, MongoObserver):
    """Sacred's MongoDB observer, writing what :class:`SafeFileStorageObserver` writes: every document
    and source file name through :func:`m3po.record.redact`, the host by description. Each attempt gets
    MongoDB's own next id: the ``attemptN`` id names the file record's directory, and as MongoDB's
    ``_id`` it would collide across runs (the second run could not start).

    :param roots: the path roots to rewrite (None: :func:`m3po.record.path_roots`); the other arguments
        are :class:`sacred.observers.MongoObserver`'s (pymongo is needed to connect)
    """

    def __init__(self, *args: Any, roots: Mapping[str, str] | None = None, **kwargs: Any) -> None:
        self.roots = dict(path_roots() if roots is None else roots)
        super().__init__(*args, **kwargs)

    def initialize(
        self, runs_collection: Any, fs: Any, *args: Any, roots: Mapping[str, str] | None = None, **kwargs: Any
    ) -> None:
        """Sacred's ``initialize`` (``create_from`` calls it without ``__init__``), its collections and
        GridFS wrapped so that every write is rewritten."""
        if roots is not None or not hasattr(self, "roots"):
            self.roots = dict(path_roots() if roots is None else roots)
        if kwargs.get("metrics_collection") is not None:
            kwargs["metrics_collection"] = _RedactingWrites(kwargs["metrics_collection"], self.roots)
        runs, store = _RedactingWrites(runs_collection, self.roots), _RedactingWrites(fs, self.roots)
        super().initialize(runs, store, *args, **kwargs)

    def _event_id(self, _id: Any) -> None:
        return None  # MongoDB's own next id (see the class docstring)


def mongo_observer(url: str, roots: Mapping[str, str]) -> RunObserver:
    """The MongoDB observer of a run (database ``m3po``), writing safe records.

    :param url: the MongoDB URL (it may hold a password: it is never recorded)
    :param roots: the path roots to rewrite
    :raises ConfigError: pymongo is not installed
    """
    try:
        import pymongo  # noqa: F401
    except ImportError as err:
        raise ConfigError(
            f"mongo_url given, but pymongo is not installed: pip install pymongo ({err})"
        ) from err
    return SafeMongoObserver(url=url, db_name="m3po", roots=roots)


def add_observers(ex: Experiment, sacred_dir: Path, run_dir: Path, mongo_url: str | None = None) -> None:
    """Attach the run's observers, writing records safe to publish: files in ``sacred_dir``, and MongoDB
    when ``mongo_url`` is given; the captured output is rewritten for both (Sacred's
    ``captured_out_filter``).

    :param ex: the experiment
    :param sacred_dir: where the file records go (``run_dir/sacred``)
    :param run_dir: the run's directory (a root of :func:`m3po.record.path_roots`)
    :param mongo_url: the MongoDB URL, if any
    """
    roots = path_roots(run_dir)
    ex.captured_out_filter = CapturedOutRedactor(roots)
    ex.observers.append(SafeFileStorageObserver(sacred_dir, roots))
    if mongo_url:
        ex.observers.append(mongo_observer(mongo_url, roots))


def run_from_args(argv: list[str]) -> dict[str, Any]:
    """``[with] key=value ...`` -> run the experiment with a file observer in the run's own directory."""
    if argv and argv[0] == "with":
        argv = argv[1:]
    bad = [a for a in argv if "=" not in a]
    if bad:
        raise ConfigError(f"expected key=value after 'with', got {bad[0]!r}")
    updates, named = get_config_updates(argv)
    if named:
        raise ConfigError(f"named configs are not supported: {named}")
    algo = updates.get("algo", LaunchOptions.algo)
    # Validate before anything starts or any directory is made.
    cfg = resolve_config({**dataclasses.asdict(LaunchOptions()), **updates})
    check_portable(cfg)
    ex = build_experiment(algo, cfg.preset)
    run_dir = Path(updates.get("run_dir") or default_run_dir(algo, cfg.task, cfg.seed))
    updates["run_dir"] = str(run_dir)
    sacred_dir = run_dir / "sacred"
    sacred_dir.mkdir(parents=True, exist_ok=True)
    attempt = 1 + max(
        (int(m.group(1)) for p in sacred_dir.iterdir() if (m := re.fullmatch(r"attempt(\d+)", p.name))),
        default=0,
    )
    add_observers(ex, sacred_dir, run_dir, updates.get("mongo_url") or os.environ.get("M3PO_MONGO_URL"))
    with _sigterm_interrupts():
        run = ex.run(config_updates=updates, options={"--id": f"attempt{attempt}"})
    return run.result


def _interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"{signal.Signals(signum).name} received")


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM (``kill``, Snakemake stopping its jobs, SLURM at a time limit) ends the run the way Ctrl-C
    does: status.json says ``interrupted`` and Sacred's record ``INTERRUPTED``, where the default action
    would end the process with both still saying running. The run resumes from its last checkpoint
    either way. Only in the main thread, where Python delivers signals."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def recorded_config(updates: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """What ``m3po train with UPDATES`` records in ``config.json``, and its preset's plain values (the
    ``defaults`` of :func:`m3po.record.config_differences`), both as JSON records them.

    :raises m3po.config.ConfigError: an unknown algorithm, key or bad value
    """
    from m3po.config import merge
    from m3po.record import as_json

    parsed, _ = get_config_updates([u for u in updates if u != "with"])
    algo = parsed.get("algo", "m3po")
    spec = get_algorithm(algo)
    defaults = as_json(spec.preset_dict(parsed.get("preset", "cpu")))
    values = copy.deepcopy(defaults)
    merge(values, parsed)
    return as_json({"algo": algo, **resolve_config(values).to_dict()}), defaults
