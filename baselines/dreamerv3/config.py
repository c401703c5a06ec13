"""Config of the DreamerV3 baseline (``algo=dreamerv3``): the shared run fields and sheeprl's settings.

Command-line keys: the shared run fields flat (``steps=... num_envs=...``), DreamerV3's section
dotted (``dreamer.size=S``, ``dreamer.replay_ratio=0.5``). The dataclass defaults are sheeprl 0.8.4's
own (``configs/algo/dreamer_v3.yaml``, ``configs/exp/dreamer_v3.yaml``); :data:`PRESETS` gives the
``paper`` and ``cpu`` values with their sources. This module stays light: sheeprl is imported only
when a run starts.

Sources:
  [dv3]     DreamerV3's published DMC-proprio settings (Hafner et al. 2023, ``configs.yaml``
            ``dmc_proprio``): model size S (deter 512, 2 layers of 512 units), ``train_ratio: 512``
            replayed steps per policy step = 0.5 gradient steps of 16 x 64 sequences, 4 envs,
            replay capacity 1e6, action repeat 2 (our environments repeat actions themselves).
  [sheeprl] sheeprl 0.8.4's DreamerV3 configs: ``configs/algo/dreamer_v3_S.yaml`` / ``_XS.yaml``,
            ``configs/exp/dreamer_v3_dmc_walker_walk.yaml`` (replay_ratio 0.5, 4 envs), the defaults
            ``learning_starts: 1024``, ``per_rank_batch_size: 16``, ``per_rank_sequence_length: 64``.
  [ours]    our choice for a 2-core CPU, with the reason beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from m3po.config import ConfigError, RunConfig, validate_run

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


PRESETS: dict[str, dict[str, Any]] = {
    "paper": {
        "num_envs": 4,  # [dv3] envs.amount 4; [sheeprl] dmc exp num_envs 4
        "eval_every": 100_000,  # TD-MPC2's published curves are evaluated every 100k agent steps
        "checkpoint_every": 100_000,  # [sheeprl] dmc exp checkpoints every 10k-100k steps
        "dreamer": {
            "size": "S",  # [dv3] dmc_proprio: deter 512, units 512, layers 2 = sheeprl's S
            "replay_ratio": 0.5,  # [dv3] train_ratio 512 / (16 x 64); [sheeprl] dmc exp 0.5
            "learning_starts": 1024,  # [sheeprl] algo default
            "batch_size": 16,  # [dv3] batch_size 16; [sheeprl]
            "sequence_length": 64,  # [dv3] batch_length 64; [sheeprl]
            "buffer_size": 1_000_000,  # [dv3] replay size 1e6
            "log_every": 5000,  # [sheeprl] metric.log_every
        },
    },
    "cpu": {
        "num_envs": 4,  # [dv3] as paper: the env count does not change the cost per agent step much
        "dreamer": {
            "size": "XS",  # [ours] sheeprl's smallest (256 units, 1 layer, deter 256)
            # [ours] one gradient step per 8 agent steps on half-length, half-size batches: 32x fewer
            # replayed steps than [dv3]; a gradient step of S costs seconds on a shared 2-core CPU.
            "replay_ratio": 0.125,
            "learning_starts": 1024,  # [sheeprl] algo default
            "batch_size": 8,  # [ours] half of [dv3]
            "sequence_length": 32,  # [ours] half of [dv3]
            "buffer_size": 100_000,  # [ours] the cpu budget (100k agent steps) fits whole
            "log_every": 1000,  # [ours] more rows for short runs
        },
    },
}


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
