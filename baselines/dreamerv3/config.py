"""Config of the DreamerV3 baseline (``algo=dreamerv3``): the shared run fields and sheeprl's settings.

Command-line keys: the shared run fields flat (``steps=... num_envs=...``), DreamerV3's section
dotted (``dreamer.size=S``, ``dreamer.replay_ratio=0.5``). The dataclass defaults are sheeprl 0.8.4's
own (``configs/algo/dreamer_v3.yaml``, ``configs/exp/dreamer_v3.yaml``); :data:`PRESETS` gives the
``paper`` and ``cpu`` values, from ``presets.yaml`` beside this file, which lists the sources
(DreamerV3's published settings, sheeprl's configs, ours) and gives the source of each value. This
module stays light: sheeprl is imported only when a run starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from m3po.config import ConfigError, RunConfig, load_presets, validate_run

SIZES = ("XS", "S", "M", "L", "XL")  # sheeprl's configs/algo/dreamer_v3_{size}.yaml


@dataclass
class DreamerSettings:
    """sheeprl DreamerV3 settings (defaults: sheeprl 0.8.4's)."""

    size: str = "S"  # model size, sheeprl's algo=dreamer_v3_{size}: XS | S | M | L | XL
    replay_ratio: float = 1.0  # gradient steps per agent step (sheeprl algo.replay_ratio)
    learning_starts: int = 1024  # agent steps of uniform random actions before training starts
    batch_size: int = 16  # sequences per gradient step (algo.per_rank_batch_size)
    sequence_length: int = 64  # steps per sequence (algo.per_rank_sequence_length)
    buffer_size: int = 1_000_000  # replay capacity in agent steps, over all envs (buffer.size)
    log_every: int = 5000  # agent steps between train.jsonl rows (sheeprl metric.log_every)


@dataclass
class DreamerV3RunConfig(RunConfig):
    """A DreamerV3 run (one task)."""

    dreamer: DreamerSettings = field(default_factory=DreamerSettings)  # sheeprl DreamerV3 settings


# Each preset's overrides of the defaults above, with the source of each value: presets.yaml.
PRESETS: dict[str, dict[str, Any]] = load_presets(Path(__file__).with_name("presets.yaml"))


def validate(cfg: DreamerV3RunConfig) -> DreamerV3RunConfig:
    """Check a DreamerV3 config; raise :class:`ConfigError` naming the bad value and the valid ones."""
    validate_run(cfg)
    d = cfg.dreamer
    if d.size not in SIZES:
        raise ConfigError(f"dreamer.size={d.size!r} is not valid; choose one of: {', '.join(SIZES)}")
    if not d.replay_ratio > 0:
        raise ConfigError(f"dreamer.replay_ratio must be > 0, got {d.replay_ratio}")
    for name in ("batch_size", "sequence_length", "buffer_size", "log_every"):
        if getattr(d, name) < 1:
            raise ConfigError(f"dreamer.{name} must be >= 1, got {getattr(d, name)}")
    if d.learning_starts < 0:
        raise ConfigError(f"dreamer.learning_starts must be >= 0, got {d.learning_starts}")
    # sheeprl steps all envs at once: a budget that is not a multiple of num_envs would end early.
    if cfg.steps % cfg.num_envs:
        raise ConfigError(f"steps={cfg.steps} must be a multiple of num_envs={cfg.num_envs} for dreamerv3")
    if cfg.steps < 1:
        raise ConfigError(f"steps must be >= 1 for dreamerv3, got {cfg.steps}")
    if d.buffer_size < cfg.num_envs * d.sequence_length:
        raise ConfigError(
            f"dreamer.buffer_size={d.buffer_size} cannot hold one sequence of {d.sequence_length} steps "
            f"per env ({cfg.num_envs} envs)"
        )
    return cfg
