"""MPPI with a policy prior (the spec's Eq. 2-3), batched over vectorized environments.

TD-MPC2's planner (``tdmpc2/tdmpc2.py``, ``_plan``) is the reference; this is our own code, shaped for
many environments at once: every tensor carries a leading env axis ``E`` and the planner flattens
``(envs x samples)`` into one batch for each world-model call, so a decision for 16 envs costs a few
large matrix products rather than 16 small ones.

Where we follow TD-MPC2 and where we depart:

- Prior rollouts, Gaussian refit, elite weighting, the executed action (one elite drawn in proportion to
  its weight, its first action) are TD-MPC2's. In evaluation TD-MPC2 also *draws* an elite (it does not
  take the mean or the best one) and only skips the noise; we do the same.
- Training noise: TD-MPC2 adds the refit first-step std times N(0, 1); M3PO adds ``cfg.exec_noise`` times
  N(0, 1) (the spec's sigma_0; 0 by default so the executed action stays near what the planner chose).
  ``exec_noise_from_std=True`` gives TD-MPC2's (the TD-MPC2 baseline uses it).
- The prior's samples are drawn here from the ``(mu, log_std)`` the model returns, with the planner's
  generator, rather than taken from the model's own sampled action: one generator then fixes the whole
  plan. The distribution is the same tanh-Gaussian.
- The prior trajectories are scored once per decision, during their rollout, by default: M3PO's world
  model is deterministic under ``no_grad``/eval, so re-scoring them would give identical values.
  ``cfg.rescore_prior`` re-scores them in every iteration with the rest of the population, as TD-MPC2
  does; the TD-MPC2 baseline sets it, because its terminal value draws a random pair of Q heads and a
  policy action at every call (the values then differ per iteration).
- ``prior_centred`` (the spec's "Known pitfall" option) starts the Gaussian at the prior's own action
  sequence (``tanh(mu)`` rolled out from ``z``) with the prior's sigma, instead of the shifted warm start
  and ``max_std``; the warm start is then unused.

:class:`ActOutput`, what an agent's ``act`` returns, lives here, below both agents that plan (M3PO's and
the TD-MPC2 baseline's), so that both return the one type.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import Tensor

from m3po.planner_config import PlannerConfig

# |pre-tanh action| bound: float32 tanh stays strictly inside (-1, 1) (it rounds to 1 past about 9) and
# inside the clamp that TanhGaussian.log_prob applies (|a| <= 1 - 1e-6, i.e. |u| <= 7.25).
PRE_TANH_LIMIT = 7.0


class PlanningModel(Protocol):
    """What the planner calls; the world model implements it.

    ``task`` is a (B,) int64 tensor of task ids, or None in single-task runs. ``B`` is any batch size.
    """

    def next(self, z: Tensor, a: Tensor, task: Tensor | None) -> Tensor:
        """Latent dynamics: z (B,L), a (B,A) -> next latent (B,L)."""
        ...

    def reward(self, z: Tensor, a: Tensor, task: Tensor | None) -> Tensor:
        """Expected reward: z (B,L), a (B,A) -> (B,1)."""
        ...

    def V(self, z: Tensor, task: Tensor | None) -> Tensor:
        """Terminal value: z (B,L) -> (B,1)."""
        ...

    def pi(self, z: Tensor, task: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        """Policy prior: z (B,L) -> (action (B,A) in [-1,1], mu (B,A) pre-tanh mean, log_std (B,A))."""
        ...


@dataclass
class PlanOutput:
    """One planning decision for ``E`` envs.

    ``std`` and ``behaviour_std`` are positive in padded action dims too (the refit std is clamped to
    ``min_std`` there), so a Gaussian log-density over all dims stays finite; mask it like the policy's.
    """

    action: Tensor  # (E,A) executed action, in [-1,1], padded dims exactly 0
    mean: Tensor  # (E,H,A) refit Gaussian mean (next decision's warm start, before shifting); padded dims 0;
    # in the sampling space (pre-tanh actions when cfg.sample_space == "pretanh")
    std: Tensor  # (E,H,A) refit Gaussian std
    behaviour_mean: Tensor  # (E,A) mean of the distribution the executed action was drawn from (first step)
    behaviour_std: Tensor  # (E,A) its std, widened by the exec noise where added
    stats: dict[str, float]  # diagnostics, see MPPIPlanner.plan


@dataclass
class ActOutput:
    """What an agent's ``act`` returns for ``E`` envs, shared by M3PO and the TD-MPC2 baseline.

    TD-MPC2 learns off-policy from replay and keeps no densities or values, so it fills only ``action``
    and ``stats``; the other fields then stay None.

    :param action: (E, A) executed actions, padded dims 0
    :param log_prob: (E,) the prior's log-density of the action, log pi_old(a|s); None for TD-MPC2
    :param behaviour_log_prob: (E,) log-density of the distribution the action was really drawn from
        (M3PO: the planner's moment-matched Gaussian, mixed with the prior when ``planner.prior_mix`` > 0;
        the prior's when acting without the planner or in evaluation); None for TD-MPC2
    :param value: (E,) V(s) at the decision; None for TD-MPC2
    :param stats: planner diagnostics (see :meth:`MPPIPlanner.plan`); empty when the prior acted alone
    """

    action: Tensor
    log_prob: Tensor | None = None
    behaviour_log_prob: Tensor | None = None
    value: Tensor | None = None
    stats: dict[str, float] = field(default_factory=dict)


@dataclass
class PriorRollout:
    """The policy prior rolled out in the model from each env's latent.

    ``samples``/``values``: ``num_pi_trajs`` tanh-Gaussian samples per env, taken along their own rollout,
    and their returns. ``mean_*``: the prior's mean action ``tanh(mu)`` rolled out from ``z`` (what a
    prior-centred planner starts from), the prior's pre-tanh sigma along it, and its return.
    """

    samples: Tensor  # (E,N_pi,H,A), padded dims 0
    samples_pre_tanh: Tensor  # (E,N_pi,H,A) the same before tanh, padded dims 0
    values: Tensor  # (E,N_pi)
    mean_actions: Tensor  # (E,H,A), padded dims 0
    mean_pre_tanh: Tensor  # (E,H,A) mu along the mean rollout, padded dims 0
    mean_std: Tensor  # (E,H,A) exp(log_std) of the prior along the mean rollout
    mean_value: Tensor  # (E,)


@dataclass
class _Population:
    """The action sequences of one decision: the prior's ``N_pi`` first, then the Gaussian's.

    The prior's rows are fixed for the decision; the Gaussian's are redrawn and rescored every iteration.
    """

    samples: Tensor  # (E,N,H,A) in the sampling space (pre-tanh when cfg.sample_space == "pretanh")
    actions: Tensor  # (E,N,H,A) the same squashed into [-1,1]: what the model scores
    values: Tensor  # (E,N) their returns, NaN scored 0


@dataclass
class _EliteFit:
    """One iteration's elites and the Gaussian refit to them."""

    mean: Tensor  # (E,H,A) weighted elite mean, padded dims 0
    std: Tensor  # (E,H,A) weighted elite std, clamped to [min_std, max_std]
    elites: Tensor  # (E,K,H,A) in the sampling space (clamped to [-1,1] in action space)
    elite_values: Tensor  # (E,K) their returns, sorted: column 0 is the max
    elite_idx: Tensor  # (E,K) their rows in the population
    weights: Tensor  # (E,K) normalised exp(temperature * (J - max J))


