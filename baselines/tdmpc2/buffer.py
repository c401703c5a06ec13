"""TD-MPC2's replay buffer for ``E`` vectorized environments: uniform sub-sequences of ``horizon + 1`` steps.

Layout as TD-MPC2's (``common/buffer.py``): an episode of ``L`` steps is ``L + 1`` rows, row 0 holding the
first observation (no action, no reward) and row ``k`` holding ``(o_k, a_{k-1}, r_{k-1})``; the last row
holds the true final observation. A sample is ``horizon + 1`` consecutive rows of one episode, so it gives
``obs[0..H]``, ``action[0..H-1]``, ``reward[0..H-1]``. Each env writes its own ring of rows; the capacity
counts rows, as TD-MPC2's does. Start rows are drawn uniformly over all stored rows whose window lies in
one episode (rejection sampling; with 500-step episodes and H=3, 99% of draws are kept).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from m3po.rng import generator_state, set_generator_state


@dataclass
class Batch:
    """A sampled batch, time-major."""

    obs: Tensor  # (H+1, B, obs_dim)
    action: Tensor  # (H, B, A)
    reward: Tensor  # (H, B, 1)
    task: Tensor  # (B,) task id of each sequence


class SequenceBuffer:
    """Per-env rings of rows; samples windows of ``horizon + 1`` rows within one episode.

    :param capacity: rows in all (split evenly over envs)
    :param num_envs: number of vectorized envs ``E``
    :param obs_dim: observation size
    :param act_dim: action size
    :param horizon: ``H``; windows have ``H + 1`` rows
    :param task_ids: (E,) task id of each env
    :param seed: seed of the sampling generator
    """

    def __init__(
        self,
        capacity: int,
        num_envs: int,
        obs_dim: int,
        act_dim: int,
        horizon: int,
        task_ids: Tensor,
        seed: int,
    ) -> None:
        self.horizon = horizon
        self.num_envs = num_envs
        self.rows = max(-(-capacity // num_envs), 2 * (horizon + 1))
        self.obs = torch.zeros(num_envs, self.rows, obs_dim)
        self.action = torch.zeros(num_envs, self.rows, act_dim)
        self.reward = torch.zeros(num_envs, self.rows)
        self.episode = torch.full((num_envs, self.rows), -1, dtype=torch.int64)
        self.ptr = torch.zeros(num_envs, dtype=torch.int64)  # next row to write, per env
        self.count = torch.zeros(num_envs, dtype=torch.int64)  # rows written, capped at self.rows
        self.current = torch.full((num_envs,), -1, dtype=torch.int64)  # open episode per env (-1: none)
        self.num_episodes = 0
        self.task_ids = task_ids.cpu().long()
        self.generator = torch.Generator().manual_seed(seed)

    @property
    def size(self) -> int:
        """Rows stored."""
        return int(self.count.sum())

    def _write(self, envs: Tensor, obs: Tensor, action: Tensor, reward: Tensor) -> None:
        rows = self.ptr[envs]
        self.obs[envs, rows] = obs
        self.action[envs, rows] = action
        self.reward[envs, rows] = reward
        self.episode[envs, rows] = self.current[envs]
        self.ptr[envs] = (rows + 1) % self.rows
        self.count[envs] = (self.count[envs] + 1).clamp(max=self.rows)

    def start(self, envs: Tensor, obs: Tensor) -> None:
        """Open a new episode in each of ``envs`` (indices) with its first observation ``obs`` (k, obs)."""
        envs = envs.cpu().long()
        if envs.numel() == 0:
            return
        self.current[envs] = self.num_episodes + torch.arange(len(envs))
        self.num_episodes += len(envs)
        self._write(envs, obs.cpu(), torch.zeros(len(envs), self.action.shape[-1]), torch.zeros(len(envs)))

    def add(
        self, action: Tensor, reward: Tensor, final_obs: Tensor, done: Tensor, next_obs: Tensor | None
    ) -> None:
        """One step of every env.

        :param action: (E, A) actions taken
        :param reward: (E,) rewards
        :param final_obs: (E, obs_dim) observations after the step (the true last one where an episode ended)
        :param done: (E,) bool, episode ended (terminated or truncated)
        :param next_obs: (E, obs_dim) the first observations of the episodes that start now (auto-reset), or
            None when the caller resets the envs itself and will call :meth:`start`
        """
        if bool((self.current < 0).any()):
            raise RuntimeError("add() before start(): every env needs an open episode")
        envs = torch.arange(self.num_envs)
        self._write(envs, final_obs.cpu(), action.cpu().float(), reward.cpu().float())
        done = done.cpu().bool()
        self.current[done] = -1
        if next_obs is not None:
            self.start(envs[done], next_obs.cpu()[done])

    def sample(self, batch_size: int, device: torch.device | str = "cpu") -> Batch:
        """``batch_size`` windows drawn uniformly over valid start rows (with replacement)."""
        H = self.horizon
        valid_rows = (self.count - H).clamp(min=0)
        if int(valid_rows.sum()) == 0:
            raise RuntimeError(f"the buffer holds no window of {H + 1} rows yet")
        picked_env, picked_row = [], []
        needed = batch_size
        while needed > 0:
            draws = 2 * needed + 8
            # Uniform over stored rows whose window ends within what was written (oldest-first offsets).
            env = torch.multinomial(valid_rows.double(), draws, replacement=True, generator=self.generator)
            offset = (
                torch.rand(draws, generator=self.generator, dtype=torch.float64) * valid_rows[env]
            ).long()
            row = (self.ptr[env] - self.count[env] + offset) % self.rows
            ok = self.episode[env, row] == self.episode[env, (row + H) % self.rows]
            env, row = env[ok][:needed], row[ok][:needed]
            picked_env.append(env)
            picked_row.append(row)
            needed -= len(env)
        env, row = torch.cat(picked_env), torch.cat(picked_row)
        window = (row[:, None] + torch.arange(H + 1)) % self.rows  # (B, H+1)
        obs = self.obs[env[:, None], window].transpose(0, 1)
        action = self.action[env[:, None], window[:, 1:]].transpose(0, 1)
        reward = self.reward[env[:, None], window[:, 1:]].transpose(0, 1).unsqueeze(-1)
        return Batch(obs.to(device), action.to(device), reward.to(device), self.task_ids[env].to(device))

    def state_dict(self) -> dict:
        """Contents and counters (for checkpoints: a resumed run samples exactly what it would have)."""
        return {
            "obs": self.obs,
            "action": self.action,
            "reward": self.reward,
            "episode": self.episode,
            "ptr": self.ptr,
            "count": self.count,
            "current": self.current,
            "num_episodes": self.num_episodes,
            "generator": generator_state(self.generator),
        }

    def load_state_dict(self, state: dict) -> None:
        for key in ("obs", "action", "reward", "episode", "ptr", "count", "current"):
            if getattr(self, key).shape != state[key].shape:
                raise ValueError(
                    f"buffer {key} has shape {tuple(state[key].shape)} in the checkpoint, "
                    f"{tuple(getattr(self, key).shape)} here"
                )
            getattr(self, key).copy_(state[key])
        self.num_episodes = int(state["num_episodes"])
        set_generator_state(self.generator, state["generator"])
