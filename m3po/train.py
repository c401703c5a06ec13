"""The M3PO training loop: collect, update, evaluate, checkpoint, resume.

The run record (config.json, status.json, eval.jsonl, train.jsonl, checkpoints/) and the evaluation
protocol are those of every algorithm: see :mod:`m3po.runs`.

Checkpoints fall on iteration boundaries. At each checkpoint every training env starts a fresh
episode, seeded from the run seed and the step, and the step before it is recorded as truncated
(bootstrapped, as any time limit). So a run resumed from a checkpoint replays exactly what the
uninterrupted run does: same data, same weights.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from m3po.agent import M3POAgent, Rollout
from m3po.config import M3POConfig
from m3po.envs import VecEnv, make_vec_env
from m3po.record import format_score
from m3po.runs import (
    MetricsCallback,
    RunRecord,
    TrainState,
    episode_seed,
    evaluate_planning_agent,
    peak_memory_mib,
    progress_bar,
    resolve_device,
    set_torch_rng_state,
    torch_rng_state,
)


class Trainer:
    """Trains M3PO as ``cfg`` says, writing the run record (:mod:`m3po.runs`) into ``run_dir``.

    :param cfg: validated config
    :param run_dir: the run's own directory
    :param on_metrics: callback ``(name, value, step)`` for every scalar (Sacred's ``log_scalar``)
    :param progress: show a progress bar on stderr
    """

    def __init__(
        self,
        cfg: M3POConfig,
        run_dir: Path,
        on_metrics: MetricsCallback | None = None,
        progress: bool = True,
    ) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.progress = progress
        self.device = resolve_device(cfg.device)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.record = RunRecord(self.run_dir, "m3po", cfg.to_dict(), cfg.steps, self.device, on_metrics)

    # -------------------------------------------------------------------------------- training
    def run(self) -> dict[str, Any]:
        """Train to ``cfg.steps`` (resuming if the run directory has a checkpoint); return a summary."""
        cfg = self.cfg
        checkpoint = self.record.open()
        torch.manual_seed(cfg.seed)
        env = make_vec_env(cfg.task, cfg.num_envs, seed=cfg.seed, mode=cfg.vec_mode)
        try:
            return self._train(env, checkpoint)
        finally:
            env.close()

    def _train(self, env: VecEnv, checkpoint: dict | None) -> dict[str, Any]:
        cfg = self.cfg
        device = self.device
        record = self.record
        task_discount = torch.tensor([info.discount for info in env.task_infos])
        agent = M3POAgent(
            cfg, env.obs_dim, env.act_dim, torch.as_tensor(env.task_action_mask), task_discount, device
        )
        state = TrainState(next_eval=0, next_checkpoint=cfg.checkpoint_every or cfg.steps)
        resumed_from = None
        if checkpoint is not None:
            agent.load_state_dict(checkpoint["agent"])
            state = TrainState(**checkpoint["state"])
            set_torch_rng_state(checkpoint)
            resumed_from = state.step
        record.start_attempt(state, resumed_from, task_counts=env.task_counts)
        task_ids = torch.as_tensor(env.task_ids, device=device)
        obs_np, _ = env.reset(seed=episode_seed(cfg.seed, state.step))
        obs = torch.as_tensor(obs_np, device=device)
        agent.reset_warm_start(torch.ones(env.num_envs, dtype=torch.bool, device=device))
        bar = progress_bar(self.progress, self.cfg.steps, state.step, f"m3po {self.cfg.task}")
        attempt_start = time.perf_counter()
        last_eval = record.last_score()
        try:
            with record.guard(lambda: state):
                if state.step == 0 and not record.eval_log.rows:
                    last_eval = self._evaluate(agent, env, state)
                    state.next_eval = cfg.eval_every or cfg.steps
                while state.step < cfg.steps:
                    iter_start = time.perf_counter()
                    step_after = state.step + cfg.ppo.rollout_len * env.num_envs
                    cut = state.next_checkpoint <= step_after < cfg.steps  # a checkpoint follows this rollout
                    batch, obs, plan_stats = self._collect(agent, env, obs, task_ids, cut_at_end=cut)
                    state.step += batch.rewards.numel()
                    stats = agent.update(batch, state.step)
                    state.iteration += 1
                    elapsed = time.perf_counter() - iter_start
                    stats.update(plan_stats)
                    stats["time/sps"] = batch.rewards.numel() / elapsed
                    stats["time/wall"] = state.wall_time + time.perf_counter() - attempt_start
                    stats["train/reward_mean"] = batch.rewards.mean().item()
                    stats.update(peak_memory_mib(device))
                    record.log_train({"step": state.step, "iteration": state.iteration}, stats)
                    if bar is not None:
                        bar.update(batch.rewards.numel())
                        bar.set_postfix(sps=f"{stats['time/sps']:.0f}", eval=format_score(last_eval))
                    # Evaluate before checkpointing, so a resume never evaluates the same step twice.
                    if state.step >= state.next_eval or state.step >= cfg.steps:
                        last_eval = self._evaluate(agent, env, state)
                        while state.next_eval <= state.step:
                            state.next_eval += cfg.eval_every or cfg.steps
                    if state.step >= state.next_checkpoint or state.step >= cfg.steps:
                        while state.next_checkpoint <= state.step:
                            state.next_checkpoint += cfg.checkpoint_every or cfg.steps
                        state.wall_time += time.perf_counter() - attempt_start
                        attempt_start = time.perf_counter()
                        record.save_checkpoint(
                            {"agent": agent.state_dict(), "state": state.as_dict(), **torch_rng_state()}
                        )
                        if cut:  # fresh, seeded episodes: see the module docstring
                            obs = torch.as_tensor(
                                env.reset(seed=episode_seed(cfg.seed, state.step))[0], device=device
                            )
                            agent.reset_warm_start(torch.ones(env.num_envs, dtype=torch.bool, device=device))
        finally:
            if bar is not None:
                bar.close()
        summary = {
            "step": state.step,
            "final_score": last_eval,
            "wall_time": state.wall_time,
            "resumed_from": resumed_from,
            "warnings": record.warnings,
        }
        record.finish(state, last_eval)
        return summary

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

    def _evaluate(self, agent: M3POAgent, train_env: VecEnv, state: TrainState) -> float | None:
        """The shared protocol, planner in evaluation mode; returns the mean score over tasks."""
        cfg = self.cfg
        rows = evaluate_planning_agent(
            agent, train_env.tasks, cfg.seed, state.step, cfg.eval_episodes, cfg.eval_planner, self.device
        )
        return self.record.log_eval(rows)


def train(
    cfg: M3POConfig, run_dir: Path, on_metrics: MetricsCallback | None = None, progress: bool = True
) -> dict[str, Any]:
    """The registry's train entry for M3PO (see :mod:`suite.registry`)."""
    return Trainer(cfg, run_dir, on_metrics=on_metrics, progress=progress).run()
