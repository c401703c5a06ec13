"""Faults the local workflow survives, nothing lost or double-counted (on SLURM: tests/test_slurm.py).

* a training process killed with SIGKILL: a rerun resumes it from its last checkpoint; one stopped
  with SIGTERM records its attempt as interrupted (status.json and Sacred) and resumes the same way;
* a corrupt or truncated checkpoint or run record: named, and the run resumes from the previous good
  checkpoint or starts from scratch, saying so;
* the whole workflow killed while jobs run: a rerun finishes without redoing finished runs;
* several jobs writing run records at once: each record complete, in its own place;
* a loss going NaN: the run fails naming loss and step, the figures are drawn from the others and
  the report lists the failure;
* an unwritable or full results directory: a clear error before training.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from workflow_faults import (
    LONG_RUN,
    TRAIN_SCRIPT,
    assert_resumed_cleanly,
    eval_steps,
    faults_grid,
    grid_file,
    kill_group,
    long_run_grid,
    smoke_grid,
    snakemake_command,
    status,
    trained_past,
    trainer_pid,
    wait_for,
)

from m3po.agent import DEBUG_NAN_LOSS_STEP

STEPS = 256  # the long run's budget; checkpoints every 64 steps, evaluations every 128
EVAL_EVERY = smoke_grid()["overrides"]["eval_every"]


def run_workflow(workdir: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run(snakemake_command(workdir, *args), capture_output=True, text=True, env=env)
    return done


def _train_log(workdir: Path, run: str) -> str:
    relative = Path(run).relative_to("results/runs/faults")
    return (workdir / "results/logs/faults/train" / relative).with_suffix(".log").read_text()


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory) -> Path:
    """A workflow whose long run's training process got SIGKILL once it held two checkpoints (64 and
    128; the run trains to 256): the workdir, to copy."""
    workdir = tmp_path_factory.mktemp("killed")
    args = ["--cores", "1", f"{LONG_RUN}.done", *grid_file(workdir, long_run_grid(STEPS))]
    proc = subprocess.Popen(
        snakemake_command(workdir, *args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        run = workdir / LONG_RUN
        two_checkpoints = lambda: trained_past(run, 128)() and (run / "checkpoints" / "previous.pt").exists()  # noqa: E731
        wait_for(two_checkpoints, "two checkpoints", 240, proc)
        os.kill(trainer_pid(workdir, LONG_RUN), signal.SIGKILL)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            kill_group(proc)
    assert proc.returncode != 0, out[-3000:]
    assert status(workdir / LONG_RUN)["status"] == "running"  # killed: it never recorded its end
    return workdir


def _rerun(killed_run: Path, tmp_path: Path) -> tuple[Path, subprocess.CompletedProcess]:
    workdir = tmp_path / "work"
    shutil.copytree(killed_run, workdir, symlinks=True)
    done = run_workflow(
        workdir, "--cores", "1", f"{LONG_RUN}.done", *grid_file(workdir, long_run_grid(STEPS))
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return workdir, done


@pytest.mark.slow
def test_training_killed_with_sigkill_resumes_from_its_checkpoint(killed_run, tmp_path):
    workdir, _ = _rerun(killed_run, tmp_path)
    assert_resumed_cleanly(workdir / LONG_RUN, STEPS, EVAL_EVERY)
    marker = json.loads((workdir / f"{LONG_RUN}.done").read_text())
    assert marker["status"] == "finished" and marker["attempts"] == 2


@pytest.mark.slow
def test_truncated_checkpoint_resumes_from_the_previous_one(killed_run, tmp_path):
    checkpoints = killed_run / LONG_RUN / "checkpoints"
    assert (checkpoints / "previous.pt").exists()
    shutil.copytree(killed_run, tmp_path / "work")
    latest = tmp_path / "work" / LONG_RUN / "checkpoints" / "latest.pt"
    latest.write_bytes(latest.read_bytes()[:1000])
    workdir, _ = _rerun(tmp_path / "work", tmp_path / "again")
    log = _train_log(workdir, LONG_RUN)
    assert f"checkpoint {Path(LONG_RUN) / 'checkpoints' / 'latest.pt'} is unreadable" in log, log[-3000:]
    assert_resumed_cleanly(workdir / LONG_RUN, STEPS, EVAL_EVERY)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("damaged", "said", "from_scratch"),
    [
        ("status.json", "status.json is corrupt", False),
        ("eval.jsonl", "eval.jsonl line 1 is corrupt", True),
    ],
)
def test_corrupt_run_record_is_named_and_the_run_recovers(killed_run, tmp_path, damaged, said, from_scratch):
    shutil.copytree(killed_run, tmp_path / "work")
    path = tmp_path / "work" / LONG_RUN / damaged
    path.write_text("{not json\n" + path.read_text())
    workdir, _ = _rerun(tmp_path / "work", tmp_path / "again")
    log = _train_log(workdir, LONG_RUN)
    assert said in log, log[-3000:]
    record = status(workdir / LONG_RUN)
    assert record["status"] == "finished" and record["step"] == STEPS
    assert eval_steps(workdir / LONG_RUN) == list(range(0, STEPS + 1, EVAL_EVERY))
    (attempt,) = record["attempts"]  # the damaged history is set aside, not merged
    if from_scratch:
        assert "it starts from scratch" in log
        assert attempt["resumed_from_step"] is None
        assert (workdir / f"{LONG_RUN}.corrupt-1" / damaged).exists()
    else:
        assert "resumes from its last checkpoint" in log
        assert attempt["resumed_from_step"] >= 128


def test_unreadable_checkpoints_start_from_scratch_saying_so(tmp_path, capsys):
    from test_train import small_config

    from m3po.train import Trainer

    Trainer(small_config(steps=64), tmp_path, progress=False).run()
    (tmp_path / "status.json").unlink()
    (tmp_path / "checkpoints" / "latest.pt").write_bytes(b"garbage")
    summary = Trainer(small_config(steps=64), tmp_path, progress=False).run()
    err = capsys.readouterr().err
    assert "latest.pt is unreadable" in err and "the run starts from scratch" in err
    assert summary["resumed_from"] is None and summary["step"] == 64


@pytest.mark.slow
def test_killed_workflow_reruns_without_redoing_finished_runs(tmp_path):
    grid = long_run_grid(STEPS)
    short = [
        "results/runs/faults/m3po/mw-reach/default/seed1",
        "results/runs/faults/m3po/cartpole-swingup/alpha0=0/seed1",
    ]
    runs = [LONG_RUN, *short]
    args = ["--cores", "2", *[f"{r}.done" for r in runs], *grid_file(tmp_path, grid)]
    proc = subprocess.Popen(
        snakemake_command(tmp_path, *args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        # Hold the long run mid-way (past a checkpoint) until a run beside it finished, then kill all.
        wait_for(trained_past(tmp_path / LONG_RUN, 64), "the long run past a checkpoint", 300, proc)
        os.kill(trainer_pid(tmp_path, LONG_RUN), signal.SIGSTOP)
        wait_for(lambda: any((tmp_path / f"{r}.done").exists() for r in short), "a finished run", 300, proc)
    finally:
        kill_group(proc)  # the workflow and every job it started
    finished = {r: status(tmp_path / r)["attempts"] for r in runs if (tmp_path / f"{r}.done").exists()}
    assert LONG_RUN not in finished and finished

    # A killed Snakemake leaves its lock and the outputs it was making marked incomplete: the user
    # unlocks, then reruns with --rerun-incomplete (README; both profiles set it).
    done = run_workflow(tmp_path, *args)
    said = done.stdout + done.stderr
    assert done.returncode != 0 and ("--unlock" in said or "--rerun-incomplete" in said), said[-3000:]
    assert run_workflow(tmp_path, *args, "--unlock").returncode == 0
    done = run_workflow(tmp_path, *args, "--rerun-incomplete")
    assert done.returncode == 0, done.stderr[-3000:]
    for r in runs:
        record = status(tmp_path / r)
        assert record["status"] == "finished", r
        if r in finished:
            assert record["attempts"] == finished[r], f"{r} was trained again"
        rows = [json.loads(line) for line in (tmp_path / r / "eval.jsonl").read_text().splitlines()]
        points = [(row["step"], row["task"]) for row in rows]
        assert len(set(points)) == len(points), r  # no evaluation twice
        expected = set(range(0, record["step"] + 1, EVAL_EVERY))
        assert {step for step, _ in points} == expected, r  # none missing
    assert_resumed_cleanly(tmp_path / LONG_RUN, STEPS, EVAL_EVERY)


def test_sigterm_records_the_attempt_as_interrupted_and_the_run_resumes(tmp_path):
    small = [
        "task=cartpole-swingup", "num_envs=2", "steps=1024", "eval_every=0", "eval_episodes=1",
        "checkpoint_every=32", "ppo.rollout_len=16", "ppo.minibatch_size=16", "ppo.epochs=1",
        "model.latent_dim=16", "model.enc_dim=32", "model.mlp_dim=32", "model.num_bins=21",
        "planner.num_samples=16", "planner.num_pi_trajs=4", "planner.num_elites=4", "planner.iterations=1",
        "progress=False", "threads=1", "seed=1", "run_dir=run",
    ]  # fmt: skip
    command = [sys.executable, "-m", "suite.cli", "train", "with", *small]
    proc = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    checkpoint = tmp_path / "run" / "checkpoints" / "latest.pt"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()[0][-3000:]
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0
    record = status(tmp_path / "run")
    assert record["status"] == "interrupted" and "SIGTERM received" in record["error"], out[-3000:]
    sacred = json.loads((tmp_path / "run" / "sacred" / "attempt1" / "run.json").read_text())
    assert sacred["status"] == "INTERRUPTED"
    # The rerun resumes from the checkpoint and finishes.
    again = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    record = status(tmp_path / "run")
    assert record["status"] == "finished" and record["attempts"][1]["resumed_from_step"] >= 32


def test_concurrent_jobs_write_complete_records_each_in_its_own_place(tmp_path):
    small = [
        "task=mw-reach", "num_envs=2", "steps=64", "eval_every=0", "eval_episodes=1", "checkpoint_every=32",
        "ppo.rollout_len=16", "ppo.minibatch_size=16", "ppo.epochs=1", "model.latent_dim=16",
        "model.enc_dim=32", "model.mlp_dim=32", "model.num_bins=21", "planner.num_samples=16",
        "planner.num_pi_trajs=4", "planner.num_elites=4", "planner.iterations=1", "progress=False",
        "threads=1",
    ]  # fmt: skip
    seeds = (1, 2, 3)
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "suite.cli",
                "train",
                "with",
                *small,
                f"seed={s}",
                f"run_dir=runs/seed{s}",
            ],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for s in seeds
    ]
    for p in procs:
        out, _ = p.communicate(timeout=180)
        assert p.returncode == 0, out[-3000:]
    for s in seeds:
        run = tmp_path / "runs" / f"seed{s}"
        assert json.loads((run / "config.json").read_text())["seed"] == s
        record = status(run)
        assert record["status"] == "finished" and record["step"] == 64 and len(record["attempts"]) == 1
        assert eval_steps(run) == [0, 64]
        assert [json.loads(line)["step"] for line in (run / "train.jsonl").read_text().splitlines()] == [
            32,
            64,
        ]
        sacred = json.loads((run / "sacred" / "attempt1" / "run.json").read_text())
        assert sacred["status"] == "COMPLETED" and sacred["result"]["step"] == 64
        assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["latest.pt", "previous.pt"]


@pytest.mark.slow
def test_nan_loss_fails_its_run_and_the_figures_come_from_the_others(tmp_path):
    # The smoke grid, smaller, plus a cartpole-balance run that trains past the poisoned step 192
    # (every other run stops at 128).
    grid = faults_grid()
    grid["figures"]["fig3a"].update(
        tasks=["cartpole-swingup", "cartpole-balance"], steps_by_task={"cartpole-balance": 256}
    )
    grid["figures"]["fig4"]["variants"] = ["num_envs=2"]
    grid["figures"]["ablations"]["variants"] = ["default", "alpha0=0"]
    env = {**os.environ, DEBUG_NAN_LOSS_STEP: "192"}
    done = run_workflow(tmp_path, "--cores", "2", "figures", *grid_file(tmp_path, grid), env=env)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    failed = "results/runs/faults/m3po/cartpole-balance/default/seed1"
    assert "1 run(s) FAILED" in output and failed in output
    marker = json.loads((tmp_path / f"{failed}.done").read_text())
    assert marker["status"] == "failed" and "'reward'" in marker["error"] and "step 192" in marker["error"]
    assert "loss 'reward' is nan at agent step 192" in _train_log(tmp_path, failed)

    out = tmp_path / "results" / "faults"
    # The figures (the report's off-policyness diagnostics, diagnostics-*.png, are checked in test_workflow).
    assert {p.name for p in (out / "figures").glob("*.png") if not p.name.startswith("diagnostics-")} == {
        "fig3a.png", "fig3a-intervals.png", "fig3a-profiles.png", "fig3b.png", "fig3b-intervals.png",
        "fig3b-profiles.png", "fig3c.png", "fig3c-intervals.png", "fig3c-profiles.png", "fig4.png",
        "ablation-alpha0.png",
    }  # fmt: skip
    scores = pd.read_csv(out / "tables" / "scores.csv")
    assert failed not in set(scores["run_dir"]) and len(set(scores["run_dir"])) == 5
    excluded = pd.read_csv(out / "tables" / "excluded.csv")
    assert list(excluded["run_dir"]) == [failed]
    report = (out / "report.md").read_text()
    assert failed in report and "nan at agent step 192" in report


def _train_run_module():
    spec = importlib.util.spec_from_file_location("train_run", TRAIN_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("fault", ["unwritable", "full"])
def test_unwritable_or_full_results_directory_stops_before_training(tmp_path, capsys, fault):
    train_run = _train_run_module()
    if fault == "unwritable":
        (tmp_path / "results").write_text("a file where the results directory should be")
        args = ["--run-dir", str(tmp_path / "results" / "runs" / "x"), "--marker", str(tmp_path / "x.done")]
    else:
        args = [
            "--run-dir",
            str(tmp_path / "run"),
            "--marker",
            str(tmp_path / "x.done"),
            "--min-free-mb",
            "10" + "0" * 12,
        ]
    assert train_run.main([*args, "--", "steps=64"]) == 2
    err = capsys.readouterr().err
    said = "cannot write to the run directory" if fault == "unwritable" else "MB free, less than the"
    assert said in err and "nothing was trained" in err
    assert not (tmp_path / "x.done").exists() and not list(tmp_path.rglob("config.json"))


def test_a_run_is_never_trained_by_two_jobs_at_once(tmp_path, capsys):
    train_run = _train_run_module()
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    held = train_run.lock_run(run_dir)  # the first job
    try:
        assert (
            train_run.main(
                ["--run-dir", str(run_dir), "--marker", str(tmp_path / "x.done"), "--", "steps=64"]
            )
            == 2
        )
    finally:
        held.close()
    err = capsys.readouterr().err
    assert f"{run_dir} is being trained by another job (host " in err and "not started twice" in err
    assert not (tmp_path / "x.done").exists() and not (run_dir / "config.json").exists()
