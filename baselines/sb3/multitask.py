"""Multi-task pieces on top of stable-baselines3: masked action dims, and MT-SAC's per-task temperatures.

Observations of the multi-task env end with a one-hot task id (``n_tasks`` dims, see
:mod:`baselines.sb3.envs`); the task of each sample is read from it (its largest entry: the one-hot's
sign survives PPO's ``VecNormalize``, whose running statistics are per dimension). Each task's padded
action dims (beyond its own action size) are masked: their actions are zero, and they add nothing to
log-probabilities or entropies, so a task's entropy counts only the dims it acts with.

:class:`MTSAC` is Meta-World's MT-SAC (Yu et al., 2019) on SB3's SAC: one learnable log-temperature
per task; each sample's entropy term uses its task's temperature, and each task's temperature is
driven towards its own entropy target ``-(task's action size)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch as th
from stable_baselines3 import SAC
from stable_baselines3.common.distributions import DiagGaussianDistribution
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.utils import polyak_update
from stable_baselines3.sac.policies import Actor, SACPolicy
from torch.nn import functional as F


def task_index(obs: th.Tensor, num_tasks: int) -> th.Tensor:
    """Task id of each observation, from its trailing one-hot."""
    return obs[:, -num_tasks:].argmax(dim=1)


class MaskedDiagGaussianDistribution(DiagGaussianDistribution):
    """SB3's diagonal Gaussian with a per-sample mask of the action dims that count."""

    mask: th.Tensor | None = None  # (batch, act_dim); set by the policy before each use

    def _masked_sum(self, per_dim: th.Tensor) -> th.Tensor:
        return (per_dim * self.mask).sum(dim=1) if self.mask is not None else per_dim.sum(dim=1)

    def log_prob(self, actions: th.Tensor) -> th.Tensor:
        return self._masked_sum(self.distribution.log_prob(actions))

    def entropy(self) -> th.Tensor:
        return self._masked_sum(self.distribution.entropy())

    def get_actions(self, deterministic: bool = False) -> th.Tensor:
        actions = super().get_actions(deterministic)
        return actions * self.mask if self.mask is not None else actions


class MaskedActorCriticPolicy(ActorCriticPolicy):
    """PPO's MLP actor-critic for the multi-task env: padded action dims masked per task.

    :param task_action_mask: (n_tasks, act_dim) nested list, 1 for the dims a task acts with
    """

    def __init__(self, *args: Any, task_action_mask: list[list[float]], **kwargs: Any) -> None:
        self._task_action_mask = task_action_mask
        super().__init__(*args, **kwargs)

    def _build(self, lr_schedule: Any) -> None:
        self.action_dist = MaskedDiagGaussianDistribution(int(np.prod(self.action_space.shape)))
        self.register_buffer("task_action_mask", th.as_tensor(self._task_action_mask, dtype=th.float32))
        super()._build(lr_schedule)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {**super()._get_constructor_parameters(), "task_action_mask": self._task_action_mask}

    # The three ways SB3 builds the action distribution from observations; each sets the tasks' mask.
    def _set_mask(self, obs: th.Tensor) -> None:
        self.action_dist.mask = self.task_action_mask[task_index(obs, len(self.task_action_mask))]

    def forward(self, obs: th.Tensor, deterministic: bool = False) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        self._set_mask(obs)
        return super().forward(obs, deterministic)

    def evaluate_actions(self, obs: th.Tensor, actions: th.Tensor) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        self._set_mask(obs)
        return super().evaluate_actions(obs, actions)

    def get_distribution(self, obs: th.Tensor) -> MaskedDiagGaussianDistribution:
        self._set_mask(obs)
        return super().get_distribution(obs)


