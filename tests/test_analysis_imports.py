"""The package floors, for ``analysis``: it loads no torch, no environment, no agent, no suite.

``analysis`` may import ``m3po.record`` and ``m3po.errors`` (standard library only) and nothing else of
``m3po``, ``baselines`` or ``suite``. Checked in a fresh interpreter, after importing every module.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import analysis

FORBIDDEN = ("torch", "gymnasium", "dm_control", "mujoco", "metaworld", "m3po.envs", "suite", "baselines")
ALLOWED_M3PO = {"m3po", "m3po.record", "m3po.errors"}
ROOT = Path(__file__).resolve().parents[1]


def _modules() -> list[str]:
    return sorted(
        info.name for info in pkgutil.walk_packages(analysis.__path__, "analysis.") if not info.ispkg
    )


def test_every_analysis_module_imports_without_torch_envs_agents_or_suite() -> None:
    modules = ["analysis", *_modules()]
    assert {"analysis.collect", "analysis.report", "analysis.stats", "analysis.synthetic"} <= set(modules)
    script = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout.splitlines()[-1])
    bad = [m for m in loaded if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)]
    assert not bad, f"analysis loaded {bad}"
    m3po = {m for m in loaded if m == "m3po" or m.startswith("m3po.")}
    assert m3po <= ALLOWED_M3PO, f"analysis loaded {sorted(m3po - ALLOWED_M3PO)} of m3po"
