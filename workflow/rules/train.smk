# Training: one job per run directory.
#
# The job's output is a marker written only after status.json says "finished". The run directory
# itself is not an output, so Snakemake never deletes it when a job fails or is killed: rerunning
# the workflow reruns the job, and `m3po train` resumes from the run's last checkpoint. Analysis
# rules take the markers as input, so half runs are never aggregated.

wildcard_constraints:
    profile=r"[A-Za-z0-9_-]+",
    algo=r"[^/]+",
    task=r"[^/]+",
    variant=r"[^/]+",
    seed=r"\d+",


def run_of(wildcards) -> Run:
    return RUNS[f"results/runs/{wildcards.profile}/{wildcards.algo}/{wildcards.task}/{wildcards.variant}/seed{wildcards.seed}"]


rule train:
    output:
        "results/runs/{profile}/{algo}/{task}/{variant}/seed{seed}.done",
    log:
        "results/logs/{profile}/train/{algo}/{task}/{variant}/seed{seed}.log",
    params:
        run_dir="results/runs/{profile}/{algo}/{task}/{variant}/seed{seed}",
        args=lambda w: " ".join(
            shlex.quote(a)
            for a in run_of(w).args(f"results/runs/{w.profile}/{w.algo}/{w.task}/{w.variant}/seed{w.seed}", MONGO_URL)
        ),
        script=ROOT / "pipelines" / "scripts" / "train_run.py",
    threads: GRID["threads"]
    resources:
        # Defaults for a single machine; the slurm profile sets GPUs, memory and runtime per rule.
        mem_mb=4000,
    shell:
        "export OMP_NUM_THREADS={threads} MKL_NUM_THREADS={threads}; "
        "{PYTHON:q} {params.script:q} --run-dir {params.run_dir:q} --marker {output:q} -- "
        "{params.args} threads={threads} > {log:q} 2>&1"


def failed_runs() -> list[str]:
    """Runs whose marker says they failed for good (a NaN loss): the figures leave them out."""
    failed = []
    for key in RUNS:
        marker = Path(f"{key}.done")
        if marker.exists():
            record = json.loads(marker.read_text())
            if record.get("status") == "failed":
                failed.append(f"{key}: {record.get('error')}")
    return failed


onsuccess:
    _failed = failed_runs()
    if _failed:
        print(
            f"{len(_failed)} run(s) FAILED; the figures leave them out and the report lists them:\n  "
            + "\n  ".join(_failed)
        )
