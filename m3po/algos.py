"""The algorithm registry: every algorithm ``m3po train with algo=NAME`` can run.

Each entry (:class:`Algorithm`) gives an algorithm's typed config, its presets, whether it trains on
one task or a task set, and its train entry. :mod:`m3po.experiment` dispatches on ``algo`` through
it; the workflow (``pipelines/grid.smk``) and ``m3po bench algos`` read the names from it.

Config keys on the command line are the fields of the algorithm's own config dataclass: the shared
:class:`m3po.config.RunConfig` fields flat (``task=... seed=... steps=... num_envs=... eval_every=...``)
and the algorithm's sections dotted (``planner.horizon=5`` for M3PO, ``sac.learning_rate=1e-4`` for
SAC). A key the algorithm's config does not have is an error that lists the valid ones.

How a new algorithm plugs in
----------------------------
1. A config dataclass deriving from :class:`m3po.config.RunConfig` (which brings task, seed, steps,
   num_envs, vec_mode, eval_every, eval_episodes, checkpoint_every, device, threads), with the
   algorithm's own settings in nested dataclass sections, one comment per field. Keep its module
   light (no heavy imports): the config is resolved and checked before any work starts.
2. ``PRESETS = {"cpu": {...}, "paper": {...}}``: each preset's overrides of the dataclass defaults
   (nested dicts for sections), with the source of each value in a comment.
3. ``validate(cfg) -> cfg``: call :func:`m3po.config.validate_run` first (preset, task names, budget),
   then check the algorithm's own fields, raising :class:`m3po.config.ConfigError` naming the bad
   value and the valid ones.
4. A train entry ``train(cfg, run_dir, on_metrics=None, progress=True) -> dict`` that writes the run
   record through :class:`m3po.runs.RunRecord` (see its module docstring for the sequence:
   ``open`` -> ``start_attempt`` -> ``guard`` -> ``log_train`` / ``log_eval`` / ``save_checkpoint``
   -> ``finish``), evaluates through :func:`m3po.runs.evaluate` with a deterministic policy
   callable every ``eval_every`` agent steps (and at step 0 and at the end), checkpoints every
   ``checkpoint_every`` agent steps so that re-running the same command resumes, and returns a
   summary dict with at least ``step``, ``final_score``, ``wall_time``, ``resumed_from``.
5. One :class:`Algorithm` line in ``_REGISTERED`` below. ``train`` is a ``"module:function"``
   string, imported only when a run starts; ``requires`` names the Python modules the train entry
   needs, so that a missing optional dependency is reported rather than crashing the listing;
   ``bench`` sets the short run ``m3po bench algos`` measures (see :class:`Algorithm`).
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from m3po.config import ConfigError, RunConfig, build_config, merge, preset_values
from m3po.envs.registry import resolve_tasks

TASK_MODES = ("single", "multi", "any")


@dataclass(frozen=True)
class Algorithm:
    """One trainable algorithm.

    :param name: the registry name (``algo=NAME``)
    :param task_mode: ``single`` (one task only), ``multi`` (a task set of two or more) or ``any``
    :param config_class: the config dataclass (a :class:`m3po.config.RunConfig` subclass)
    :param presets: preset name -> overrides of the dataclass defaults
    :param validate: ``cfg -> cfg``, raising :class:`m3po.config.ConfigError` for a bad value
    :param train: ``"module:function"`` of the train entry ``(cfg, run_dir, on_metrics, progress) -> dict``
    :param requires: Python modules the train entry needs (checked by :meth:`missing_requirements`)
    :param description: one line for listings
    :param bench: ``m3po bench algos``'s measured run: ``steps`` (a few thousand at most) and
        ``overrides`` of the cpu preset that keep it short without changing the per-step cost
        (e.g. fewer warm-up steps before SAC learns)
    """

    name: str
    task_mode: str
    config_class: type[RunConfig]
    presets: Mapping[str, Mapping[str, Any]]
    validate: Callable[[Any], Any]
    train: str
    requires: tuple[str, ...] = ()
    description: str = ""
    bench: Mapping[str, Any] = field(default_factory=dict)

    @property
    def field_names(self) -> frozenset[str]:
        """The top-level config keys of this algorithm."""
        return frozenset(f.name for f in fields(self.config_class))

    def preset_dict(self, preset: str) -> dict[str, Any]:
        """The full config dict of ``preset`` (defaults with the preset's overrides applied)."""
        return preset_values(self.config_class, {k: dict(v) for k, v in self.presets.items()}, preset)

    def make_config(self, preset: str = "cpu", **updates: Any) -> Any:
        """A validated config: the preset's values with ``updates`` (nested dicts for sections) applied."""
        values = self.preset_dict(preset)
        merge(values, updates)
        values["preset"] = preset
        cfg = build_config(self.config_class, values)
        self.check_tasks(cfg.task)  # before validate: a task-mode mismatch is the clearer message
        return self.validate(cfg)

    def check_tasks(self, task: str) -> tuple[str, ...]:
        """The run's tasks; a single-task algorithm given a set, or a multi-task one given one task, fails."""
        tasks = resolve_tasks(task)
        if self.task_mode == "single" and len(tasks) > 1:
            others = ", ".join(a.name for a in ALGORITHMS.values() if a.task_mode != "single")
            raise ConfigError(
                f"algo={self.name} is single-task, but task={task!r} names {len(tasks)} tasks; "
                f"give one task, or use a multi-task algo ({others})"
            )
        if self.task_mode == "multi" and len(tasks) < 2:
            others = ", ".join(a.name for a in ALGORITHMS.values() if a.task_mode != "multi")
            raise ConfigError(
                f"algo={self.name} is multi-task and needs a task set of two or more tasks, "
                f"got task={task!r}; give a set (e.g. mt30 or 'cartpole-swingup,mw-reach') "
                f"or use a single-task algo ({others})"
            )
        return tasks

    def missing_requirements(self) -> list[str]:
        """The modules of ``requires`` that cannot be imported here."""
        return [m for m in self.requires if importlib.util.find_spec(m.split(".")[0]) is None]

    def load_train(self) -> Callable[..., dict[str, Any]]:
        """Import the train entry (raises :class:`ConfigError` naming missing modules)."""
        missing = self.missing_requirements()
        if missing:
            raise ConfigError(
                f"algo={self.name} needs the Python modules {', '.join(missing)}, which are not installed"
            )
        module, function = self.train.split(":")
        return getattr(importlib.import_module(module), function)


def _registered() -> list[Algorithm]:
    # Imports stay inside: config modules are light, train modules are imported by load_train only.
    from baselines.dreamerv3 import config as dv3
    from baselines.sb3 import config as sb3
    from baselines.tdmpc2 import config as tdmpc2
    from m3po import config as m3po_config

    sb3_needs = ("stable_baselines3",)
    # PPO: 512-step rollouts give several updates in a short run (the cost per step is the same).
    ppo_bench = {"steps": 3072, "overrides": {"ppo": {"n_steps": 512}}}
    # SAC: learning from step 500 rather than 5000, so the measured steps include updates.
    sac_bench = {"steps": 2000, "overrides": {"sac": {"learning_starts": 500}, "log_every": 250}}
    return [
        Algorithm(
            "m3po", "any", m3po_config.M3POConfig, m3po_config.PRESET_OVERRIDES, m3po_config.validate,
            "m3po.train:train", description="M3PO: PPO with a world model, MPPI planner and bonus",
            bench={"steps": 4096, "overrides": {"ppo": {"rollout_len": 128}}},
        ),
        Algorithm(
            "ppo", "single", sb3.PPORunConfig, sb3.presets("ppo"), sb3.validate_ppo,
            "baselines.sb3.train:train_ppo", sb3_needs, "stable-baselines3 PPO", ppo_bench,
        ),
        Algorithm(
            "sac", "single", sb3.SACRunConfig, sb3.presets("sac"), sb3.validate_sac,
            "baselines.sb3.train:train_sac", sb3_needs, "stable-baselines3 SAC", sac_bench,
        ),
        Algorithm(
            "mt-ppo", "multi", sb3.PPORunConfig, sb3.presets("mt-ppo"), sb3.validate_ppo,
            "baselines.sb3.train:train_mt_ppo", sb3_needs, "stable-baselines3 PPO, one-hot task id",
            {"steps": 4096, "overrides": {"ppo": {"n_steps": 128}}},
        ),
        Algorithm(
            "mt-sac", "multi", sb3.SACRunConfig, sb3.presets("mt-sac"), sb3.validate_sac,
            "baselines.sb3.train:train_mt_sac", sb3_needs, "SAC, one-hot task id, a temperature per task",
            sac_bench,
        ),
        Algorithm(
            "tdmpc2", "any", tdmpc2.TDMPC2Config, tdmpc2.PRESETS, tdmpc2.validate,
            "baselines.tdmpc2.train:train", description="TD-MPC2 (ours, from the published definitions)",
            # Learning from step 500 rather than 2500, so the measured steps include one update each.
            bench={"steps": 1500, "overrides": {"seed_steps": 500, "log_every": 250}},
        ),
        Algorithm(
            "dreamerv3", "single", dv3.DreamerV3RunConfig, dv3.PRESETS, dv3.validate,
            "baselines.dreamerv3.train:train", ("sheeprl",), "DreamerV3 (sheeprl), vector observations",
            # Training from step 256, the first train.jsonl row: every measured step trains.
            {"steps": 768, "overrides": {"dreamer": {"learning_starts": 256, "log_every": 256}}},
        ),
    ]  # fmt: skip


ALGORITHMS: dict[str, Algorithm] = {a.name: a for a in _registered()}
ALGOS: tuple[str, ...] = tuple(ALGORITHMS)


def get_algorithm(name: Any) -> Algorithm:
    """The registry entry of ``name``; an unknown name raises :class:`ConfigError` listing the valid ones."""
    if name not in ALGORITHMS:
        raise ConfigError(f"unknown algo {name!r}; valid: {', '.join(ALGOS)}")
    return ALGORITHMS[name]
