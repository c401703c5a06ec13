"""The workflow on a real one-node SLURM cluster (tests/slurm_cluster.py), through
``workflow/profiles/slurm`` and snakemake-executor-plugin-slurm, as a user runs it:

* the smoke profile: every job goes through ``sbatch``, each run record names its SLURM job, and
  the collected table and figures are those of a local smoke run;
* a training job killed (``scancel --signal=KILL``) after a checkpoint: rerunning the workflow
  resumes it under a new SLURM job, with no duplicated or missing evaluation steps.

They need root and Debian's ``slurm-wlm`` and ``munge`` (``.ci/run`` installs them); where SLURM
cannot start, they fail saying why. ``make test-slurm`` runs just these (a few minutes).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import matplotlib.image
import pandas as pd
import pytest
from slurm_cluster import SlurmCluster, SlurmUnavailable
from test_workflow import expected_runs
from workflow_faults import (
    LONG_RUN,
    ROOT,
    assert_resumed_cleanly,
    grid_file,
    long_run_grid,
    snakemake_command,
    status,
    trained_past,
    wait_for,
)

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

# What the cluster test overrides in the profile: the test node has 2 CPUs, no GPU, partition `main`,
# no accounting (so job states come from squeue), and polls fast. Everything else is the profile's.
CLUSTER_ARGS = [
    "--profile", str(ROOT / "workflow" / "profiles" / "slurm"),
    "--slurm-status-command", "squeue",
    "--slurm-init-seconds-before-status-checks", "2",
    "--latency-wait", "5",
    "--jobs", "2",
    "--default-resources", "slurm_partition=main", "mem_mb=1500", "runtime=30", "cpus_per_task=1",
    "--set-resources", "train:mem_mb=2500", "train:cpus_per_task=1",
    "--set-threads", "train=1",
]  # fmt: skip
# Measured per run, so they differ between two runs of the same grid.
MEASURED = ["wall_clock", "sps"]


@pytest.fixture(scope="module")
def cluster():
    try:
        running = SlurmCluster().start()
    except SlurmUnavailable as err:
        pytest.fail(f"SLURM cannot be started on this machine: {err}", pytrace=False)
    yield running
    running.stop()


def slurm_command(workdir: Path, *args: str, config: tuple[str, ...] = ()) -> list[str]:
    """Targets and options first; the cluster's options (some take several values) after them, and
    ``--config`` last (it takes every word after it)."""
    return snakemake_command(workdir, *args, *CLUSTER_ARGS, *(["--config", *config] if config else []))


def on_slurm(
    cluster: SlurmCluster, workdir: Path, *args: str, config: tuple[str, ...] = ()
) -> subprocess.CompletedProcess:
    command = slurm_command(workdir, *args, config=config)
    return subprocess.run(command, capture_output=True, text=True, env=cluster.env())


def test_smoke_profile_runs_through_sbatch_like_a_local_run(cluster, tmp_path, smoke_run):
    done = on_slurm(cluster, tmp_path / "slurm", "figures", config=("profile=smoke",))
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-5000:]
    slurm, local = tmp_path / "slurm", smoke_run[0]
    runs = sorted(p.parent for p in (slurm / "results" / "runs" / "smoke").rglob("status.json"))
    assert {str(r.relative_to(slurm)) for r in runs} == set().union(*expected_runs("smoke").values())
    # Every job went through sbatch, and each run record names the SLURM job it ran under.
    submitted = set(re.findall(r"submitted with SLURM jobid (\d+)", log))
    job_ids = [status(r)["attempts"][-1]["slurm_job_id"] for r in runs]
    assert None not in job_ids and len(set(job_ids)) == len(runs)
    assert set(job_ids) <= submitted
    assert len(submitted) >= len(runs) + 1 + 5 + 1  # train, collect, one aggregate per figure, report...

    tables = "results/smoke/tables"
    for name in ("scores", "excluded", "compute"):
        on, off = (pd.read_csv(d / tables / f"{name}.csv") for d in (slurm, local))
        if name == "compute":
            assert list(on["run_dir"]) == list(off["run_dir"])
            continue
        pd.testing.assert_frame_equal(
            on.drop(columns=MEASURED, errors="ignore"), off.drop(columns=MEASURED, errors="ignore")
        )
    figures = sorted(p.name for p in (local / "results/smoke/figures").iterdir())
    assert sorted(p.name for p in (slurm / "results/smoke/figures").iterdir()) == figures
    for name in figures:
        if name.endswith(".png"):
            image = matplotlib.image.imread(slurm / "results/smoke/figures" / name)
            assert image.ndim == 3 and min(image.shape[:2]) > 100
    # The report says the same, but for its compute table (wall-clock and speed).
    reports = [
        [
            s
            for s in (d / "results/smoke/report.md").read_text().split("\n## ")
            if not s.startswith("Compute\n")
        ]
        for d in (slurm, local)
    ]
    assert reports[0] == reports[1]


def test_job_killed_by_scancel_resumes_from_its_checkpoint_on_rerun(cluster, tmp_path):
    grid = long_run_grid(steps=256)
    args = [f"{LONG_RUN}.done", "--retries", "0", *grid_file(tmp_path, grid)]
    command = slurm_command(tmp_path, *args)
    run_dir = tmp_path / LONG_RUN
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=cluster.env()
    )
    try:
        wait_for(trained_past(run_dir, 128), "training past step 128", 240, proc)
        job = status(run_dir)["attempts"][-1]["slurm_job_id"]
        subprocess.run(["scancel", "--signal=KILL", "--full", job], check=True, env=cluster.env())
        out, _ = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0, out[-3000:]
    # Never finished: SIGKILL leaves "running"; slurmstepd's SIGTERM to the job's other processes (before
    # its own SIGKILL) ends the trainer as "interrupted". Either way the rerun resumes from the checkpoint.
    assert status(run_dir)["status"] in ("running", "interrupted")
    assert not (tmp_path / f"{LONG_RUN}.done").exists()

    done = on_slurm(cluster, tmp_path, *args)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    attempts = assert_resumed_cleanly(run_dir, 256, grid["overrides"]["eval_every"])
    assert attempts[0]["slurm_job_id"] == job and attempts[1]["slurm_job_id"] not in (None, job)
