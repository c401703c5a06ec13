"""The TD-MPC2 training loop over ``E`` vectorized envs, on :class:`m3po.trainer.OnlineTrainer`.

Each iteration steps all ``E`` envs once (``E`` agent steps) and then runs the updates those steps earned
at ``utd_ratio`` updates per agent step (a fractional remainder carries over). The first ``seed_steps``
agent steps take uniform random actions; when they are done the agent is pretrained with
``utd_ratio * seed_steps`` updates, as TD-MPC2's online trainer does (one update per seed step).

The run record, schedule, resume and evaluation are the trainer base's (:mod:`m3po.trainer.base`).
Checkpoints carry the replay buffer; at each checkpoint every training env starts a fresh, seeded
episode (the step before it is stored as the end of an episode), so a run resumed from a checkpoint
replays exactly what the uninterrupted run does: same data, same samples, same weights.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from baselines.tdmpc2.agent import TDMPC2Agent
from baselines.tdmpc2.buffer import SequenceBuffer
from baselines.tdmpc2.config import TDMPC2Config, seed_steps
from m3po.envs import VecEnv
from m3po.evaluation import episode_seed
from m3po.trainer import OnlineTrainer
from m3po.trainer.run_record import MetricsCallback


class TDMPC2Trainer(OnlineTrainer):
    """Trains TD-MPC2 as ``cfg`` says, writing the run record into ``run_dir``.

    :param cfg: validated TD-MPC2 config
    :param run_dir: the run's own directory
    :param on_metrics: callback ``(name, value, step)`` for every scalar (Sacred's ``log_scalar``)
    :param progress: show a progress bar on stderr
    """

    algo = "tdmpc2"
    cfg: TDMPC2Config

    def build(self, env: VecEnv) -> None:
        cfg, E = self.cfg, env.num_envs
        task_discount = torch.tensor([info.discount for info in env.task_infos])
        self.agent = TDMPC2Agent(
            cfg, env.obs_dim, env.act_dim, torch.as_tensor(env.task_action_mask), task_discount, self.device
        )
        self.task_ids = torch.as_tensor(env.task_ids)
        self.buffer = SequenceBuffer(
            min(cfg.buffer_size, cfg.steps + 2 * E),
            E,
            env.obs_dim,
            env.act_dim,
            cfg.planner.horizon,
            self.task_ids,
            seed=cfg.seed,
        )
        self.n_seed = seed_steps(cfg, max(info.episode_length for info in env.task_infos))

    def load(self, checkpoint: dict[str, Any]) -> None:
        self.agent.load_state_dict(checkpoint["agent"])
        self.buffer.load_state_dict(checkpoint["buffer"])

    def checkpoint_payload(self) -> dict[str, Any]:
        return {"agent": self.agent.state_dict(), "buffer": self.buffer.state_dict()}

    def status_extra(self) -> dict[str, Any]:
        return {"seed_steps": self.n_seed}

    def summary_extra(self) -> dict[str, Any]:
        return {"updates": self.state.updates}

    def row_counters(self) -> dict[str, Any]:
        return {"step": self.state.step, "updates": self.state.updates}

    def row_extras(self) -> dict[str, float]:
        return {"buffer/rows": float(self.buffer.size)}

    def start_episodes(self, env: VecEnv) -> None:
        self.obs = torch.as_tensor(env.reset(seed=episode_seed(self.cfg.seed, self.state.step))[0])
        self.buffer.start(torch.arange(env.num_envs), self.obs)
        self.agent.reset_warm_start(torch.ones(env.num_envs, dtype=torch.bool))

    def steps_per_iteration(self, env: VecEnv) -> int:
        return env.num_envs

    def iteration(self, env: VecEnv, cut: bool) -> None:
        """One step of every env (random actions during the seed steps), then the updates it earned."""
        state = self.state
        if state.step < self.n_seed:
            action, stats = self.agent.random_action(self.task_ids), {}
        else:
            out = self.agent.act(self.obs, self.task_ids)
            action, stats = out.action, {f"planner/{k}": v for k, v in out.stats.items()}
        next_obs, reward, terminated, truncated, info = env.step(action.cpu().numpy())
        done = torch.as_tensor(terminated | truncated | cut)
        self.buffer.add(
            action,
            torch.as_tensor(reward, dtype=torch.float32),
            torch.as_tensor(info["final_obs"]),
            done,
            None if cut else torch.as_tensor(next_obs),
        )
        self.obs = torch.as_tensor(next_obs)
        self.agent.reset_warm_start(done)
        state.step += env.num_envs
        stats["train/reward_mean"] = float(np.mean(reward))
        for update_stats in self._updates():
            self.metrics.add(update_stats)
        self.metrics.add(stats)

    def _updates(self) -> Iterator[dict[str, float]]:
        """The updates the steps so far earned: the seed-data pretraining once, then utd_ratio per step."""
        cfg, state = self.cfg, self.state
        if state.step < self.n_seed:
            return
        if not state.pretrained:
            state.pretrained = True
            count = max(1, round(cfg.utd_ratio * state.step))
        else:
            state.update_credit += cfg.utd_ratio * self.buffer.num_envs
            count = math.floor(state.update_credit)
            state.update_credit -= count
        for _ in range(count):
            yield self.agent.update(self.buffer.sample(cfg.batch_size, self.device), state.step)
            state.updates += 1


def train(
    cfg: TDMPC2Config, run_dir: Path, on_metrics: MetricsCallback | None = None, progress: bool = True
) -> dict[str, Any]:
    """The registry's train entry for TD-MPC2 (see :mod:`baselines.tdmpc2.registration`)."""
    return TDMPC2Trainer(cfg, run_dir, on_metrics=on_metrics, progress=progress).run()
