"""``m3po bench tdmpc2``: TD-MPC2's milliseconds per planning decision (one env) and per gradient update.

Prints one JSON line with the ``cpu`` and ``paper`` presets and the official 1M model size
(``model_size: 1``: latent 128, encoder 256, MLP 384, two Q heads) beside them, so the presets' cost can
be read as ratios measured in one process on one machine.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch

from baselines.tdmpc2.agent import TDMPC2Agent
from baselines.tdmpc2.buffer import Batch
from baselines.tdmpc2.registration import make_config
from baselines.tdmpc2.world_model import num_parameters
from suite.bench import at_least

# The official size table's 1M entry (tdmpc2/common/__init__.py), with the official planner.
OFFICIAL_1M = {"latent_dim": 128, "enc_dim": 256, "mlp_dim": 384, "num_enc_layers": 2, "num_q": 2}
SETTINGS: dict[str, tuple[str, dict[str, Any]]] = {
    "cpu": ("cpu", {}),
    "official-1m": ("paper", OFFICIAL_1M),
    "paper": ("paper", {}),
}


def time_setting(
    preset: str, updates: dict[str, Any], obs_dim: int, act_dim: int, decisions: int, grad_steps: int
) -> dict[str, float]:
    """Mean ms per decision (one env, training mode) and per update (a random batch), after a warm-up."""
    cfg = make_config(preset, **updates)
    torch.manual_seed(0)
    agent = TDMPC2Agent(cfg, obs_dim, act_dim, torch.ones(1, act_dim), torch.tensor([0.99]), "cpu")
    obs, task = torch.randn(1, obs_dim), torch.zeros(1, dtype=torch.long)
    H, B = cfg.planner.horizon, cfg.batch_size
    batch = Batch(
        torch.randn(H + 1, B, obs_dim),
        torch.rand(H, B, act_dim) * 2 - 1,
        torch.rand(H, B, 1),
        torch.zeros(B).long(),
    )
    agent.act(obs, task)
    agent.update(batch)
    start = time.perf_counter()
    for _ in range(decisions):
        agent.act(obs, task)
    decision_ms = 1000 * (time.perf_counter() - start) / decisions
    start = time.perf_counter()
    for _ in range(grad_steps):
        agent.update(batch)
    update_ms = 1000 * (time.perf_counter() - start) / grad_steps
    return {"decision_ms": decision_ms, "update_ms": update_ms, "params": num_parameters(agent.model)}


def run(obs_dim: int = 5, act_dim: int = 1, decisions: int = 20, grad_steps: int = 20) -> dict[str, Any]:
    """Time every setting; ratios are relative to the official 1M size."""
    out: dict[str, Any] = {"obs_dim": obs_dim, "act_dim": act_dim, "threads": torch.get_num_threads()}
    for name, (preset, updates) in SETTINGS.items():
        out[name] = time_setting(preset, updates, obs_dim, act_dim, decisions, grad_steps)
    ref = out["official-1m"]
    for name in SETTINGS:
        out[name]["decision_vs_1m"] = out[name]["decision_ms"] / ref["decision_ms"]
        out[name]["update_vs_1m"] = out[name]["update_ms"] / ref["update_ms"]
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--obs-dim", type=at_least(int, 1), default=5, help="observation size (cartpole: 5)")
    parser.add_argument("--act-dim", type=at_least(int, 1), default=1, help="action size (cartpole: 1)")
    parser.add_argument(
        "--decisions", type=at_least(int, 1), default=20, help="timed planning decisions per setting"
    )
    parser.add_argument("--updates", type=at_least(int, 1), default=20, help="timed updates per setting")
    parser.add_argument("--threads", type=at_least(int), default=0, help="torch threads (0: torch's default)")


def main(args: argparse.Namespace) -> dict[str, Any]:
    if args.threads:
        torch.set_num_threads(args.threads)
    return run(args.obs_dim, args.act_dim, args.decisions, args.updates)
