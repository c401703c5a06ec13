"""What every trainer counts and when it evaluates, checkpoints and logs: :class:`TrainState`,
:class:`Schedule`, :class:`MetricWindow` and the one progress bar (:class:`ProgressBar`)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from m3po.record import format_score


@dataclass
class TrainState:
    """Counters a checkpoint carries beside the algorithm's own state (one for every algorithm)."""

    step: int = 0  # agent steps so far, summed over envs
    iteration: int = 0  # train.jsonl rows of update rounds so far (M3PO: PPO iterations; SB3: rollouts)
    updates: int = 0  # gradient updates so far (TD-MPC2's and DreamerV3's counts)
    update_credit: float = 0.0  # off-policy: updates earned but not yet run (fraction of utd_ratio * steps)
    pretrained: bool = False  # off-policy: the seed-data pretraining has run
    next_eval: int = 0  # agent step at which the next evaluation runs
    next_checkpoint: int = 0  # agent step at which the next checkpoint is written
    next_log: int = 0  # agent step of the next train.jsonl row (trainers that log every log_every steps)
    wall_time: float = 0.0  # training seconds before this attempt

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Schedule:
    """When a run evaluates, checkpoints and writes a train.jsonl row, in agent steps.

    Evaluate at step 0 (unless resuming), every ``eval_every`` steps and at the end; checkpoint every
    ``checkpoint_every`` steps and at the end, after the same step's evaluation (so a resume never
    evaluates a step twice); a row every ``log_every`` steps and at the end (0: one per iteration).
    An interval of 0 means "at the end only". Each is checked at the trainer's iteration boundaries.

    :param steps: the run's agent-step budget
    :param eval_every: agent steps between evaluations
    :param checkpoint_every: agent steps between checkpoints
    :param log_every: agent steps between train.jsonl rows (0: a row per iteration)
    """

    steps: int
    eval_every: int
    checkpoint_every: int
    log_every: int = 0

    @classmethod
    def of(cls, cfg: Any) -> Schedule:
        """The schedule of a run config (``log_every`` where the config has one)."""
        return cls(cfg.steps, cfg.eval_every, cfg.checkpoint_every, getattr(cfg, "log_every", 0))

    def initial_state(self) -> TrainState:
        """The counters of a fresh run: evaluation first, then the first checkpoint and row."""
        first_checkpoint = self.checkpoint_every or self.steps
        return TrainState(next_eval=0, next_checkpoint=first_checkpoint, next_log=self.log_every)

    def checkpoint_follows(self, state: TrainState, step_after: int) -> bool:
        """Whether a checkpoint (other than the final one) falls at the end of an iteration ending at
        ``step_after``: its last step is then recorded as truncated and fresh episodes start."""
        return state.next_checkpoint <= step_after < self.steps

    def log_due(self, state: TrainState) -> bool:
        return not self.log_every or state.step >= state.next_log or state.step >= self.steps

    def eval_due(self, state: TrainState) -> bool:
        return state.step >= state.next_eval or state.step >= self.steps

    def checkpoint_due(self, state: TrainState) -> bool:
        return state.step >= state.next_checkpoint or state.step >= self.steps

    def logged(self, state: TrainState) -> None:
        """Move ``next_log`` past the current step."""
        while self.log_every and state.next_log <= state.step:
            state.next_log += self.log_every

    def evaluated(self, state: TrainState) -> None:
        """Move ``next_eval`` past the current step (after the step-0 evaluation: to ``eval_every``)."""
        while state.next_eval <= state.step:
            state.next_eval += self.eval_every or self.steps

    def checkpointed(self, state: TrainState) -> None:
        """Move ``next_checkpoint`` past the current step."""
        while state.next_checkpoint <= state.step:
            state.next_checkpoint += self.checkpoint_every or self.steps


class MetricWindow:
    """Metrics gathered between two train.jsonl rows, written as their means, and the window's speed.

    :param step: the agent step the window starts at
    """

    def __init__(self, step: int) -> None:
        self.values: dict[str, list[float]] = {}
        self.restart(step)

    def restart(self, step: int) -> None:
        """Start timing from now at ``step`` (after a row, an evaluation or a checkpoint: their time
        stays out of ``time/sps``); gathered values are kept."""
        self.start, self.step = time.perf_counter(), step

    def add(self, metrics: Mapping[str, float]) -> None:
        for key, value in metrics.items():
            self.values.setdefault(key, []).append(value)

    def flush(self, step: int) -> dict[str, float]:
        """The means of the gathered values and ``time/sps`` since the window started; starts a new one."""
        out = {key: float(np.mean(values)) for key, values in self.values.items()}
        out["time/sps"] = (step - self.step) / max(time.perf_counter() - self.start, 1e-9)
        self.values = {}
        self.restart(step)
        return out


class ProgressBar:
    """The progress bar on stderr (tqdm): agent steps, steps/s and the last evaluation's score.

    :param enabled: False: every call does nothing
    :param total: the run's budget
    :param initial: the step the attempt starts at
    :param desc: e.g. ``m3po cartpole-swingup``
    """

    def __init__(self, enabled: bool, total: int, initial: int, desc: str) -> None:
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, unit="step", desc=desc, dynamic_ncols=True)

    def advance_to(self, step: int) -> None:
        if self.bar is not None:
            self.bar.update(step - self.bar.n)

    def show(self, sps: float, score: float | None) -> None:
        if self.bar is not None:
            self.bar.set_postfix(sps=f"{sps:.3g}", eval=format_score(score))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
