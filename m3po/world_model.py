"""M3PO's implicit world model and actor-critic: ``encode``, ``next``, ``reward``, ``pi``, ``V``.

No decoder: nothing reconstructs observations. All components take the task embedding in
multi-task runs. Design choices (see ``shared/spec/m3po-algorithm.md``):

- one encoder serves dynamics, reward, value and policy; the encoder and the task embeddings learn
  from the world-model losses and the value loss, while the policy reads a detached latent and a
  detached task embedding, so PPO's actor and entropy gradients cannot reshape the latent space the
  planner relies on (TD-MPC2's policy reads a detached latent too, but its loss's gradient reaches the
  task embedding; our TD-MPC2 baseline keeps that, see ``docs/tdmpc2.md``);
- reward and value are discrete (two-hot over symlog bins) regressions, robust to the very
  different reward scales of the 80 tasks.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from m3po.config import ModelConfig
from m3po.distributions import TanhGaussian
from m3po.layers import SimNorm, TwoHot, mlp, zero_


class WorldModel(nn.Module):
    """Encoder, latent dynamics, reward head, value head and tanh-Gaussian policy prior.

    :param cfg: model sizes
    :param obs_dim: (padded) observation size
    :param act_dim: (padded) action size
    :param task_action_mask: (n_tasks, act_dim) 1 for each task's real action dims, 0 for padding
    """

    def __init__(self, cfg: ModelConfig, obs_dim: int, act_dim: int, task_action_mask: torch.Tensor) -> None:
        super().__init__()
        self.cfg = cfg
        self.obs_dim = obs_dim
        self.act_dim = act_dim
        self.n_tasks = int(task_action_mask.shape[0])
        self.multitask = self.n_tasks > 1
        task_dim = cfg.task_dim if self.multitask else 0
        self.register_buffer("task_action_mask", task_action_mask.float().clone())
        # Running per-task observation statistics (used when cfg.obs_norm); count 0: identity.
        self.register_buffer("obs_mean", torch.zeros(self.n_tasks, obs_dim))
        self.register_buffer("obs_var", torch.ones(self.n_tasks, obs_dim))
        self.register_buffer("obs_count", torch.zeros(self.n_tasks))
        self._task_emb = nn.Embedding(self.n_tasks, task_dim, max_norm=1.0) if self.multitask else None
        latent, hidden = cfg.latent_dim, [cfg.mlp_dim, cfg.mlp_dim]
        simnorm = SimNorm(cfg.simnorm_dim)
        self._encoder = mlp(obs_dim + task_dim, [cfg.enc_dim] * cfg.num_enc_layers, latent, out_act=simnorm)
        self._dynamics = mlp(latent + act_dim + task_dim, hidden, latent, out_act=SimNorm(cfg.simnorm_dim))
        self._reward = zero_(mlp(latent + act_dim + task_dim, hidden, cfg.num_bins))
        self._value = zero_(mlp(latent + task_dim, hidden, cfg.num_bins))
        # policy_std="param": the actor outputs only the mean, and log sigma is a free parameter per task
        # and action dim (stable-baselines3's PPO), so it cannot swing with the input.
        state_std = cfg.policy_std == "state"
        self._pi = mlp(latent + task_dim, hidden, (2 if state_std else 1) * act_dim)
        self._pi_log_std = None if state_std else nn.Parameter(torch.zeros(self.n_tasks, act_dim))
        self._init_log_std(cfg.init_log_std)
        self.twohot = TwoHot(cfg.num_bins, cfg.vmin, cfg.vmax)

    def _init_log_std(self, log_std: float) -> None:
        """Start the prior at ``log_std`` everywhere: zero the log-sigma weights, set their bias (or the
        free parameter) to the raw value that the squash into [log_std_min, log_std_max] maps to it."""
        lo, hi = self.cfg.log_std_min, self.cfg.log_std_max
        raw = math.atanh(2 * (log_std - lo) / (hi - lo) - 1)
        with torch.no_grad():
            if self._pi_log_std is not None:
                self._pi_log_std.fill_(raw)
                return
            last = self._pi[-1]
            last.weight[self.act_dim :].zero_()
            last.bias[self.act_dim :].fill_(raw)

    def actor_parameters(self) -> list[nn.Parameter]:
        """The policy prior's parameters (PPO's actor): its MLP, and the free log sigma if there is one."""
        extra = [] if self._pi_log_std is None else [self._pi_log_std]
        return [*self._pi.parameters(), *extra]

    def _with_task(self, x: torch.Tensor, task: torch.Tensor | None) -> torch.Tensor:
        if self._task_emb is None:
            return x
        if task is None:
            raise ValueError("a multi-task model needs task ids")
        return torch.cat([x, self._task_emb(task)], dim=-1)

    def action_mask(self, task: torch.Tensor | None, batch: int) -> torch.Tensor:
        """(batch, act_dim) mask of real action dims."""
        if task is None:
            return self.task_action_mask[0].expand(batch, -1)
        return self.task_action_mask[task]

    def encode(self, obs: torch.Tensor, task: torch.Tensor | None) -> torch.Tensor:
        """Observations (B, obs_dim) -> latents (B, latent_dim)."""
        return self._encoder(self._with_task(self.normalize_obs(obs, task), task))

    def normalize_obs(self, obs: torch.Tensor, task: torch.Tensor | None) -> torch.Tensor:
        """With ``cfg.obs_norm``, standardise by the task's running statistics and clip to +-10 (as
        stable-baselines3's VecNormalize); padded dims (variance 0) map to 0. Otherwise ``obs``."""
        if not self.cfg.obs_norm:
            return obs
        row = torch.zeros(obs.shape[0], dtype=torch.long, device=obs.device) if task is None else task
        return ((obs - self.obs_mean[row]) * torch.rsqrt(self.obs_var[row] + 1e-8)).clamp(-10.0, 10.0)

    @torch.no_grad()
    def update_obs_stats(self, obs: torch.Tensor, task: torch.Tensor | None) -> None:
        """Fold a batch into the running statistics: obs (N, obs_dim), task (N,) ids or None."""
        task = torch.zeros(obs.shape[0], dtype=torch.long, device=obs.device) if task is None else task
        for t in task.unique().tolist():
            x = obs[task == t].double()
            n, m = self.obs_count[t].double(), float(x.shape[0])
            mean, var = self.obs_mean[t].double(), self.obs_var[t].double()
            if n == 0:
                var = torch.zeros_like(var)  # the identity's unit variance is not data
            delta = x.mean(0) - mean
            total = n + m
            m2 = var * n + x.var(0, unbiased=False) * m + delta**2 * n * m / total
            self.obs_mean[t] = (mean + delta * m / total).float()
            self.obs_var[t] = (m2 / total).float()
            self.obs_count[t] = total

    def next(self, z: torch.Tensor, a: torch.Tensor, task: torch.Tensor | None) -> torch.Tensor:
        """Latent dynamics: (B, L), (B, A) -> (B, L)."""
        return self._dynamics(self._with_task(torch.cat([z, a], dim=-1), task))

    def reward_logits(self, z: torch.Tensor, a: torch.Tensor, task: torch.Tensor | None) -> torch.Tensor:
        """(B, L), (B, A) -> reward logits (B, num_bins)."""
        return self._reward(self._with_task(torch.cat([z, a], dim=-1), task))

    def reward(self, z: torch.Tensor, a: torch.Tensor, task: torch.Tensor | None) -> torch.Tensor:
        """Expected reward (B, 1)."""
        return self.twohot.decode(self.reward_logits(z, a, task))

    def value_logits(self, z: torch.Tensor, task: torch.Tensor | None) -> torch.Tensor:
        """(B, L) -> value logits (B, num_bins)."""
        return self._value(self._with_task(z, task))

    def V(self, z: torch.Tensor, task: torch.Tensor | None) -> torch.Tensor:  # noqa: N802 (TD-MPC2's name)
        """On-policy state value (B, 1)."""
        return self.twohot.decode(self.value_logits(z, task))

    def policy_input(self, z: torch.Tensor, task: torch.Tensor | None) -> torch.Tensor:
        """The actor's input at latents ``z``: the latent and the task embedding, both detached, so that
        neither PPO's actor nor its entropy term shapes the latent space or the task embeddings the
        planner relies on; only the model's losses (and the critic's, through the encoder) do."""
        return self._with_task(z, task).detach()

    def dist(self, z: torch.Tensor, task: torch.Tensor | None) -> TanhGaussian:
        """The policy prior at latents ``z`` (through :meth:`policy_input`)."""
        return self.dist_at(self.policy_input(z, task), task)

    def dist_at(self, x: torch.Tensor, task: torch.Tensor | None) -> TanhGaussian:
        """The policy prior at an actor input ``x`` (B, latent + task dim), as :meth:`policy_input` makes
        it; e.g. another model's (pi_old's), to tell the actor's own change from its input's."""
        out = self._pi(x)
        if self._pi_log_std is None:
            mu, raw_log_std = out.chunk(2, dim=-1)
        else:
            mu = out
            rows = torch.zeros(x.shape[0], dtype=torch.long, device=x.device) if task is None else task
            raw_log_std = self._pi_log_std[rows]
        lo, hi = self.cfg.log_std_min, self.cfg.log_std_max
        log_std = lo + 0.5 * (hi - lo) * (torch.tanh(raw_log_std) + 1)
        return TanhGaussian(mu, log_std, self.action_mask(task, x.shape[0]))

    def pi(
        self, z: torch.Tensor, task: torch.Tensor | None, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sample the prior: (action (B, A) with padded dims 0, pre-tanh mean (B, A), log std (B, A))."""
        dist = self.dist(z, task)
        return dist.sample(generator), dist.mu, dist.log_std
