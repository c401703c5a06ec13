"""Helpers shared by the fault tests of the workflow, local (test_faults.py) and on SLURM (test_slurm.py).

A fault test trains on a small grid of its own (the smoke grid, changed), written to a config file
the workflow is given with ``--configfile``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
LONG_RUN = "results/runs/faults/m3po/cartpole-swingup/default/seed1"
TRAIN_SCRIPT = ROOT / "workflow" / "scripts" / "train.py"


def smoke_grid() -> dict:
    return yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())


def grid_file(tmp_path: Path, grid: dict) -> list[str]:
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump({"grid": grid}))
    return ["--configfile", str(path)]


def faults_grid() -> dict:
    """The smoke grid as profile ``faults``, M3PO runs only (the fault hooks are M3PO's)."""
    grid = smoke_grid()
    grid["profile"] = "faults"
    for spec in grid["figures"].values():
        spec["algos"] = ["m3po"]
    return grid


def long_run_grid(steps: int = 384) -> dict:
    """:func:`faults_grid` whose cartpole-swingup runs train ``steps``: long enough to be killed
    after a checkpoint (every 64 steps), evaluated every 128."""
    grid = faults_grid()
    for fig in ("fig3a", "ablations"):  # they share the default cartpole-swingup run
        grid["figures"][fig]["steps"] = steps
    return grid


def snakemake_command(workdir: Path, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(ROOT / "workflow" / "Snakefile"),
        "--directory",
        str(workdir),
        *args,
    ]


def status(run_dir: Path) -> dict:
    path = run_dir / "status.json"
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):  # not written yet, or being replaced
        return {}


def eval_steps(run_dir: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run_dir / "eval.jsonl").read_text().splitlines()]


def wait_for(
    condition: Callable[[], bool], what: str, timeout: float, proc: subprocess.Popen | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(f"the workflow ended ({proc.returncode}) before {what}:\n{out[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.3)


def trained_past(run_dir: Path, step: int) -> Callable[[], bool]:
    """True once the running run has trained past ``step`` (train.jsonl) and holds a checkpoint."""

    def check() -> bool:
        path = run_dir / "train.jsonl"
        if status(run_dir).get("status") != "running" or not path.exists():
            return False
        lines = path.read_text().splitlines()
        try:
            last = json.loads(lines[-1])["step"] if lines else 0
        except json.JSONDecodeError:  # being written
            return False
        return last >= step and (run_dir / "checkpoints" / "latest.pt").exists()

    return check


def processes_with(text: str) -> list[int]:
    """Process ids whose command line holds ``text`` (to find the training process this test started)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline and int(entry.name) != os.getpid():
            found.append(int(entry.name))
    return found


def _argv(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_text(errors="replace").split("\0")


def trainer_pid(workdir: Path, run: str) -> int:
    """The process id of the training job (workflow/scripts/train.py, which trains in-process) this
    test's workflow runs for ``run`` (not the shell Snakemake starts it from)."""
    found = [
        pid
        for pid in processes_with(f"run_dir={run}")
        if len(argv := _argv(pid)) > 1
        and argv[1] == str(TRAIN_SCRIPT)
        and os.readlink(f"/proc/{pid}/cwd") == str(workdir)
    ]
    assert len(found) == 1, f"training processes of {run}: {found}"
    return found[0]


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the workflow started with ``start_new_session=True`` and everything it started."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def assert_resumed_cleanly(
    run_dir: Path, steps: int, eval_every: int, checkpoint_every: int = 64
) -> list[dict]:
    """The run finished after one resume from a checkpoint (not from scratch), and its curve has each
    evaluation step exactly once. Returns its attempts."""
    record = status(run_dir)
    assert record["status"] == "finished" and record["step"] == steps
    attempts = record["attempts"]
    assert len(attempts) == 2, attempts
    assert attempts[0]["resumed_from_step"] is None
    resumed = attempts[1]["resumed_from_step"]
    assert resumed and resumed % checkpoint_every == 0, attempts
    assert eval_steps(run_dir) == list(range(0, steps + 1, eval_every))
    return attempts
