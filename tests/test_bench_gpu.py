"""``m3po bench gpu`` on a machine without a GPU: it refuses at once, and its checks run on the CPU."""

from __future__ import annotations

import pytest
import torch

from suite.bench import gpu
from suite.cli import main


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_without_cuda_it_stops_at_once_saying_so(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["bench", "gpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs CUDA" in err[0] and "torch sees no CUDA device" in err[0]
    assert list(tmp_path.iterdir()) == []  # nothing started, nothing written


def test_bad_flags_are_one_line_errors(capsys):
    assert main(["bench", "gpu", "--device", "cpu", "--envs", "1,x"]) == 2
    assert "--envs takes a comma list" in capsys.readouterr().err
    assert main(["bench", "gpu", "--device", "cpu", "--algos", "m3po,nope"]) == 2
    assert "unknown algo 'nope'" in capsys.readouterr().err


@pytest.mark.slow
def test_on_the_cpu_it_prints_every_figure_and_a_killed_run_resumes_to_the_same_record():
    out = gpu.run("cpu", env_counts=(1,), algos=("m3po",), preset="cpu", small=True, resume_steps=3072)
    assert out["device"] == "cpu" and out["preset"] == "cpu"
    for algo in ("m3po", "tdmpc2"):
        figures = out["speed"][algo]["1"]
        assert figures["sps"] > 0 and figures["ms_per_decision"] > 0 and figures["peak_gpu_mib"] is None
    resume = out["resume"]["m3po"]
    assert resume["status"] == "ok" and resume["killed"], resume
    assert resume["resumed_from"] and resume["resumed_from"][0] >= 1024  # after the first checkpoint
    assert resume["matched"] and out["all_resumes_matched"]
