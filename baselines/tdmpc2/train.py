"""The TD-MPC2 training loop over ``E`` vectorized envs, writing the shared run record (:mod:`m3po.runs`).

Each iteration steps all ``E`` envs once (``E`` agent steps) and then runs the updates those steps earned
at ``utd_ratio`` updates per agent step (a fractional remainder carries over). The first ``seed_steps``
agent steps take uniform random actions; when they are done the agent is pretrained with
``utd_ratio * seed_steps`` updates, as TD-MPC2's online trainer does (one update per seed step).

Evaluation follows the shared protocol (:func:`m3po.runs.evaluate`) with the planner in evaluation mode (no
noise on the executed action). Checkpoints carry the replay buffer; at each checkpoint every training env
starts a fresh, seeded episode (the step before it is stored as the end of an episode), so a run resumed
from a checkpoint replays exactly what the uninterrupted run does: same data, same samples, same weights.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from baselines.tdmpc2.agent import TDMPC2Agent
from baselines.tdmpc2.buffer import SequenceBuffer
from baselines.tdmpc2.config import TDMPC2Config, seed_steps
from m3po.envs import VecEnv, make_vec_env
from m3po.record import format_score
from m3po.runs import (
    MetricsCallback,
    RunRecord,
    episode_seed,
    evaluate_planning_agent,
    peak_memory_mib,
    progress_bar,
    resolve_device,
    set_torch_rng_state,
    torch_rng_state,
)


@dataclass
class TDMPC2State:
    """Counters a checkpoint carries beside the agent and the buffer."""

    step: int = 0  # agent steps so far, summed over envs
    updates: int = 0  # gradient updates so far
    update_credit: float = 0.0  # updates earned but not yet run (fractional part of utd_ratio * steps)
    pretrained: bool = False  # the seed-data pretraining has run
    next_eval: int = 0  # agent step of the next evaluation
    next_checkpoint: int = 0  # agent step of the next checkpoint
    next_log: int = 0  # agent step of the next train.jsonl row
    wall_time: float = 0.0  # training seconds before this attempt

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class TDMPC2Trainer:
    """Trains TD-MPC2 as ``cfg`` says, writing the run record into ``run_dir``.

    :param cfg: validated TD-MPC2 config
    :param run_dir: the run's own directory
    :param on_metrics: callback ``(name, value, step)`` for every scalar (Sacred's ``log_scalar``)
    :param progress: show a progress bar on stderr
    """

    def __init__(
        self,
        cfg: TDMPC2Config,
        run_dir: Path,
        on_metrics: MetricsCallback | None = None,
        progress: bool = True,
    ) -> None:
        self.cfg = cfg
        self.progress = progress
        self.device = resolve_device(cfg.device)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.record = RunRecord(Path(run_dir), "tdmpc2", cfg.to_dict(), cfg.steps, self.device, on_metrics)

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
        cfg, device, record = self.cfg, self.device, self.record
        E = env.num_envs
        task_discount = torch.tensor([info.discount for info in env.task_infos])
        agent = TDMPC2Agent(
            cfg, env.obs_dim, env.act_dim, torch.as_tensor(env.task_action_mask), task_discount, device
        )
        task_ids = torch.as_tensor(env.task_ids)
        buffer = SequenceBuffer(
            min(cfg.buffer_size, cfg.steps + 2 * E),
            E,
            env.obs_dim,
            env.act_dim,
            cfg.planner.horizon,
            task_ids,
            seed=cfg.seed,
        )
        n_seed = seed_steps(cfg, max(info.episode_length for info in env.task_infos))
        state = TDMPC2State(next_checkpoint=cfg.checkpoint_every or cfg.steps, next_log=cfg.log_every)
        resumed_from = None
        if checkpoint is not None:
            agent.load_state_dict(checkpoint["agent"])
            buffer.load_state_dict(checkpoint["buffer"])
            state = TDMPC2State(**checkpoint["state"])
            set_torch_rng_state(checkpoint)
            resumed_from = state.step
        record.start_attempt(state, resumed_from, task_counts=env.task_counts, seed_steps=n_seed)
        everyone = torch.arange(E)
        obs = torch.as_tensor(env.reset(seed=episode_seed(cfg.seed, state.step))[0])
        buffer.start(everyone, obs)
        agent.reset_warm_start(torch.ones(E, dtype=torch.bool))
        bar = progress_bar(self.progress, self.cfg.steps, state.step, f"tdmpc2 {self.cfg.task}")
        attempt_start = time.perf_counter()
        last_eval = record.last_score()
        window: dict[str, list[float]] = {}
        window_start, window_step = time.perf_counter(), state.step
        try:
            with record.guard(lambda: state):
                if state.step == 0 and not record.eval_log.rows:
                    last_eval = self._evaluate(agent, env, state)
                    state.next_eval = cfg.eval_every or cfg.steps
                while state.step < cfg.steps:
                    cut = state.next_checkpoint <= state.step + E < cfg.steps  # a checkpoint follows
                    if state.step < n_seed:
                        action, stats = agent.random_action(task_ids), {}
                    else:
                        out = agent.act(obs, task_ids)
                        action, stats = out.action, {f"planner/{k}": v for k, v in out.stats.items()}
                    next_obs, reward, terminated, truncated, info = env.step(action.cpu().numpy())
                    done = torch.as_tensor(terminated | truncated | cut)
                    buffer.add(
                        action,
                        torch.as_tensor(reward, dtype=torch.float32),
                        torch.as_tensor(info["final_obs"]),
                        done,
                        None if cut else torch.as_tensor(next_obs),
                    )
                    obs = torch.as_tensor(next_obs)
                    agent.reset_warm_start(done)
                    state.step += E
                    stats["train/reward_mean"] = float(np.mean(reward))
                    for update_stats in self._updates(agent, buffer, state, n_seed):
                        for key, value in update_stats.items():
                            window.setdefault(key, []).append(value)
                    for key, value in stats.items():
                        window.setdefault(key, []).append(value)
                    if bar is not None:
                        bar.update(E)
                    if state.step >= state.next_log or state.step >= cfg.steps:
                        while state.next_log <= state.step:
                            state.next_log += cfg.log_every
                        now = time.perf_counter()
                        metrics = {key: float(np.mean(values)) for key, values in window.items()}
                        metrics["time/sps"] = (state.step - window_step) / max(now - window_start, 1e-9)
                        metrics["time/wall"] = state.wall_time + now - attempt_start
                        metrics["buffer/rows"] = float(buffer.size)
                        metrics.update(peak_memory_mib(device))
                        record.log_train({"step": state.step, "updates": state.updates}, metrics)
                        if bar is not None:
                            bar.set_postfix(sps=f"{metrics['time/sps']:.0f}", eval=format_score(last_eval))
                        window, window_start, window_step = {}, now, state.step
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
                            {
                                "agent": agent.state_dict(),
                                "buffer": buffer.state_dict(),
                                "state": state.as_dict(),
                                **torch_rng_state(),
                            }
                        )
                        if cut:  # fresh, seeded episodes, as a resume from this checkpoint starts them
                            obs = torch.as_tensor(env.reset(seed=episode_seed(cfg.seed, state.step))[0])
                            buffer.start(everyone, obs)
                            agent.reset_warm_start(torch.ones(E, dtype=torch.bool))
        finally:
            if bar is not None:
                bar.close()
        record.finish(state, last_eval)
        return {
            "step": state.step,
            "final_score": last_eval,
            "wall_time": state.wall_time,
            "resumed_from": resumed_from,
            "updates": state.updates,
            "warnings": record.warnings,
        }

    def _updates(
        self, agent: TDMPC2Agent, buffer: SequenceBuffer, state: TDMPC2State, n_seed: int
    ) -> Iterator[dict[str, float]]:
        """The updates the steps so far earned: the seed-data pretraining once, then utd_ratio per step."""
        cfg = self.cfg
        if state.step < n_seed:
            return
        if not state.pretrained:
            state.pretrained = True
            count = max(1, round(cfg.utd_ratio * state.step))
        else:
            state.update_credit += cfg.utd_ratio * buffer.num_envs
            count = math.floor(state.update_credit)
            state.update_credit -= count
        for _ in range(count):
            yield agent.update(buffer.sample(cfg.batch_size, self.device), state.step)
            state.updates += 1

    def _evaluate(self, agent: TDMPC2Agent, train_env: VecEnv, state: TDMPC2State) -> float | None:
        """The shared protocol, planner in evaluation mode; returns the mean score over tasks."""
        cfg = self.cfg
        rows = evaluate_planning_agent(
            agent, train_env.tasks, cfg.seed, state.step, cfg.eval_episodes, cfg.eval_planner, self.device
        )
        return self.record.log_eval(rows)


def train(
    cfg: TDMPC2Config, run_dir: Path, on_metrics: MetricsCallback | None = None, progress: bool = True
) -> dict[str, Any]:
    """The registry's train entry for TD-MPC2 (see :mod:`suite.registry`)."""
    return TDMPC2Trainer(cfg, run_dir, on_metrics=on_metrics, progress=progress).run()
