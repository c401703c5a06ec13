"""TD-MPC2's implicit world model: encoder, latent dynamics, reward, Q-ensemble (+ EMA targets), policy prior.

Written from the published definitions (``tdmpc2/common/world_model.py``, ``layers.py``, ``init.py``,
``math.py`` of ``nicklashansen/tdmpc2``) on this suite's shared layers (``m3po.layers``). What differs from
M3PO's world model, and so is kept apart: a Q-ensemble with dropout and EMA target heads instead of a
state value, TD-MPC2's weight initialisation, its encoder depth rule, and a policy that is learned by
maximising Q (with an action-size-scaled entropy term) rather than by PPO.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from baselines.tdmpc2.config import TDMPC2Config
from m3po.distributions import gaussian_log_prob
from m3po.layers import NormedLinear, SimNorm, TwoHot, mlp


def _official_init(module: nn.Module) -> None:
    """TD-MPC2's init: truncated-normal(0.02) linear weights, zero biases, uniform(+-0.02) embeddings."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.uniform_(module.weight, -0.02, 0.02)


class QEnsemble(nn.Module):
    """``num_q`` independent Q heads over ``[z, a, e]``, each returning two-hot logits.

    :param in_dim: input size
    :param hidden: hidden widths of each head
    :param num_bins: output logits per head
    :param num_q: number of heads
    :param dropout: dropout after each head's first hidden layer (active in train mode only)
    """

    def __init__(self, in_dim: int, hidden: list[int], num_bins: int, num_q: int, dropout: float) -> None:
        super().__init__()
        self.heads = nn.ModuleList([mlp(in_dim, hidden, num_bins, dropout=dropout) for _ in range(num_q)])

    def forward(self, x: Tensor, heads: Tensor | None = None, detach: bool = False) -> Tensor:
        """Logits of the chosen heads (all by default): (len(heads), ..., num_bins).

        ``detach`` evaluates with detached parameters: gradients reach the input (the policy's action)
        but not the Q weights (TD-MPC2's ``_detach_Qs``).
        """
        index = range(len(self.heads)) if heads is None else heads.tolist()
        outs = [_forward_detached(self.heads[i], x) if detach else self.heads[i](x) for i in index]
        return torch.stack(outs)


def _forward_detached(head: nn.Sequential, x: Tensor) -> Tensor:
    """``head(x)`` with every parameter detached: the same aten ops as the module's forward (so the same
    values, dropout's draws included), without ``functional_call``'s per-call reparametrisation."""
    for layer in head:
        if isinstance(layer, NormedLinear):
            x = F.linear(x, layer.weight.detach(), layer.bias.detach())
            if layer.dropout is not None:
                x = layer.dropout(x)
            ln = layer.ln
            x = layer.act(F.layer_norm(x, ln.normalized_shape, ln.weight.detach(), ln.bias.detach(), ln.eps))
        elif isinstance(layer, nn.Linear):
            x = F.linear(x, layer.weight.detach(), None if layer.bias is None else layer.bias.detach())
        else:
            raise TypeError(f"unexpected layer {type(layer).__name__} in a Q head")
    return x


@dataclass
class PolicySample:
    """One reparameterised draw of the policy prior (padded action dims exactly 0)."""

    action: Tensor  # (..., A) tanh(mu + sigma * eps)
    mean: Tensor  # (..., A) tanh(mu), the deterministic action
    mu: Tensor  # (..., A) pre-tanh mean
    log_std: Tensor  # (..., A) pre-tanh log sigma (0 in padded dims)
    scaled_entropy: Tensor  # (..., 1) TD-MPC2's entropy term: -action_size * log N(u; mu, sigma)


