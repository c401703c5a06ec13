"""The M3PO training loop: collect a rollout with the planner, update, on :class:`m3po.trainer.OnlineTrainer`.

The run record (config.json, status.json, eval.jsonl, train.jsonl, checkpoints/), the schedule, resume
and the evaluation protocol are the trainer base's (:mod:`m3po.trainer.base`); this module adds what
is M3PO's: one iteration is ``rollout_len`` steps of every env, then one :meth:`M3POAgent.update`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from m3po.agent import M3POAgent, Rollout
from m3po.config import M3POConfig
from m3po.envs import VecEnv
from m3po.envs.registry import TaskInfo
from m3po.evaluation import episode_seed
from m3po.trainer import OnlineTrainer
from m3po.trainer.run_record import MetricsCallback


def task_discounts(cfg: M3POConfig, task_infos: Sequence[TaskInfo]) -> torch.Tensor:
    """(n_tasks,) discount of each task: ``ppo.discount`` for every task, or where it is 0 each task's
    own (the spec's rule, :attr:`m3po.envs.registry.TaskInfo.discount`)."""
    return torch.tensor([cfg.ppo.discount or info.discount for info in task_infos])


class Trainer(OnlineTrainer):
    """Trains M3PO as ``cfg`` says, writing the run record into ``run_dir``.

    :param cfg: validated config
    :param run_dir: the run's own directory
    :param on_metrics: callback ``(name, value, step)`` for every scalar (Sacred's ``log_scalar``)
    :param progress: show a progress bar on stderr
    """

    algo = "m3po"
    cfg: M3POConfig

    def build(self, env: VecEnv) -> None:
        action_mask = torch.as_tensor(env.task_action_mask)
        discount = task_discounts(self.cfg, env.task_infos)
        self.agent = M3POAgent(self.cfg, env.obs_dim, env.act_dim, action_mask, discount, self.device)
        self.task_ids = torch.as_tensor(env.task_ids, device=self.device)

    def load(self, checkpoint: dict[str, Any]) -> None:
        self.agent.load_state_dict(checkpoint["agent"])

    def checkpoint_payload(self) -> dict[str, Any]:
        return {"agent": self.agent.state_dict()}

    def start_episodes(self, env: VecEnv) -> None:
        obs = env.reset(seed=episode_seed(self.cfg.seed, self.state.step))[0]
        self.obs = torch.as_tensor(obs, device=self.device)
        self.agent.reset_warm_start(torch.ones(env.num_envs, dtype=torch.bool, device=self.device))

    def steps_per_iteration(self, env: VecEnv) -> int:
        return self.cfg.ppo.rollout_len * env.num_envs

    def iteration(self, env: VecEnv, cut: bool) -> None:
        batch, self.obs, plan_stats = self._collect(self.agent, env, self.obs, self.task_ids, cut_at_end=cut)
        self.state.step += batch.rewards.numel()
        stats = self.agent.update(batch, self.state.step)
        self.state.iteration += 1
        stats.update(plan_stats)
        stats["train/reward_mean"] = batch.rewards.mean().item()
        self.metrics.add(stats)

    def _collect(
        self, agent: M3POAgent, env: VecEnv, obs: torch.Tensor, task_ids: torch.Tensor, cut_at_end: bool
    ) -> tuple[Rollout, torch.Tensor, dict[str, float]]:
        """T steps of every env; with ``cut_at_end`` the last step is marked truncated."""
        cfg = self.cfg
        T, device = cfg.ppo.rollout_len, self.device
        buf: dict[str, list[torch.Tensor]] = {
            k: [] for k in ("obs", "act", "rew", "term", "trunc", "next", "logp", "blogp")
        }
        plan_stats: dict[str, list[float]] = {}
        for t in range(T):
            out = agent.act(obs, task_ids)
            next_obs, reward, terminated, truncated, info = env.step(out.action.cpu().numpy())
            truncated = truncated.copy()
            if t == T - 1 and cut_at_end:
                truncated[:] = True  # the checkpoint starts fresh episodes: a time-limit cut here
            buf["obs"].append(obs)
            buf["act"].append(out.action)
            buf["rew"].append(torch.as_tensor(reward, dtype=torch.float32, device=device))
            buf["term"].append(torch.as_tensor(terminated, device=device))
            buf["trunc"].append(torch.as_tensor(truncated, device=device))
            buf["next"].append(torch.as_tensor(info["final_obs"], device=device))
            buf["logp"].append(out.log_prob)
            buf["blogp"].append(out.behaviour_log_prob)
            for key, value in out.stats.items():
                plan_stats.setdefault(f"planner/{key}", []).append(value)
            obs = torch.as_tensor(next_obs, device=device)
            agent.reset_warm_start(torch.as_tensor(terminated | truncated, device=device))
        batch = Rollout(
            obs=torch.stack(buf["obs"]),
            actions=torch.stack(buf["act"]),
            rewards=torch.stack(buf["rew"]),
            terminated=torch.stack(buf["term"]),
            truncated=torch.stack(buf["trunc"]),
            next_obs=torch.stack(buf["next"]),
            log_prob=torch.stack(buf["logp"]),
            behaviour_log_prob=torch.stack(buf["blogp"]),
            task=task_ids,
        )
        return batch, obs, {k: float(np.mean(v)) for k, v in plan_stats.items()}


def train(
    cfg: M3POConfig, run_dir: Path, on_metrics: MetricsCallback | None = None, progress: bool = True
) -> dict[str, Any]:
    """The registry's train entry for M3PO (see :mod:`m3po.registration`)."""
    return Trainer(cfg, run_dir, on_metrics=on_metrics, progress=progress).run()
