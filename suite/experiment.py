"""Training runs as Sacred experiments.

``m3po train with algo=m3po task=cartpole-swingup seed=1 steps=100000``: ``algo`` is any name of
the registry (:mod:`suite.registry`), whose config dataclass gives the other keys (flat run fields,
dotted section fields: ``planner.horizon=5``, ``sac.learning_rate=1e-4``).

Each run gets its own deterministic directory (default ``results/runs/{algo}/{task}/seed{seed}``),
and each attempt at it (a first start, then every resume) its own Sacred record
``run_dir/sacred/attemptN``, so concurrent jobs never race for Sacred's numeric run ids. A MongoDB
observer is added when ``mongo_url=...`` or the ``M3PO_MONGO_URL`` environment variable is given.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sacred import SETTINGS, Experiment
from sacred.arg_parser import get_config_updates
from sacred.observers import FileStorageObserver

from m3po.config import ConfigError, RunConfig
from suite.registry import ALGOS, get_algorithm

# tqdm draws the progress bar on stderr; Sacred's default fd capture would swallow its redraws.
SETTINGS.CAPTURE_MODE = "sys"

__all__ = [
    "ALGOS", "RUN_KEYS", "LaunchOptions", "build_experiment", "check_portable", "default_run_dir",
    "resolve_config", "run_from_args",
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
    ex.observers.append(FileStorageObserver(str(sacred_dir)))
    mongo_url = updates.get("mongo_url") or os.environ.get("M3PO_MONGO_URL")
    if mongo_url:
        try:
            from sacred.observers import MongoObserver

            ex.observers.append(MongoObserver(url=mongo_url, db_name="m3po"))
        except ImportError as err:
            raise ConfigError(
                f"mongo_url given, but pymongo is not installed: pip install pymongo ({err})"
            ) from err
    run = ex.run(config_updates=updates, options={"--id": f"attempt{attempt}"})
    return run.result


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
