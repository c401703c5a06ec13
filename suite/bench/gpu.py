"""``m3po bench gpu``: the GPU path in one command: speed at the paper's sizes, and resume on CUDA.

Made to finish in about 8 minutes on one GPU, and to print one JSON line:

- ``speed``: M3PO and TD-MPC2 with the ``paper`` preset on cartpole-swingup at 1, 32 and 1024 envs:
  training agent steps/s (the last train.jsonl row's ``time/sps``, after warm-up; no evaluation),
  milliseconds per planning decision (one batched ``act`` for all envs, synchronised) and the peak
  GPU memory of each. M3PO's rollout is shortened at many envs (``rollout_len`` at least 16,
  ``2048 / envs`` otherwise, never more than the preset's) and TD-MPC2 learns after
  ``max(envs, 16)`` random steps: neither changes the cost of an agent step.
- ``resume``: every registered algorithm trains a short run (its ``m3po bench algos`` run) on the
  device twice, as ``m3po train`` runs it: straight through, and killed (SIGKILL) once its first
  checkpoint is written, then resumed by the same command. ``matched``: the resumed run's
  eval.jsonl and train.jsonl (without time and memory) equal the straight run's.

Without CUDA it stops at once, saying so. ``--device cpu`` runs the same checks on the CPU at small
sizes (the tests do; it is not a GPU figure).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from m3po.config import ConfigError
from m3po.envs import task_dims
from m3po.record import EVAL_LOG, TRAIN_LOG, read_jsonl
from m3po.trainer.run_record import CHECKPOINT
from suite.registry import ALGORITHMS, get_algorithm

TASK = "cartpole-swingup"
TASK_SET = "cartpole-swingup,reacher-easy"
ENV_COUNTS = (1, 32, 1024)
MEASURED = ("time/", "mem/")  # wall-clock and memory figures differ between identical runs
# Small sizes for --device cpu: the same code paths, seconds instead of minutes.
SMALL = {
    "m3po": {"model": {"latent_dim": 16, "enc_dim": 32, "mlp_dim": 32, "num_bins": 21}},
    "tdmpc2": {"latent_dim": 16, "enc_dim": 32, "mlp_dim": 32, "num_bins": 21, "batch_size": 16},
}


def check_device(device: str) -> None:
    """Refuse a CUDA device where torch sees none (before any work)."""
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"m3po bench gpu needs CUDA, and torch sees no CUDA device here (device={device!r}); "
            "the GPU figures cannot be measured on this machine (--device cpu runs the same checks "
            "on the CPU at small sizes)"
        )


# ------------------------------------------------------------------------------------------ speed
def _speed_config(algo: str, num_envs: int, device: str, preset: str, small: bool) -> Any:
    spec = get_algorithm(algo)
    overrides: dict[str, Any] = dict(SMALL[algo]) if small else {}
    common = dict(task=TASK, num_envs=num_envs, eval_episodes=0, checkpoint_every=0, device=device)
    if algo == "m3po":
        rollout = min(spec.preset_dict(preset)["ppo"]["rollout_len"], max(16, 2048 // num_envs))
        steps = 2 * rollout * num_envs  # two iterations: the second one is measured
        return spec.make_config(preset, steps=steps, ppo={"rollout_len": rollout}, **common, **overrides)
    # TD-MPC2: random steps (at least one batch of envs and a few windows), the pretraining, then two
    # measured rows of one update per agent step
    log_every = max(num_envs, 16)
    return spec.make_config(
        preset, steps=3 * log_every, seed_steps=log_every, log_every=log_every, **common, **overrides
    )


def _decision_ms(agent: Any, num_envs: int, obs_dim: int, device: Any, repeats: int) -> float:
    """Median milliseconds of one planned action for ``num_envs`` envs (synchronised on CUDA)."""
    import torch

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    obs = torch.randn(num_envs, obs_dim, device=device)
    task_ids = torch.zeros(num_envs, dtype=torch.long, device=device)
    times = []
    with torch.no_grad():
        for i in range(repeats + 2):  # 2 warm-up decisions
            sync()
            start = time.perf_counter()
            agent.act(obs, task_ids)
            sync()
            if i >= 2:
                times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def measure_speed(algo: str, num_envs: int, device: str, preset: str, small: bool, root: Path) -> dict:
    """Train ``algo``'s speed run with ``num_envs`` envs; its steps/s, ms per decision and peak memory."""
    import torch

    from baselines.tdmpc2.train import TDMPC2Trainer
    from m3po.train import Trainer

    cfg = _speed_config(algo, num_envs, device, preset, small)
    run_dir = root / f"speed-{algo}-{num_envs}"
    trainer = (Trainer if algo == "m3po" else TDMPC2Trainer)(cfg, run_dir, progress=False)
    if trainer.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(trainer.device)
    start = time.perf_counter()
    trainer.run()
    seconds = time.perf_counter() - start
    rows = read_jsonl(run_dir / TRAIN_LOG)
    ms = _decision_ms(trainer.agent, num_envs, task_dims(TASK)[0], trainer.device, repeats=3 if small else 10)
    peak = torch.cuda.max_memory_allocated(trainer.device) / 2**20 if trainer.device.type == "cuda" else None
    return {
        "sps": round(rows[-1]["time/sps"], 1),
        "ms_per_decision": round(ms, 2),
        "peak_gpu_mib": None if peak is None else round(peak, 1),
        "steps": rows[-1]["step"],
        "seconds": round(seconds, 1),
    }