class TDMPC2WorldModel(nn.Module):
    """TD-MPC2's world model for one task or a task set (padded observations and actions).

    :param cfg: run configuration (sizes)
    :param obs_dim: (padded) observation size
    :param act_dim: (padded) action size
    :param task_action_mask: (n_tasks, act_dim) 1 for each task's real action dims, 0 for padding
    """

    def __init__(self, cfg: TDMPC2Config, obs_dim: int, act_dim: int, task_action_mask: Tensor) -> None:
        super().__init__()
        self.cfg = cfg
        self.act_dim = act_dim
        self.n_tasks = int(task_action_mask.shape[0])
        self.multitask = self.n_tasks > 1
        task_dim = cfg.task_dim if self.multitask else 0
        self.register_buffer("task_action_mask", task_action_mask.float().clone())
        self._task_emb = nn.Embedding(self.n_tasks, task_dim, max_norm=1.0) if self.multitask else None
        hidden = [cfg.mlp_dim, cfg.mlp_dim]
        latent = cfg.latent_dim
        enc_hidden = [cfg.enc_dim] * max(cfg.num_enc_layers - 1, 1)  # the official depth rule
        self._encoder = mlp(obs_dim + task_dim, enc_hidden, latent, out_act=SimNorm(cfg.simnorm_dim))
        self._dynamics = mlp(latent + act_dim + task_dim, hidden, latent, out_act=SimNorm(cfg.simnorm_dim))
        self._reward = mlp(latent + act_dim + task_dim, hidden, cfg.num_bins)
        self._pi = mlp(latent + task_dim, hidden, 2 * act_dim)
        self._Qs = QEnsemble(latent + act_dim + task_dim, hidden, cfg.num_bins, cfg.num_q, cfg.dropout)
        self.apply(_official_init)
        # Reward and Q heads start at 0 (their last layers' weights; biases are 0 already).
        nn.init.zeros_(self._reward[-1].weight)
        for head in self._Qs.heads:
            nn.init.zeros_(head[-1].weight)
        self._target_Qs = copy.deepcopy(self._Qs).requires_grad_(False).eval()
        self.twohot = TwoHot(cfg.num_bins, cfg.vmin, cfg.vmax)

    def train(self, mode: bool = True) -> TDMPC2WorldModel:
        """Train/eval mode; the target Qs stay in eval mode (no dropout), as in TD-MPC2."""
        super().train(mode)
        self._target_Qs.train(False)
        return self

    @torch.no_grad()
    def soft_update_target_Q(self) -> None:
        """Polyak averaging of the target heads toward the online heads at rate ``tau``."""
        for target, online in zip(self._target_Qs.parameters(), self._Qs.parameters(), strict=True):
            target.lerp_(online, self.cfg.tau)

    def _with_task(self, x: Tensor, task: Tensor | None) -> Tensor:
        if self._task_emb is None:
            return x
        if task is None:
            raise ValueError("a multi-task model needs task ids")
        emb = self._task_emb(task)  # (B, d), broadcast over a leading time axis
        return torch.cat([x, emb.expand(*x.shape[:-1], emb.shape[-1])], dim=-1)

    def action_mask(self, task: Tensor | None) -> Tensor:
        """Mask of real action dims: (B, A) for task ids (B,), (A,) in single-task runs."""
        return self.task_action_mask[0] if task is None else self.task_action_mask[task]

    def encode(self, obs: Tensor, task: Tensor | None) -> Tensor:
        """Observations (..., B, obs_dim) -> latents (..., B, latent_dim)."""
        return self._encoder(self._with_task(obs, task))

    def next(self, z: Tensor, a: Tensor, task: Tensor | None) -> Tensor:
        """Latent dynamics: z (..., B, L), a (..., B, A) -> (..., B, L)."""
        return self._dynamics(self._with_task(torch.cat([z, a], dim=-1), task))

    def reward_logits(self, z: Tensor, a: Tensor, task: Tensor | None) -> Tensor:
        """Reward two-hot logits (..., B, num_bins)."""
        return self._reward(self._with_task(torch.cat([z, a], dim=-1), task))

    def reward(self, z: Tensor, a: Tensor, task: Tensor | None) -> Tensor:
        """Expected reward (..., B, 1)."""
        return self.twohot.decode(self.reward_logits(z, a, task))

    def pi(self, z: Tensor, task: Tensor | None, generator: torch.Generator | None = None) -> PolicySample:
        """Sample the tanh-Gaussian policy prior at ``z`` (reparameterised; padded dims masked to 0).

        The entropy term is TD-MPC2's ``scaled_entropy``: its code evaluates to minus the action size
        times the pre-tanh Gaussian log-density of the sample (no tanh correction), which we compute
        directly. Padded dims are left out of the density; the official code counts them as a constant.
        """
        mu, raw_log_std = self._pi(self._with_task(z, task)).chunk(2, dim=-1)
        lo, hi = self.cfg.log_std_min, self.cfg.log_std_max
        log_std = lo + 0.5 * (hi - lo) * (torch.tanh(raw_log_std) + 1)
        mask = self.action_mask(task).expand_as(mu)
        mu, log_std = mu * mask, log_std * mask
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype) * mask
        u = mu + eps * log_std.exp()
        log_density = gaussian_log_prob(u, mu, log_std.exp(), mask).unsqueeze(-1)
        scaled_entropy = -mask.sum(-1, keepdim=True) * log_density
        return PolicySample(torch.tanh(u), torch.tanh(mu), mu, log_std, scaled_entropy)

    def Q(  # noqa: N802 (TD-MPC2's name)
        self,
        z: Tensor,
        a: Tensor,
        task: Tensor | None,
        kind: str = "min",
        target: bool = False,
        detach: bool = False,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """State-action value.

        :param kind: ``all``: logits of every head (num_q, ..., num_bins); ``min`` / ``avg``: min / mean of
            two randomly chosen heads' expected values (..., 1)
        :param target: use the EMA target heads
        :param detach: no gradient into the Q weights (the policy loss)
        :param generator: source of the head choice
        """
        if kind not in ("min", "avg", "all"):
            raise ValueError(f"kind must be one of min, avg, all, got {kind!r}")
        x = self._with_task(torch.cat([z, a], dim=-1), task)
        qnet = self._target_Qs if target else self._Qs
        if kind == "all":
            return qnet(x, detach=detach)
        # Only the two chosen heads are evaluated: the same values as evaluating all and indexing.
        device = generator.device if generator is not None else None
        heads = torch.randperm(self.cfg.num_q, generator=generator, device=device)[:2]
        q = self.twohot.decode(qnet(x, heads, detach=detach))
        return q.min(0).values if kind == "min" else q.sum(0) / 2


class PlanningView:
    """The world model as :class:`m3po.planner.MPPIPlanner` calls it, with TD-MPC2's terminal value.

    M3PO's planner ends a trajectory with ``V(z)``; TD-MPC2 ends it with ``Q(z, a)`` averaged over two
    random heads at an action ``a`` sampled from the policy prior. Both draws use ``generator``.

    :param model: the TD-MPC2 world model
    :param generator: source of the terminal action and the head choice
    """

    def __init__(self, model: TDMPC2WorldModel, generator: torch.Generator) -> None:
        self.model = model
        self.generator = generator

    def next(self, z: Tensor, a: Tensor, task: Tensor | None) -> Tensor:
        return self.model.next(z, a, task)

    def reward(self, z: Tensor, a: Tensor, task: Tensor | None) -> Tensor:
        return self.model.reward(z, a, task)

    def V(self, z: Tensor, task: Tensor | None) -> Tensor:  # noqa: N802 (the planner's protocol)
        action = self.model.pi(z, task, self.generator).action
        return self.model.Q(z, action, task, "avg", generator=self.generator)

    def pi(self, z: Tensor, task: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        sample = self.model.pi(z, task, self.generator)
        return sample.action, sample.mu, sample.log_std


def num_parameters(model: nn.Module) -> int:
    """Trainable parameters (the target heads excluded)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
