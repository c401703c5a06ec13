"""The M3PO agent: act with MPPI seeded by the policy prior, learn with PPO, the bonus and world-model losses.

``act`` plans for all vectorized envs in one batched pass; ``update`` takes one on-policy batch
(``T`` steps of ``E`` envs) and runs ``E`` epochs of minibatch updates of actor, critic and world
model. See ``shared/spec/m3po-algorithm.md`` for every formula used here.
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F

from m3po.bonus import alpha_at, apply_bonus, clip_bonus, exploration_bonus, one_step_q, raw_bonus
from m3po.config import M3POConfig
from m3po.distributions import TanhGaussian, gaussian_log_prob
from m3po.errors import NonFiniteLossError
from m3po.planner import ActOutput, MPPIPlanner
from m3po.returns import gae
from m3po.rng import generator_state, set_generator_state
from m3po.world_model import WorldModel

# Fault tests (tests/test_faults.py) make a run diverge on purpose: with this variable set to N, the
# reward loss is NaN from agent step N on. Unset in normal use.
DEBUG_NAN_LOSS_STEP = "M3PO_DEBUG_NAN_LOSS_STEP"


def _debug_nan_loss_step() -> int | None:
    value = os.environ.get(DEBUG_NAN_LOSS_STEP)
    if not value:
        return None
    try:
        return int(value)
    except ValueError as err:
        raise ValueError(f"{DEBUG_NAN_LOSS_STEP}={value!r}: expected an agent step (an integer)") from err


@dataclass
class Rollout:
    """One on-policy batch; every tensor is (T, E, ...) except ``task`` (E,).

    ``next_obs`` is the true next observation (the final one, before auto-reset, where an episode
    ended), so the bonus and the bootstrap see what really followed each action.
    """

    obs: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    next_obs: torch.Tensor
    log_prob: torch.Tensor
    behaviour_log_prob: torch.Tensor
    task: torch.Tensor | None

    @property
    def done(self) -> torch.Tensor:
        return self.terminated | self.truncated


def concat_envs(batches: list[Rollout]) -> Rollout:
    """Batches of the same length side by side along the env axis: (T, E1+E2+..., ...)."""
    if len(batches) == 1:
        return batches[0]

    def cat(name: str) -> torch.Tensor | None:
        parts = [getattr(b, name) for b in batches]
        if name == "task":
            return None if parts[0] is None else torch.cat(parts)
        return torch.cat(parts, dim=1)

    return Rollout(**{f.name: cat(f.name) for f in fields(Rollout)})


@dataclass
class _UpdateData:
    """One update's batch flattened to ``N = T * E`` rows, with what is computed once before its epochs."""

    obs: torch.Tensor  # (N, obs_dim)
    actions: torch.Tensor  # (N, A) executed actions
    task: torch.Tensor | None  # (N,) task id of each row; None in single-task runs
    values: torch.Tensor  # (T, E) V(s) before the update
    advantages: torch.Tensor  # (T, E) GAE advantages, without the bonus
    returns: torch.Tensor  # (N, 1) the critic's targets
    adv_hat: torch.Tensor  # (N,) advantages, the bonus added when it comes before the normalisation
    bonus: torch.Tensor  # (N,) exploration bonus: clipped against A (before), unclipped (after normalisation)
    bonus_stats: dict[str, float]  # the bonus's diagnostics
    alpha: float  # the bonus weight at this step


@dataclass
class _ActorProgress:
    """The actor through one update's minibatches: the target_kl rule may stop it."""

    steps: int = 0  # minibatch steps the actor took
    stopped: bool = False  # target_kl reached: the remaining minibatches train the model only
    first_ratio_error: float = math.nan  # max |ratio - 1| on the first minibatch, before any step


@dataclass
class _PolicyTerms:
    """The actor's side of one minibatch: the current prior, its ratio to pi_old, and the losses."""

    dist: TanhGaussian  # the current prior on the minibatch
    log_prob: torch.Tensor  # (M,) log pi(a|s)
    old_log_prob: torch.Tensor  # (M,) log pi_old(a|s), from the frozen copy
    log_ratio: torch.Tensor  # (M,) clamped to +-ppo.log_ratio_clamp
    ratio: torch.Tensor  # (M,)
    actor_loss: torch.Tensor  # PPO's clipped objective, negated
    distill: torch.Tensor  # negative log-likelihood of the executed actions
    entropy: torch.Tensor  # entropy estimate of the prior
    bonus_raw: torch.Tensor | None = None  # (M,) the unclipped bonus, when added after the normalisation
    bonus: torch.Tensor | None = None  # (M,) the bonus added then, clipped against the normalised advantage


