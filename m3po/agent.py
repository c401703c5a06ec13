"""The M3PO agent: act with MPPI seeded by the policy prior, learn with PPO, the bonus and world-model losses.

``act`` plans for all vectorized envs in one batched pass; ``update`` takes one on-policy batch
(``T`` steps of ``E`` envs) and runs ``E`` epochs of minibatch updates of actor, critic and world
model. See ``shared/spec/m3po-algorithm.md`` for every formula used here.
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass, field, fields

import torch
import torch.nn.functional as F

from m3po.bonus import alpha_at, apply_bonus, exploration_bonus, one_step_q
from m3po.config import M3POConfig
from m3po.distributions import TanhGaussian, gaussian_log_prob
from m3po.errors import NonFiniteLossError
from m3po.planner import MPPIPlanner
from m3po.returns import gae
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
class ActOutput:
    """What one decision returns for E envs.

    :param action: (E, A) executed actions, padded dims 0
    :param log_prob: (E,) the prior's log-density of the action, log pi_old(a|s)
    :param behaviour_log_prob: (E,) log-density of the distribution the action was really drawn from
        (the planner's moment-matched Gaussian, mixed with the prior when ``planner.prior_mix`` > 0;
        the prior's when acting without the planner or in evaluation)
    :param value: (E,) V(s) at the decision
    :param stats: planner diagnostics
    """

    action: torch.Tensor
    log_prob: torch.Tensor
    behaviour_log_prob: torch.Tensor
    value: torch.Tensor
    stats: dict[str, float] = field(default_factory=dict)


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
        self.planner = MPPIPlanner(cfg.planner, act_dim, device)
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
        )
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

        :param batch: the on-policy batch
        :param step: agent steps so far (for the bonus anneal and error messages)
        """
        cfg = self.cfg
        nan_step = _debug_nan_loss_step()
        poison = nan_step is not None and step >= nan_step
        T, E = batch.rewards.shape
        task = self._task(batch.task)
        flat_task = None if task is None else task.repeat(T)
        gamma = self.task_discount[batch.task]  # (E,)
        with torch.no_grad():
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
            bonus, bonus_stats = exploration_bonus(
                q_mf, q_mb, advantages.reshape(-1), alpha, cfg.bonus, None if task is None else flat_task
            )
            if cfg.bonus.before_adv_norm:
                adv_hat = apply_bonus(advantages.reshape(-1), bonus)
            else:
                adv_hat = advantages.reshape(-1)
        logs: dict[str, list[float]] = {}
        n = T * E
        mb = min(cfg.ppo.minibatch_size, n)
        old_log_prob = batch.log_prob.reshape(-1)
        # pi_old for the ratio is a frozen copy of the model as it was at collection (no update since),
        # evaluated on the same minibatch as the current one: the ratio is then exactly 1 before the first
        # step, with no float drift from the batch shapes used when acting.
        old_model = copy.deepcopy(self.model).requires_grad_(False)
        weights_stats: dict[str, float] = {}
        if cfg.ppo.behaviour_density == "planner":
            # A truncated importance weight pi_old(a|s) / b(a|s) for actions the planner, not the prior,
            # drew (V-trace's rho-bar); the clipped ratio itself stays pi / pi_old.
            log_w = old_log_prob - batch.behaviour_log_prob.reshape(-1)
            is_weight = log_w.clamp(max=math.log(cfg.ppo.is_clip)).exp()
            weights_stats = {
                "ppo/is_weight_mean": is_weight.mean().item(),
                "ppo/is_weight_truncated": (log_w > math.log(cfg.ppo.is_clip)).float().mean().item(),
            }
        else:
            is_weight = None
        returns_flat = returns.reshape(-1, 1)
        # Earlier batches join the current one side by side, as if collected by more envs, so the windows
        # and the loss are unchanged; the number of model steps per update stays the same.
        wm_data = concat_envs([*self._wm_history, batch])
        windows = self._windows(T, wm_data.rewards.shape[1])
        window_mb = max(1, mb // cfg.wm.horizon)  # an H-step window costs about H transitions
        actor_steps = 0
        actor_stopped = False  # target_kl reached: the remaining minibatches train the model only
        for _ in range(cfg.ppo.epochs):
            perm = torch.randperm(n, generator=self.generator, device=self.device)
            window_perm = torch.randperm(len(windows), generator=self.generator, device=self.device)
            num_mb = max(1, n // mb)
            for k in range(num_mb):
                idx = perm[k * mb : (k + 1) * mb]
                adv = adv_hat[idx]
                if cfg.ppo.normalize_advantage and len(idx) > 1:
                    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                if not cfg.bonus.before_adv_norm:
                    adv = adv + bonus[idx]
                if is_weight is not None:
                    adv = adv * is_weight[idx]
                mb_task = None if flat_task is None else flat_task[idx]
                z_mb = self.model.encode(obs[idx], mb_task)
                with torch.no_grad():
                    z_old_mb = old_model.encode(obs[idx], mb_task)
                    mb_old_log_prob = old_model.dist(z_old_mb, mb_task).log_prob(actions[idx])
                # "collected": the encoder keeps learning from the model losses below, but the actor's
                # input stays what it was at collection, so the ratio moves only with the actor's weights.
                actor_z = z_old_mb if cfg.ppo.actor_latent == "collected" else z_mb
                dist = self.model.dist(actor_z, mb_task)
                log_prob = dist.log_prob(actions[idx])
                log_ratio = (log_prob - mb_old_log_prob).clamp(
                    -cfg.ppo.log_ratio_clamp, cfg.ppo.log_ratio_clamp
                )
                if not logs:
                    first_ratio_error = (log_ratio.exp() - 1).abs().max().item()
                ratio = log_ratio.exp()
                if cfg.ppo.target_kl > 0 and logs and not actor_stopped:
                    with torch.no_grad():
                        kl = ((ratio - 1) - log_ratio).mean().item()
                    # stable-baselines3's early stop, checked before the step; only the actor stops, so
                    # the world model and critic get the same number of steps in every update.
                    actor_stopped = kl > 1.5 * cfg.ppo.target_kl
                actor_steps += not actor_stopped
                clipped = ratio.clamp(1 - cfg.ppo.clip, 1 + cfg.ppo.clip)
                actor_loss = -torch.min(ratio * adv, clipped * adv).mean()
                # The spec's explicit pull toward the planner: maximum likelihood of the executed actions.
                # For prior samples its expected gradient is zero, so only what the planner changed pulls.
                distill = -log_prob.mean()
                entropy = dist.entropy_estimate(self.generator).mean()
                value_loss = self.model.twohot.loss(
                    self.model.value_logits(z_mb, mb_task), returns_flat[idx]
                ).mean()
                start = (k * window_mb) % len(windows)
                w_idx = windows[window_perm[start : start + window_mb]]
                consistency, reward_loss = self._world_model_loss(wm_data, w_idx)
                if poison:
                    reward_loss = reward_loss * float("nan")
                losses = {
                    "actor": actor_loss,
                    "value": value_loss,
                    "consistency": consistency,
                    "reward": reward_loss,
                    "entropy": entropy,
                    "distill": distill,
                }
                for name, value in losses.items():
                    if not torch.isfinite(value):
                        raise NonFiniteLossError(f"loss {name!r} is {value.item()} at agent step {step}")
                actor_term = (
                    0.0
                    if actor_stopped
                    else actor_loss - cfg.ppo.ent_coef * entropy + cfg.ppo.distill_coef * distill
                )
                total = (
                    actor_term
                    + cfg.ppo.value_coef * value_loss
                    + cfg.wm.consistency_coef * consistency
                    + cfg.wm.reward_coef * reward_loss
                )
                self.optim.zero_grad(set_to_none=True)
                total.backward()
                # The actor and the model clip apart: the consistency loss's large gradients must not
                # shrink PPO's step.
                grad_norm = torch.nn.utils.clip_grad_norm_(self._actor_params, cfg.ppo.max_grad_norm)
                model_grad_norm = torch.nn.utils.clip_grad_norm_(self._model_params, cfg.wm.max_grad_norm)
                self.optim.step()
                with torch.no_grad():
                    raw_log_ratio = log_prob - mb_old_log_prob
                    stats = {
                        **{f"loss/{name}": value.item() for name, value in losses.items()},
                        "ppo/clip_fraction": ((ratio - 1).abs() > cfg.ppo.clip).float().mean().item(),
                        "ppo/approx_kl": ((ratio - 1) - log_ratio).mean().item(),
                        "ppo/log_ratio_saturated": (raw_log_ratio.abs() > cfg.ppo.log_ratio_clamp)
                        .float()
                        .mean()
                        .item(),
                        "ppo/grad_norm": grad_norm.item(),
                        "policy/log_std": (dist.log_std.sum() / dist.real.sum()).item(),
                        "wm/grad_norm": model_grad_norm.item(),
                    }
                for key, value in stats.items():
                    logs.setdefault(key, []).append(value)
        out_drift = self._policy_drift(old_model, obs, actions, flat_task)
        if cfg.wm.history_batches > 0:
            self._wm_history = [*self._wm_history, batch][-cfg.wm.history_batches :]
        if cfg.model.obs_norm:
            # Statistics move only between iterations: collection and update of a batch see the same ones.
            self.model.update_obs_stats(obs, flat_task)
        out = {key: float(sum(v) / len(v)) for key, v in logs.items()}
        out["ppo/clip_fraction_last_epoch"] = logs["ppo/clip_fraction"][-1]
        out["ppo/first_ratio_error"] = first_ratio_error  # max |ratio - 1| before any step: 0 by design
        out.update(weights_stats)
        out.update(out_drift)
        out["ppo/actor_steps"] = float(actor_steps)  # minibatch steps the actor took (target_kl stops it)
        out["ppo/behaviour_log_prob_mean"] = batch.behaviour_log_prob.mean().item()
        out.update({f"bonus/{k}": v for k, v in bonus_stats.items()})
        out["bonus/alpha"] = alpha
        out["ppo/log_prob_old_mean"] = old_log_prob.mean().item()
        real_dims = self.model.action_mask(flat_task, n).sum(-1)  # per transition: its task's action size
        out["ppo/log_prob_old_per_dim"] = (old_log_prob / real_dims).mean().item()
        out["value/mean"] = values.mean().item()
        out["adv/mean"] = advantages.mean().item()
        out["adv/std"] = advantages.std().item()
        return out

    @torch.no_grad()
    def _policy_drift(
        self, old_model: WorldModel, obs: torch.Tensor, actions: torch.Tensor, task: torch.Tensor | None
    ) -> dict[str, float]:
        """How far one update moved the prior at the batch's executed actions, split by cause.

        Approx-KL estimates ``mean((r - 1) - log r)`` over the whole batch (PPO's approx-KL estimator):
        ``ppo/update_kl`` the whole change (new actor on the new encoder's latent against the policy at
        collection), ``ppo/update_kl_actor`` the actor's own (both on the collection-time latent) and
        ``ppo/update_kl_encoder`` the encoder's (the new actor on the new against the old latent).
        PPO's clip only sees the part its ratio contains.
        """
        z_old = old_model.encode(obs, task)
        z_new = self.model.encode(obs, task)
        log_prob_collected = old_model.dist(z_old, task).log_prob(actions)
        log_prob_actor = self.model.dist(z_old, task).log_prob(actions)
        log_prob_new = self.model.dist(z_new, task).log_prob(actions)

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
            "generator": self.generator.get_state(),
            "plan_mean": self._plan_mean,
            "wm_history": [{f.name: getattr(b, f.name) for f in fields(Rollout)} for b in self._wm_history],
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optim.load_state_dict(state["optim"])
        self.generator.set_state(state["generator"])
        self._plan_mean = state["plan_mean"]
        self._wm_history = [Rollout(**b) for b in state["wm_history"]]
