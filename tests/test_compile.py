"""The ``compile`` switch (issue 16): compiled and eager paths agree within a stated tolerance.

The eager path (``compile=False``, the default) stays bit-identical to what it was (the determinism and
exact-resume tests check that); ``compile=True`` runs the planner's scoring and M3PO's world-model loss
through ``torch.compile`` (inductor) and fuses Adam, which reorders float reductions. So here the two
are compared on a fixed batch, within ``RTOL``/``ATOL``: the first update's weights and losses, and
the planner's scores of a fixed population. Compiling on 2 CPU cores takes a while: marked slow.
"""

from __future__ import annotations

import pytest
import torch

from m3po.agent import M3POAgent, Rollout
from m3po.planner import MPPIPlanner, trajectory_return
from m3po.registration import make_config

pytestmark = pytest.mark.slow

# float32 through a few layers and one Adam step: compiled kernels reorder sums (about 1e-7 relative per
# op); one Adam step moves each weight by at most lr (3e-4), so the weights agree to well below that.
RTOL, ATOL = 1e-4, 1e-5

OBS, ACT, T, E = 5, 1, 16, 4


def _agent(compile: bool) -> M3POAgent:  # noqa: A002
    cfg = make_config(
        "cpu", num_envs=E, compile=compile, ppo={"rollout_len": T, "epochs": 1, "minibatch_size": 32}
    )
    torch.manual_seed(0)
    return M3POAgent(cfg, OBS, ACT, torch.ones(1, ACT), torch.tensor([0.99]), torch.device("cpu"))


def _batch() -> Rollout:
    g = torch.Generator().manual_seed(1)
    return Rollout(
        obs=torch.randn(T, E, OBS, generator=g),
        actions=torch.rand(T, E, ACT, generator=g) * 2 - 1,
        rewards=torch.rand(T, E, generator=g),
        terminated=torch.zeros(T, E, dtype=torch.bool),
        truncated=torch.zeros(T, E, dtype=torch.bool),
        next_obs=torch.randn(T, E, OBS, generator=g),
        log_prob=torch.full((T, E), -1.0),
        behaviour_log_prob=torch.full((T, E), -1.0),
        task=torch.zeros(E, dtype=torch.long),
    )


def test_m3po_first_update_matches_eager() -> None:
    eager, compiled = _agent(False), _agent(True)
    for a, b in zip(eager.model.parameters(), compiled.model.parameters(), strict=True):
        assert torch.equal(a, b)
    stats_eager = eager.update(_batch(), 1000)
    stats_compiled = compiled.update(_batch(), 1000)
    for (name, a), b in zip(eager.model.named_parameters(), compiled.model.parameters(), strict=True):
        torch.testing.assert_close(b, a, rtol=RTOL, atol=ATOL, msg=f"{name} differs beyond the tolerance")
    for key in ("loss/consistency", "loss/reward", "loss/value", "loss/actor"):
        assert stats_compiled[key] == pytest.approx(stats_eager[key], rel=RTOL, abs=ATOL), key


def test_compiled_trajectory_return_matches_eager() -> None:
    agent = _agent(False)
    planner = MPPIPlanner(agent.cfg.planner, ACT, compile=True)
    g = torch.Generator().manual_seed(2)
    z = agent.model.encode(torch.randn(E, OBS, generator=g), None).detach()
    actions = torch.rand(E, 16, agent.cfg.planner.horizon, ACT, generator=g) * 2 - 1
    discount = torch.full((E,), 0.99)
    expected = trajectory_return(agent.model, z, actions, None, discount)
    got = planner._trajectory_return(agent.model, z, actions, None, discount)
    torch.testing.assert_close(got, expected, rtol=RTOL, atol=ATOL)


def test_compile_is_recorded_in_the_config() -> None:
    assert make_config("cpu").to_dict()["compile"] is False
    assert make_config("cpu", compile=True).to_dict()["compile"] is True
