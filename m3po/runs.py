"""The run record every algorithm writes, and the evaluation protocol every algorithm follows.

A run lives in its own directory (deterministic: no shared counters between concurrent jobs):

    run_dir/
      config.json        {"algo": ..., **resolved config} (a resume with a different config is refused)
      status.json        running | finished | failed | interrupted, step, steps_total, attempts, error
      eval.jsonl         one line per evaluation and task: step, task, return, success, score,
                         episodes, score_mean (mean score over the run's tasks at that step)
      train.jsonl        one line per update (or logging interval): step, the algorithm's metrics,
                         time/sps, time/wall, mem/peak_rss_mib
      checkpoints/       latest.pt (+ previous.pt, the one before), each written atomically

How an algorithm's train entry uses it (see :mod:`suite.registry` for the registry):

    record = RunRecord(run_dir, algo, cfg.to_dict(), steps_total=cfg.steps, device=device,
                       on_metrics=on_metrics)
    checkpoint = record.open()           # validates the directory; the last good checkpoint or None
    state = TrainState(**checkpoint["state"]) if checkpoint else TrainState(...)
    record.start_attempt(state, resumed_from)  # status "running", a new attempt, logs cut to it
    with record.guard(lambda: state):    # status "failed" / "interrupted" on the way out of an error
        ... train ...
        record.log_train({"step": state.step, "iteration": state.iteration}, metrics)
        score = record.log_eval(evaluate(policy, tasks, cfg.seed, state.step, cfg.eval_episodes))
        record.save_checkpoint({"state": state.as_dict(), ...})   # any torch-saveable payload
    record.finish(state, final_score)    # status "finished": never trained again

Evaluate at step 0 (unless resuming), every ``eval_every`` agent steps and at the end; evaluate
before checkpointing the same step, so that a resume never evaluates a step twice. After a resume,
``record.last_score()`` is the last evaluation's mean score.

Evaluation (:func:`evaluate`) takes a policy callable ``(obs, task_ids) -> actions`` over numpy
batches and runs ``episodes`` fresh episodes per task on environments seeded apart from training
(``seed + EVAL_SEED_OFFSET``, and the step), so that every algorithm is scored the same way: the
return summed over the episode, and for Meta-World success at the episode's last step.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from m3po.envs import make_vec_env
from m3po.errors import NonFiniteLossError, RunDirectoryError

if TYPE_CHECKING:
    from m3po.trainer.schedule import TrainState
from m3po.record import (
    CONFIG_FILE,
    EVAL_LOG,
    STATUS_FILE,
    TRAIN_LOG,
    JsonlLog,
    as_json,
    config_differences,
    probe_writable,
    read_config,
    read_status,
    write_json_atomic,
)

CHECKPOINT = "latest.pt"
PREVIOUS_CHECKPOINT = "previous.pt"
EVAL_SEED_OFFSET = 1_000_003  # evaluation episodes never reuse a training seed

MetricsCallback = Callable[[str, float, int], None]
# (observations (n, obs_dim) float32, task ids (n,) int64) -> actions (n, act_dim), deterministic
Policy = Callable[[np.ndarray, np.ndarray], np.ndarray]


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA when present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device={name!r} was asked for, but CUDA is not available here")
    return device


def episode_seed(seed: int, step: int) -> int:
    """Seed of the episodes started at ``step`` of a run seeded ``seed``."""
    return (seed * 1_000_003 + step) % (2**31 - 1)


def peak_memory_mib(device: torch.device) -> dict[str, float]:
    """Peak resident memory of this process so far (and peak CUDA memory on a GPU), in MiB."""
    import resource

    peak = {"mem/peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # Linux: KiB
    if device.type == "cuda":
        peak["mem/peak_cuda_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return peak


class RunRecord:
    """The run directory of one run: config, status, logs and checkpoints.

    :param run_dir: the run's own directory (created if missing)
    :param algo: the algorithm's registry name, recorded in ``config.json``
    :param config: the resolved config as a plain dict (``cfg.to_dict()``)
    :param steps_total: the run's agent-step budget (recorded in ``status.json``)
    :param device: where checkpoints are loaded to
    :param on_metrics: callback ``(name, value, step)`` for every scalar (Sacred's ``log_scalar``)
    """

    def __init__(
        self,
        run_dir: Path,
        algo: str,
        config: dict[str, Any],
        steps_total: int,
        device: torch.device,
        on_metrics: MetricsCallback | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.config = {"algo": algo, **config}
        self.steps_total = steps_total
        self.device = device
        self.on_metrics: MetricsCallback = on_metrics or (lambda name, value, step: None)
        self.warnings: list[str] = []
        self.attempts: list[dict[str, Any]] = []
        self.eval_log: JsonlLog | None = None
        self.train_log: JsonlLog | None = None

    @property
    def checkpoint_dir(self) -> Path:
        return self.run_dir / "checkpoints"

    # ------------------------------------------------------------------------------ opening
    def open(self) -> dict | None:
        """Create or check the run directory; return the checkpoint to resume from, if any.

        :raises RunDirectoryError: the directory is not writable, holds a finished run, or was
            started with another config (runtime keys such as ``threads`` may change)
        """
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
            diff = config_differences(recorded, as_json(self.config))
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
                "host": platform.node(),
                "slurm_job_id": os.environ.get("SLURM_JOB_ID"),  # None outside SLURM
            }
        ]
        self.write_status("running", state, attempts=self.attempts, **status_extra)
        self.eval_log = JsonlLog(self.run_dir / EVAL_LOG, resumed_from)
        self.train_log = JsonlLog(self.run_dir / TRAIN_LOG, resumed_from)

    def write_status(self, status: str, state: TrainState, **extra: Any) -> None:
        record = self.read_status()
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
            self.write_status("failed", state(), error=str(err), attempts=self.attempts)
            raise
        except BaseException as err:
            self.write_status(
                "interrupted", state(), error=f"{type(err).__name__}: {err}", attempts=self.attempts
            )
            raise

    def finish(self, state: TrainState, final_score: float | None) -> None:
        """Mark the run finished (a finished run is never trained again)."""
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
        self.on_metrics("eval/score", mean, step)
        return mean

    # -------------------------------------------------------------------------- checkpoints
    def save_checkpoint(self, payload: dict[str, Any]) -> None:
        """Write ``payload`` (anything ``torch.save`` takes) as latest.pt; the old one becomes previous.pt."""
        tmp = self.checkpoint_dir / (CHECKPOINT + ".tmp")
        torch.save(payload, tmp)
        if (self.checkpoint_dir / CHECKPOINT).exists():
            os.replace(self.checkpoint_dir / CHECKPOINT, self.checkpoint_dir / PREVIOUS_CHECKPOINT)
        os.replace(tmp, self.checkpoint_dir / CHECKPOINT)


def torch_rng_state() -> dict[str, Any]:
    """Torch's global RNG states, for a checkpoint (restore with :func:`set_torch_rng_state`)."""
    return {
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def set_torch_rng_state(checkpoint: dict[str, Any]) -> None:
    torch.set_rng_state(checkpoint["torch_rng"].cpu())
    if checkpoint.get("cuda_rng") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(checkpoint["cuda_rng"])


def evaluate(
    policy: Policy,
    tasks: Sequence[str],
    seed: int,
    step: int,
    episodes: int,
    on_round_start: Callable[[], None] | None = None,
) -> list[dict[str, Any]]:
    """The evaluation protocol: ``episodes`` fresh episodes per task with ``policy``'s actions.

    One task: ``episodes`` envs at once. A task set: one env per task, ``episodes`` rounds. Envs are
    seeded from ``seed + EVAL_SEED_OFFSET`` and ``step`` (never a training seed). The policy must be
    deterministic (its evaluation mode); padded action dims it returns are zeroed by the env.

    :param policy: ``(obs (n, obs_dim) float32, task_ids (n,) int64) -> actions (n, act_dim)``
    :param tasks: the run's tasks (their order gives the task ids)
    :param seed: the run seed
    :param step: the agent step being evaluated (recorded, and part of the episodes' seeds)
    :param episodes: episodes per task (0: no evaluation, an empty list)
    :param on_round_start: called before each round's episodes start (e.g. to clear a warm start)
    :return: one row per task: step, task, return (mean), success (mean, Meta-World; else None),
        score (return, or success in percent), episodes
    """
    if episodes == 0:
        return []
    n_tasks = len(tasks)
    parallel = episodes if n_tasks == 1 else 1
    rounds = math.ceil(episodes / parallel)
    env = make_vec_env(list(tasks), n_tasks * parallel, seed=seed + EVAL_SEED_OFFSET)
    returns: dict[str, list[float]] = {t: [] for t in env.tasks}
    successes: dict[str, list[float]] = {t: [] for t in env.tasks}
    try:
        for r in range(rounds):
            obs = env.reset(seed=episode_seed(seed + EVAL_SEED_OFFSET, step + r))[0]
            if on_round_start is not None:
                on_round_start()
            total = np.zeros(env.num_envs)
            done = np.zeros(env.num_envs, dtype=bool)
            last_success = np.full(env.num_envs, np.nan)
            while not done.all():
                action = np.asarray(policy(obs, env.task_ids))
                obs, reward, terminated, truncated, info = env.step(action)
                total += np.where(done, 0.0, reward)
                ended = (terminated | truncated) & ~done
                last_success[ended] = info["success"][ended]
                done |= terminated | truncated
            for i, task in enumerate(env.env_tasks):
                returns[task].append(float(total[i]))
                successes[task].append(float(last_success[i]))
    finally:
        env.close()
    rows = []
    for info in env.task_infos:
        rets = returns[info.name][:episodes]
        succ = successes[info.name][:episodes]
        is_success = info.score_kind == "success"
        rows.append(
            {
                "step": step,
                "task": info.name,
                "return": float(np.mean(rets)),
                "success": float(np.mean(succ)) if is_success else None,
                "score": 100.0 * float(np.mean(succ)) if is_success else float(np.mean(rets)),
                "episodes": len(rets),
            }
        )
    return rows


def evaluate_planning_agent(
    agent: Any, tasks: Sequence[str], seed: int, step: int, episodes: int, plan: bool, device: torch.device
) -> list[dict[str, Any]]:
    """:func:`evaluate` for an agent with ``act(obs, task_ids, eval_mode, plan)`` and a planner warm start
    (M3PO, TD-MPC2): every evaluation round starts without a warm start, and training's is kept aside.

    :param agent: the agent (``act`` returns an object with ``action``; ``swap_warm_start`` as M3PO's)
    :param plan: act with the planner (False: the prior's mode alone)
    :return: the evaluation rows, as :func:`evaluate`'s
    """

    def policy(obs: np.ndarray, task_ids: np.ndarray) -> np.ndarray:
        obs_t, task_t = torch.as_tensor(obs, device=device), torch.as_tensor(task_ids, device=device)
        return agent.act(obs_t, task_t, eval_mode=True, plan=plan).action.cpu().numpy()

    saved_plan = agent.swap_warm_start(None)
    try:
        return evaluate(
            policy, tasks, seed, step, episodes, on_round_start=lambda: agent.swap_warm_start(None)
        )
    finally:
        agent.swap_warm_start(saved_plan)


def progress_bar(enabled: bool, total: int, initial: int, desc: str) -> Any:
    """A tqdm bar on stderr (None when disabled)."""
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="step", desc=desc, dynamic_ncols=True)
