"""``m3po bench portable``: library fingerprints in portable mode, compared with the recorded ones."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from suite.bench import portable as bench

ROOT = Path(__file__).resolve().parents[1]
AMD = {"cpu_model": "AMD EPYC", "cpu_id": "vendor_id AuthenticAMD cpu family 23", "cpu_flags": ["avx2"]}
XEON = {"cpu_model": "Intel Xeon", "cpu_id": "vendor_id GenuineIntel cpu family 6", "cpu_flags": ["avx512f"]}


def test_compare_names_the_probes_that_differ_and_keeps_portable_apart() -> None:
    ours = {"torch.mm": "a", "numpy.exp": "b", "mujoco x": "c"}
    recorded = [
        {"date": "d1", "compute": {**XEON, "portable": True}, "probes": {**ours, "torch.mm": "z"}},
        {"date": "d2", "compute": {**AMD, "portable": True}, "probes": dict(ours)},
        {"date": "d3", "compute": {**AMD, "portable": False}, "probes": {"torch.mm": "y"}},  # not comparable
        {"date": "d4", "compute": {**AMD, "portable": True}, "probes": {"torch.mm": "a", "new": "n"}},
    ]
    rows = bench.compare(ours, {**AMD, "portable": True}, recorded)
    assert [r["recorded"] for r in rows] == ["d1", "d2", "d4"]
    assert rows[0] == {
        "cpu": "Intel Xeon",
        "recorded": "d1",
        "same_cpu": False,
        "differ": ["torch.mm"],
        "missing": [],
    }
    assert rows[1]["same_cpu"] and rows[1]["differ"] == [] and rows[1]["missing"] == []
    assert rows[2]["differ"] == [] and rows[2]["missing"] == ["mujoco x", "new", "numpy.exp"]


def test_record_replaces_only_the_same_cpus_fingerprint(tmp_path) -> None:
    path = tmp_path / "f.json"
    bench.record(path, {"compute": {**AMD, "portable": True}, "probes": {"p": "1"}})
    bench.record(path, {"compute": {**AMD, "portable": False}, "probes": {"p": "2"}})
    bench.record(path, {"compute": {**XEON, "portable": True}, "probes": {"p": "3"}})
    bench.record(path, {"compute": {**AMD, "portable": True}, "probes": {"p": "4"}})
    assert [e["probes"]["p"] for e in bench.read_recorded(path)] == ["2", "3", "4"]


@pytest.mark.slow
def test_this_cpus_recorded_fingerprint_is_reproduced_in_portable_mode() -> None:
    # About 20 s: the probes run in a child process started with portable mode's environment.
    env = {**os.environ, "MUJOCO_GL": "disable"}
    done = subprocess.run(
        [sys.executable, "-m", "suite.cli", "bench", "portable"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    compute = figures["compute"]
    assert figures["portable"] and compute["portable"] and compute["torch_cpu_capability"] == "DEFAULT"
    assert compute["torch_threads"] == 1 and compute["numpy_simd"] == []
    assert {"torch.mm 4096x512x512", "torch.adam step", "numpy.exp float64", "mujoco mw-reach"} <= set(
        figures["probes"]
    )
    recorded = bench.read_recorded(ROOT / bench.RECORDED)
    assert recorded, f"{bench.RECORDED} holds no fingerprint"
    same = [r for r in figures["compared"] if r["same_cpu"]]
    if not same:
        cpus = sorted({str(r["cpu"]) for r in figures["compared"]})
        pytest.skip(f"no fingerprint of this CPU ({compute['cpu_id']}) is recorded; recorded: {cpus}")
    assert [(r["differ"], r["missing"]) for r in same] == [([], [])] * len(same)
