"""The M3PO training loop: collect, update, evaluate, checkpoint, resume.

A run lives in its own directory (deterministic: no shared counters between concurrent jobs):

    run_dir/
      config.json        resolved config (a resume with a different config is refused)
      status.json        running | finished | failed, step, attempts, error
      eval.jsonl         one line per evaluation and task: step, task, return, success, score
      train.jsonl        one line per iteration: step, losses, bonus, PPO and planner diagnostics
      checkpoints/       latest.pt (+ the previous good one), written atomically

Checkpoints fall on iteration boundaries. At each checkpoint every training env starts a fresh
episode, seeded from the run seed and the step, and the step before it is recorded as truncated
(bootstrapped, as any time limit). So a run resumed from a checkpoint replays exactly what the
uninterrupted run does: same data, same weights.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from m3po.agent import M3POAgent, Rollout
from m3po.config import M3POConfig
from m3po.envs import VecEnv, make_vec_env
from m3po.errors import NonFiniteLossError, RunDirectoryError

CHECKPOINT = "latest.pt"
PREVIOUS_CHECKPOINT = "previous.pt"
EVAL_SEED_OFFSET = 1_000_003  # evaluation episodes never reuse a training seed
# Where and how fast a run executes, not what it computes: a resume may change these.
RUNTIME_KEYS = frozenset({"threads", "device", "vec_mode"})


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA when present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device={name!r} was asked for, but CUDA is not available here")
    return device


def _write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)


def _read_jsonl(path: Path) -> list[dict]:
    """Rows of a JSON-lines file; a cut-off last line (killed mid-write) is dropped, other bad lines raise."""
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:
            if number == len(lines):
                break  # the resume rewrites it
            raise RunDirectoryError(f"{path} line {number} is corrupt: {err}") from err
    return rows


class JsonlLog:
    """Append-only JSON-lines file that a resume truncates to the checkpoint's step."""

    def __init__(self, path: Path, keep_until_step: int | None) -> None:
        self.path = path
        rows = _read_jsonl(path)
        if keep_until_step is not None:
            rows = [r for r in rows if r["step"] <= keep_until_step]
        else:
            rows = []
        self.path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        self.rows = rows

    def append(self, row: dict) -> None:
        self.rows.append(row)
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()


@dataclass
class TrainState:
    """Counters a checkpoint carries beside the agent."""

    step: int = 0  # agent steps so far, summed over envs
    iteration: int = 0  # updates so far
    next_eval: int = 0  # agent step at which the next evaluation runs
    next_checkpoint: int = 0  # agent step at which the next checkpoint is written
    wall_time: float = 0.0  # training seconds before this attempt


def _episode_seed(seed: int, step: int) -> int:
    return (seed * 1_000_003 + step) % (2**31 - 1)


