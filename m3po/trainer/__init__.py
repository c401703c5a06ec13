"""The trainer scaffold every algorithm's training extends: :mod:`m3po.trainer.base` (the run) and
:mod:`m3po.trainer.schedule` (counters, schedule, metric window, progress bar)."""

from m3po.trainer.base import OnlineTrainer, Trainer
from m3po.trainer.schedule import MetricWindow, ProgressBar, Schedule, TrainState

__all__ = ["MetricWindow", "OnlineTrainer", "ProgressBar", "Schedule", "TrainState", "Trainer"]
