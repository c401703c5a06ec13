"""The typed config: presets, overrides, validation that names the bad value."""

from __future__ import annotations

import dataclasses

import pytest

from m3po.config import PRESETS, ConfigError, M3POConfig, make_config


def test_presets_differ_in_size_and_validate():
    cpu, paper = make_config("cpu"), make_config("paper")
    assert cpu.model.latent_dim < paper.model.latent_dim
    assert cpu.planner.num_samples < paper.planner.num_samples == 512
    assert paper.planner.num_pi_trajs == 24 and paper.planner.num_elites == 64
    assert set(PRESETS) == {"cpu", "paper"}


def test_overrides_reach_nested_sections():
    cfg = make_config("cpu", steps=500, planner={"horizon": 5}, bonus={"alpha0": 0})
    assert cfg.steps == 500 and cfg.planner.horizon == 5 and cfg.bonus.alpha0 == 0.0
    assert (
        cfg.planner.num_samples == make_config("cpu").planner.num_samples
    )  # untouched fields keep the preset


def test_every_field_is_commented():
    import inspect

    import m3po.config as module

    source = inspect.getsource(module)
    for cls in (
        M3POConfig,
        *[f.type for f in dataclasses.fields(M3POConfig) if dataclasses.is_dataclass(f.type)],
    ):
        cls = getattr(module, cls) if isinstance(cls, str) else cls
        for f in dataclasses.fields(cls):
            line = next(line for line in source.splitlines() if line.strip().startswith(f"{f.name}:"))
            assert "#" in line, f"{cls.__name__}.{f.name} has no comment"


@pytest.mark.parametrize(
    ("updates", "match"),
    [
        ({"steps": -1}, "steps must be >= 0"),
        ({"num_envs": 0}, "num_envs must be >= 1"),
        ({"steps": "many"}, "steps must be an integer"),
        ({"vec_mode": "threads"}, "sync, async"),
        ({"planner": {"horizn": 3}}, "did you mean planner.horizon"),
        ({"bonus": {"schedule": "exp"}}, "linear, constant, cosine"),
        ({"planner": {"num_elites": 10_000}}, "num_elites"),
        ({"ppo": {"normalize_advantage": 1}}, "true or false"),
    ],
)
def test_bad_values_are_named(updates, match):
    with pytest.raises(ConfigError, match=match):
        make_config("cpu", **updates)


def test_unknown_preset():
    with pytest.raises(ConfigError, match="cpu, paper"):
        make_config("gpu")
