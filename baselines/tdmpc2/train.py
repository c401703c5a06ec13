"""The TD-MPC2 training loop over ``E`` vectorized envs, writing M3PO's run record.

Same run directory as ``m3po.train`` (config.json, status.json, eval.jsonl, train.jsonl, checkpoints/), the
same evaluation (:meth:`m3po.train.Trainer._evaluate`: fresh seeded episodes per task, planner in eval
mode) and the same resume rule; the checkpoint also carries the replay buffer, so a resumed run samples
what the uninterrupted run samples.

Each iteration steps all ``E`` envs once (``E`` agent steps) and then runs the updates those steps earned
at ``utd_ratio`` updates per agent step (a fractional remainder carries over). The first ``seed_steps``
agent steps take uniform random actions; when they are done the agent is pretrained with
``utd_ratio * seed_steps`` updates, as TD-MPC2's online trainer does (one update per seed step).
"""

from __future__ import annotations

import math
import os
import platform
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from baselines.tdmpc2.agent import TDMPC2Agent
from baselines.tdmpc2.buffer import SequenceBuffer
from baselines.tdmpc2.config import TDMPC2Config, seed_steps
from m3po.envs import VecEnv
from m3po.errors import NonFiniteLossError
from m3po.train import CHECKPOINT, PREVIOUS_CHECKPOINT, JsonlLog, Trainer, _episode_seed, peak_memory_mib


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


