"""The ``m3po`` command line."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from suite.cli import main


@pytest.mark.parametrize(
    ("suite", "count"), [("dmc39", 39), ("mw50", 50), ("mt30", 30), ("mt80", 80), ("dmlab30", 30)]
)
def test_tasks_prints_one_name_per_line(capsys, suite, count):
    assert main(["tasks", suite]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == count == len(set(lines))


def test_unknown_suite_is_a_clear_error(capsys):
    assert main(["tasks", "mt81"]) == 2
    err = capsys.readouterr().err
    assert "mt81" in err and "mt80" in err


def test_console_script_is_installed():
    out = subprocess.run(
        [sys.executable, "-m", "suite.cli", "tasks", "dmc39"], capture_output=True, text=True, check=True
    ).stdout
    assert out.splitlines()[3] == "cartpole-swingup"


def test_bench_envs_prints_one_json_line(capsys, monkeypatch):
    from suite.bench import envs

    monkeypatch.setattr(envs, "vec_agent_rate", lambda n, mode, s: {"agent_sps": 100.0 * n, "startup_s": 0.1})
    assert main(["bench", "envs", "--seconds", "0.05", "--scale-envs", "0"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    figures = json.loads(lines[0])
    assert figures["raw_physics_sps"] > 0
    assert set(figures["vec"]) == {f"{m}_{n}" for m in ("sync", "async") for n in (1, 4, 16, 64)}
    assert figures["sync16_over_raw"] == pytest.approx(3200 / figures["raw_physics_sps"], rel=1e-2)


def test_bench_rejects_negative_budgets():
    with pytest.raises(SystemExit):
        main(["bench", "envs", "--seconds", "-1"])
