"""Configs of the stable-baselines3 baselines (``ppo``, ``sac``, ``mt-ppo``, ``mt-sac``).

The dataclass defaults are SB3 2.9.2's own; the ``cpu`` and ``paper`` presets are in
``hyperparams.yaml`` beside this file, with the source of every value. Command-line keys: the shared
run fields flat (``steps=...``), the algorithm's section dotted (``ppo.n_steps=512``,
``sac.learning_rate=1e-4``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from m3po.config import ConfigError, RunConfig, load_presets, validate_run

HYPERPARAMS = Path(__file__).with_name("hyperparams.yaml")


@dataclass
class PPOSettings:
    """SB3 ``PPO`` arguments (defaults: SB3's)."""

    learning_rate: float = 3e-4  # Adam step size
    n_steps: int = 2048  # agent steps per env between updates
    batch_size: int = 64  # minibatch size
    n_epochs: int = 10  # passes over each rollout
    gamma: float = 0.99  # discount
    gae_lambda: float = 0.95  # GAE lambda
    clip_range: float = 0.2  # PPO ratio clip
    ent_coef: float = 0.0  # entropy bonus weight
    vf_coef: float = 0.5  # value loss weight
    max_grad_norm: float = 0.5  # gradient-norm clip
    log_std_init: float = 0.0  # initial log sigma of the Gaussian policy
    ortho_init: bool = True  # orthogonal initialisation of the MLPs
    net_width: int = 64  # hidden units per layer, policy and value MLPs (separate networks)
    net_depth: int = 2  # hidden layers per MLP
    normalize_obs: bool = True  # VecNormalize observations (rl-baselines3-zoo's `normalize: true`)
    normalize_reward: bool = True  # VecNormalize rewards by a running return std (the same)


@dataclass
class SACSettings:
    """SB3 ``SAC`` arguments (defaults: SB3's)."""

    learning_rate: float = 3e-4  # Adam step size of actor, critics and temperature(s)
    buffer_size: int = 1_000_000  # replay capacity in transitions
    learning_starts: int = 100  # agent steps of uniform random actions before learning
    batch_size: int = 256  # minibatch size
    tau: float = 0.005  # target-network Polyak rate
    gamma: float = 0.99  # discount
    train_freq: int = 1  # vectorized steps between update rounds
    gradient_steps: int = 1  # gradient steps per update round
    target_update_interval: int = 1  # target update every this many gradient steps of a round
    ent_coef_init: float = 1.0  # initial temperature (learned, SB3's "auto_<init>")
    net_width: int = 256  # hidden units per layer, actor and critics
    net_depth: int = 2  # hidden layers per MLP


@dataclass
class PPORunConfig(RunConfig):
    """A PPO or MT-PPO run."""

    ppo: PPOSettings = field(default_factory=PPOSettings)  # SB3 PPO settings


@dataclass
class SACRunConfig(RunConfig):
    """A SAC or MT-SAC run."""

    log_every: int = 1000  # agent steps between train.jsonl rows (PPO writes one per update)
    sac: SACSettings = field(default_factory=SACSettings)  # SB3 SAC settings


def presets(algo: str) -> dict[str, dict[str, Any]]:
    """``{"cpu": overrides, "paper": overrides}`` of ``algo`` from ``hyperparams.yaml``."""
    return load_presets(HYPERPARAMS, algo)


def _positive(values: dict[str, Any], section: str) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if value <= 0 and name not in ("ent_coef", "log_std_init", "learning_starts"):
            raise ConfigError(f"{section}.{name} must be > 0, got {value}")


def validate_ppo(cfg: PPORunConfig) -> PPORunConfig:
    """Check a PPO config; raise :class:`ConfigError` naming the bad value."""
    validate_run(cfg)
    p = cfg.ppo
    _positive(vars(p), "ppo")
    if p.ent_coef < 0:
        raise ConfigError(f"ppo.ent_coef must be >= 0, got {p.ent_coef}")
    rollout = p.n_steps * cfg.num_envs
    if rollout < 2:
        raise ConfigError(
            f"ppo.n_steps * num_envs must be > 1 (SB3's advantage normalisation), got {rollout}"
        )
    if p.batch_size > rollout:
        raise ConfigError(
            f"ppo.batch_size={p.batch_size} exceeds the rollout (n_steps * num_envs = {rollout})"
        )
    if not 0 < p.gamma <= 1 or not 0 < p.gae_lambda <= 1:
        raise ConfigError(f"ppo.gamma and ppo.gae_lambda must lie in (0, 1], got {p.gamma}, {p.gae_lambda}")
    return cfg


def validate_sac(cfg: SACRunConfig) -> SACRunConfig:
    """Check a SAC config; raise :class:`ConfigError` naming the bad value."""
    validate_run(cfg)
    s = cfg.sac
    _positive(vars(s), "sac")
    if s.learning_starts < 0:
        raise ConfigError(f"sac.learning_starts must be >= 0, got {s.learning_starts}")
    if cfg.log_every < 1:
        raise ConfigError(f"log_every must be >= 1, got {cfg.log_every}")
    if not 0 < s.gamma <= 1 or not 0 < s.tau <= 1:
        raise ConfigError(f"sac.gamma and sac.tau must lie in (0, 1], got {s.gamma}, {s.tau}")
    if s.buffer_size < cfg.num_envs:
        raise ConfigError(f"sac.buffer_size={s.buffer_size} is smaller than num_envs={cfg.num_envs}")
    return cfg
