"""The pinned environment: one list of pins, mirrored in environment.yml; no display needed."""

from __future__ import annotations

import os
import re
import tomllib
from importlib.metadata import version
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = project["dependencies"] + project["optional-dependencies"]["dev"]
    return dict(re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", spec).groups() for spec in specs)


def test_every_dependency_is_pinned_exactly():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for spec in project["dependencies"]:
        assert "==" in spec, f"{spec} is not pinned"


def test_environment_yml_mirrors_the_pins():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    mirrored = dict(spec.split("==") for spec in pip_section if "==" in spec)
    assert mirrored == _pins()
    assert "-e ." in pip_section


def test_installed_versions_match_the_pins():
    for name, pinned in _pins().items():
        assert version(name).split("+")[0] == pinned, f"{name} {version(name)} installed, {pinned} pinned"


def test_no_display_is_needed():
    import m3po  # noqa: F401

    assert os.environ.get("MUJOCO_GL") in {"disable", "egl", "osmesa"}
