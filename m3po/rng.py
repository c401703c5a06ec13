"""Random-number-generator states in checkpoints, independent of where a checkpoint's tensors load.

torch's ``Generator.set_state``, ``torch.set_rng_state`` and ``torch.cuda.set_rng_state_all`` take CPU
byte tensors only, also for a CUDA generator. A checkpoint loaded with ``map_location="cuda"`` (to put
the weights on the GPU) would move the saved states to the GPU too, and restoring them would fail.
So states are saved as plain ``bytes``, which ``torch.load`` never maps to a device, and restored
through :func:`restore_state`, which also takes a tensor on any device (checkpoints written before).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch


def saved_state(state: torch.Tensor) -> bytes:
    """A generator state (``Generator.get_state()``, ``torch.get_rng_state()``) as bytes."""
    return state.cpu().numpy().tobytes()


def restore_state(saved: bytes | torch.Tensor) -> torch.Tensor:
    """The CPU byte tensor that ``set_state`` takes, from :func:`saved_state`'s bytes or a tensor."""
    if isinstance(saved, bytes | bytearray):
        return torch.frombuffer(bytearray(saved), dtype=torch.uint8)
    return saved.cpu()


def generator_state(generator: torch.Generator) -> bytes:
    """``generator``'s state for a checkpoint."""
    return saved_state(generator.get_state())


def set_generator_state(generator: torch.Generator, saved: bytes | torch.Tensor) -> None:
    """Restore ``generator`` (CPU or CUDA) from :func:`generator_state`'s bytes (or a tensor, any device)."""
    generator.set_state(restore_state(saved))


def global_rng_state() -> dict[str, Any]:
    """Torch's global RNG states (CPU, and every CUDA device when present), for a checkpoint."""
    cuda = [saved_state(s) for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else None
    return {"torch_rng": saved_state(torch.get_rng_state()), "cuda_rng": cuda}


def set_global_rng_state(checkpoint: dict[str, Any]) -> None:
    """Restore :func:`global_rng_state`'s states (CUDA's only where CUDA is present)."""
    torch.set_rng_state(restore_state(checkpoint["torch_rng"]))
    if checkpoint.get("cuda_rng") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([restore_state(s) for s in checkpoint["cuda_rng"]])


@contextlib.contextmanager
def drawing_from(generator: torch.Generator, seed: int) -> Iterator[None]:
    """Inside the block ``generator`` draws from a stream seeded ``seed``; after it, it is exactly where it
    was before. So the block's draws (an evaluation's planner noise) are a function of ``seed`` alone,
    and the draws outside it (training's) do not depend on whether, or how much, the block ran.

    :param generator: a CPU or CUDA generator (objects holding it keep working)
    :param seed: the block's seed
    """
    saved = generator.get_state()
    generator.manual_seed(seed)
    try:
        yield
    finally:
        generator.set_state(saved)
