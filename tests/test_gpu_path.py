"""The GPU path, as far as a CPU can check it: checkpoints resume wherever their tensors load.

A resume on CUDA loads the checkpoint with ``map_location=<the run's device>``. torch's
``Generator.set_state``, ``torch.set_rng_state`` and ``torch.cuda.set_rng_state_all`` take CPU byte
tensors only, so RNG states that moved to the GPU with the weights could not be restored. Mapping to
``meta`` moves every tensor off the CPU as ``cuda`` does: the weights go, the RNG states (saved as
bytes, :mod:`m3po.rng`) stay and restore.
"""

from __future__ import annotations

import pytest
import torch
from test_tdmpc2 import RUN as TDMPC2_RUN
from test_train import small_config

from baselines.tdmpc2.registration import make_config as tdmpc2_config
from baselines.tdmpc2.train import train as train_tdmpc2
from m3po.rng import restore_state, set_generator_state, set_global_rng_state
from m3po.train import Trainer


def _load(run_dir, where):
    return torch.load(run_dir / "checkpoints" / "latest.pt", map_location=where, weights_only=False)


def _restores(state, expected: torch.Tensor) -> None:
    generator = torch.Generator()
    set_generator_state(generator, state)
    assert torch.equal(generator.get_state(), expected)


def test_m3po_checkpoint_rng_states_restore_when_its_tensors_load_off_the_cpu(tmp_path):
    Trainer(small_config(steps=64), tmp_path, progress=False).run()
    moved, plain = _load(tmp_path, "meta"), _load(tmp_path, "cpu")
    assert next(iter(moved["agent"]["model"].values())).device.type == "meta"  # as "cuda" moves them
    _restores(moved["agent"]["generator"], restore_state(plain["agent"]["generator"]))
    set_global_rng_state(moved)
    assert torch.equal(torch.get_rng_state(), restore_state(plain["torch_rng"]))


def test_tdmpc2_checkpoint_rng_states_restore_when_its_tensors_load_off_the_cpu(tmp_path):
    train_tdmpc2(tdmpc2_config("cpu", **{**TDMPC2_RUN, "eval_planner": False}), tmp_path, progress=False)
    moved, plain = _load(tmp_path, "meta"), _load(tmp_path, "cpu")
    assert moved["buffer"]["obs"].device.type == "meta"
    for part in ("agent", "buffer"):
        _restores(moved[part]["generator"], restore_state(plain[part]["generator"]))


def test_states_written_as_tensors_still_restore():
    """Checkpoints written before the states were bytes hold CPU tensors (``.cpu()`` for any device)."""
    generator = torch.Generator().manual_seed(3)
    _restores(generator.get_state(), generator.get_state())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_cuda_generator_restores_from_a_checkpoint_mapped_to_cuda(tmp_path):
    from m3po.rng import generator_state

    generator = torch.Generator(device="cuda").manual_seed(5)
    torch.save({"g": generator_state(generator)}, tmp_path / "ck.pt")
    other = torch.Generator(device="cuda")
    set_generator_state(other, torch.load(tmp_path / "ck.pt", map_location="cuda")["g"])
    assert torch.equal(other.get_state(), generator.get_state())
