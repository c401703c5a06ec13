"""The policy prior's distribution: a diagonal Gaussian squashed by tanh, with per-task action masks.

Multi-task batches pad actions to the largest action size; a mask marks the real dimensions
(1 real, 0 padded). Padded dimensions are exactly 0 in every sample and never enter a log-density,
whatever value the action, mean or log-std hold there (see ``shared/spec/m3po-algorithm.md``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

# |a| is clamped to this before atanh: tanh saturates to exactly +-1 in float32 near |u| ~ 9, and a
# clamped MPPI action sits on +-1, where atanh is infinite (the spec's 1 - 1e-6).
ACTION_CLAMP = 1.0 - 1e-6
_LOG_2 = math.log(2.0)
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def _real(mask: Tensor | None, like: Tensor) -> Tensor:
    """Boolean mask of real dimensions, broadcast to ``like``'s shape (all real when ``mask`` is None)."""
    if mask is None:
        return torch.ones_like(like, dtype=torch.bool)
    return (mask != 0).expand_as(like)


def _normal_log_density(x: Tensor, mean: Tensor, log_std: Tensor) -> Tensor:
    """Element-wise log N(x; mean, exp(log_std)^2)."""
    return -0.5 * ((x - mean) * torch.exp(-log_std)) ** 2 - log_std - _HALF_LOG_2PI


def _masked_sum(terms: Tensor, real: Tensor) -> Tensor:
    """Sum over the last dimension of the real entries only."""
    return torch.where(real, terms, 0.0).sum(-1)


def gaussian_log_prob(x: Tensor, mean: Tensor, std: Tensor, mask: Tensor | None = None) -> Tensor:
    """Log-density of a diagonal Gaussian, summed over the real action dimensions.

    Used when the planner's own sampling density is the behaviour density in PPO's ratio
    (``ppo.behaviour_density = "planner"``); no tanh correction, since the planner samples actions
    directly.

    :param x: points, (B, A)
    :param mean: means, (B, A)
    :param std: standard deviations (> 0 on real dimensions), (B, A)
    :param mask: 1 real / 0 padded, broadcastable to (B, A); None: all real
    :return: log-densities, (B,)
    """
    real = _real(mask, x)
    # Padded entries are replaced before the log, so a zero std there cannot produce -inf or NaN.
    safe_std = torch.where(real, std, 1.0)
    safe_x = torch.where(real, x, 0.0)
    safe_mean = torch.where(real, mean, 0.0)
    return _masked_sum(_normal_log_density(safe_x, safe_mean, torch.log(safe_std)), real)


class TanhGaussian:
    """a = tanh(u), u ~ N(mu, exp(log_std)^2) per dimension, padded dimensions fixed at 0.

    Everything is a differentiable function of ``mu`` and ``log_std``: sampling is reparameterised, so
    gradients of sampled actions and of the entropy estimate reach the policy.

    :param mu: pre-tanh means, (B, A)
    :param log_std: pre-tanh log standard deviations, (B, A)
    :param mask: 1 real / 0 padded, broadcastable to (B, A) (e.g. (A,) for one task); None: all real
    """

    def __init__(self, mu: Tensor, log_std: Tensor, mask: Tensor | None = None) -> None:
        if mu.shape != log_std.shape:
            raise ValueError(f"mu {tuple(mu.shape)} and log_std {tuple(log_std.shape)} differ in shape")
        self.real = _real(mask, mu)
        # Padded mean and log-std are replaced by 0 so that garbage there (even NaN) cannot leak into
        # samples or gradients.
        self.mu = torch.where(self.real, mu, 0.0)
        self.log_std = torch.where(self.real, log_std, 0.0)

    def _sample_pre_tanh(self, generator: torch.Generator | None) -> Tensor:
        noise = torch.randn(self.mu.shape, generator=generator, device=self.mu.device, dtype=self.mu.dtype)
        return self.mu + torch.exp(self.log_std) * noise

    def _squash(self, u: Tensor) -> Tensor:
        return torch.where(self.real, torch.tanh(u), 0.0)

    def _log_prob_pre_tanh(self, u: Tensor) -> Tensor:
        # log|d tanh(u)/du| = log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)), stable for large |u|
        # where 1 - tanh(u)^2 underflows to 0.
        log_det = 2.0 * (_LOG_2 - u - F.softplus(-2.0 * u))
        return _masked_sum(_normal_log_density(u, self.mu, self.log_std) - log_det, self.real)

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        """A reparameterised sample.

        :param generator: optional RNG (on the tensors' device) for reproducible draws
        :return: actions in [-1, 1] (open interval up to float rounding), padded dimensions 0, (B, A)
        """
        return self._squash(self._sample_pre_tanh(generator))

    def mode(self) -> Tensor:
        """tanh(mu), padded dimensions 0, (B, A); the deterministic action."""
        return self._squash(self.mu)

    def log_prob(self, action: Tensor) -> Tensor:
        """Log-density of ``action`` with the tanh change of variables, over the real dimensions.

        |a| is clamped to ``1 - 1e-6`` first, so an action on the boundary +-1 (a clamped planner
        action) has a finite, very low density rather than -inf.

        :param action: actions, (B, A); padded entries are ignored whatever they hold
        :return: log-densities, (B,)
        """
        action = torch.where(self.real, action, 0.0)
        u = torch.atanh(action.clamp(-ACTION_CLAMP, ACTION_CLAMP))
        return self._log_prob_pre_tanh(u)

    def entropy_estimate(self, generator: torch.Generator | None = None) -> Tensor:
        """One-sample estimate of the entropy, -log pi(a) with a ~ pi (a tanh-Gaussian has no closed form).

        The density is evaluated at the pre-tanh sample itself, not through atanh of the squashed
        action, so saturated samples keep their exact density; reparameterised, so its gradient is
        the pathwise entropy gradient.

        :param generator: optional RNG (on the tensors' device)
        :return: entropy estimates, (B,)
        """
        return -self._log_prob_pre_tanh(self._sample_pre_tanh(generator))