def shift_warm_start(prev_mean: Tensor) -> Tensor:
    """Last decision's mean moved one step earlier, its last step set to zero.

    :param prev_mean: (E,H,A) mean of the previous decision
    :return: (E,H,A) with ``out[:, h] = prev_mean[:, h + 1]`` and ``out[:, -1] = 0``
    """
    shifted = torch.zeros_like(prev_mean)
    shifted[:, :-1] = prev_mean[:, 1:]
    return shifted


@torch.no_grad()
def trajectory_return(
    model: PlanningModel, z: Tensor, actions: Tensor, task: Tensor | None, discount: Tensor
) -> Tensor:
    """Score action sequences: ``J = sum_h gamma^h R(z_h, a_h) + gamma^H V(z_H)`` with a gamma per env.

    All ``E x N`` sequences go through the model as one batch of ``E * N`` rows per step.

    :param model: the world model
    :param z: (E,L) start latents
    :param actions: (E,N,H,A) action sequences, N per env
    :param task: (E,) task ids or None
    :param discount: (E,) per-env discount gamma
    :return: (E,N) returns
    """
    num_envs, num_seqs, horizon, _ = actions.shape
    z = z.unsqueeze(1).expand(num_envs, num_seqs, z.shape[-1]).reshape(num_envs * num_seqs, -1)
    task = None if task is None else task.repeat_interleave(num_seqs)
    gamma = discount.reshape(num_envs, 1)
    flat = actions.reshape(num_envs * num_seqs, horizon, -1)
    total = torch.zeros(num_envs, num_seqs, dtype=z.dtype, device=z.device)
    weight = torch.ones_like(gamma)
    for h in range(horizon):
        a = flat[:, h].contiguous()
        total = total + weight * model.reward(z, a, task).view(num_envs, num_seqs)
        z = model.next(z, a, task)
        weight = weight * gamma
    return total + weight * model.V(z, task).view(num_envs, num_seqs)