def _check_finite(losses: dict[str, torch.Tensor], step: int) -> None:
    """Raise :class:`NonFiniteLossError` naming the first loss that is NaN or infinite.

    :param losses: the losses by name
    :param step: agent steps so far (for the message)
    """
    # One device sync for all of them; the loop names the first bad one only when there is one.
    if bool(torch.isfinite(torch.stack(list(losses.values()))).all()):
        return
    for name, value in losses.items():
        if not torch.isfinite(value):
            raise NonFiniteLossError(f"loss {name!r} is {value.item()} at agent step {step}")


class M3POAgent:
    """M3PO for E vectorized envs over one task or a task set.

    :param cfg: run configuration
    :param obs_dim: (padded) observation size
    :param act_dim: (padded) action size
    :param task_action_mask: (n_tasks, act_dim) real action dims per task
    :param task_discount: (n_tasks,) discount of each task (TD-MPC2's rule)
    :param device: torch device
    """

    def __init__(
        self,
        cfg: M3POConfig,
        obs_dim: int,
        act_dim: int,
        task_action_mask: torch.Tensor,
        task_discount: torch.Tensor,
        device: torch.device,
    ) -> None:
        self.cfg = cfg
        self.device = device
        self.model = WorldModel(cfg.model, obs_dim, act_dim, task_action_mask).to(device)
        self.task_discount = task_discount.to(device, torch.float32)
        self.planner = MPPIPlanner(cfg.planner, act_dim, device, compile=cfg.compile)
        self._actor_params = self.model.actor_parameters()
        actor_ids = {id(p) for p in self._actor_params}
        self._model_params = [p for p in self.model.parameters() if id(p) not in actor_ids]
        encoder = list(self.model._encoder.parameters())
        encoder_ids = {id(p) for p in encoder}
        rest = [p for p in self._model_params if id(p) not in encoder_ids]
        self.optim = torch.optim.Adam(
            [
                {"params": encoder, "lr": cfg.ppo.lr * cfg.wm.enc_lr_scale},
                {"params": self._actor_params, "lr": cfg.ppo.actor_lr},
                {"params": rest, "lr": cfg.ppo.lr},
            ],
            lr=cfg.ppo.lr,
            eps=cfg.ppo.adam_eps,
            # foreach: the same arithmetic as the per-parameter loop (bit-identical), in a few ops;
            # fused (compile): one kernel, not bit-identical
            foreach=not cfg.compile,
            fused=cfg.compile or None,
        )
        # cfg.compile: the world-model loss (forward and backward) as one inductor graph per shape
        self._compiled_wm_loss = torch.compile(self._world_model_loss, dynamic=False) if cfg.compile else None
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(cfg.seed)
        self._plan_mean: torch.Tensor | None = None  # (E, H, A) warm start per env
        # The spec's FIFO of recent batches (wm.history_batches): model losses only, never actor or critic.
        self._wm_history: list[Rollout] = []

    def _task(self, task_ids: torch.Tensor) -> torch.Tensor | None:
        return task_ids if self.model.multitask else None

    def reset_warm_start(self, done: torch.Tensor) -> None:
        """Forget the planner's warm start of envs whose episode ended (done: (E,) bool)."""
        if self._plan_mean is not None:
            self._plan_mean[done] = 0.0

    def swap_warm_start(self, plan_mean: torch.Tensor | None) -> torch.Tensor | None:
        """Install another warm start (evaluation keeps its own); returns the one replaced."""
        previous, self._plan_mean = self._plan_mean, plan_mean
        return previous

    @torch.no_grad()
    def act(
        self, obs: torch.Tensor, task_ids: torch.Tensor, eval_mode: bool = False, plan: bool = True
    ) -> ActOutput:
        """One decision for every env: obs (E, obs_dim), task_ids (E,) -> :class:`ActOutput`.

        ``plan=False`` acts with the prior alone (its mode in ``eval_mode``) even when the planner is on.
        """
        task = self._task(task_ids)
        z = self.model.encode(obs, task)
        dist = self.model.dist(z, task)
        stats: dict[str, float] = {}
        if self.cfg.planner.enabled and plan:
            mask = self.model.action_mask(task, z.shape[0])
            plan_out = self.planner.plan(
                self.model,
                z,
                task,
                self.task_discount[task_ids],
                mask,
                self._plan_mean,
                eval_mode=eval_mode,
                generator=self.generator,
            )
            action, stats = plan_out.action, dict(plan_out.stats)
            self._plan_mean = plan_out.mean
            mix = 0.0 if eval_mode else self.cfg.planner.prior_mix
            if mix > 0:
                use_prior = torch.rand(z.shape[0], generator=self.generator, device=z.device) < mix
                action = torch.where(use_prior[:, None], dist.sample(self.generator), action)
                stats["prior_mix_share"] = use_prior.float().mean().item()
            log_prob = dist.log_prob(action)
            # Evaluation stores nothing, so only training pays for the behaviour density.
            behaviour_log_prob = log_prob if eval_mode else self._planner_log_prob(plan_out, action, mask)
            if mix > 0:  # the executed action's density is the mixture's
                behaviour_log_prob = torch.logaddexp(
                    math.log(mix) + log_prob,
                    (math.log1p(-mix) if mix < 1 else -math.inf) + behaviour_log_prob,
                )
        else:
            action = dist.mode() if eval_mode else dist.sample(self.generator)
            log_prob = behaviour_log_prob = dist.log_prob(action)
        return ActOutput(action, log_prob, behaviour_log_prob, self.model.V(z, task).squeeze(-1), stats)

    def _planner_log_prob(self, plan_out, action: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Log-density of ``action`` under the planner's moment-matched first-step Gaussian, (E,).

        In pre-tanh sampling space that Gaussian is squashed by tanh, so the density carries the same
        change of variables as the prior's; in action space it is a plain Gaussian.
        """
        if self.cfg.planner.sample_space == "pretanh":
            dist = TanhGaussian(plan_out.behaviour_mean, plan_out.behaviour_std.log(), mask)
            return dist.log_prob(action)
        return gaussian_log_prob(action, plan_out.behaviour_mean, plan_out.behaviour_std, mask)

    def update(self, batch: Rollout, step: int) -> dict[str, float]:
        """PPO + bonus + world-model update on one batch; returns diagnostics.

        The stages, in order: advantages and bonus (:meth:`_advantages_and_bonus`), importance weights
        (:meth:`_importance_weights`), the epochs of minibatch steps (:meth:`_minibatch_epochs`), the
        policy drift, the model's history and observation statistics, the diagnostics
        (:meth:`_update_stats`).

        :param batch: the on-policy batch
        :param step: agent steps so far (for the bonus anneal and error messages)
        """
        cfg = self.cfg
        nan_step = _debug_nan_loss_step()
        poison = nan_step is not None and step >= nan_step
        data = self._advantages_and_bonus(batch, step)
        old_log_prob = batch.log_prob.reshape(-1)
        # pi_old for the ratio is a frozen copy of the model as it was at collection (no update since),
        # evaluated on the same minibatch as the current one: the ratio is then exactly 1 before the first
        # step, with no float drift from the batch shapes used when acting.
        old_model = copy.deepcopy(self.model).requires_grad_(False)
        is_weight, weights_stats = self._importance_weights(
            old_log_prob, batch.behaviour_log_prob.reshape(-1)
        )
        logs, actor = self._minibatch_epochs(batch, data, old_model, is_weight, poison, step)
        drift = self._policy_drift(old_model, data.obs, data.actions, data.task)
        if cfg.wm.history_batches > 0:
            self._wm_history = [*self._wm_history, batch][-cfg.wm.history_batches :]
        if cfg.model.obs_norm:
            # Statistics move only between iterations: collection and update of a batch see the same ones.
            self.model.update_obs_stats(data.obs, data.task)
        return self._update_stats(logs, actor, weights_stats, drift, batch, data, old_log_prob)

    @torch.no_grad()
    def _advantages_and_bonus(self, batch: Rollout, step: int) -> _UpdateData:
        """GAE advantages and critic targets, the exploration bonus, and the batch flattened to rows.

        :param batch: the on-policy batch
        :param step: agent steps so far (the bonus anneal)
        :return: what every minibatch of the update reads
        """
        cfg = self.cfg
        T, E = batch.rewards.shape
        task = self._task(batch.task)
        flat_task = None if task is None else task.repeat(T)
        gamma = self.task_discount[batch.task]  # (E,)
        obs = batch.obs.reshape(T * E, -1)
        z = self.model.encode(obs, flat_task)
        values = self.model.V(z, flat_task).view(T, E)
        z_next = self.model.encode(batch.next_obs.reshape(T * E, -1), flat_task)
        next_values = self.model.V(z_next, flat_task).view(T, E)
        advantages, returns = gae(
            batch.rewards, values, next_values, batch.terminated, batch.done, gamma, cfg.ppo.gae_lambda
        )
        actions = batch.actions.reshape(T * E, -1)
        gamma_flat = gamma.repeat(T)
        terminated = batch.terminated.reshape(-1)
        q_mf = one_step_q(batch.rewards.reshape(-1), next_values.reshape(-1), terminated, gamma_flat)
        z_model = self.model.next(z, actions, flat_task)
        q_mb = one_step_q(
            self.model.reward(z, actions, flat_task).squeeze(-1),
            self.model.V(z_model, flat_task).squeeze(-1),
            terminated,
            gamma_flat,
        )
        alpha = alpha_at(step, cfg.bonus)
        if cfg.bonus.before_adv_norm:
            bonus, bonus_stats = exploration_bonus(
                q_mf, q_mb, advantages.reshape(-1), alpha, cfg.bonus, flat_task
            )
            adv_hat = apply_bonus(advantages.reshape(-1), bonus)
        else:
            # Clipped per minibatch against the normalised advantage it is added to (see
            # _minibatch_advantage), so that |b| <= c|A| and the sign guarantee hold for that advantage.
            bonus, bonus_stats = raw_bonus(q_mf, q_mb, alpha, cfg.bonus, flat_task)
            adv_hat = advantages.reshape(-1)
        return _UpdateData(
            obs=obs,
            actions=actions,
            task=flat_task,
            values=values,
            advantages=advantages,
            returns=returns.reshape(-1, 1),
            adv_hat=adv_hat,
            bonus=bonus,
            bonus_stats=bonus_stats,
            alpha=alpha,
        )

    def _importance_weights(
        self, old_log_prob: torch.Tensor, behaviour_log_prob: torch.Tensor
    ) -> tuple[torch.Tensor | None, dict[str, float]]:
        """Truncated importance weights ``pi_old(a|s) / b(a|s)`` when ``ppo.behaviour_density`` is planner.

        :param old_log_prob: (N,) log pi_old(a|s) of the executed actions
        :param behaviour_log_prob: (N,) log b(a|s), the density they were drawn from
        :return: the weights (N,) and their diagnostics, or None and no diagnostics (the prior's reading)
        """
        cfg = self.cfg
        if cfg.ppo.behaviour_density != "planner":
            return None, {}
        # A truncated importance weight pi_old(a|s) / b(a|s) for actions the planner, not the prior,
        # drew (V-trace's rho-bar); the clipped ratio itself stays pi / pi_old.
        log_w = old_log_prob - behaviour_log_prob
        is_weight = log_w.clamp(max=math.log(cfg.ppo.is_clip)).exp()
        return is_weight, {
            "ppo/is_weight_mean": is_weight.mean().item(),
            "ppo/is_weight_truncated": (log_w > math.log(cfg.ppo.is_clip)).float().mean().item(),
        }

    def _minibatch_epochs(
        self,
        batch: Rollout,
        data: _UpdateData,
        old_model: WorldModel,
        is_weight: torch.Tensor | None,
        poison: bool,
        step: int,
    ) -> tuple[dict[str, list[float]], _ActorProgress]:
        """``ppo.epochs`` passes of minibatch steps over the batch, each with its own windows of model data.

        :param batch: the on-policy batch
        :param data: its advantages, targets and rows
        :param old_model: the frozen model as at collection (pi_old)
        :param is_weight: (N,) importance weights, or None
        :param poison: make the reward loss NaN (fault tests)
        :param step: agent steps so far (for error messages)
        :return: every minibatch's diagnostics by key, and the actor's progress
        """
        cfg = self.cfg
        n = data.obs.shape[0]
        mb = min(cfg.ppo.minibatch_size, n)
        # Earlier batches join the current one side by side, as if collected by more envs, so the windows
        # and the loss are unchanged; the number of model steps per update stays the same.
        wm_data = concat_envs([*self._wm_history, batch])
        windows = self._windows(batch.rewards.shape[0], wm_data.rewards.shape[1])
        window_mb = max(1, mb // cfg.wm.horizon)  # an H-step window costs about H transitions
        logs: dict[str, list[float]] = {}
        actor = _ActorProgress()
        for _ in range(cfg.ppo.epochs):
            perm = torch.randperm(n, generator=self.generator, device=self.device)
            window_perm = torch.randperm(len(windows), generator=self.generator, device=self.device)
            num_mb = max(1, n // mb)
            for k in range(num_mb):
                idx = perm[k * mb : (k + 1) * mb]
                start = (k * window_mb) % len(windows)
                w_idx = windows[window_perm[start : start + window_mb]]
                policy, value_loss = self._actor_critic_losses(
                    data, idx, old_model, is_weight, actor, not logs
                )
                wm_loss = self._compiled_wm_loss or self._world_model_loss
                consistency, reward_loss = wm_loss(wm_data, w_idx)
                if poison:
                    reward_loss = reward_loss * float("nan")
                losses = {
                    "actor": policy.actor_loss,
                    "value": value_loss,
                    "consistency": consistency,
                    "reward": reward_loss,
                    "entropy": policy.entropy,
                    "distill": policy.distill,
                }
                _check_finite(losses, step)
                grad_norm, model_grad_norm = self._optimizer_step(self._total_loss(losses, actor.stopped))
                stats = self._minibatch_stats(losses, policy, grad_norm, model_grad_norm)
                for key, value in stats.items():
                    logs.setdefault(key, []).append(value)
        return logs, actor

    def _actor_critic_losses(
        self,
        data: _UpdateData,
        idx: torch.Tensor,
        old_model: WorldModel,
        is_weight: torch.Tensor | None,
        actor: _ActorProgress,
        first: bool,
    ) -> tuple[_PolicyTerms, torch.Tensor]:
        """The actor's terms and the critic's loss on one minibatch of the batch's rows.

        :param data: the update's advantages, targets and rows
        :param idx: (M,) the minibatch's rows
        :param old_model: the frozen model as at collection (pi_old)
        :param is_weight: (N,) importance weights, or None
        :param actor: the actor's progress (target_kl may stop it here)
        :param first: the update's first minibatch (no step taken yet)
        :return: the actor's terms and the value loss
        """
        adv, bonus_raw, bonus = self._minibatch_advantage(data, idx, is_weight)
        mb_task = None if data.task is None else data.task[idx]
        z_mb = self.model.encode(data.obs[idx], mb_task)
        policy = self._actor_loss(data, idx, mb_task, z_mb, adv, old_model, actor, first)
        policy.bonus_raw, policy.bonus = bonus_raw, bonus
        value_loss = self.model.twohot.loss(self.model.value_logits(z_mb, mb_task), data.returns[idx]).mean()
        return policy, value_loss

    def _minibatch_advantage(
        self, data: _UpdateData, idx: torch.Tensor, is_weight: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """The minibatch's advantages: normalised, with the bonus (after, if so configured), weighted.

        :param data: the update's advantages and bonus
        :param idx: (M,) the minibatch's rows
        :param is_weight: (N,) importance weights, or None
        :return: (M,) advantages for the clipped objective; with the bonus after the normalisation also
            the minibatch's unclipped bonus and the bonus added (clipped against the normalised
            advantage), else None and None
        """
        cfg = self.cfg
        adv = data.adv_hat[idx]
        if cfg.ppo.normalize_advantage and len(idx) > 1:
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        raw = bonus = None
        if not cfg.bonus.before_adv_norm:
            raw = data.bonus[idx]
            bonus = clip_bonus(raw, adv, cfg.bonus.clip_factor)
            adv = apply_bonus(adv, bonus)
        if is_weight is not None:
            adv = adv * is_weight[idx]
        return adv, raw, bonus

    def _actor_loss(
        self,
        data: _UpdateData,
        idx: torch.Tensor,
        mb_task: torch.Tensor | None,
        z_mb: torch.Tensor,
        adv: torch.Tensor,
        old_model: WorldModel,
        actor: _ActorProgress,
        first: bool,
    ) -> _PolicyTerms:
        """PPO's clipped objective, the distillation and the entropy of one minibatch; the target_kl stop.

        :param data: the update's rows
        :param idx: (M,) the minibatch's rows
        :param mb_task: (M,) their task ids, or None
        :param z_mb: (M, L) their latents under the current encoder
        :param adv: (M,) their advantages
        :param old_model: the frozen model as at collection (pi_old)
        :param actor: the actor's progress, updated here
        :param first: the update's first minibatch (its ratio error is recorded)
        :return: the actor's terms
        """
        cfg = self.cfg
        with torch.no_grad():
            old_input = old_model.policy_input(old_model.encode(data.obs[idx], mb_task), mb_task)
            mb_old_log_prob = old_model.dist_at(old_input, mb_task).log_prob(data.actions[idx])
        # "collected": the encoder and task embedding keep learning from the model losses, but the actor's
        # input stays what it was at collection, so the ratio moves only with the actor's weights.
        if cfg.ppo.actor_latent == "collected":
            dist = self.model.dist_at(old_input, mb_task)
        else:
            dist = self.model.dist(z_mb, mb_task)
        log_prob = dist.log_prob(data.actions[idx])
        log_ratio = (log_prob - mb_old_log_prob).clamp(-cfg.ppo.log_ratio_clamp, cfg.ppo.log_ratio_clamp)
        if first:
            actor.first_ratio_error = (log_ratio.exp() - 1).abs().max().item()
        ratio = log_ratio.exp()
        if cfg.ppo.target_kl > 0 and not first and not actor.stopped:
            with torch.no_grad():
                kl = ((ratio - 1) - log_ratio).mean().item()
            # stable-baselines3's early stop, checked before the step; only the actor stops, so
            # the world model and critic get the same number of steps in every update.
            actor.stopped = kl > 1.5 * cfg.ppo.target_kl
        actor.steps += not actor.stopped
        clipped = ratio.clamp(1 - cfg.ppo.clip, 1 + cfg.ppo.clip)
        actor_loss = -torch.min(ratio * adv, clipped * adv).mean()
        # The spec's explicit pull toward the planner: maximum likelihood of the executed actions.
        # For prior samples its expected gradient is zero, so only what the planner changed pulls.
        distill = -log_prob.mean()
        entropy = dist.entropy_estimate(self.generator).mean()
        return _PolicyTerms(
            dist=dist,
            log_prob=log_prob,
            old_log_prob=mb_old_log_prob,
            log_ratio=log_ratio,
            ratio=ratio,
            actor_loss=actor_loss,
            distill=distill,
            entropy=entropy,
        )

    def _total_loss(self, losses: dict[str, torch.Tensor], actor_stopped: bool) -> torch.Tensor:
        """The weighted sum of one minibatch's losses; without the actor's terms once target_kl stopped it.

        :param losses: the losses by name
        :param actor_stopped: the actor takes no step on this minibatch
        :return: the scalar to differentiate
        """
        cfg = self.cfg
        actor_term = (
            0.0
            if actor_stopped
            else losses["actor"]
            - cfg.ppo.ent_coef * losses["entropy"]
            + cfg.ppo.distill_coef * losses["distill"]
        )
        return (
            actor_term
            + cfg.ppo.value_coef * losses["value"]
            + cfg.wm.consistency_coef * losses["consistency"]
            + cfg.wm.reward_coef * losses["reward"]
        )

    def _optimizer_step(self, total: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Backpropagate ``total``, clip the actor's and the model's gradients apart, step.

        :param total: the minibatch's loss
        :return: the actor's and the model's gradient norms before clipping
        """
        cfg = self.cfg
        self.optim.zero_grad(set_to_none=True)
        total.backward()
        # The actor and the model clip apart: the consistency loss's large gradients must not
        # shrink PPO's step.
        clip = torch.nn.utils.clip_grad_norm_  # foreach: the same norms as the per-tensor loop, in fewer ops
        grad_norm = clip(self._actor_params, cfg.ppo.max_grad_norm, foreach=True)
        model_grad_norm = clip(self._model_params, cfg.wm.max_grad_norm, foreach=True)
        self.optim.step()
        return grad_norm, model_grad_norm

    @torch.no_grad()
    def _minibatch_stats(
        self,
        losses: dict[str, torch.Tensor],
        policy: _PolicyTerms,
        grad_norm: torch.Tensor,
        model_grad_norm: torch.Tensor,
    ) -> dict[str, float]:
        """One minibatch step's diagnostics (read after the step, as the optimizer left the weights).

        :param losses: the losses by name
        :param policy: the actor's terms
        :param grad_norm: the actor's gradient norm
        :param model_grad_norm: the model's gradient norm
        :return: the diagnostics
        """
        cfg = self.cfg
        ratio, log_ratio, dist = policy.ratio, policy.log_ratio, policy.dist
        raw_log_ratio = policy.log_prob - policy.old_log_prob
        values = {
            **{f"loss/{name}": value.detach() for name, value in losses.items()},
            "ppo/clip_fraction": ((ratio - 1).abs() > cfg.ppo.clip).float().mean(),
            "ppo/approx_kl": ((ratio - 1) - log_ratio).mean(),
            "ppo/log_ratio_saturated": (raw_log_ratio.abs() > cfg.ppo.log_ratio_clamp).float().mean(),
            "ppo/grad_norm": grad_norm,
            "policy/log_std": dist.log_std.sum() / dist.real.sum(),
            "wm/grad_norm": model_grad_norm,
        }
        if policy.bonus is not None:  # the bonus after the normalisation: its clips act per minibatch
            values["bonus/bonus_mean"] = policy.bonus.mean()
            values["bonus/bonus_std"] = policy.bonus.std(correction=0)
            values["bonus/clipped_share"] = (policy.bonus != policy.bonus_raw).float().mean()
        # One stacked transfer (one device sync) instead of one .item() per value: the same floats.
        return dict(zip(values, torch.stack([v.float() for v in values.values()]).tolist(), strict=True))

    def _update_stats(
        self,
        logs: dict[str, list[float]],
        actor: _ActorProgress,
        weights_stats: dict[str, float],
        drift: dict[str, float],
        batch: Rollout,
        data: _UpdateData,
        old_log_prob: torch.Tensor,
    ) -> dict[str, float]:
        """The update's diagnostics: minibatch means, then the per-update values.

        :param logs: every minibatch's diagnostics by key
        :param actor: the actor's progress
        :param weights_stats: the importance weights' diagnostics
        :param drift: the policy drift (:meth:`_policy_drift`)
        :param batch: the on-policy batch
        :param data: its advantages, bonus and rows
        :param old_log_prob: (N,) log pi_old(a|s) of the executed actions
        :return: the diagnostics
        """
        out = {key: float(sum(v) / len(v)) for key, v in logs.items()}
        out["ppo/clip_fraction_last_epoch"] = logs["ppo/clip_fraction"][-1]
        out["ppo/first_ratio_error"] = actor.first_ratio_error  # max |ratio - 1| before any step: 0 by design
        out.update(weights_stats)
        out.update(drift)
        out["ppo/actor_steps"] = float(actor.steps)  # minibatch steps the actor took (target_kl stops it)
        out["ppo/behaviour_log_prob_mean"] = batch.behaviour_log_prob.mean().item()
        out.update({f"bonus/{k}": v for k, v in data.bonus_stats.items()})
        out["bonus/alpha"] = data.alpha
        out["ppo/log_prob_old_mean"] = old_log_prob.mean().item()
        # per transition: its task's action size
        real_dims = self.model.action_mask(data.task, data.obs.shape[0]).sum(-1)
        out["ppo/log_prob_old_per_dim"] = (old_log_prob / real_dims).mean().item()
        out["value/mean"] = data.values.mean().item()
        out["adv/mean"] = data.advantages.mean().item()
        out["adv/std"] = data.advantages.std().item()
        return out

    @torch.no_grad()
    def _policy_drift(
        self, old_model: WorldModel, obs: torch.Tensor, actions: torch.Tensor, task: torch.Tensor | None
    ) -> dict[str, float]:
        """How far one update moved the prior at the batch's executed actions, split by cause.

        Approx-KL estimates ``mean((r - 1) - log r)`` over the whole batch (PPO's approx-KL estimator):
        ``ppo/update_kl`` the whole change (new actor on the new encoder's latent and task embedding
        against the policy at collection), ``ppo/update_kl_actor`` the actor's own (both on the
        collection-time latent and task embedding) and ``ppo/update_kl_encoder`` its input's (the new
        actor on the new against the old latent and task embedding). PPO's clip only sees the part its
        ratio contains.
        """
        x_old = old_model.policy_input(old_model.encode(obs, task), task)
        x_new = self.model.policy_input(self.model.encode(obs, task), task)
        log_prob_collected = old_model.dist_at(x_old, task).log_prob(actions)
        log_prob_actor = self.model.dist_at(x_old, task).log_prob(actions)
        log_prob_new = self.model.dist_at(x_new, task).log_prob(actions)

        def approx_kl(log_ratio: torch.Tensor) -> float:
            log_ratio = log_ratio.clamp(-self.cfg.ppo.log_ratio_clamp, self.cfg.ppo.log_ratio_clamp)
            return ((log_ratio.exp() - 1) - log_ratio).mean().item()

        return {
            "ppo/update_kl": approx_kl(log_prob_new - log_prob_collected),
            "ppo/update_kl_actor": approx_kl(log_prob_actor - log_prob_collected),
            "ppo/update_kl_encoder": approx_kl(log_prob_new - log_prob_actor),
        }

    def _windows(self, T: int, E: int) -> torch.Tensor:
        """All (start step, env) pairs whose H-step window fits in the batch: (W, 2) int64."""
        H = min(self.cfg.wm.horizon, T)
        starts = torch.arange(T - H + 1, device=self.device)
        envs = torch.arange(E, device=self.device)
        return torch.cartesian_prod(starts, envs)

    def _world_model_loss(self, batch: Rollout, windows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Consistency and reward losses rolled out over H steps from each window's start latent.

        Step ``h`` counts only while the episode has not ended before it (the true final observation
        is the target at the step where it ended); weights ``rho^h``; averaged over steps as TD-MPC2.
        """
        H = min(self.cfg.wm.horizon, batch.rewards.shape[0])
        t0, env = windows[:, 0], windows[:, 1]
        task = None if self._task(batch.task) is None else batch.task[env]
        z = self.model.encode(batch.obs[t0, env], task)
        alive = torch.ones(len(windows), device=self.device)
        consistency = torch.zeros((), device=self.device)
        reward_loss = torch.zeros((), device=self.device)
        for h in range(H):
            t = t0 + h
            a = batch.actions[t, env]
            with torch.no_grad():
                target = self.model.encode(batch.next_obs[t, env], task)
            reward_ce = self.model.twohot.loss(
                self.model.reward_logits(z, a, task), batch.rewards[t, env, None]
            )
            z = self.model.next(z, a, task)
            weight = self.cfg.wm.rho**h * alive
            consistency = consistency + (weight * F.mse_loss(z, target, reduction="none").mean(-1)).mean()
            reward_loss = reward_loss + (weight * reward_ce.squeeze(-1)).mean()
            alive = alive * (~batch.done[t, env]).float()
        return consistency / H, reward_loss / H

    def state_dict(self) -> dict:
        """Everything needed to resume: weights, optimizer, RNG, warm start."""
        return {
            "model": self.model.state_dict(),
            "optim": self.optim.state_dict(),
            "generator": generator_state(self.generator),
            "plan_mean": self._plan_mean,
            "wm_history": [{f.name: getattr(b, f.name) for f in fields(Rollout)} for b in self._wm_history],
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optim.load_state_dict(state["optim"])
        set_generator_state(self.generator, state["generator"])
        self._plan_mean = state["plan_mean"]
        self._wm_history = [Rollout(**b) for b in state["wm_history"]]