class Trainer:
    """Trains M3PO as ``cfg`` says, writing the run record into ``run_dir``.

    :param cfg: validated config
    :param run_dir: the run's own directory
    :param on_metrics: callback ``(name, value, step)`` for every scalar (Sacred's ``log_scalar``)
    :param progress: show a progress bar on stderr
    """

    def __init__(
        self,
        cfg: M3POConfig,
        run_dir: Path,
        on_metrics: Callable[[str, float, int], None] | None = None,
        progress: bool = True,
    ) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.on_metrics = on_metrics or (lambda name, value, step: None)
        self.progress = progress
        self.device = resolve_device(cfg.device)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)

    # ----------------------------------------------------------------------------------- setup
    def _prepare_run_dir(self) -> dict | None:
        """Create or check the run directory; return the checkpoint to resume from, if any."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "checkpoints").mkdir(exist_ok=True)
        probe = self.run_dir / ".write-test"
        try:
            probe.write_text("ok")
            probe.unlink()
        except OSError as err:
            raise RunDirectoryError(f"cannot write to run directory {self.run_dir}: {err}") from err
        config_path = self.run_dir / "config.json"
        config = self.cfg.to_dict()
        status = self._read_status()
        if status.get("status") == "finished":
            raise RunDirectoryError(
                f"{self.run_dir} holds a finished run (step {status.get('step')}); "
                "delete it or choose another run directory to train again"
            )
        if config_path.exists():
            recorded = json.loads(config_path.read_text())
            current = json.loads(json.dumps(config))
            diff = sorted(
                k
                for k in current.keys() | recorded.keys()
                if k not in RUNTIME_KEYS and recorded.get(k) != current.get(k)
            )
            if diff:
                raise RunDirectoryError(
                    f"{self.run_dir} was started with another config (differs in: {', '.join(diff)}); "
                    "a resume must use the same config"
                )
        else:
            _write_json_atomic(config_path, config)
        return self._load_checkpoint()

    def _read_status(self) -> dict:
        path = self.run_dir / "status.json"
        if not path.exists():
            return {}
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise RunDirectoryError(f"{path} is corrupt: {err}") from err

    def _load_checkpoint(self) -> dict | None:
        folder = self.run_dir / "checkpoints"
        for name in (CHECKPOINT, PREVIOUS_CHECKPOINT):
            path = folder / name
            if not path.exists():
                continue
            try:
                return torch.load(path, map_location=self.device, weights_only=False)
            except Exception as err:  # noqa: BLE001 - any unreadable file: fall back and say so
                self._warn(
                    f"checkpoint {path} is unreadable ({type(err).__name__}: {err}); trying an older one"
                )
        if any((folder / name).exists() for name in (CHECKPOINT, PREVIOUS_CHECKPOINT)):
            self._warn(f"no readable checkpoint in {folder}: the run starts from scratch")
        return None

    def _warn(self, message: str) -> None:
        import sys

        print(f"m3po: warning: {message}", file=sys.stderr, flush=True)
        self._warnings.append(message)

    def _save_checkpoint(self, agent: M3POAgent, state: TrainState) -> None:
        folder = self.run_dir / "checkpoints"
        payload = {
            "agent": agent.state_dict(),
            "state": state.__dict__.copy(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        }
        tmp = folder / (CHECKPOINT + ".tmp")
        torch.save(payload, tmp)
        if (folder / CHECKPOINT).exists():
            os.replace(folder / CHECKPOINT, folder / PREVIOUS_CHECKPOINT)
        os.replace(tmp, folder / CHECKPOINT)

    def _write_status(self, status: str, state: TrainState, **extra: Any) -> None:
        record = self._read_status()
        record.update({"status": status, "step": state.step, "steps_total": self.cfg.steps, **extra})
        _write_json_atomic(self.run_dir / "status.json", record)

    # -------------------------------------------------------------------------------- training
    def run(self) -> dict[str, Any]:
        """Train to ``cfg.steps`` (resuming if the run directory has a checkpoint); return a summary."""
        cfg = self.cfg
        self._warnings: list[str] = []
        checkpoint = self._prepare_run_dir()
        torch.manual_seed(cfg.seed)
        env = make_vec_env(cfg.task, cfg.num_envs, seed=cfg.seed, mode=cfg.vec_mode)
        try:
            return self._train(env, checkpoint)
        finally:
            env.close()

    def _train(self, env: VecEnv, checkpoint: dict | None) -> dict[str, Any]:
        cfg = self.cfg
        device = self.device
        task_discount = torch.tensor([info.discount for info in env.task_infos])
        agent = M3POAgent(
            cfg, env.obs_dim, env.act_dim, torch.as_tensor(env.task_action_mask), task_discount, device
        )
        state = TrainState(next_eval=0, next_checkpoint=cfg.checkpoint_every or cfg.steps)
        resumed_from = None
        if checkpoint is not None:
            agent.load_state_dict(checkpoint["agent"])
            state = TrainState(**checkpoint["state"])
            torch.set_rng_state(checkpoint["torch_rng"])
            if checkpoint["cuda_rng"] is not None and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(checkpoint["cuda_rng"])
            resumed_from = state.step
        status = self._read_status()
        attempts = status.get("attempts", []) + [
            {
                "started": time.time(),
                "resumed_from_step": resumed_from,
                "host": platform.node(),
                "slurm_job_id": os.environ.get("SLURM_JOB_ID"),  # None outside SLURM
            }
        ]
        self._write_status("running", state, attempts=attempts, task_counts=env.task_counts)
        keep = resumed_from if resumed_from is not None else None
        eval_log = JsonlLog(self.run_dir / "eval.jsonl", keep)
        train_log = JsonlLog(self.run_dir / "train.jsonl", keep)
        task_ids = torch.as_tensor(env.task_ids, device=device)
        obs_np, _ = env.reset(seed=_episode_seed(cfg.seed, state.step))
        obs = torch.as_tensor(obs_np, device=device)
        agent.reset_warm_start(torch.ones(env.num_envs, dtype=torch.bool, device=device))
        bar = self._progress_bar(state.step)
        attempt_start = time.perf_counter()
        last_eval: float | None = eval_log.rows[-1]["score_mean"] if eval_log.rows else None
        try:
            if state.step == 0 and not eval_log.rows:
                last_eval = self._evaluate(agent, env, state, eval_log)
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
                train_log.append({"step": state.step, "iteration": state.iteration, **stats})
                for name, value in stats.items():
                    self.on_metrics(name, value, state.step)
                if bar is not None:
                    bar.update(batch.rewards.numel())
                    bar.set_postfix(sps=f"{stats['time/sps']:.0f}", eval=_fmt(last_eval))
                # Evaluate before checkpointing, so a resume never evaluates the same step twice.
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
                    if cut:  # fresh, seeded episodes: see the module docstring
                        obs = torch.as_tensor(
                            env.reset(seed=_episode_seed(cfg.seed, state.step))[0], device=device
                        )
                        agent.reset_warm_start(torch.ones(env.num_envs, dtype=torch.bool, device=device))
        except NonFiniteLossError as err:
            self._write_status("failed", state, error=str(err), attempts=attempts)
            raise
        except BaseException as err:
            self._write_status("interrupted", state, error=f"{type(err).__name__}: {err}", attempts=attempts)
            raise
        finally:
            if bar is not None:
                bar.close()
        summary = {
            "step": state.step,
            "final_score": last_eval,
            "wall_time": state.wall_time,
            "resumed_from": resumed_from,
            "warnings": self._warnings,
        }
        self._write_status("finished", state, attempts=attempts, final_score=last_eval)
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

    def _evaluate(
        self, agent: M3POAgent, train_env: VecEnv, state: TrainState, log: JsonlLog
    ) -> float | None:
        """Evaluation: ``eval_episodes`` fresh episodes per task, planner in eval mode (no exec noise).

        Returns the mean score over tasks (None when ``eval_episodes`` is 0).
        """
        cfg = self.cfg
        if cfg.eval_episodes == 0:
            return None
        n_tasks = len(train_env.tasks)
        parallel = cfg.eval_episodes if n_tasks == 1 else 1
        rounds = math.ceil(cfg.eval_episodes / parallel)
        env = make_vec_env(train_env.tasks, n_tasks * parallel, seed=cfg.seed + EVAL_SEED_OFFSET)
        device = self.device
        task_ids = torch.as_tensor(env.task_ids, device=device)
        returns: dict[str, list[float]] = {t: [] for t in env.tasks}
        successes: dict[str, list[float]] = {t: [] for t in env.tasks}
        saved_plan = agent.swap_warm_start(None)
        try:
            for r in range(rounds):
                obs = torch.as_tensor(
                    env.reset(seed=_episode_seed(cfg.seed + EVAL_SEED_OFFSET, state.step + r))[0]
                )
                agent.swap_warm_start(None)
                total = np.zeros(env.num_envs)
                done = np.zeros(env.num_envs, dtype=bool)
                last_success = np.full(env.num_envs, np.nan)
                while not done.all():
                    action = agent.act(obs.to(device), task_ids, eval_mode=True, plan=cfg.eval_planner).action
                    next_obs, reward, terminated, truncated, info = env.step(action.cpu().numpy())
                    total += np.where(done, 0.0, reward)
                    ended = (terminated | truncated) & ~done
                    last_success[ended] = info["success"][ended]
                    done |= terminated | truncated
                    obs = torch.as_tensor(next_obs)
                for i, task in enumerate(env.env_tasks):
                    returns[task].append(float(total[i]))
                    successes[task].append(float(last_success[i]))
        finally:
            agent.swap_warm_start(saved_plan)
            env.close()
        rows = []
        for info in env.task_infos:
            rets = returns[info.name][: cfg.eval_episodes]
            succ = successes[info.name][: cfg.eval_episodes]
            is_success = info.score_kind == "success"
            rows.append(
                {
                    "step": state.step,
                    "task": info.name,
                    "return": float(np.mean(rets)),
                    "success": float(np.mean(succ)) if is_success else None,
                    "score": 100.0 * float(np.mean(succ)) if is_success else float(np.mean(rets)),
                    "episodes": len(rets),
                }
            )
        mean = float(np.mean([row["score"] for row in rows]))
        for row in rows:
            log.append({**row, "score_mean": mean})
            self.on_metrics(f"eval/score/{row['task']}", row["score"], state.step)
        self.on_metrics("eval/score", mean, state.step)
        return mean

    def _progress_bar(self, initial: int):
        if not self.progress:
            return None
        from tqdm import tqdm

        return tqdm(
            total=self.cfg.steps,
            initial=initial,
            unit="step",
            desc=f"m3po {self.cfg.task}",
            dynamic_ncols=True,
        )


def peak_memory_mib(device: torch.device) -> dict[str, float]:
    """Peak resident memory of this process so far (and peak CUDA memory on a GPU), in MiB."""
    import resource

    peak = {"mem/peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # Linux: KiB
    if device.type == "cuda":
        peak["mem/peak_cuda_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return peak


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"
