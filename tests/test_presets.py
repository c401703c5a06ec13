"""Each algorithm's presets in one YAML file beside its config, read by one loader, and installed."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path

import pytest

from m3po.config import ConfigError, load_presets
from suite.registry import ALGORITHMS

ROOT = Path(__file__).resolve().parents[1]
PRESET_FILES = (
    "m3po/presets.yaml",
    "baselines/tdmpc2/presets.yaml",
    "baselines/dreamerv3/presets.yaml",
    "baselines/sb3/hyperparams.yaml",
)


def test_every_algorithm_reads_its_presets_from_its_yaml():
    assert ALGORITHMS["m3po"].presets == load_presets(ROOT / "m3po/presets.yaml")
    assert ALGORITHMS["tdmpc2"].presets == load_presets(ROOT / "baselines/tdmpc2/presets.yaml")
    assert ALGORITHMS["dreamerv3"].presets == load_presets(ROOT / "baselines/dreamerv3/presets.yaml")
    for algo in ("ppo", "sac", "mt-ppo", "mt-sac"):
        assert ALGORITHMS[algo].presets == load_presets(ROOT / "baselines/sb3/hyperparams.yaml", algo)


def test_preset_values_keep_their_types():
    m3po, tdmpc2 = ALGORITHMS["m3po"], ALGORITHMS["tdmpc2"]
    assert m3po.presets["cpu"]["ppo"] == {"rollout_len": 256, "minibatch_size": 64}
    assert m3po.presets["paper"]["planner"]["num_samples"] == 512
    assert tdmpc2.presets["paper"]["steps"] == 2_000_000
    assert ALGORITHMS["dreamerv3"].presets["cpu"]["dreamer"]["replay_ratio"] == 0.125
    learning_rate = ALGORITHMS["sac"].presets["paper"]["sac"]["learning_rate"]
    assert learning_rate == 1e-4 and isinstance(learning_rate, float)


def test_every_value_has_its_source_beside_it():
    for path in PRESET_FILES:
        lines = (ROOT / path).read_text().splitlines()
        assert lines[0].startswith("#") and "Sources:" in (ROOT / path).read_text(), path
        for number, line in enumerate(lines, 1):
            value = re.match(r"\s*[\w-]+:\s*([^#\s].*)$", line)
            if value and not value.group(1).startswith("#"):
                assert "#" in line and re.search(r"\[\w+\]|TD-MPC2", line), f"{path}:{number}: {line}"


def test_the_preset_files_are_package_data():
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    for path in PRESET_FILES:
        package, name = path.rsplit("/", 1)
        patterns = package_data.get(package.replace("/", "."), [])
        assert any(fnmatch.fnmatch(name, p) for p in patterns), f"{path} is not in package-data"


def test_loader_rejects_a_float_yaml_reads_as_a_string_and_a_bad_shape(tmp_path):
    path = tmp_path / "presets.yaml"
    path.write_text("cpu:\n  sac:\n    learning_rate: 1e-4\n")
    with pytest.raises(ConfigError, match=r"cpu\.sac\.learning_rate: 1e-4 reads as a string.*1\.0e-4"):
        load_presets(path)
    path.write_text("cpu:\n  sac:\n    learning_rate: 1.0e-4\n")
    assert load_presets(path) == {"cpu": {"sac": {"learning_rate": 1e-4}}}
    path.write_text("cpu: 3\n")
    with pytest.raises(ConfigError, match="must map each preset name to a mapping"):
        load_presets(path)
    path.write_text("ppo:\n  cpu: {}\n  paper: {num_envs: 2}\n")
    assert load_presets(path, "ppo") == {"cpu": {}, "paper": {"num_envs": 2}}
