"""Shared test setup."""

import m3po  # noqa: F401  (sets MUJOCO_GL before any test module imports MuJoCo: no display needed)
