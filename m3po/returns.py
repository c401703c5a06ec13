"""Generalised advantage estimation, GAE(lambda), with time limits told apart from terminations."""

from __future__ import annotations

import torch
from torch import Tensor


def gae(
    rewards: Tensor,
    values: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    done: Tensor,
    gamma: Tensor | float,
    lam: float,
) -> tuple[Tensor, Tensor]:
    """GAE(lambda) over a rollout of ``T`` steps of ``E`` environments.

    delta_t = r_t + gamma (1 - terminated_t) V(s_{t+1}) - V(s_t)
    A_t     = delta_t + gamma lambda (1 - done_t) A_{t+1},   A_T = 0

    A time limit (``done`` but not ``terminated``) cuts the lambda-chain, since step t+1 belongs to the
    next episode, but still bootstraps from V of the true final observation: the episode was stopped,
    not ended. ``next_values`` must therefore be V of the observation before any auto-reset.

    :param rewards: real rewards r_t, (T, E)
    :param values: V(s_t), (T, E)
    :param next_values: V(s_{t+1}) of the true next observation, (T, E)
    :param terminated: real terminations (bool or 0/1), (T, E)
    :param done: terminated or truncated (bool or 0/1), (T, E)
    :param gamma: discount per env (per task), (E,), or one float for all
    :param lam: lambda
    :return: advantages (T, E) and lambda-returns ``advantages + values`` (T, E), the critic's targets
    """
    not_terminated = 1.0 - terminated.to(rewards.dtype)
    not_done = 1.0 - done.to(rewards.dtype)
    gamma = torch.as_tensor(gamma, dtype=rewards.dtype, device=rewards.device)
    deltas = rewards + gamma * not_terminated * next_values - values
    advantages = torch.empty_like(deltas)
    running = torch.zeros_like(deltas[0])
    for t in range(rewards.shape[0] - 1, -1, -1):
        running = deltas[t] + gamma * lam * not_done[t] * running
        advantages[t] = running
    return advantages, advantages + values
