# Training: one job per run directory, one process (workflow/scripts/train.py trains in-process).
#
# The job's output is a marker written only after status.json says "finished" (or "failed" for good).
# The run directory itself is not an output, so Snakemake never deletes it when a job fails or is
# killed: rerunning the workflow reruns the job, and the run resumes from its last checkpoint.
# Analysis rules take the markers as input, so half runs are never aggregated.

import os
import shlex

from snakemake.exceptions import WorkflowError

wildcard_constraints:
    profile=r"[A-Za-z0-9_-]+",
    algo=r"[^/]+",
    task=r"[^/]+",
    variant=r"[^/]+",
    seed=r"\d+",


if MONGO_URL:
    # The URL reaches the jobs through their environment (suite.experiment reads M3PO_MONGO_URL), not
    # their command line: a password in it never shows in Snakemake's logs, the job's log or `ps`.
    os.environ["M3PO_MONGO_URL"] = MONGO_URL


def train_updates(wildcards) -> str:
    """The run's `m3po train with` arguments, shell-quoted (threads are added by the rule)."""
    key = grids.run_dir(wildcards.profile, wildcards.algo, wildcards.task, wildcards.variant, wildcards.seed)
    if key not in RUNS:
        shipped = grids.shipped_dir(key)
        why = f"its shipped copy {shipped} stands in for it" if shipped in GRID.shipped else "not a run of the grid"
        raise WorkflowError(f"{key}: {why} (--config profile={PROFILE} shipped=false trains every run)")
    return " ".join(shlex.quote(a) for a in RUNS[key].updates(key))


rule train:
    output:
        grids.marker(grids.RUN_DIR_PATTERN),
    log:
        grids.TRAIN_LOG_PATTERN,
    params:
        run_dir=grids.RUN_DIR_PATTERN,
        args=train_updates,
        script=Path(workflow.basedir) / "scripts" / "train.py",
    threads: GRID.spec["threads"]
    resources:
        # Defaults for a single machine; the slurm profile sets GPUs, memory and runtime per rule.
        mem_mb=4000,
    shell:
        "export OMP_NUM_THREADS={threads} MKL_NUM_THREADS={threads}; "
        "{PYTHON:q} {params.script:q} --run-dir {params.run_dir:q} --marker {output:q} -- "
        "{params.args} threads={threads} > {log:q} 2>&1"


onsuccess:
    _failed = GRID.failed_runs()
    if _failed:
        print(
            f"{len(_failed)} run(s) FAILED; the figures leave them out and the report lists them:\n  "
            + "\n  ".join(_failed)
        )
