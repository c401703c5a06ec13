"""The planner's settings, apart from the planner (:mod:`m3po.planner`) so that configs stay light.

M3PO's config and TD-MPC2's both hold a :class:`PlannerConfig`; the planner itself imports only this.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class PlannerConfig:
    """MPPI with a policy prior (TD-MPC2's planner; the spec's Eq. 2-3)."""

    enabled: bool = True  # False: act with the prior alone (plain PPO, for ablations)
    horizon: int = 3  # H, planning horizon
    iterations: int = 6  # I, MPPI iterations per decision
    num_samples: int = 512  # N, sequences scored per iteration (prior ones included)
    num_pi_trajs: int = 24  # N_pi, prior rollouts reused in every iteration
    num_elites: int = 64  # K, elites the Gaussian is refit to
    temperature: float = 0.5  # tau, weights exp(tau * (J - max J))
    min_std: float = 0.05  # sigma floor of the sampling Gaussian
    max_std: float = 2.0  # sigma at the start of each decision
    exec_noise: float = 0.0  # sigma_0, noise on the executed action in training (0 keeps it on the prior)
    prior_centred: bool = True  # start at the prior's mean and sigma (issue 8), not at 0 and max_std
    sample_space: str = "pretanh"  # pretanh: Gaussian over pre-tanh actions | action: TD-MPC2's, clamped
    extra_iters_large_action: int = 2  # TD-MPC2 adds iterations when the action size is >= 20
    prior_mix: float = 0.0  # chance per env and training decision of executing the prior's own sample
    eval_action: str = "elite"  # in evaluation: elite (one drawn by weight, TD-MPC2) | mean (MPPI's mean)
    # Re-score the prior's trajectories in every iteration with that iteration's model calls (TD-MPC2's
    # official behaviour: its terminal Q uses a fresh random pair of heads and a fresh policy action each
    # time). False scores them once, during their rollout: identical values for a deterministic model
    # (M3PO's), less work. The TD-MPC2 baseline sets it (docs/tdmpc2.md has the measured effect).
    rescore_prior: bool = False