class MaskedActor(Actor):
    """SAC's squashed-Gaussian actor with the padded action dims of each sample's task masked."""

    def __init__(self, *args: Any, task_action_mask: th.Tensor, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.register_buffer("task_action_mask", task_action_mask)

    def _mask(self, obs: th.Tensor) -> th.Tensor:
        return self.task_action_mask[task_index(obs, len(self.task_action_mask))]

    def forward(self, obs: th.Tensor, deterministic: bool = False) -> th.Tensor:
        return super().forward(obs, deterministic) * self._mask(obs)

    def action_log_prob(self, obs: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        mean, log_std, _ = self.get_action_dist_params(obs)
        dist = self.action_dist.proba_distribution(mean, log_std)
        gaussian = dist.distribution.rsample()
        action = th.tanh(gaussian)
        # The squashed Gaussian's density per dim (SB3's SquashedDiagGaussianDistribution.log_prob), masked.
        per_dim = dist.distribution.log_prob(gaussian) - th.log(1 - action**2 + dist.epsilon)
        mask = self._mask(obs)
        return action * mask, (per_dim * mask).sum(dim=1)


class MTSACPolicy(SACPolicy):
    """SB3's SAC policy with :class:`MaskedActor`.

    :param task_action_mask: (n_tasks, act_dim) nested list, 1 for the dims a task acts with
    """

    def __init__(self, *args: Any, task_action_mask: list[list[float]], **kwargs: Any) -> None:
        self._task_action_mask = task_action_mask
        super().__init__(*args, **kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {**super()._get_constructor_parameters(), "task_action_mask": self._task_action_mask}

    def make_actor(self, features_extractor: Any = None) -> MaskedActor:
        actor_kwargs = self._update_features_extractor(self.actor_kwargs, features_extractor)
        mask = th.as_tensor(self._task_action_mask, dtype=th.float32)
        return MaskedActor(**actor_kwargs, task_action_mask=mask).to(self.device)


class MTSAC(SAC):
    """SAC with one entropy temperature per task (Meta-World's MT-SAC).

    Takes SAC's arguments; the policy must be :class:`MTSACPolicy` (its ``task_action_mask`` gives
    the number of tasks and each task's action size). ``ent_coef`` must be learned (``auto`` or
    ``auto_<init>``).

    :param task_names: names for the per-task temperatures in the logs (default: the task ids)
    """

    def __init__(self, *args: Any, task_names: list[str] | None = None, **kwargs: Any) -> None:
        self.task_names = task_names
        super().__init__(*args, **kwargs)

    def _setup_model(self) -> None:
        super()._setup_model()
        if self.ent_coef_optimizer is None:
            raise ValueError(
                f"MT-SAC learns its temperatures: ent_coef must be 'auto[_init]', got {self.ent_coef}"
            )
        mask = th.as_tensor(self.policy_kwargs["task_action_mask"], dtype=th.float32, device=self.device)
        self.num_tasks = len(mask)
        if self.task_names is None:
            self.task_names = [str(i) for i in range(self.num_tasks)]
        self.task_target_entropy = -mask.sum(dim=1)  # -(task's action size), SB3's "auto" per task
        init = th.exp(self.log_ent_coef.detach()).item()  # SAC parsed ent_coef's initial value
        self.log_ent_coef = th.full(
            (self.num_tasks,), float(np.log(init)), device=self.device
        ).requires_grad_(True)
        self.ent_coef_optimizer = th.optim.Adam([self.log_ent_coef], lr=self.lr_schedule(1))

    def _sample_action(self, learning_starts: int, action_noise: Any = None, n_envs: int = 1):
        action, buffer_action = super()._sample_action(learning_starts, action_noise, n_envs)
        # Warm-up actions are sampled from the whole padded box: zero each task's padded dims.
        mask = self.policy.actor.task_action_mask.cpu().numpy()
        rows = mask[np.asarray(self._last_obs)[:, -self.num_tasks :].argmax(axis=1)]
        return action * rows, buffer_action * rows

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        """SAC's update (SB3 2.9.2 ``SAC.train``) with each sample's alpha taken from its task."""
        self.policy.set_training_mode(True)
        optimizers = [self.actor.optimizer, self.critic.optimizer, self.ent_coef_optimizer]
        self._update_learning_rate(optimizers)

        ent_coef_losses, actor_losses, critic_losses = [], [], []
        for gradient_step in range(gradient_steps):
            replay_data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)
            discounts = replay_data.discounts if replay_data.discounts is not None else self.gamma
            tasks = task_index(replay_data.observations, self.num_tasks)

            actions_pi, log_prob = self.actor.action_log_prob(replay_data.observations)
            log_prob = log_prob.reshape(-1, 1)

            # Each task's temperature moves by its own samples towards its own entropy target.
            log_alpha = self.log_ent_coef[tasks].reshape(-1, 1)
            target = self.task_target_entropy[tasks].reshape(-1, 1)
            ent_coef_loss = -(log_alpha * (log_prob + target).detach()).mean()
            ent_coef_losses.append(ent_coef_loss.item())
            ent_coef = th.exp(log_alpha.detach())
            self.ent_coef_optimizer.zero_grad()
            ent_coef_loss.backward()
            self.ent_coef_optimizer.step()

            with th.no_grad():
                next_actions, next_log_prob = self.actor.action_log_prob(replay_data.next_observations)
                next_q_values = th.cat(self.critic_target(replay_data.next_observations, next_actions), dim=1)
                next_q_values, _ = th.min(next_q_values, dim=1, keepdim=True)
                next_q_values = next_q_values - ent_coef * next_log_prob.reshape(-1, 1)
                target_q_values = replay_data.rewards + (1 - replay_data.dones) * discounts * next_q_values

            current_q_values = self.critic(replay_data.observations, replay_data.actions)
            critic_loss = 0.5 * sum(F.mse_loss(current_q, target_q_values) for current_q in current_q_values)
            critic_losses.append(critic_loss.item())
            self.critic.optimizer.zero_grad()
            critic_loss.backward()
            self.critic.optimizer.step()

            q_values_pi = th.cat(self.critic(replay_data.observations, actions_pi), dim=1)
            min_qf_pi, _ = th.min(q_values_pi, dim=1, keepdim=True)
            actor_loss = (ent_coef * log_prob - min_qf_pi).mean()
            actor_losses.append(actor_loss.item())
            self.actor.optimizer.zero_grad()
            actor_loss.backward()
            self.actor.optimizer.step()

            if gradient_step % self.target_update_interval == 0:
                polyak_update(self.critic.parameters(), self.critic_target.parameters(), self.tau)
                polyak_update(self.batch_norm_stats, self.batch_norm_stats_target, 1.0)

        self._n_updates += gradient_steps
        alphas = th.exp(self.log_ent_coef.detach()).cpu().numpy()
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/ent_coef", float(alphas.mean()))
        for name, alpha in zip(self.task_names, alphas, strict=True):
            self.logger.record(f"train/ent_coef/{name}", float(alpha))
        self.logger.record("train/actor_loss", float(np.mean(actor_losses)))
        self.logger.record("train/critic_loss", float(np.mean(critic_losses)))
        self.logger.record("train/ent_coef_loss", float(np.mean(ent_coef_losses)))
