"""What an algorithm declares to the registry: :class:`Algorithm`.

Each package that brings algorithms declares them in its own ``registration`` module
(``m3po/registration.py``, ``baselines/sb3/registration.py``, ...) as ``ALGORITHMS = (Algorithm(...), ...)``;
the neutral registry :mod:`suite.registry` collects them. This module is light (no torch): configs are
resolved and checked before any work starts.
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
    :param presets: preset name -> overrides of the dataclass defaults (the package's presets YAML, read
        with :func:`m3po.config.load_presets`)
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

    def __post_init__(self) -> None:
        if self.task_mode not in TASK_MODES:
            raise ValueError(
                f"Algorithm {self.name}: task_mode {self.task_mode!r} is not one of {TASK_MODES}"
            )

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
            raise ConfigError(
                f"algo={self.name} is single-task, but task={task!r} names {len(tasks)} tasks; "
                "give one task, or use an algo that takes task sets (m3po, mt-ppo, mt-sac, tdmpc2)"
            )
        if self.task_mode == "multi" and len(tasks) < 2:
            raise ConfigError(
                f"algo={self.name} is multi-task and needs a task set of two or more tasks, "
                f"got task={task!r}; give a set (e.g. mt30 or 'cartpole-swingup,mw-reach') "
                "or use an algo that takes one task"
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
