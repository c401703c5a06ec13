"""``m3po bench dag``: the size of the ``paper`` grid's DAG and how long a dry run of it takes.

Runs ``snakemake -n figures --config profile=paper`` once, in an empty working directory (so no
existing result shortens the DAG), and prints the number of jobs (and of training jobs) from
Snakemake's job table with the dry run's wall-clock seconds. Target: under 30 s.
"""

import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SNAKEFILE = Path(__file__).resolve().parents[2] / "workflow" / "Snakefile"
TARGET_SECONDS = 30.0


def job_counts(dry_run_output: str) -> dict[str, int]:
    """Rule -> jobs, from the ``Job stats`` table of a dry run (``total`` included)."""
    table = dry_run_output.split("Job stats:", 1)[1]
    return {rule: int(count) for rule, count in re.findall(r"^(\S+)\s+(\d+)$", table, flags=re.M)}


def run(profile: str = "paper") -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="m3po-dag-") as workdir:
        command = [
            sys.executable, "-m", "snakemake", "-n", "-s", str(SNAKEFILE), "--directory", workdir,
            "figures", "--config", f"profile={profile}",
        ]  # fmt: skip
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"dry run failed ({done.returncode}):\n{done.stderr[-2000:]}")
    counts = job_counts(done.stdout + done.stderr)
    return {
        "profile": profile,
        "jobs": counts["total"],
        "train_jobs": counts.get("train", 0),
        "dry_run_seconds": round(seconds, 2),
        "target_seconds": TARGET_SECONDS,
    }