class MPPIPlanner:
    """MPPI over action sequences, seeded with the policy prior, for ``E`` envs in one batched pass.

    :param cfg: planner settings (``enabled`` is the caller's business: this class always plans)
    :param act_dim: action size ``A`` (padded to the largest task's in multi-task runs); at 20 or more,
        ``cfg.extra_iters_large_action`` iterations are added, as TD-MPC2 does
    :param device: where planning runs (the world model's device); inputs elsewhere are moved there
    :param exec_noise_from_std: training noise on the executed action is the refit first-step std times
        N(0, 1), as TD-MPC2 does, instead of ``cfg.exec_noise`` times N(0, 1) (the TD-MPC2 baseline's mode)
    :param compile: score the population with a ``torch.compile``-d :func:`trajectory_return` (inductor;
        float results within a tolerance of the eager path, not bit-identical)
    """

    def __init__(
        self,
        cfg: PlannerConfig,
        act_dim: int,
        device: torch.device | str = "cpu",
        exec_noise_from_std: bool = False,
        compile: bool = False,  # noqa: A002 (the config field's name)
    ) -> None:
        if cfg.iterations < 1 or cfg.horizon < 1:
            raise ValueError(f"need iterations >= 1 and horizon >= 1, got {cfg.iterations}, {cfg.horizon}")
        if not 0 <= cfg.num_pi_trajs < cfg.num_samples:
            raise ValueError(f"num_pi_trajs must be in [0, num_samples), got {cfg.num_pi_trajs}")
        if not 1 <= cfg.num_elites <= cfg.num_samples:
            raise ValueError(f"num_elites must be in [1, num_samples], got {cfg.num_elites}")
        if not 0 < cfg.min_std <= cfg.max_std:
            raise ValueError(f"need 0 < min_std <= max_std, got {cfg.min_std}, {cfg.max_std}")
        self.cfg = cfg
        self.act_dim = act_dim
        self.device = torch.device(device)
        self.exec_noise_from_std = exec_noise_from_std
        self.iterations = cfg.iterations + (cfg.extra_iters_large_action if act_dim >= 20 else 0)
        self._trajectory_return = (
            torch.compile(trajectory_return, dynamic=False) if compile else trajectory_return
        )

    @property
    def _pretanh(self) -> bool:
        """Whether the Gaussian samples pre-tanh actions (``cfg.sample_space == "pretanh"``)."""
        return self.cfg.sample_space == "pretanh"

    @torch.no_grad()
    def rollout_prior(
        self,
        model: PlanningModel,
        z: Tensor,
        task: Tensor | None,
        discount: Tensor,
        action_mask: Tensor,
        generator: torch.Generator | None = None,
    ) -> PriorRollout:
        """Roll the prior out ``H`` steps from each env's latent and score what it did.

        Row 0 of each env follows the prior's mean ``tanh(mu)``, rows 1..N_pi follow samples
        ``tanh(mu + sigma * eps)``; all ``E * (N_pi + 1)`` rows share each model call.

        :param model: the world model
        :param z: (E,L) latents
        :param task: (E,) task ids or None
        :param discount: (E,) per-env gamma
        :param action_mask: (E,A) 1 for real dims, 0 for padded ones
        :param generator: source of the sampling noise
        :return: the rollout (see :class:`PriorRollout`)
        """
        num_envs, horizon, act_dim = z.shape[0], self.cfg.horizon, action_mask.shape[-1]
        rows = self.cfg.num_pi_trajs + 1
        zs = z.unsqueeze(1).expand(num_envs, rows, z.shape[-1]).reshape(num_envs * rows, -1)
        tasks = None if task is None else task.repeat_interleave(rows)
        mask = action_mask.unsqueeze(1)  # (E,1,A)
        gamma = discount.reshape(num_envs, 1)
        actions = torch.empty(num_envs, rows, horizon, act_dim, dtype=z.dtype, device=z.device)
        pre_tanh_actions = torch.empty_like(actions)
        mean_std = torch.empty(num_envs, horizon, act_dim, dtype=z.dtype, device=z.device)
        total = torch.zeros(num_envs, rows, dtype=z.dtype, device=z.device)
        weight = torch.ones_like(gamma)
        for h in range(horizon):
            _, mu, log_std = model.pi(zs, tasks)
            mu, std = mu.view(num_envs, rows, act_dim), log_std.exp().view(num_envs, rows, act_dim)
            noise = torch.randn(
                num_envs, rows - 1, act_dim, dtype=z.dtype, device=z.device, generator=generator
            )
            pre_tanh = torch.cat([mu[:, :1], mu[:, 1:] + std[:, 1:] * noise], dim=1)
            pre_tanh = pre_tanh * mask
            a = torch.tanh(pre_tanh)
            actions[:, :, h] = a
            pre_tanh_actions[:, :, h] = pre_tanh
            mean_std[:, h] = std[:, 0]
            a = a.reshape(num_envs * rows, act_dim)
            total = total + weight * model.reward(zs, a, tasks).view(num_envs, rows)
            zs = model.next(zs, a, tasks)
            weight = weight * gamma
        total = total + weight * model.V(zs, tasks).view(num_envs, rows)
        return PriorRollout(
            samples=actions[:, 1:],
            samples_pre_tanh=pre_tanh_actions[:, 1:],
            values=total[:, 1:],
            mean_actions=actions[:, 0],
            mean_pre_tanh=pre_tanh_actions[:, 0],
            mean_std=mean_std,
            mean_value=total[:, 0],
        )

    def initial_gaussian(
        self, prior: PriorRollout, prev_mean: Tensor | None, action_mask: Tensor
    ) -> tuple[Tensor, Tensor]:
        """The sampling Gaussian at the start of a decision.

        Prior-centred: the prior's mean sequence and its sigma clamped to ``[min_std, max_std]``.
        Otherwise (TD-MPC2): the shifted warm start (zero without one) and ``max_std``.

        :param prior: this decision's prior rollout
        :param prev_mean: (E,H,A) last decision's mean, or None; rows the caller zeroed mean "no warm start"
        :param action_mask: (E,A)
        :return: mean (E,H,A) with padded dims 0, std (E,H,A)
        """
        cfg = self.cfg
        if cfg.prior_centred:
            centre = prior.mean_pre_tanh if cfg.sample_space == "pretanh" else prior.mean_actions
            return centre.clone(), prior.mean_std.clamp(cfg.min_std, cfg.max_std)
        like = prior.mean_actions
        mean = torch.zeros_like(like) if prev_mean is None else shift_warm_start(prev_mean.to(like))
        return mean * action_mask.unsqueeze(1), torch.full_like(like, cfg.max_std)

    @torch.no_grad()
    def plan(
        self,
        model: PlanningModel,
        z: Tensor,
        task: Tensor | None,
        discount: Tensor,
        action_mask: Tensor,
        prev_mean: Tensor | None,
        eval_mode: bool = False,
        generator: torch.Generator | None = None,
    ) -> PlanOutput:
        """Plan one action for each of ``E`` envs.

        ``stats`` (floats, averaged over envs and real action dims): ``elite_return`` mean J of the final
        elites, ``best_return`` best J, ``prior_return`` J of the prior's mean sequence, ``std0`` refit std
        of the first step, ``prior_gap`` mean |executed action - prior mean action tanh(mu(z))|,
        ``elite_prior_share`` share of final elites that are prior rollouts, ``saturated_share`` share of
        executed action components at +-1 (where the prior's density collapses), ``iterations``.

        :param model: the world model
        :param z: (E,L) latents of the E envs
        :param task: (E,) int64 task ids, or None
        :param discount: (E,) per-env gamma
        :param action_mask: (E,A) 1 for real action dims, 0 for padded ones
        :param prev_mean: (E,H,A) last decision's ``PlanOutput.mean`` (shifted here), or None
        :param eval_mode: no noise on the executed action
        :param generator: the only source of randomness (must be on the planner's device); same seed,
            same plan
        :return: the decision, see :class:`PlanOutput`
        """
        z, task, discount, mask, prev_mean = self._inputs(z, task, discount, action_mask, prev_mean)
        prior = self.rollout_prior(model, z, task, discount, mask, generator)
        mean, std = self.initial_gaussian(prior, prev_mean, mask)
        population = self._seed_population(prior)
        for _ in range(self.iterations):  # at least one (checked in __init__): ``fit`` is always set
            self._sample(population, mean, std, mask, generator)
            self._score(population, model, z, task, discount)
            fit = self._refit(population, mask)
            mean, std = fit.mean, fit.std
        action, behaviour_std = self._executed_action(fit, mask, eval_mode, generator)
        return PlanOutput(
            action=action,
            mean=fit.mean,
            std=fit.std,
            behaviour_mean=fit.mean[:, 0],
            behaviour_std=behaviour_std,
            stats=self._stats(fit, prior, action, mask),
        )

    def _inputs(
        self,
        z: Tensor,
        task: Tensor | None,
        discount: Tensor,
        action_mask: Tensor,
        prev_mean: Tensor | None,
    ) -> tuple[Tensor, Tensor | None, Tensor, Tensor, Tensor | None]:
        """Check the shapes of :meth:`plan`'s inputs and bring them to the planner's device.

        :param z: (E,L) latents
        :param task: (E,) task ids or None
        :param discount: (E,) per-env gamma, or one gamma for every env
        :param action_mask: (E,A)
        :param prev_mean: (E,H,A) or None
        :return: z, task, discount (E,) and action mask in z's dtype, prev_mean, all on the device
        """
        num_envs, horizon, act_dim = z.shape[0], self.cfg.horizon, self.act_dim
        if action_mask.shape != (num_envs, act_dim):
            raise ValueError(f"action_mask must be ({num_envs}, {act_dim}), got {tuple(action_mask.shape)}")
        if prev_mean is not None and prev_mean.shape != (num_envs, horizon, act_dim):
            raise ValueError(
                f"prev_mean must be ({num_envs}, {horizon}, {act_dim}), got {tuple(prev_mean.shape)}"
            )
        # Moves are no-ops when the caller already keeps everything on the model's device.
        z = z.to(self.device)
        dtype, device = z.dtype, z.device
        task = None if task is None else task.to(device)
        prev_mean = None if prev_mean is None else prev_mean.to(device)
        mask = action_mask.to(device, dtype)
        discount = torch.as_tensor(discount, dtype=dtype, device=device).expand(num_envs)
        return z, task, discount, mask, prev_mean

    def _seed_population(self, prior: PriorRollout) -> _Population:
        """The decision's population with the prior's samples in its first ``N_pi`` rows.

        :param prior: this decision's prior rollout
        :return: the population; rows ``N_pi:`` are left for :meth:`_sample` and :meth:`_score`
        """
        cfg, num_pi = self.cfg, self.cfg.num_pi_trajs
        like = prior.mean_actions  # (E,H,A)
        num_envs, horizon, act_dim = like.shape
        actions = torch.empty(
            num_envs, cfg.num_samples, horizon, act_dim, dtype=like.dtype, device=like.device
        )
        # The Gaussian lives in the sampling space; the model always scores squashed actions.
        samples = torch.empty_like(actions)
        samples[:, :num_pi] = prior.samples_pre_tanh if self._pretanh else prior.samples
        actions[:, :num_pi] = prior.samples
        values = torch.empty(num_envs, cfg.num_samples, dtype=like.dtype, device=like.device)
        values[:, :num_pi] = prior.values.nan_to_num(0.0)
        return _Population(samples=samples, actions=actions, values=values)

    def _sample(
        self,
        population: _Population,
        mean: Tensor,
        std: Tensor,
        mask: Tensor,
        generator: torch.Generator | None,
    ) -> None:
        """Redraw the population's Gaussian rows (``N_pi:``) in place, in sampling and action space.

        :param population: this decision's population
        :param mean: (E,H,A) current Gaussian mean
        :param std: (E,H,A) current Gaussian std
        :param mask: (E,A) action mask
        :param generator: source of the noise
        """
        num_envs, num_samples, horizon, act_dim = population.samples.shape
        num_pi = self.cfg.num_pi_trajs
        noise = torch.randn(
            num_envs,
            num_samples - num_pi,
            horizon,
            act_dim,
            dtype=mean.dtype,
            device=mean.device,
            generator=generator,
        )
        sampled = (mean.unsqueeze(1) + std.unsqueeze(1) * noise) * mask[:, None, None, :]
        if self._pretanh:
            sampled = sampled.clamp(-PRE_TANH_LIMIT, PRE_TANH_LIMIT)
        population.samples[:, num_pi:] = sampled
        # Pre-tanh samples never reach +-1 exactly, where the prior's density collapses.
        population.actions[:, num_pi:] = torch.tanh(sampled) if self._pretanh else sampled.clamp(-1, 1)

    def _score(
        self,
        population: _Population,
        model: PlanningModel,
        z: Tensor,
        task: Tensor | None,
        discount: Tensor,
    ) -> None:
        """Score the population's Gaussian rows in place (the prior's were scored along their rollout);
        with ``cfg.rescore_prior`` every row, the prior's included, in one batch (TD-MPC2's order).

        :param population: this decision's population
        :param model: the world model
        :param z: (E,L) latents
        :param task: (E,) task ids or None
        :param discount: (E,) per-env gamma
        """
        num_pi = 0 if self.cfg.rescore_prior else self.cfg.num_pi_trajs
        # A diverging model can return NaN; TD-MPC2 scores those sequences 0 rather than poison topk.
        population.values[:, num_pi:] = self._trajectory_return(
            model, z, population.actions[:, num_pi:], task, discount
        ).nan_to_num(0.0)

    def _refit(self, population: _Population, mask: Tensor) -> _EliteFit:
        """Refit the Gaussian to the population's elites, weighted by ``exp(temperature * J)``.

        :param population: this decision's scored population
        :param mask: (E,A) action mask
        :return: the elites and the refit Gaussian
        """
        cfg = self.cfg
        horizon, act_dim = population.samples.shape[2:]
        elite_values, elite_idx = population.values.topk(cfg.num_elites, dim=1)  # sorted: column 0 is the max
        elites = population.samples.gather(1, elite_idx[:, :, None, None].expand(-1, -1, horizon, act_dim))
        if not self._pretanh:
            elites = elites.clamp(-1, 1)
        weights = torch.exp(cfg.temperature * (elite_values - elite_values[:, :1]))
        weights = weights / weights.sum(dim=1, keepdim=True)
        w = weights[:, :, None, None]
        mean = (w * elites).sum(dim=1) * mask.unsqueeze(1)
        std = (w * (elites - mean.unsqueeze(1)) ** 2).sum(dim=1).sqrt().clamp(cfg.min_std, cfg.max_std)
        return _EliteFit(
            mean=mean, std=std, elites=elites, elite_values=elite_values, elite_idx=elite_idx, weights=weights
        )

    def _executed_action(
        self, fit: _EliteFit, mask: Tensor, eval_mode: bool, generator: torch.Generator | None
    ) -> tuple[Tensor, Tensor]:
        """The action to execute: one final elite drawn by weight, its first step, plus training noise.

        :param fit: the last iteration's refit
        :param mask: (E,A) action mask
        :param eval_mode: no noise (and the weighted mean when ``cfg.eval_action == "mean"``)
        :param generator: source of the draw and the noise
        :return: action (E,A) in [-1,1] with padded dims 0, and the std (E,A) of the distribution it was
            drawn from
        """
        cfg = self.cfg
        num_envs, act_dim = mask.shape
        dtype, device = fit.mean.dtype, fit.mean.device
        choice = torch.multinomial(fit.weights, 1, generator=generator).squeeze(1)  # (E,)
        action = fit.elites[torch.arange(num_envs, device=device), choice, 0]
        if eval_mode and cfg.eval_action == "mean":
            # A drawn elite is as noisy as the samples; with few iterations that is close to the prior's own
            # noise. The weighted mean is classic MPPI's output (drawn anyway: same RNG stream either way).
            action = fit.mean[:, 0]
        behaviour_std = fit.std[:, 0]
        if not eval_mode and (cfg.exec_noise > 0 or self.exec_noise_from_std):
            noise = torch.randn(num_envs, act_dim, dtype=dtype, device=device, generator=generator)
            scale = fit.std[:, 0] if self.exec_noise_from_std else cfg.exec_noise
            action = (action + scale * noise) * mask
            # The action is drawn from the elite mixture (moment-matched: mean[0], std[0]) plus
            # independent noise, so the variances add.
            behaviour_std = (behaviour_std**2 + scale**2).sqrt()
        if self._pretanh:
            return torch.tanh(action.clamp(-PRE_TANH_LIMIT, PRE_TANH_LIMIT)), behaviour_std
        return action.clamp(-1, 1), behaviour_std

    def _stats(self, fit: _EliteFit, prior: PriorRollout, action: Tensor, mask: Tensor) -> dict[str, float]:
        """The diagnostics :meth:`plan` documents, as Python floats.

        :param fit: the last iteration's refit
        :param prior: this decision's prior rollout
        :param action: (E,A) executed action
        :param mask: (E,A) action mask
        :return: the stats
        """
        real = mask.sum().clamp(min=1.0)
        diagnostics = {
            "elite_return": fit.elite_values.mean(),
            "best_return": fit.elite_values[:, 0].mean(),
            "prior_return": prior.mean_value.mean(),
            "std0": (fit.std[:, 0] * mask).sum() / real,
            "prior_gap": ((action - prior.mean_actions[:, 0]).abs() * mask).sum() / real,
            "elite_prior_share": (fit.elite_idx < self.cfg.num_pi_trajs).to(mask.dtype).mean(),
            "saturated_share": ((action.abs() >= 1.0) * mask).sum() / real,
        }
        # One stacked transfer: a single device sync for all diagnostics.
        stats = dict(zip(diagnostics, torch.stack(list(diagnostics.values())).tolist(), strict=True))
        stats["iterations"] = float(self.iterations)
        return stats
