"""The typed config: presets, overrides, validation that names the bad value."""

from __future__ import annotations

import dataclasses

import pytest

from m3po.config import PRESETS, RUNTIME_FIELDS, ConfigError, M3POConfig, RunConfig, check_device
from m3po.registration import make_config


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
        ({"compile": "yes"}, "true or false"),
        ({"ppo": {"discount": 1.0}}, r"ppo.discount must be in \[0, 1\)"),
    ],
)
def test_bad_values_are_named(updates, match):
    with pytest.raises(ConfigError, match=match):
        make_config("cpu", **updates)


def test_unknown_preset():
    with pytest.raises(ConfigError, match="cpu, paper"):
        make_config("gpu")


@pytest.mark.parametrize("device", ["tpu", "gpu", "cuda0", "cuda:", "cuda:x", "CPU"])
def test_a_bad_device_names_the_valid_ones(device):
    with pytest.raises(ConfigError, match=rf"device='{device}' is not valid; choose one of: auto, cpu, cuda"):
        make_config("cpu", device=device)


def test_cuda_must_be_present_when_asked_for(monkeypatch):
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="device='cuda', but CUDA is not available here"):
            make_config("cpu", device="cuda")
    # As on a machine with one GPU: cuda and cuda:0 are valid, cuda:1 is not.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert make_config("cpu", device="cuda:0").device == "cuda:0"
    check_device("cuda")
    with pytest.raises(ConfigError, match=r"device='cuda:1', but this machine has 1 CUDA device.*cuda:0"):
        check_device("cuda:1")


def test_cpu_and_auto_devices_do_not_import_torch():
    import subprocess
    import sys

    code = (
        "import sys; from m3po.config import check_device; check_device('cpu'); check_device('auto'); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_the_run_records_runtime_keys_are_the_runtime_marked_fields():
    from m3po.record import RUNTIME_KEYS

    assert RUNTIME_FIELDS == RUNTIME_KEYS == {"threads", "device", "vec_mode", "tensorboard"}
    assert RUNTIME_FIELDS <= {f.name for f in dataclasses.fields(RunConfig)}


def test_true_and_false_in_any_case_are_bools():
    # Sacred reads `compile=true` as the string 'true'; the README writes it that way.
    assert make_config("cpu", compile="true").compile is True
    assert make_config("cpu", compile="False").compile is False
