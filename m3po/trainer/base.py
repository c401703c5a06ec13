"""The trainer base every algorithm's training extends (after TD-MPC2's ``trainer/base.py`` and
stable-baselines3's ``BaseAlgorithm``: the base owns the run, the algorithm implements its steps).

:class:`Trainer` owns what every run does the same way: device and threads, the run record
(open, resume, attempts, status on the way out of an error, finish), the schedule of evaluations,
checkpoints and train.jsonl rows, the step-0 evaluation, the progress bar and the summary. Trainers
driven by another library's loop (stable-baselines3's callback, sheeprl's hooks) use it as it is.

:class:`OnlineTrainer` also owns the loop over vectorized envs, for the trainers written here
(M3PO, TD-MPC2). A subclass implements only:

- :meth:`~OnlineTrainer.build` (agent, buffers), :meth:`~OnlineTrainer.load` and
  :meth:`~OnlineTrainer.checkpoint_payload` (its part of a checkpoint);
- :meth:`~OnlineTrainer.start_episodes` (reset the envs with seeded episodes);
- :meth:`~OnlineTrainer.steps_per_iteration` and :meth:`~OnlineTrainer.iteration` (collect and update,
  advancing ``state.step``, adding metrics to ``self.metrics``).

Checkpoints fall on iteration boundaries. At each checkpoint every training env starts a fresh
episode, seeded from the run seed and the step, and the step before it is recorded as truncated. So a
run resumed from a checkpoint replays exactly what the uninterrupted run does: same data, same weights.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar

import torch

from m3po.envs import VecEnv, make_vec_env
from m3po.evaluation import evaluate_planning_agent
from m3po.rng import global_rng_state, set_global_rng_state
from m3po.trainer.run_record import (
    MetricsCallback,
    RunRecord,
    peak_memory_mib,
    resolve_device,
)
from m3po.trainer.schedule import MetricWindow, ProgressBar, Schedule, TrainState


class Trainer:
    """One run of an algorithm in ``run_dir``: the parts every algorithm shares.

    :param cfg: the validated config (a :class:`m3po.config.RunConfig` subclass)
    :param run_dir: the run's own directory
    :param on_metrics: callback ``(name, value, step)`` for every scalar (Sacred's ``log_scalar``)
    :param progress: show a progress bar on stderr
    :param algo: the registry name recorded in config.json (default: the class's ``algo``)
    """

    algo: ClassVar[str] = ""

    def __init__(
        self,
        cfg: Any,
        run_dir: Path,
        on_metrics: MetricsCallback | None = None,
        progress: bool = True,
        algo: str | None = None,
    ) -> None:
        self.cfg = cfg
        self.algo = algo or type(self).algo
        self.run_dir = Path(run_dir)
        self.progress = progress
        self.device = resolve_device(cfg.device)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.record = RunRecord(
            self.run_dir, self.algo, cfg.to_dict(), cfg.steps, self.device, on_metrics, cfg.tensorboard,
            field_defaults=type(cfg)().to_dict(),
        )  # fmt: skip
        self.schedule = Schedule.of(cfg)
        self.state = self.schedule.initial_state()
        self.resumed_from: int | None = None
        self.last_eval: float | None = None  # mean score of the last evaluation
        self.evaluated_at: int | None = None  # agent step of the last evaluation
        self.bar = ProgressBar(False, 0, 0, "")
        self._attempt_start = time.perf_counter()

    # ------------------------------------------------------------------------------- the record
    def open(self) -> dict | None:
        """Check the run directory; the checkpoint to resume from (its counters restored), or None."""
        checkpoint = self.record.open()
        if checkpoint is not None:
            self.state = TrainState(**checkpoint["state"])
            self.resumed_from = self.state.step
        return checkpoint

    def start_attempt(self, **status_extra: Any) -> None:
        """Status ``running`` with one more attempt, logs cut to the checkpoint, the progress bar."""
        self.record.start_attempt(self.state, self.resumed_from, **status_extra)
        self.last_eval = self.record.last_score()
        rows = self.record.eval_log.rows
        self.evaluated_at = rows[-1]["step"] if rows else None
        self.bar = ProgressBar(self.progress, self.cfg.steps, self.state.step, f"{self.algo} {self.cfg.task}")
        self._attempt_start = time.perf_counter()

    def needs_first_eval(self) -> bool:
        """A fresh run evaluates its untrained agent at step 0 (a resume has that row already)."""
        return self.state.step == 0 and not self.record.eval_log.rows

    def log_eval(self, rows: list[dict[str, Any]]) -> None:
        """Record an evaluation of the current step and move the schedule past it."""
        self.last_eval = self.record.log_eval(rows)
        self.evaluated_at = self.state.step
        self.schedule.evaluated(self.state)

    def log_row(self, counters: dict[str, Any], metrics: dict[str, float]) -> None:
        """A train.jsonl row: ``counters`` (``step`` first) and ``metrics`` with the wall time (unless
        given) and peak memory added; the progress bar follows."""
        metrics.setdefault("time/wall", self.wall_time())
        metrics.update(peak_memory_mib(self.device))
        self.record.log_train(counters, metrics)
        self.bar.advance_to(counters["step"])
        if "time/sps" in metrics:
            self.bar.show(metrics["time/sps"], self.last_eval)

    def wall_time(self) -> float:
        """Training seconds of the run so far, over all attempts."""
        return self.state.wall_time + time.perf_counter() - self._attempt_start

    def save_checkpoint(self, payload: dict[str, Any]) -> None:
        """Write a checkpoint of ``payload`` and the counters; the wall time so far is carried in it."""
        self.schedule.checkpointed(self.state)
        now = time.perf_counter()
        self.state.wall_time += now - self._attempt_start
        self._attempt_start = now
        self.record.save_checkpoint({**payload, "state": self.state.as_dict()})

    def finish(self, **summary_extra: Any) -> dict[str, Any]:
        """Status ``finished``; the summary the train entry returns."""
        self.bar.close()
        self.record.finish(self.state, self.last_eval)
        return {
            "step": self.state.step,
            "final_score": self.last_eval,
            "wall_time": self.state.wall_time,
            "resumed_from": self.resumed_from,
            **summary_extra,
            "warnings": self.record.warnings,
        }


class OnlineTrainer(Trainer):
    """A trainer whose loop over vectorized envs is written here (M3PO, TD-MPC2): see the module doc."""

    agent: Any  # set by build; acts with ``act(obs, task_ids, eval_mode, plan)`` (evaluation)

    def run(self) -> dict[str, Any]:
        """Train to ``cfg.steps`` (resuming if the run directory has a checkpoint); return a summary."""
        checkpoint = self.open()
        torch.manual_seed(self.cfg.seed)
        env = make_vec_env(self.cfg.task, self.cfg.num_envs, seed=self.cfg.seed, mode=self.cfg.vec_mode)
        try:
            return self._train(env, checkpoint)
        finally:
            self.bar.close()
            env.close()

    def _train(self, env: VecEnv, checkpoint: dict | None) -> dict[str, Any]:
        cfg, state, schedule = self.cfg, self.state, self.schedule
        self.build(env)
        if checkpoint is not None:
            self.load(checkpoint)
            set_global_rng_state(checkpoint)
        self.start_attempt(task_counts=env.task_counts, **self.status_extra())
        self.start_episodes(env)
        self.metrics = MetricWindow(state.step)
        with self.record.guard(lambda: self.state):
            if self.needs_first_eval():
                self.evaluate(env)
            while state.step < cfg.steps:
                cut = schedule.checkpoint_follows(state, state.step + self.steps_per_iteration(env))
                self.iteration(env, cut)
                if schedule.log_due(state):
                    schedule.logged(state)
                    self.log_row(self.row_counters(), {**self.metrics.flush(state.step), **self.row_extras()})
                if schedule.eval_due(state):
                    self.evaluate(env)
                    self.metrics.restart(state.step)
                if schedule.checkpoint_due(state):
                    self.save_checkpoint({**self.checkpoint_payload(), **global_rng_state()})
                    if cut:  # fresh, seeded episodes, as a resume from this checkpoint starts them
                        self.start_episodes(env)
                    self.metrics.restart(state.step)
        return self.finish(**self.summary_extra())

    def evaluate(self, env: VecEnv) -> None:
        """The shared protocol with the planner in evaluation mode (``eval_planner``: else the prior)."""
        cfg = self.cfg
        rows = evaluate_planning_agent(
            self.agent, env.tasks, cfg.seed, self.state.step, cfg.eval_episodes, cfg.eval_planner, self.device
        )
        self.log_eval(rows)

    # ------------------------------------------------------------------- what a subclass gives
    def build(self, env: VecEnv) -> None:
        """Create the agent (and buffers) for ``env``."""
        raise NotImplementedError

    def load(self, checkpoint: dict[str, Any]) -> None:
        """Restore the agent (and buffers) from a checkpoint's payload."""
        raise NotImplementedError

    def checkpoint_payload(self) -> dict[str, Any]:
        """The algorithm's part of a checkpoint (torch-saveable)."""
        raise NotImplementedError

    def start_episodes(self, env: VecEnv) -> None:
        """Reset every env with episodes seeded from the run seed and the current step."""
        raise NotImplementedError

    def steps_per_iteration(self, env: VecEnv) -> int:
        """Agent steps one :meth:`iteration` adds to ``state.step``."""
        raise NotImplementedError

    def iteration(self, env: VecEnv, cut: bool) -> None:
        """Collect and update: advance ``state.step`` (and counters) and add metrics to ``self.metrics``.

        :param cut: a checkpoint follows: record the iteration's last step as truncated
        """
        raise NotImplementedError

    def row_counters(self) -> dict[str, Any]:
        """The counters that lead a train.jsonl row (``step`` first)."""
        return {"step": self.state.step, "iteration": self.state.iteration}

    def row_extras(self) -> dict[str, float]:
        """Metrics a row adds beside the window's means (e.g. the buffer's size)."""
        return {}

    def status_extra(self) -> dict[str, Any]:
        """More fields for status.json at the start of an attempt."""
        return {}

    def summary_extra(self) -> dict[str, Any]:
        """More fields for the summary."""
        return {}
