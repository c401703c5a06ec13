"""The ``m3po`` command line."""

from __future__ import annotations

import json
import re
import shlex
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


def test_bench_rejects_a_value_that_is_not_a_number_in_one_line(capsys):
    with pytest.raises(SystemExit):
        main(["bench", "learning", "--seeds", "three"])
    err = capsys.readouterr().err
    assert "argument --seeds: invalid int value: 'three'" in err and "Traceback" not in err


def test_an_unknown_benchmark_lists_the_valid_ones(capsys):
    from suite.cli import BENCHMARKS

    with pytest.raises(SystemExit):
        main(["bench", "envz"])
    err = capsys.readouterr().err
    assert "'envz'" in err and all(f"'{name}'" in err for name in BENCHMARKS)


# Each benchmark's flags, and only those, in its --help.
FLAGS = {
    "algos": {"--threads", "--algos", "--compile", "--profile"},
    "cost": {"--profile", "--rates"},
    "dag": set(),
    "envs": {"--seconds", "--scale-envs", "--scale-tasks"},
    "eval-rules": {"--runs", "--episodes", "--threads", "--set"},
    "fidelity": {
        "--steps", "--seeds", "--jobs", "--algos", "--tasks", "--compare-only", "--set", "--variant-name",
    },
    "learning": {
        "--task-set", "--steps", "--seeds", "--jobs", "--alpha0-zero", "--with-ppo", "--tasks", "--set",
        "--variant-name", "--algo",
    },
    "gpu": {"--device", "--envs", "--algos"},
    "planner": set(),
    "tdmpc2": {"--obs-dim", "--act-dim", "--decisions", "--updates", "--threads"},
}  # fmt: skip


def _help(capsys, argv):
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 0
    return capsys.readouterr().out


def _flags(help_text):
    """The flags in the options part of a --help (the description may name other commands' flags)."""
    return set(re.findall(r"--[a-z0-9-]+", help_text.split("\noptions:\n", 1)[1])) - {"--help"}


@pytest.mark.parametrize("name", sorted(FLAGS))
def test_each_benchmark_help_lists_only_its_own_flags(capsys, name):
    out = _help(capsys, ["bench", name, "--help"])
    assert out.startswith(f"usage: m3po bench {name} ")
    assert _flags(out) == FLAGS[name]


def test_the_analysis_benchmark_has_none_of_the_others_flags(capsys):
    from importlib.util import find_spec

    if find_spec("suite.bench.analysis") is None:
        pytest.skip("suite/bench/analysis.py is not there yet")
    out = _help(capsys, ["bench", "analysis", "--help"])
    assert not {"--variant-name", "--compare-only", "--scale-envs", "--runs", "--obs-dim"} & _flags(out)


def test_bench_help_lists_every_benchmark_without_importing_them(capsys):
    from suite.cli import BENCHMARKS

    out = _help(capsys, ["bench", "--help"])
    assert all(f"    {name}" in out for name in BENCHMARKS)
    assert "learning bar" in out and "`m3po bench" not in out  # the docstrings' first lines
    # Only the benchmark that is run is imported: m3po tasks and m3po bench --help need no torch.
    code = (
        "import sys; from suite.cli import build_parser, main; build_parser(['bench', '--help']); "
        "main(['tasks', 'mt30']); assert 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], capture_output=True, check=True)


def test_tdmpc2_timing_prints_one_json_line(capsys, monkeypatch):
    from suite.bench import tdmpc2

    calls = []
    monkeypatch.setattr(
        tdmpc2,
        "time_setting",
        lambda preset, updates, *sizes: (
            calls.append((preset, sizes)) or {"decision_ms": 2.0, "update_ms": 4.0}
        ),
    )
    assert main(["bench", "tdmpc2", "--obs-dim", "3", "--decisions", "2", "--updates", "1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    figures = json.loads(lines[0])
    assert set(figures) >= set(tdmpc2.SETTINGS) and figures["cpu"]["decision_vs_1m"] == 1.0
    assert calls[0] == ("cpu", (3, 1, 2, 1))


@pytest.mark.parametrize("reader", ["head -1", "true"])
def test_a_reader_that_stops_early_gets_no_traceback(reader):
    # `true` exits before m3po writes (a broken pipe for sure); `head -1` after the first line.
    command = f"{shlex.quote(sys.executable)} -m suite.cli tasks dmc39 | {reader}"
    done = subprocess.run(command, shell=True, capture_output=True, text=True, check=True)
    assert done.stderr == ""
    assert done.stdout == ("acrobot-swingup\n" if reader == "head -1" else "")


def test_bench_algos_names_the_valid_algorithms_before_running_any(capsys):
    assert main(["bench", "algos", "--algos", "m3po,nope"]) == 2
    err = capsys.readouterr().err
    assert "'nope'" in err and "m3po, ppo, sac" in err
