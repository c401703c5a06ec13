"""``m3po bench cost``: a profile's runs and compute per figure from saved speed figures."""

from __future__ import annotations

import json

import pytest

from suite.bench import cost
from suite.cli import main

RATES = {"m3po": 400.0, "ppo": 1000.0, "sac": 100.0, "mt-ppo": 800.0, "mt-sac": 80.0, "tdmpc2": 20.0}


def test_cpu_hours_are_each_runs_steps_over_its_algorithms_rate(tmp_path, capsys):
    path = tmp_path / "algos.json"
    path.write_text(json.dumps({"algos": {k: {"status": "ok", "sps": v} for k, v in RATES.items()}}) + "\n")
    assert main(["bench", "cost", "--profile", "smoke", "--rates", str(path)]) == 0
    out = json.loads(capsys.readouterr().out)
    grid = cost.load_profile("smoke")
    assert out["total"]["runs"] == len(grid.runs)
    assert out["total"]["agent_steps"] == sum(r.steps for r in grid.runs.values())
    expected = sum(r.steps / RATES[r.algo] for r in grid.runs.values() if r.algo in RATES) / 3600
    assert out["total"]["cpu_hours"] == pytest.approx(expected, abs=0.1)
    assert sum(f["runs"] for f in out["figures"].values()) == len(grid.runs)  # a shared run counted once
    without = {a for f in out["figures"].values() for a in f["without_rate"]}
    assert without == {r.algo for r in grid.runs.values()} - set(RATES)  # dreamerv3 has no rate here


def test_gpu_figures_give_gpu_hours_at_the_nearest_env_count(tmp_path):
    path = tmp_path / "gpu.json"
    speed = {"m3po": {"1": {"sps": 10.0}, "32": {"sps": 300.0}}, "tdmpc2": {"1": {"sps": 5.0}}}
    path.write_text(json.dumps({"device": "cuda", "speed": speed}))
    out = cost.run("smoke", path)
    assert out["rates"]["kind"] == "gpu" and "gpu_hours" in out["total"]


def test_bad_profile_and_bad_rates_file_are_one_line_errors(tmp_path, capsys):
    assert main(["bench", "cost", "--profile", "nope", "--rates", str(tmp_path / "x")]) == 2
    assert "unknown profile 'nope'" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("{}")
    assert main(["bench", "cost", "--profile", "smoke", "--rates", str(tmp_path / "bad.json")]) == 2
    assert "neither 'algos'" in capsys.readouterr().err


def test_what_is_left_leaves_out_the_shipped_runs(tmp_path):
    grid = cost.load_profile("evidence")
    out = cost.estimate(grid, "cpu", RATES)
    left = [r for key, r in grid.runs.items() if key not in grid.shipped]
    assert out["left"]["runs"] == len(left) == out["total"]["runs"] - len(grid.shipped)
    assert out["left"]["agent_steps"] == sum(r.steps for r in left)
    expected = sum(r.steps / RATES[r.algo] for r in left) / 3600
    assert out["left"]["cpu_hours"] == pytest.approx(expected, abs=0.1)
    # One more run shipped: its steps are no longer left.
    key = next(k for k in grid.runs if k not in grid.shipped)
    grid.shipped = grid.shipped | {key}
    again = cost.estimate(grid, "cpu", RATES)["left"]
    assert again["agent_steps"] == out["left"]["agent_steps"] - grid.runs[key].steps
    assert again["runs"] == out["left"]["runs"] - 1
