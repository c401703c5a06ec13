"""The TD-MPC2 agent: MPPI with a policy prior to act, one TD-learning update per sampled batch.

Follows ``tdmpc2/tdmpc2.py`` of ``nicklashansen/tdmpc2``: TD targets ``r + gamma * min`` of two random target
heads at a policy action; a latent rollout over ``H`` steps with ``rho^t``-weighted consistency, reward and
Q cross-entropy losses; then the policy update on the detached latents (Q averaged over two random heads,
divided by a running 5-95 percentile scale, plus the action-size-scaled entropy); then the EMA of the
target heads. Planning reuses :class:`m3po.planner.MPPIPlanner` through :class:`PlanningView`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from baselines.tdmpc2.buffer import Batch
from baselines.tdmpc2.config import TDMPC2Config
from baselines.tdmpc2.world_model import PlanningView, PolicySample, TDMPC2WorldModel
from m3po.errors import NonFiniteLossError
from m3po.planner import ActOutput, MPPIPlanner
from m3po.rng import generator_state, set_generator_state


@dataclass
class _ModelStep:
    """The model and Q step of one update: the latent rollout and its losses."""

    latents: Tensor  # (H+1, B, L) the rollout from the first observation's latent
    consistency: Tensor  # rho-weighted latent consistency loss
    reward_loss: Tensor  # rho-weighted reward cross-entropy
    value_loss: Tensor  # rho-weighted Q cross-entropy, averaged over the heads
    total: Tensor  # their weighted sum, the loss stepped on
    grad_norm: Tensor  # the model's gradient norm before clipping


@dataclass
class _PolicyStep:
    """The policy step of one update."""

    sample: PolicySample  # the policy's draw at the detached latents
    pi_loss: Tensor
    pi_grad_norm: Tensor  # before clipping


class RunningScale:
    """TD-MPC2's running scale of Q: EMA (rate ``tau``) of max(1, 95th - 5th percentile) of a batch.

    :param tau: EMA rate
    :param device: where the value lives
    """

    def __init__(self, tau: float, device: torch.device) -> None:
        self.tau = tau
        self.value = torch.ones(1, device=device)
        self._q = torch.tensor([0.05, 0.95], device=device)

    def update(self, x: Tensor) -> None:
        """Move the scale toward the percentile spread of ``x`` (B, 1) over the batch."""
        low, high = torch.quantile(x.detach().flatten(1).float(), self._q, dim=0)
        self.value.lerp_((high - low).clamp(min=1.0).reshape(1), self.tau)


class TDMPC2Agent:
    """TD-MPC2 for ``E`` vectorized envs over one task or a task set.

    :param cfg: run configuration
    :param obs_dim: (padded) observation size
    :param act_dim: (padded) action size
    :param task_action_mask: (n_tasks, act_dim) real action dims per task
    :param task_discount: (n_tasks,) discount of each task (TD-MPC2's rule)
    :param device: torch device
    """

    def __init__(
        self,
        cfg: TDMPC2Config,
        obs_dim: int,
        act_dim: int,
        task_action_mask: Tensor,
        task_discount: Tensor,
        device: torch.device | str,
    ) -> None:
        self.cfg = cfg
        self.device = torch.device(device)
        self.model = TDMPC2WorldModel(cfg, obs_dim, act_dim, task_action_mask).to(self.device).eval()
        self.task_discount = task_discount.to(self.device, torch.float32)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(cfg.seed)
        self.view = PlanningView(self.model, self.generator)
        self.planner = MPPIPlanner(
            cfg.planner, act_dim, self.device, exec_noise_from_std=True, compile=cfg.compile
        )
        m = self.model
        task_params = list(m._task_emb.parameters()) if m._task_emb is not None else []
        self.optim = torch.optim.Adam(
            [
                {"params": list(m._encoder.parameters()), "lr": cfg.lr * cfg.enc_lr_scale},
                {"params": list(m._dynamics.parameters())},
                {"params": list(m._reward.parameters())},
                {"params": list(m._Qs.parameters())},
                {"params": task_params},
            ],
            lr=cfg.lr,
            # foreach: the per-parameter loop's arithmetic (bit-identical) in few ops; fused: not identical
            foreach=not cfg.compile,
            fused=cfg.compile or None,
        )
        self.pi_optim = torch.optim.Adam(
            m._pi.parameters(), lr=cfg.lr, eps=1e-5, foreach=not cfg.compile, fused=cfg.compile or None
        )
        self.scale = RunningScale(cfg.tau, self.device)
        self._plan_mean: Tensor | None = None  # (E, H, A) warm start per env

    def _task(self, task_ids: Tensor) -> Tensor | None:
        return task_ids if self.model.multitask else None

    def reset_warm_start(self, done: Tensor) -> None:
        """Forget the warm start of envs whose episode ended (TD-MPC2's ``t0``); done: (E,) bool."""
        if self._plan_mean is not None:
            self._plan_mean[done.to(self._plan_mean.device)] = 0.0

    def swap_warm_start(self, plan_mean: Tensor | None) -> Tensor | None:
        """Install another warm start (evaluation keeps its own); returns the one replaced."""
        previous, self._plan_mean = self._plan_mean, plan_mean
        return previous

    def random_action(self, task_ids: Tensor) -> Tensor:
        """Uniform actions in [-1, 1] on each env's real dims (the seed phase's ``env.rand_act()``)."""
        mask = self.model.task_action_mask[task_ids.to(self.device)]
        return (torch.rand(mask.shape, generator=self.generator, device=self.device) * 2 - 1) * mask

    @torch.no_grad()
    def act(self, obs: Tensor, task_ids: Tensor, eval_mode: bool = False, plan: bool = True) -> ActOutput:
        """One decision for every env: obs (E, obs_dim), task_ids (E,) -> :class:`ActOutput`.

        ``plan=False`` acts with the policy prior (its mean in ``eval_mode``), TD-MPC2's ``mpc=false``.
        """
        task_ids = task_ids.to(self.device)
        task = self._task(task_ids)
        z = self.model.encode(obs.to(self.device), task)
        if not (self.cfg.planner.enabled and plan):
            sample = self.model.pi(z, task, self.generator)
            return ActOutput(sample.mean if eval_mode else sample.action)
        out = self.planner.plan(
            self.view,
            z,
            task,
            self.task_discount[task_ids],
            self.model.task_action_mask[task_ids],
            self._plan_mean,
            eval_mode=eval_mode,
            generator=self.generator,
        )
        self._plan_mean = out.mean
        return ActOutput(out.action, stats=dict(out.stats))

    def update(self, batch: Batch, step: int = 0) -> dict[str, float]:
        """One gradient update of model, Qs and policy on ``batch``; then the target EMA.

        The stages, in order: TD targets (:meth:`_td_target`), the model and Q step
        (:meth:`_model_update`), the policy step (:meth:`_policy_update`), the target EMA, the
        diagnostics (:meth:`_update_stats`).

        :param batch: sequences from the replay buffer (on this agent's device)
        :param step: agent steps so far (for error messages)
        :return: losses and diagnostics
        """
        m = self.model
        task = self._task(batch.task)
        H = batch.action.shape[0]
        gamma = self.task_discount[batch.task].unsqueeze(-1)  # (B, 1)
        rho = self.cfg.rho ** torch.arange(H + 1, device=self.device, dtype=torch.float32)
        next_z, td_target = self._td_target(batch, task, gamma)
        m.train()
        model = self._model_update(batch, task, next_z, td_target, rho, step)
        policy = self._policy_update(model.latents, task, rho, step)
        m.soft_update_target_Q()
        m.eval()
        return self._update_stats(model, policy, task, td_target)

    @torch.no_grad()
    def _td_target(self, batch: Batch, task: Tensor | None, gamma: Tensor) -> tuple[Tensor, Tensor]:
        """TD targets ``r + gamma * min`` of two random target heads at a policy action (no dropout).

        :param batch: the sampled sequences
        :param task: (B,) task ids, or None
        :param gamma: (B, 1) discounts
        :return: the next latents (H, B, L), the consistency targets; the TD targets (H, B, 1)
        """
        m = self.model
        next_z = m.encode(batch.obs[1:], task)
        next_action = m.pi(next_z, task, self.generator).action
        td_target = batch.reward + gamma * m.Q(
            next_z, next_action, task, "min", target=True, generator=self.generator
        )
        return next_z, td_target

    def _model_update(
        self,
        batch: Batch,
        task: Tensor | None,
        next_z: Tensor,
        td_target: Tensor,
        rho: Tensor,
        step: int,
    ) -> _ModelStep:
        """Roll the latent out over ``H`` steps; consistency, reward and Q losses; one clipped step.

        :param batch: the sampled sequences
        :param task: (B,) task ids, or None
        :param next_z: (H, B, L) encoded next observations (the consistency targets)
        :param td_target: (H, B, 1) TD targets
        :param rho: (H + 1,) per-step loss weights ``rho^t``
        :param step: agent steps so far (for error messages)
        :return: the rollout's latents and the losses
        """
        cfg, m = self.cfg, self.model
        action, reward = batch.action, batch.reward
        H = action.shape[0]
        z = m.encode(batch.obs[0], task)
        zs = [z]
        consistency = torch.zeros((), device=self.device)
        for t in range(H):
            z = m.next(z, action[t], task)
            consistency = consistency + F.mse_loss(z, next_z[t]) * rho[t]
            zs.append(z)
        latents = torch.stack(zs)  # (H+1, B, L)
        qs = m.Q(latents[:-1], action, task, "all")  # (num_q, H, B, bins)
        reward_ce = m.twohot.loss(m.reward_logits(latents[:-1], action, task), reward)  # (H, B, 1)
        value_ce = m.twohot.loss(qs, td_target.unsqueeze(0).expand(cfg.num_q, -1, -1, -1))  # (num_q, H, B, 1)
        reward_loss = (reward_ce.mean(dim=(1, 2)) * rho[:H]).sum() / H
        value_loss = (value_ce.mean(dim=(2, 3)) * rho[:H]).sum() / (H * cfg.num_q)
        consistency = consistency / H
        total = (
            cfg.consistency_coef * consistency + cfg.reward_coef * reward_loss + cfg.value_coef * value_loss
        )
        if not torch.isfinite(total):
            raise NonFiniteLossError(f"TD-MPC2 model loss is {total.item()} at agent step {step}")
        total.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(m.parameters(), cfg.grad_clip_norm, foreach=True)
        self.optim.step()
        self.optim.zero_grad(set_to_none=True)
        return _ModelStep(latents, consistency, reward_loss, value_loss, total, grad_norm)

    def _policy_update(self, latents: Tensor, task: Tensor | None, rho: Tensor, step: int) -> _PolicyStep:
        """Maximise scaled Q plus the scaled entropy over all ``H + 1`` detached latents; one clipped step.

        :param latents: (H + 1, B, L) the model step's rollout
        :param task: (B,) task ids, or None
        :param rho: (H + 1,) per-step loss weights
        :param step: agent steps so far (for error messages)
        :return: the policy's sample and loss
        """
        cfg, m = self.cfg, self.model
        latents = latents.detach()
        sample = m.pi(latents, task, self.generator)
        q = m.Q(latents, sample.action, task, "avg", detach=True, generator=self.generator)  # (H+1, B, 1)
        self.scale.update(q[0])
        q = q / self.scale.value
        pi_loss = (-(cfg.entropy_coef * sample.scaled_entropy + q).mean(dim=(1, 2)) * rho).mean()
        if not torch.isfinite(pi_loss):
            raise NonFiniteLossError(f"TD-MPC2 policy loss is {pi_loss.item()} at agent step {step}")
        pi_loss.backward()
        pi_grad_norm = torch.nn.utils.clip_grad_norm_(m._pi.parameters(), cfg.grad_clip_norm, foreach=True)
        self.pi_optim.step()
        # As TD-MPC2: only the policy's gradients are cleared here; the task embedding keeps the policy
        # loss's gradient until the next model step adds to it.
        self.pi_optim.zero_grad(set_to_none=True)
        return _PolicyStep(sample, pi_loss, pi_grad_norm)

    def _update_stats(
        self, model: _ModelStep, policy: _PolicyStep, task: Tensor | None, td_target: Tensor
    ) -> dict[str, float]:
        """The update's diagnostics, read in one transfer.

        :param model: the model step
        :param policy: the policy step
        :param task: (B,) task ids, or None
        :param td_target: (H, B, 1) TD targets
        :return: the diagnostics, keyed ``train/...``
        """
        sample = policy.sample
        real = self.model.action_mask(task).expand_as(sample.log_std)
        values = torch.stack(
            [
                model.consistency.detach(),
                model.reward_loss.detach(),
                model.value_loss.detach(),
                model.total.detach(),
                model.grad_norm,
                policy.pi_loss.detach(),
                policy.pi_grad_norm,
                sample.scaled_entropy.mean().detach(),
                (sample.log_std * real).sum().detach() / real.sum(),
                self.scale.value[0],
                td_target.mean(),
            ]
        ).tolist()
        names = (
            "consistency_loss", "reward_loss", "value_loss", "total_loss", "grad_norm", "pi_loss",
            "pi_grad_norm", "pi_scaled_entropy", "pi_log_std", "pi_scale", "td_target_mean",
        )  # fmt: skip
        return {f"train/{name}": value for name, value in zip(names, values, strict=True)}

    def state_dict(self) -> dict:
        """Everything needed to resume: weights (targets included), optimizers, scale, RNG, warm start."""
        emb = self.model._task_emb
        return {
            "model": self.model.state_dict(),
            "optim": self.optim.state_dict(),
            "pi_optim": self.pi_optim.state_dict(),
            "scale": self.scale.value.clone(),
            "generator": generator_state(self.generator),
            "plan_mean": self._plan_mean,
            "task_emb_grad": None if emb is None or emb.weight.grad is None else emb.weight.grad.clone(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optim.load_state_dict(state["optim"])
        self.pi_optim.load_state_dict(state["pi_optim"])
        self.scale.value.copy_(state["scale"])
        set_generator_state(self.generator, state["generator"])
        self._plan_mean = state["plan_mean"]
        if state["task_emb_grad"] is not None:
            self.model._task_emb.weight.grad = state["task_emb_grad"].to(self.device)
