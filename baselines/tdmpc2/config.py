"""The TD-MPC2 configuration: one typed dataclass with ``paper`` (official 5M) and ``cpu`` presets.

Defaults are the official ones (``nicklashansen/tdmpc2``: ``tdmpc2/config.yaml`` with ``model_size: 5``,
``common/__init__.py``'s size table, ``envs/__init__.py``'s seed-step rule, ``trainer/online_trainer.py``'s
one update per environment step). Fields the official single-env code does not have (``num_envs``,
``utd_ratio``) are ours and default to what the official code does with one env. The presets' values,
with the source of each, are in ``presets.yaml`` beside this file; a validated config of a preset comes
from the registry entry (``baselines.tdmpc2.registration.make_config``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from m3po.config import ConfigError, RunConfig, load_presets, validate_run
from m3po.planner_config import PlannerConfig


def _official_planner() -> PlannerConfig:
    """TD-MPC2's MPPI: Gaussian over actions, started at the shifted warm start with max_std."""
    return PlannerConfig(
        enabled=True,
        horizon=3,
        iterations=6,
        num_samples=512,
        num_pi_trajs=24,
        num_elites=64,
        temperature=0.5,
        min_std=0.05,
        max_std=2.0,
        exec_noise=0.0,  # unused: TD-MPC2's executed-action noise is the refit first-step std
        prior_centred=False,
        sample_space="action",
        extra_iters_large_action=2,
        rescore_prior=True,  # the official code re-scores the prior's trajectories in every iteration
    )


@dataclass
class TDMPC2Config(RunConfig):
    """Everything a TD-MPC2 run needs: the shared run fields, then its own (flat, as its config.yaml)."""

    utd_ratio: float = 1.0  # gradient updates per agent step, summed over envs (official: 1 update/step)
    seed_steps: int = -1  # random-action steps before learning; -1: official max(1000, 5 * episode length)
    eval_planner: bool = True  # evaluate with the planner (False: the policy prior's mean, a diagnostic)
    log_every: int = 1_000  # agent steps between train.jsonl rows (losses averaged since the last row)
    # model (official model_size 5)
    latent_dim: int = 512  # z size
    enc_dim: int = 256  # encoder hidden width
    num_enc_layers: int = 2  # official count: the encoder has max(num_enc_layers - 1, 1) hidden layers
    mlp_dim: int = 512  # hidden width of dynamics, reward, Q and policy heads
    task_dim: int = 96  # task embedding size in multi-task runs (official mt80: 96; 0 in single-task runs)
    num_q: int = 5  # Q-ensemble size
    dropout: float = 0.01  # dropout after the first hidden layer of each Q head
    simnorm_dim: int = 8  # SimNorm group size on the latent
    num_bins: int = 101  # two-hot bins of reward and Q
    vmin: float = -10.0  # lowest bin, symlog space
    vmax: float = 10.0  # highest bin, symlog space
    log_std_min: float = -10.0  # policy log-sigma floor
    log_std_max: float = 2.0  # policy log-sigma ceiling
    # optimisation
    batch_size: int = 256  # sequences per update
    lr: float = 3e-4  # Adam learning rate (model and policy)
    enc_lr_scale: float = 0.3  # encoder learning-rate multiplier
    grad_clip_norm: float = 20.0  # gradient-norm clip of model and policy
    tau: float = 0.01  # EMA rate of the target Qs and of the Q running scale
    rho: float = 0.5  # temporal weight rho^t of the per-step losses
    consistency_coef: float = 20.0  # latent consistency loss weight
    reward_coef: float = 0.1  # reward loss weight
    value_coef: float = 0.1  # Q loss weight
    entropy_coef: float = 1e-4  # policy entropy weight (on the action-size-scaled entropy, as official)
    # torch.compile (inductor) the planner's scoring and fuse Adam: faster, float results within a stated
    # tolerance of the eager path (tests/test_compile.py); False: eager, exact
    compile: bool = False
    buffer_size: int = 1_000_000  # replay capacity in stored rows (official; at most steps + episodes)
    planner: PlannerConfig = field(default_factory=_official_planner)  # MPPI (m3po.planner, TD-MPC2 mode)


# Each preset's overrides of the defaults above (which are the official 5M values), with the source of
# each value: presets.yaml.
PRESETS: dict[str, dict[str, Any]] = load_presets(Path(__file__).with_name("presets.yaml"))

_POSITIVE = (
    "num_envs", "batch_size", "latent_dim", "enc_dim", "num_enc_layers", "mlp_dim", "num_q", "num_bins",
    "buffer_size", "log_every", "simnorm_dim",
)  # fmt: skip


def validate(cfg: TDMPC2Config) -> TDMPC2Config:
    """Check ranges and choices; raise :class:`ConfigError` naming the bad value and the valid ones."""
    validate_run(cfg, tuple(PRESETS))
    for name in _POSITIVE:
        if getattr(cfg, name) < 1:
            raise ConfigError(f"{name} must be >= 1, got {getattr(cfg, name)}")
    if cfg.task_dim < 0:
        raise ConfigError(f"task_dim must be >= 0, got {cfg.task_dim}")
    if cfg.seed_steps < -1:
        raise ConfigError(f"seed_steps must be >= 0, or -1 for the official rule, got {cfg.seed_steps}")
    if not cfg.utd_ratio > 0:
        raise ConfigError(f"utd_ratio must be > 0 (updates per agent step), got {cfg.utd_ratio}")
    if not 0 <= cfg.dropout < 1:
        raise ConfigError(f"dropout must be in [0, 1), got {cfg.dropout}")
    if not 0 < cfg.tau <= 1:
        raise ConfigError(f"tau must be in (0, 1], got {cfg.tau}")
    if cfg.num_q < 2:
        raise ConfigError(f"num_q must be >= 2 (targets use two sampled heads), got {cfg.num_q}")
    if cfg.latent_dim % cfg.simnorm_dim:
        raise ConfigError(f"latent_dim={cfg.latent_dim} must be a multiple of simnorm_dim={cfg.simnorm_dim}")
    if not cfg.log_std_min < cfg.log_std_max:
        raise ConfigError(f"need log_std_min < log_std_max, got {cfg.log_std_min}, {cfg.log_std_max}")
    p = cfg.planner
    if p.sample_space != "action" or p.prior_centred:
        raise ConfigError(
            "TD-MPC2's planner samples actions from the shifted warm start: planner.sample_space must be "
            f"'action' and planner.prior_centred false, got {p.sample_space!r}, {p.prior_centred}"
        )
    for name in ("horizon", "iterations", "num_samples", "num_elites"):
        if getattr(p, name) < 1:
            raise ConfigError(f"planner.{name} must be >= 1, got {getattr(p, name)}")
    if not 0 <= p.num_pi_trajs < p.num_samples:
        raise ConfigError(f"planner.num_pi_trajs must be in [0, num_samples), got {p.num_pi_trajs}")
    if p.num_elites > p.num_samples:
        raise ConfigError(
            f"planner.num_elites ({p.num_elites}) exceeds planner.num_samples ({p.num_samples})"
        )
    if not 0 < p.min_std <= p.max_std:
        raise ConfigError(f"need 0 < planner.min_std <= planner.max_std, got {p.min_std}, {p.max_std}")
    return cfg


def seed_steps(cfg: TDMPC2Config, episode_length: int) -> int:
    """Random-action steps: official ``max(1000, 5 * episode_length)``, rounded up to whole env batches."""
    steps = max(1000, 5 * episode_length) if cfg.seed_steps == -1 else cfg.seed_steps
    return -(-steps // cfg.num_envs) * cfg.num_envs