# ----------------------------------------------------------------------------------------- resume
def _train_command(algo: str, device: str, run_dir: Path, steps: int | None) -> list[str]:
    spec = ALGORITHMS[algo]
    task = TASK_SET if spec.task_mode == "multi" else TASK
    steps = steps or int(spec.bench.get("steps", 2048))
    flat: list[str] = []

    def walk(values: dict, prefix: str) -> None:
        for key, value in values.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            else:
                flat.append(f"{prefix}{key}={value}")

    walk(spec.bench.get("overrides", {}), "")
    checkpoint = max(1, steps // 3)
    # On a CPU (the tests' stand-in) one torch thread: two threads on a 2-core machine beside any other
    # busy process stall at every op's barrier (measured: about 20 minutes for 3,072 M3PO steps).
    threads = ["threads=1"] if device == "cpu" else []
    return [
        sys.executable, "-m", "suite.cli", "train", "with", f"algo={algo}", f"task={task}", "seed=1",
        f"steps={steps}", f"checkpoint_every={checkpoint}", f"eval_every={checkpoint}", "eval_episodes=1",
        f"device={device}", "progress=False", f"run_dir={run_dir}", *threads, *flat,
    ]  # fmt: skip


def _records(run_dir: Path) -> tuple[list, list]:
    train = read_jsonl(run_dir / TRAIN_LOG)
    return read_jsonl(run_dir / EVAL_LOG), [
        {k: v for k, v in r.items() if not k.startswith(MEASURED)} for r in train
    ]


def check_resume(
    algo: str, device: str, root: Path, steps: int | None = None, timeout_s: float = 600
) -> dict[str, Any]:
    """Straight run and killed-then-resumed run of ``algo``; whether their records match.

    :param steps: the runs' budget (None: the algorithm's ``m3po bench algos`` run); checkpoints and
        evaluations every third of it
    """
    spec = ALGORITHMS[algo]
    if spec.missing_requirements():
        return {"status": "missing", "missing": spec.missing_requirements()}
    straight, cut = root / f"resume-{algo}-straight", root / f"resume-{algo}-cut"
    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "disable")}
    command = _train_command(algo, device, straight, steps)
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        return {"status": "failed", "error": done.stderr.strip().splitlines()[-1:]}
    command = _train_command(algo, device, cut, steps)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    checkpoint = cut / "checkpoints" / CHECKPOINT
    deadline = time.monotonic() + timeout_s
    while process.poll() is None and not checkpoint.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    killed = process.poll() is None
    if killed:
        os.kill(process.pid, signal.SIGKILL)
    process.wait()
    resumed = subprocess.run(command, capture_output=True, text=True, env=env)
    if resumed.returncode != 0:
        return {"status": "failed", "killed": killed, "error": resumed.stderr.strip().splitlines()[-1:]}
    status = json.loads((cut / "status.json").read_text())
    resumed_from = [a["resumed_from_step"] for a in status["attempts"]][1:]
    return {
        "status": "ok",
        "killed": killed,  # False: the run finished before its first checkpoint could be seen
        "resumed_from": resumed_from,
        "matched": _records(cut) == _records(straight),
    }


# --------------------------------------------------------------------------------------------- all
def run(
    device: str = "cuda",
    env_counts: tuple[int, ...] = ENV_COUNTS,
    algos: tuple[str, ...] | None = None,
    preset: str = "paper",
    small: bool = False,
    resume_steps: int | None = None,
) -> dict[str, Any]:
    """Every figure of the module docstring on ``device`` (a CUDA device, or ``cpu`` for a check run).

    :param env_counts: env counts of the speed part
    :param algos: algorithms of the resume part (None: every registered one)
    :param preset: the speed part's preset
    :param small: small model sizes in the speed part (a CPU check run)
    :param resume_steps: budget of the resume runs (None: each algorithm's ``m3po bench algos`` run)
    """
    check_device(device)
    import torch

    names = tuple(algos or ALGORITHMS)
    out: dict[str, Any] = {
        "device": device,
        "device_name": torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu",
        "preset": preset,
        "torch": torch.__version__,
        "speed": {},
        "resume": {},
    }
    with tempfile.TemporaryDirectory(prefix="m3po-bench-gpu-") as tmp:
        root = Path(tmp)
        for algo in ("m3po", "tdmpc2"):
            out["speed"][algo] = {
                str(n): measure_speed(algo, n, device, preset, small, root) for n in env_counts
            }
        for algo in names:
            out["resume"][algo] = check_resume(algo, device, root, resume_steps)
    checked = [r for r in out["resume"].values() if r["status"] != "missing"]
    out["all_resumes_matched"] = all(r.get("matched") for r in checked)
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N, or cpu (a check run at small sizes)")
    parser.add_argument(
        "--envs", default=",".join(map(str, ENV_COUNTS)), help="comma list of env counts for the speed part"
    )
    parser.add_argument("--algos", default="", help="comma list of algorithms to resume (default: all)")


def main(args: argparse.Namespace) -> dict[str, Any]:
    check_device(args.device)
    try:
        counts = tuple(int(n) for n in args.envs.split(","))
    except ValueError:
        raise ConfigError(f"--envs takes a comma list of env counts, got {args.envs!r}") from None
    if any(n < 1 for n in counts):
        raise ConfigError(f"--envs: every env count must be >= 1, got {args.envs!r}")
    names = tuple(args.algos.split(",")) if args.algos else None
    for name in names or ():
        get_algorithm(name)  # an unknown name fails here, listing the valid ones
    on_cpu = args.device == "cpu"
    return run(args.device, counts, names, preset="cpu" if on_cpu else "paper", small=on_cpu)
