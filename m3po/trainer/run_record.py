"""The run record a trainer writes: :mod:`m3po.record`'s files plus torch checkpoints, and the
torch-side helpers a run needs (device, threads' RNG states, peak memory).

How the trainer base (:mod:`m3po.trainer.base`) uses it:

    record = RunRecord(run_dir, algo, cfg.to_dict(), steps_total=cfg.steps, device=device,
                       on_metrics=on_metrics)
    checkpoint = record.open()           # validates the directory; the last good checkpoint or None
    record.start_attempt(state, resumed_from)  # status "running", a new attempt, logs cut to it
    with record.guard(lambda: state):    # status "failed" / "interrupted" on the way out of an error
        ... train ...
        record.log_train({"step": state.step, "iteration": state.iteration}, metrics)
        score = record.log_eval(evaluate(policy, tasks, cfg.seed, state.step, cfg.eval_episodes))
        record.save_checkpoint({"state": state.as_dict(), ...})   # any torch-saveable payload
    record.finish(state, final_score)    # status "finished": never trained again

After a resume, ``record.last_score()`` is the last evaluation's mean score.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from m3po import portable
from m3po.config import ConfigError
from m3po.errors import NonFiniteLossError, RunDirectoryError
from m3po.record import (
    CONFIG_FILE,
    EVAL_LOG,
    STATUS_FILE,
    TRAIN_LOG,
    JsonlLog,
    as_json,
    config_differences,
    host_description,
    path_roots,
    probe_writable,
    read_config,
    read_status,
    redact,
    write_json_atomic,
)

if TYPE_CHECKING:
    from m3po.trainer.schedule import TrainState

TENSORBOARD_DIR = "tensorboard"
CHECKPOINT = "latest.pt"
PREVIOUS_CHECKPOINT = "previous.pt"

MetricsCallback = Callable[[str, float, int], None]


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA when present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device={name!r} was asked for, but CUDA is not available here")
    return device


def peak_memory_mib(device: torch.device) -> dict[str, float]:
    """Peak resident memory of this process so far (and peak CUDA memory on a GPU), in MiB."""
    import resource

    peak = {"mem/peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # Linux: KiB
    if device.type == "cuda":
        peak["mem/peak_cuda_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return peak


def compute_facts() -> dict[str, Any]:
    """What decides this process's floating-point results on a CPU, for each attempt's record: the CPU
    model and flags, the settings in force (:func:`m3po.portable.host_facts`), torch's kernel capability
    and threads, numpy's enabled SIMD dispatch features."""
    facts = portable.host_facts()
    facts["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    facts["torch_threads"] = torch.get_num_threads()
    from numpy._core import _multiarray_umath as umath

    dispatch = getattr(umath, "__cpu_dispatch__", [])
    facts["numpy_simd"] = [f for f in dispatch if umath.__cpu_features__.get(f)]
    return facts


class RunRecord:
    """The run directory of one run: config, status, logs and checkpoints.

    :param run_dir: the run's own directory (created if missing)
    :param algo: the algorithm's registry name, recorded in ``config.json``
    :param config: the resolved config as a plain dict (``cfg.to_dict()``)
    :param steps_total: the run's agent-step budget (recorded in ``status.json``)
    :param device: where checkpoints are loaded to
    :param on_metrics: callback ``(name, value, step)`` for every scalar (Sacred's ``log_scalar``)
    :param tensorboard: also write every scalar to TensorBoard event files in ``run_dir/tensorboard``
        (the names of train.jsonl; evaluations as ``eval/score_mean`` and ``eval/<field>/<task>``)
    :param field_defaults: the config class's defaults (``cfg.to_dict()`` of a default config): on a
        resume, a key ``config.json`` lacks (recorded before its field existed) counts as this value
    """

    def __init__(
        self,
        run_dir: Path,
        algo: str,
        config: dict[str, Any],
        steps_total: int,
        device: torch.device,
        on_metrics: MetricsCallback | None = None,
        tensorboard: bool = False,
        field_defaults: dict[str, Any] | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.config = {"algo": algo, **config}
        self.field_defaults = as_json(field_defaults or {})
        self.steps_total = steps_total
        self.device = device
        self.on_metrics: MetricsCallback = on_metrics or (lambda name, value, step: None)
        self.warnings: list[str] = []
        self.attempts: list[dict[str, Any]] = []
        self.eval_log: JsonlLog | None = None
        self.train_log: JsonlLog | None = None
        self.tensorboard = tensorboard
        self.writer: Any = None  # torch.utils.tensorboard.SummaryWriter while an attempt runs

    @property
    def checkpoint_dir(self) -> Path:
        return self.run_dir / "checkpoints"

    # ------------------------------------------------------------------------------ opening
    def open(self) -> dict | None:
        """Create or check the run directory; return the checkpoint to resume from, if any.

        :raises RunDirectoryError: the directory is not writable, holds a finished run, or was
            started with another config (runtime keys such as ``threads`` may change)
        :raises ConfigError: ``portable`` is on but portable mode is not in force in this process
        """
        if self.config.get("portable") and (why := portable.refusal(self.config.get("threads", 0))):
            raise ConfigError(why)  # before anything is written
        probe_writable(self.run_dir)
        self.checkpoint_dir.mkdir(exist_ok=True)
        status = self.read_status()
        if status.get("status") == "finished":
            raise RunDirectoryError(
                f"{self.run_dir} holds a finished run (step {status.get('step')}); "
                "delete it or choose another run directory to train again"
            )
        recorded = read_config(self.run_dir)
        if recorded is None:
            write_json_atomic(self.run_dir / CONFIG_FILE, self.config)
        else:
            # A key the record lacks was written before its field existed: the run ran with the
            # field's default (a new switch keeps the old behaviour there), so only another value differs.
            diff = config_differences(recorded, as_json(self.config), defaults=self.field_defaults)
            if diff:
                raise RunDirectoryError(
                    f"{self.run_dir} was started with another config (differs in: {', '.join(diff)}); "
                    "a resume must use the same config"
                )
        return self.load_checkpoint()

    def read_status(self) -> dict:
        return read_status(self.run_dir)

    def load_checkpoint(self) -> dict | None:
        """The newest readable checkpoint payload (latest.pt, else previous.pt), or None."""
        for name in (CHECKPOINT, PREVIOUS_CHECKPOINT):
            path = self.checkpoint_dir / name
            if not path.exists():
                continue
            try:
                return torch.load(path, map_location=self.device, weights_only=False)
            except Exception as err:  # noqa: BLE001 - any unreadable file: fall back and say so
                self.warn(
                    f"checkpoint {path} is unreadable ({type(err).__name__}: {err}); trying an older one"
                )
        if any((self.checkpoint_dir / name).exists() for name in (CHECKPOINT, PREVIOUS_CHECKPOINT)):
            self.warn(f"no readable checkpoint in {self.checkpoint_dir}: the run starts from scratch")
        return None

    def warn(self, message: str) -> None:
        print(f"m3po: warning: {message}", file=sys.stderr, flush=True)
        self.warnings.append(message)

    # ----------------------------------------------------------------------------- attempts
    def start_attempt(self, state: TrainState, resumed_from: int | None, **status_extra: Any) -> None:
        """Mark the run as running with one more attempt, and open the logs cut to ``resumed_from``.

        :param state: the counters the attempt starts from
        :param resumed_from: the checkpoint's step, or None for a fresh start
        :param status_extra: more fields for ``status.json`` (e.g. ``task_counts``)
        """
        self.attempts = self.read_status().get("attempts", []) + [
            {
                "started": time.time(),
                "resumed_from_step": resumed_from,
                # The machine by what it is, not by name: records are published (m3po.record).
                "host": host_description(),
                "slurm_job_id": os.environ.get("SLURM_JOB_ID"),  # None outside SLURM
                "compute": compute_facts(),  # CPU model, kernel capability, settings (portable mode)
            }
        ]
        self.write_status("running", state, attempts=self.attempts, **status_extra)
        self.eval_log = JsonlLog(self.run_dir / EVAL_LOG, resumed_from)
        self.train_log = JsonlLog(self.run_dir / TRAIN_LOG, resumed_from)
        if self.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            # A resume hides the events an interrupted attempt wrote after the checkpoint (TensorBoard
            # purges steps >= purge_step), as the JSON-lines logs are cut to it: no point twice.
            purge = None if resumed_from is None else resumed_from + 1
            self.writer = SummaryWriter(str(self.run_dir / TENSORBOARD_DIR), purge_step=purge)

    def write_status(self, status: str, state: TrainState, **extra: Any) -> None:
        record = self.read_status()
        # An error's text may name this machine's paths (or a URL with a password): rewritten first.
        extra = redact(extra, path_roots(self.run_dir))
        record.update({"status": status, "step": state.step, "steps_total": self.steps_total, **extra})
        write_json_atomic(self.run_dir / STATUS_FILE, record)

    @contextlib.contextmanager
    def guard(self, state: Callable[[], TrainState]) -> Iterator[None]:
        """Record how an attempt ends on an error: ``failed`` for a non-finite loss, else ``interrupted``.

        :param state: returns the current counters (read when the error happens)
        """
        try:
            yield
        except NonFiniteLossError as err:
            self.close_writer()
            self.write_status("failed", state(), error=str(err), attempts=self.attempts)
            raise
        except BaseException as err:
            self.close_writer()
            self.write_status(
                "interrupted", state(), error=f"{type(err).__name__}: {err}", attempts=self.attempts
            )
            raise

    def finish(self, state: TrainState, final_score: float | None) -> None:
        """Mark the run finished (a finished run is never trained again)."""
        self.close_writer()
        self.write_status("finished", state, attempts=self.attempts, final_score=final_score)

    def last_score(self) -> float | None:
        """The mean score of the last evaluation in the log (after a resume, the checkpoint's)."""
        assert self.eval_log is not None, "start_attempt first"
        return self.eval_log.rows[-1]["score_mean"] if self.eval_log.rows else None

    # --------------------------------------------------------------------------------- logs
    def log_train(self, row: dict[str, Any], metrics: dict[str, float]) -> None:
        """Append ``{**row, **metrics}`` to train.jsonl (row: ``step`` and counters); report the metrics."""
        assert self.train_log is not None, "start_attempt first"
        self.train_log.append({**row, **metrics})
        for name, value in metrics.items():
            self.on_metrics(name, value, row["step"])
            if self.writer is not None:
                self.writer.add_scalar(name, value, row["step"])

    def log_eval(self, rows: list[dict[str, Any]]) -> float | None:
        """Append an evaluation's rows (from :func:`evaluate`); return the mean score (None if no rows)."""
        assert self.eval_log is not None, "start_attempt first"
        if not rows:
            return None
        step = rows[0]["step"]
        mean = float(np.mean([row["score"] for row in rows]))
        for row in rows:
            self.eval_log.append({**row, "score_mean": mean})
            self.on_metrics(f"eval/score/{row['task']}", row["score"], step)
            if self.writer is not None:
                for key in ("return", "success", "score"):
                    if row[key] is not None:
                        self.writer.add_scalar(f"eval/{key}/{row['task']}", row[key], step)
        self.on_metrics("eval/score", mean, step)
        if self.writer is not None:
            self.writer.add_scalar("eval/score_mean", mean, step)
            self.writer.flush()  # an evaluation is worth seeing at once
        return mean

    def close_writer(self) -> None:
        """Flush and close the TensorBoard writer (at the end of an attempt)."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    # -------------------------------------------------------------------------- checkpoints
    def save_checkpoint(self, payload: dict[str, Any]) -> None:
        """Write ``payload`` (anything ``torch.save`` takes) as latest.pt; the old one becomes previous.pt."""
        tmp = self.checkpoint_dir / (CHECKPOINT + ".tmp")
        torch.save(payload, tmp)
        if (self.checkpoint_dir / CHECKPOINT).exists():
            os.replace(self.checkpoint_dir / CHECKPOINT, self.checkpoint_dir / PREVIOUS_CHECKPOINT)
        os.replace(tmp, self.checkpoint_dir / CHECKPOINT)
