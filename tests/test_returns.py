"""GAE(lambda) with time limits: hand-computed rollouts of three steps."""

from __future__ import annotations

import pytest
import torch

from m3po.returns import gae

F64 = torch.float64
GAMMA, LAM = 0.9, 0.5  # gamma * lambda = 0.45

# One env, three steps; V(s_{t+1}) = V(s_{t+1}) of the next row unless an episode ends at t.
REWARDS = [1.0, 2.0, 3.0]
VALUES = [0.5, 1.0, 1.5]


def column(values: list[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=F64).unsqueeze(-1)


def run(next_values, terminated, done, gamma=GAMMA, lam=LAM):
    return gae(
        column(REWARDS),
        column(VALUES),
        column(next_values),
        column(terminated).bool(),
        column(done).bool(),
        torch.tensor([gamma], dtype=F64),
        lam,
    )


def test_no_episode_end():
    # deltas: 1 + 0.9*1.0 - 0.5 = 1.4, 2 + 0.9*1.5 - 1.0 = 2.35, 3 + 0.9*2.0 - 1.5 = 3.3
    # A2 = 3.3, A1 = 2.35 + 0.45*3.3 = 3.835, A0 = 1.4 + 0.45*3.835 = 3.12575
    advantages, returns = run([1.0, 1.5, 2.0], [0, 0, 0], [0, 0, 0])
    torch.testing.assert_close(advantages, column([3.12575, 3.835, 3.3]))
    torch.testing.assert_close(returns, column([3.62575, 4.835, 4.8]))


def test_truncation_cuts_the_chain_but_keeps_the_bootstrap():
    # Time limit at t=1; V of its true final observation is 4.0 (s_2 is the next episode's first state).
    # deltas: 1.4, 2 + 0.9*4.0 - 1.0 = 4.6, 3.3;  A2 = 3.3, A1 = 4.6 (chain cut), A0 = 1.4 + 0.45*4.6 = 3.47
    advantages, returns = run([1.0, 4.0, 2.0], [0, 0, 0], [0, 1, 0])
    torch.testing.assert_close(advantages, column([3.47, 4.6, 3.3]))
    torch.testing.assert_close(returns, column([3.97, 5.6, 4.8]))


def test_termination_drops_the_bootstrap():
    # deltas: 1.4, 2 - 1.0 = 1.0 (no gamma V), 3.3;  A2 = 3.3, A1 = 1.0, A0 = 1.4 + 0.45*1.0 = 1.85
    advantages, _ = run([1.0, 4.0, 2.0], [0, 1, 0], [0, 1, 0])
    torch.testing.assert_close(advantages, column([1.85, 1.0, 3.3]))


def test_lambda_zero_gives_one_step_td_errors():
    advantages, _ = run([1.0, 4.0, 2.0], [0, 0, 0], [0, 1, 0], lam=0.0)
    torch.testing.assert_close(advantages, column([1.4, 4.6, 3.3]))


def test_lambda_one_gives_discounted_monte_carlo_plus_bootstrap():
    # A0 = 1 + 0.9*2 + 0.81*3 + 0.729*V(s_3) - V(s_0) = 1 + 1.8 + 2.43 + 0.729*2.0 - 0.5 = 6.188
    # A1 = 2 + 0.9*3 + 0.81*2.0 - 1.0 = 5.32;  A2 = 3 + 0.9*2.0 - 1.5 = 3.3
    advantages, _ = run([1.0, 1.5, 2.0], [0, 0, 0], [0, 0, 0], lam=1.0)
    torch.testing.assert_close(advantages, column([6.188, 5.32, 3.3]))


def test_lambda_one_matches_monte_carlo_on_random_data():
    gen = torch.Generator().manual_seed(0)
    steps, envs, gamma = 20, 3, torch.tensor([0.99, 0.9, 0.5], dtype=F64)
    rewards = torch.randn(steps, envs, generator=gen, dtype=F64)
    values = torch.randn(steps + 1, envs, generator=gen, dtype=F64)
    no_end = torch.zeros(steps, envs, dtype=torch.bool)
    advantages, returns = gae(rewards, values[:-1], values[1:], no_end, no_end, gamma, 1.0)
    discounts = gamma ** torch.arange(steps, dtype=F64).unsqueeze(-1)
    monte_carlo = torch.stack(
        [
            (discounts[: steps - t] * rewards[t:]).sum(0) + gamma ** (steps - t) * values[-1]
            for t in range(steps)
        ]
    )
    torch.testing.assert_close(returns, monte_carlo)
    torch.testing.assert_close(advantages, monte_carlo - values[:-1])


def test_gamma_is_per_env():
    # Two steps, reward 1 each, V = 0 except V(s_2) = 2, lambda = 1.
    # gamma 0.9: A1 = 1 + 0.9*2 = 2.8, A0 = 1 + 0.9*2.8 = 3.52;  gamma 0.5: A1 = 1 + 1 = 2, A0 = 1 + 0.5*2 = 2
    rewards = torch.ones(2, 2, dtype=F64)
    values = torch.zeros(2, 2, dtype=F64)
    next_values = torch.tensor([[0.0, 0.0], [2.0, 2.0]], dtype=F64)
    no_end = torch.zeros(2, 2)
    advantages, _ = gae(
        rewards, values, next_values, no_end, no_end, torch.tensor([0.9, 0.5], dtype=F64), 1.0
    )
    torch.testing.assert_close(advantages, torch.tensor([[3.52, 2.0], [2.8, 2.0]], dtype=F64))


def test_a_float_gamma_is_shared_by_all_envs():
    advantages, _ = gae(
        torch.ones(2, 3), torch.zeros(2, 3), torch.ones(2, 3), torch.zeros(2, 3), torch.zeros(2, 3), 0.5, 1.0
    )
    # A1 = 1 + 0.5 = 1.5, A0 = 1 + 0.5*1 + 0.5*1.5 = 2.25 (delta0 = 1.5, chained 0.5*1.5)
    torch.testing.assert_close(advantages, torch.tensor([[2.25] * 3, [1.5] * 3]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_cuda():
    args = [torch.rand(5, 4) for _ in range(3)] + [torch.zeros(5, 4, dtype=torch.bool)] * 2
    cpu = gae(*args, torch.full((4,), 0.9), 0.95)
    cuda = gae(*[x.cuda() for x in args], torch.full((4,), 0.9, device="cuda"), 0.95)
    assert cuda[0].device.type == "cuda"
    torch.testing.assert_close(cuda[0].cpu(), cpu[0])
