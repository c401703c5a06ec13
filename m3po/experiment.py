"""Training runs as Sacred experiments.

``m3po train with algo=m3po task=cartpole-swingup seed=1 steps=100000``:

Each run gets its own deterministic directory (default ``results/runs/{algo}/{task}/seed{seed}``),
and each attempt at it (a first start, then every resume) its own Sacred record
``run_dir/sacred/attemptN``, so concurrent jobs never race for Sacred's numeric run ids. A MongoDB
observer is added when ``mongo_url=...`` or the ``M3PO_MONGO_URL`` environment variable is given.
"""

from __future__ import annotations

import os
import re
from dataclasses import fields
from pathlib import Path
from typing import Any

from sacred import SETTINGS, Experiment
from sacred.arg_parser import get_config_updates
from sacred.observers import FileStorageObserver

from m3po.config import ConfigError, M3POConfig, make_config, preset_dict

# tqdm draws the progress bar on stderr; Sacred's default fd capture would swallow its redraws.
SETTINGS.CAPTURE_MODE = "sys"

ALGOS = ("m3po",)
CONFIG_FIELDS = {f.name for f in fields(M3POConfig)}
RUN_KEYS = {"algo", "run_dir", "progress", "mongo_url"}


def default_run_dir(algo: str, task: str, seed: int) -> Path:
    """``results/runs/{algo}/{task}/seed{seed}``; task sets given as lists use their names joined by '+'."""
    return Path("results") / "runs" / algo / task.replace(",", "+").replace(" ", "") / f"seed{seed}"


def build_experiment() -> Experiment:
    """The Sacred experiment; its config holds the run keys and overrides of :class:`M3POConfig`."""
    ex = Experiment("m3po", save_git_info=False)

    @ex.config
    def config() -> None:
        algo = "m3po"  # algorithm: m3po (baselines join through the same runner)
        preset = "cpu"  # cpu | paper: sizes of model and planner
        task = "cartpole-swingup"  # task, task set (mt80, dmc39, ...) or comma list
        seed = 1  # run seed
        steps = 100_000  # agent steps, summed over envs
        run_dir = None  # None: results/runs/{algo}/{task}/seed{seed}
        progress = True  # progress bar on stderr
        mongo_url = None  # also record to MongoDB (or set M3PO_MONGO_URL)
        # Every other M3POConfig field, from the preset; override any, e.g. planner.horizon=5.
        num_envs = preset_dict(preset)["num_envs"]  # vectorized environments
        vec_mode = preset_dict(preset)["vec_mode"]  # sync | async
        eval_every = preset_dict(preset)["eval_every"]  # agent steps between evaluations
        eval_episodes = preset_dict(preset)["eval_episodes"]  # evaluation episodes per task
        eval_planner = preset_dict(preset)["eval_planner"]  # evaluate with the planner (False: the prior)
        checkpoint_every = preset_dict(preset)["checkpoint_every"]  # agent steps between checkpoints
        device = preset_dict(preset)["device"]  # auto | cpu | cuda
        threads = preset_dict(preset)["threads"]  # torch threads (0: torch's default)
        model = preset_dict(preset)["model"]  # model sizes
        planner = preset_dict(preset)["planner"]  # MPPI settings
        bonus = preset_dict(preset)["bonus"]  # exploration bonus
        ppo = preset_dict(preset)["ppo"]  # PPO settings
        wm = preset_dict(preset)["wm"]  # world-model losses

    @ex.main
    def main(_config: dict[str, Any], _run: Any) -> dict[str, Any]:
        from m3po.train import Trainer

        cfg = resolve_config(_config)
        run_dir = Path(_config["run_dir"])
        _run.info["resolved_config"] = cfg.to_dict()
        _run.info["run_dir"] = str(run_dir)
        _run.info["versions"] = library_versions()
        _run.info["commit"] = git_commit()
        trainer = Trainer(cfg, run_dir, on_metrics=_run.log_scalar, progress=_config["progress"])
        return trainer.run()

    return ex


def resolve_config(values: dict[str, Any]) -> M3POConfig:
    """Sacred's config dict -> validated :class:`M3POConfig` (errors name the bad field)."""
    algo = values.get("algo")
    if algo not in ALGOS:
        raise ConfigError(f"unknown algo {algo!r}; valid: {', '.join(ALGOS)}")
    updates = {k: v for k, v in values.items() if k in CONFIG_FIELDS and k != "preset"}
    unknown = sorted(set(values) - CONFIG_FIELDS - RUN_KEYS)
    if unknown:
        raise ConfigError(
            f"unknown config key {unknown[0]!r}; valid: {', '.join(sorted(CONFIG_FIELDS | RUN_KEYS))}"
        )
    return make_config(values.get("preset", "cpu"), **updates)


def library_versions() -> dict[str, str]:
    """Versions of the libraries a run depends on (for the run record)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("torch", "numpy", "mujoco", "dm-control", "metaworld", "gymnasium", "sacred", "m3po-suite"):
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
    ex = build_experiment()
    defaults = {"algo": "m3po", "preset": "cpu", "task": "cartpole-swingup", "seed": 1, "run_dir": None}
    merged = {**defaults, **{k: v for k, v in updates.items() if k in defaults}}
    # Validate before anything starts or any directory is made.
    resolve_config({**defaults, **updates})
    run_dir = Path(merged["run_dir"] or default_run_dir(merged["algo"], str(merged["task"]), merged["seed"]))
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
