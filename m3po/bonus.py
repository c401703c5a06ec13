"""The exploration bonus of M3PO (Eq. 4-7): the gap between model-free and model-based one-step returns.

For each transition, Q_MF = r + gamma V(h(s')) uses the real reward and next state, Q_MB = R(z, a) +
gamma V(d(z, a)) the model's. Where the model is wrong the two disagree, and the bonus favours those
transitions:

    eps = |Q_MF - Q_MB|
    b   = alpha (eps - mean(eps))              centred per batch (per task), optionally divided by std
    b   <- clip(b, -c|A|, +c|A|)               never dominates the advantage by more than a factor c
    b   <- clamp so that A + b keeps A's sign  cannot flip the sign of the advantage
    A^  = A + b

Everything here runs once per batch, after collection and before any update, without gradients
(see ``shared/spec/m3po-algorithm.md``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from m3po.config import BonusConfig

# A group whose epsilon spread is below this is left unscaled by ``scale="std"``: its centred values
# are ~0 already, and dividing rounding noise by a ~0 std would blow it up.
_MIN_STD = 1e-8


def one_step_q(reward: Tensor, next_value: Tensor, terminated: Tensor, gamma: Tensor | float) -> Tensor:
    """One-step return r + gamma V(next), the bootstrap dropped only on a real termination.

    Q_MF takes the real reward and V of the real next observation (the final one before any auto-reset);
    Q_MB takes the predicted reward and V of the predicted next latent. Time limits keep the bootstrap.

    :param reward: rewards, (N,)
    :param next_value: V of the next state, (N,)
    :param terminated: real terminations (bool or 0/1), (N,)
    :param gamma: discount per transition (per task), (N,), or one float
    :return: one-step returns, (N,)
    """
    return reward + gamma * (1.0 - terminated.to(reward.dtype)) * next_value


def alpha_at(step: int, cfg: BonusConfig) -> float:
    """Bonus weight alpha after ``step`` agent steps.

    linear: alpha0 max(0, 1 - k/K); constant: alpha0; cosine: alpha0 (1 + cos(pi min(k/K, 1))) / 2,
    with K = ``cfg.anneal_steps``.

    :param step: agent steps so far (k)
    :param cfg: bonus settings (``alpha0``, ``anneal_steps``, ``schedule``)
    :return: alpha_k
    """
    progress = step / cfg.anneal_steps
    if cfg.schedule == "linear":
        return cfg.alpha0 * max(0.0, 1.0 - progress)
    if cfg.schedule == "constant":
        return cfg.alpha0
    if cfg.schedule == "cosine":
        return cfg.alpha0 * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
    raise ValueError(f"bonus.schedule={cfg.schedule!r} is not valid; choose one of: linear, constant, cosine")


def _group_mean_std(eps: Tensor, task_ids: Tensor | None) -> tuple[Tensor, Tensor]:
    """Per-element mean and (population) std of ``eps`` over its group; one group when ``task_ids`` is None.

    Population std (divide by n): a task with a single transition in the batch gets std 0, not NaN.
    """
    if task_ids is None:
        return eps.mean().expand_as(eps), eps.std(correction=0).expand_as(eps)
    _, group = torch.unique(task_ids, return_inverse=True)
    n_groups = int(group.max()) + 1
    counts = torch.zeros(n_groups, dtype=eps.dtype, device=eps.device).index_add_(
        0, group, torch.ones_like(eps)
    )
    sums = torch.zeros_like(counts).index_add_(0, group, eps)
    mean = (sums / counts)[group]
    var = (torch.zeros_like(counts).index_add_(0, group, (eps - mean) ** 2) / counts)[group]
    return mean, var.sqrt()


@torch.no_grad()
def raw_bonus(
    q_mf: Tensor,
    q_mb: Tensor,
    alpha: float,
    cfg: BonusConfig,
    task_ids: Tensor | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """The bonus before its clips, ``alpha (eps - mean(eps))`` (divided by std with ``scale="std"``).

    With ``cfg.per_task`` and ``task_ids`` given, centring (and scaling) uses each task's own mean (and
    std), since epsilon scales with each task's rewards; otherwise the batch's.

    :param q_mf: model-free one-step returns, (N,)
    :param q_mb: model-based one-step returns, (N,)
    :param alpha: bonus weight (see :func:`alpha_at`); 0 returns exact zeros
    :param cfg: bonus settings (``scale``, ``per_task``)
    :param task_ids: task index per transition, (N,); None: one task
    :return: the unclipped bonus, (N,), and stats ``eps_mean``, ``eps_std`` (over the whole batch), ``alpha``
    """
    if cfg.scale not in ("none", "std"):
        raise ValueError(f"bonus.scale={cfg.scale!r} is not valid; choose one of: none, std")
    eps = (q_mf - q_mb).abs()
    stats = {"eps_mean": eps.mean().item(), "eps_std": eps.std(correction=0).item(), "alpha": float(alpha)}
    if alpha == 0:
        # Not alpha * centred: a non-finite epsilon (a diverged model) would turn 0 * inf into NaN, and
        # the no-bonus ablation must be exactly PPO with planning.
        return torch.zeros_like(eps), stats
    mean, std = _group_mean_std(eps, task_ids if cfg.per_task else None)
    centred = eps - mean
    if cfg.scale == "std":
        centred = centred / torch.where(std > _MIN_STD, std, torch.ones_like(std))
    return alpha * centred, stats


@torch.no_grad()
def clip_bonus(raw: Tensor, advantages: Tensor, clip_factor: float) -> Tensor:
    """The two clips of the spec, against the advantages the bonus is added to.

    ``b = clip(raw, -c|A|, +c|A|)``, then clamped so that A + b never has the opposite sign of A:
    b >= -A where A > 0, b <= -A where A < 0 (A + b may reach 0); where A = 0 the ``c|A|`` clip already
    forces b = 0. So |b| <= c|A| and sign(A + b) is never -sign(A), for whichever A is passed: the raw
    advantages (bonus before PPO's normalisation) or a minibatch's normalised ones (after it).

    :param raw: the unclipped bonus (:func:`raw_bonus`), (N,)
    :param advantages: the advantages A it will be added to, (N,)
    :param clip_factor: c
    :return: the clipped bonus, (N,)
    """
    bound = clip_factor * advantages.abs()
    bonus = torch.minimum(torch.maximum(raw, -bound), bound)
    bonus = torch.where(advantages > 0, torch.maximum(bonus, -advantages), bonus)
    return torch.where(advantages < 0, torch.minimum(bonus, -advantages), bonus)


def clip_stats(raw: Tensor, bonus: Tensor) -> dict[str, float]:
    """``bonus_mean``, ``bonus_std`` (after clipping) and ``clipped_share`` (elements either clip changed)."""
    return {
        "bonus_mean": bonus.mean().item(),
        "bonus_std": bonus.std(correction=0).item(),
        "clipped_share": (bonus != raw).to(bonus.dtype).mean().item(),
    }


@torch.no_grad()
def exploration_bonus(
    q_mf: Tensor,
    q_mb: Tensor,
    advantages: Tensor,
    alpha: float,
    cfg: BonusConfig,
    task_ids: Tensor | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """The clipped exploration bonus b of a flat batch (:func:`raw_bonus`, then :func:`clip_bonus`
    against ``advantages``), and its statistics for logging.

    :param q_mf: model-free one-step returns, (N,)
    :param q_mb: model-based one-step returns, (N,)
    :param advantages: GAE advantages A on real rewards, (N,)
    :param alpha: bonus weight (see :func:`alpha_at`); 0 returns exact zeros, so A^ = A bit for bit
    :param cfg: bonus settings (``clip_factor``, ``scale``, ``per_task``)
    :param task_ids: task index per transition, (N,); None: one task
    :return: bonus b, (N,), and stats ``eps_mean``, ``eps_std`` (over the whole batch), ``bonus_mean``,
        ``bonus_std`` (after clipping), ``clipped_share`` (share of elements changed by either clip),
        ``alpha``
    """
    raw, stats = raw_bonus(q_mf, q_mb, alpha, cfg, task_ids)
    if alpha == 0:
        stats.update(bonus_mean=0.0, bonus_std=0.0, clipped_share=0.0)
        return raw, stats
    bonus = clip_bonus(raw, advantages, cfg.clip_factor)
    stats.update(clip_stats(raw, bonus))
    return bonus, stats


def apply_bonus(advantages: Tensor, bonus: Tensor) -> Tensor:
    """A^ = A + b.

    :param advantages: advantages A, (N,)
    :param bonus: bonus b from :func:`exploration_bonus`, (N,)
    :return: bonus-augmented advantages, (N,)
    """
    return advantages + bonus
