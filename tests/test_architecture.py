"""The floors of the suite (docs/architecture.md): which package may import which, read from the source.

Every ``import`` and ``from ... import`` of every module counts, also those inside functions (a lazy
import is still an arrow). A test that fails names the module, the line and the arrow that points the
wrong way.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = ("m3po", "baselines", "analysis", "suite")
STDLIB = sys.stdlib_module_names | {"__future__"}


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every absolute import in ``path``."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
    return out


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def violations(files: list[Path], allowed) -> list[str]:
    return [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in files
        for line, module in imports(path)
        if not allowed(path, module)
    ]


def test_m3po_imports_nothing_above_it():
    def allowed(path: Path, module: str) -> bool:
        return not any(under(module, p) for p in ("baselines", "analysis", "suite"))

    assert violations(modules("m3po"), allowed) == []


@pytest.mark.parametrize("name", ["record", "errors", "algorithm", "planner_config"])
def test_light_modules_of_m3po_load_no_torch(name):
    """What configs and run records are read with stays light: no torch (``record`` and ``errors``:
    the standard library alone). ``m3po.config`` imports torch only to check ``device=cuda``
    (tests/test_config.py checks that a cpu config loads none)."""
    path = ROOT / "m3po" / f"{name}.py"
    heavy = {
        "torch",
        "numpy",
        "gymnasium",
        "dm_control",
        "mujoco",
        "metaworld",
        "stable_baselines3",
        "sheeprl",
    }
    found = [m for _, m in imports(path) if m.split(".")[0] in heavy]
    assert found == []
    if name in ("record", "errors"):
        others = [m for _, m in imports(path) if m.split(".")[0] not in STDLIB and m != "m3po.errors"]
        assert others == []


def test_each_baseline_imports_m3po_and_itself_only():
    def allowed(path: Path, module: str) -> bool:
        own = f"baselines.{path.relative_to(ROOT / 'baselines').parts[0]}"
        if any(under(module, p) for p in ("analysis", "suite")):
            return False
        return not under(module, "baselines") or under(module, own)

    files = [p for p in modules("baselines") if p.parent != ROOT / "baselines"]
    assert violations(files, allowed) == []


def test_analysis_reads_runs_through_the_record_module_only():
    def allowed(path: Path, module: str) -> bool:
        if any(under(module, p) for p in ("baselines", "suite")):
            return False
        return not under(module, "m3po") or module in ("m3po.record", "m3po.errors")

    assert violations(modules("analysis"), allowed) == []
    assert not any(m.split(".")[0] == "torch" for p in modules("analysis") for _, m in imports(p))


def test_every_package_of_the_suite_is_one_of_the_floors():
    """A new top-level package must be given its floor here and in docs/architecture.md."""
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert packages == set(OURS)
