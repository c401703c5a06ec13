"""Shared test setup."""

from pathlib import Path

import pytest

import m3po  # noqa: F401  (sets MUJOCO_GL before any test module imports MuJoCo: no display needed)


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> tuple[Path, list[str], dict[str, list]]:
    """The smoke profile run locally once per session (tests/test_workflow.py checks it, and
    tests/test_slurm.py compares its run on SLURM with it): (workdir, runs done before the
    interruption, their attempts then)."""
    from test_workflow import interrupted_smoke_run

    workdir = tmp_path_factory.mktemp("smoke")
    return (workdir, *interrupted_smoke_run(workdir))