class TDMPC2Trainer(Trainer):
    """Trains TD-MPC2 as ``cfg`` says, writing the run record into ``run_dir``.

    :param cfg: validated TD-MPC2 config
    :param run_dir: the run's own directory
    :param on_metrics: callback ``(name, value, step)`` for every scalar (Sacred's ``log_scalar``)
    :param progress: show a progress bar on stderr
    """

    cfg: TDMPC2Config

    def _save_checkpoint(self, agent: TDMPC2Agent, state: TDMPC2State) -> None:
        folder = self.run_dir / "checkpoints"
        payload = {
            "agent": agent.state_dict(),
            "buffer": self.buffer.state_dict(),
            "state": state.__dict__.copy(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        }
        tmp = folder / (CHECKPOINT + ".tmp")
        torch.save(payload, tmp)
        if (folder / CHECKPOINT).exists():
            os.replace(folder / CHECKPOINT, folder / PREVIOUS_CHECKPOINT)
        os.replace(tmp, folder / CHECKPOINT)

    def _train(self, env: VecEnv, checkpoint: dict | None) -> dict[str, Any]:
        cfg, device = self.cfg, self.device
        E = env.num_envs
        task_discount = torch.tensor([info.discount for info in env.task_infos])
        agent = TDMPC2Agent(
            cfg, env.obs_dim, env.act_dim, torch.as_tensor(env.task_action_mask), task_discount, device
        )
        task_ids = torch.as_tensor(env.task_ids)
        self.buffer = SequenceBuffer(
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
            self.buffer.load_state_dict(checkpoint["buffer"])
            state = TDMPC2State(**checkpoint["state"])
            torch.set_rng_state(checkpoint["torch_rng"])
            if checkpoint["cuda_rng"] is not None and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(checkpoint["cuda_rng"])
            resumed_from = state.step
        status = self._read_status()
        attempts = status.get("attempts", []) + [
            {"started": time.time(), "resumed_from_step": resumed_from, "host": platform.node()}
        ]
        self._write_status(
            "running", state, attempts=attempts, task_counts=env.task_counts, seed_steps=n_seed
        )
        eval_log = JsonlLog(self.run_dir / "eval.jsonl", resumed_from)
        train_log = JsonlLog(self.run_dir / "train.jsonl", resumed_from)
        everyone = torch.arange(E)
        obs = torch.as_tensor(env.reset(seed=_episode_seed(cfg.seed, state.step))[0])
        self.buffer.start(everyone, obs)
        agent.reset_warm_start(torch.ones(E, dtype=torch.bool))
        bar = self._progress_bar(state.step)
        if bar is not None:
            bar.set_description(f"tdmpc2 {cfg.task}")
        attempt_start = time.perf_counter()
        last_eval: float | None = eval_log.rows[-1]["score_mean"] if eval_log.rows else None
        window: dict[str, list[float]] = {}
        window_start, window_step = time.perf_counter(), state.step
        try:
            if state.step == 0 and not eval_log.rows:
                last_eval = self._evaluate(agent, env, state, eval_log)
                state.next_eval = cfg.eval_every or cfg.steps
            while state.step < cfg.steps:
                cut = state.next_checkpoint <= state.step + E < cfg.steps  # a checkpoint follows this step
                if state.step < n_seed:
                    action, stats = agent.random_action(task_ids), {}
                else:
                    out = agent.act(obs, task_ids)
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
                obs = torch.as_tensor(next_obs)
                agent.reset_warm_start(done)
                state.step += E
                stats["train/reward_mean"] = float(np.mean(reward))
                for update_stats in self._updates(agent, state, n_seed):
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
                    row = {key: float(np.mean(values)) for key, values in window.items()}
                    row["time/sps"] = (state.step - window_step) / max(now - window_start, 1e-9)
                    row["time/wall"] = state.wall_time + now - attempt_start
                    row["train/updates"] = state.updates
                    row["train/utd_ratio"] = cfg.utd_ratio
                    row["buffer/rows"] = self.buffer.size
                    row.update(peak_memory_mib(device))
                    train_log.append({"step": state.step, **row})
                    for name, value in row.items():
                        self.on_metrics(name, value, state.step)
                    if bar is not None:
                        bar.set_postfix(sps=f"{row['time/sps']:.0f}", eval=_fmt(last_eval))
                    window, window_start, window_step = {}, now, state.step
                if state.step >= state.next_eval or state.step >= cfg.steps:
                    last_eval = self._evaluate(agent, env, state, eval_log)
                    while state.next_eval <= state.step:
                        state.next_eval += cfg.eval_every or cfg.steps
                if state.step >= state.next_checkpoint or state.step >= cfg.steps:
                    while state.next_checkpoint <= state.step:
                        state.next_checkpoint += cfg.checkpoint_every or cfg.steps
                    state.wall_time += time.perf_counter() - attempt_start
                    attempt_start = time.perf_counter()
                    self._save_checkpoint(agent, state)
                    if cut:  # fresh, seeded episodes, as a resume from this checkpoint starts them
                        obs = torch.as_tensor(env.reset(seed=_episode_seed(cfg.seed, state.step))[0])
                        self.buffer.start(everyone, obs)
                        agent.reset_warm_start(torch.ones(E, dtype=torch.bool))
        except NonFiniteLossError as err:
            self._write_status("failed", state, error=str(err), attempts=attempts)
            raise
        except BaseException as err:
            self._write_status("interrupted", state, error=f"{type(err).__name__}: {err}", attempts=attempts)
            raise
        finally:
            if bar is not None:
                bar.close()
        self._write_status("finished", state, attempts=attempts, final_score=last_eval)
        return {
            "step": state.step,
            "final_score": last_eval,
            "wall_time": state.wall_time,
            "resumed_from": resumed_from,
            "warnings": self._warnings,
        }

    def _updates(self, agent: TDMPC2Agent, state: TDMPC2State, n_seed: int):
        """The updates earned by the steps so far: the seed-data pretraining once, then utd_ratio per step."""
        cfg = self.cfg
        if state.step < n_seed:
            return
        if not state.pretrained:
            state.pretrained = True
            count = max(1, round(cfg.utd_ratio * state.step))
        else:
            state.update_credit += cfg.utd_ratio * self.buffer.num_envs
            count = math.floor(state.update_credit)
            state.update_credit -= count
        for _ in range(count):
            batch = self.buffer.sample(cfg.batch_size, self.device)
            yield agent.update(batch, state.step)
            state.updates += 1


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"
