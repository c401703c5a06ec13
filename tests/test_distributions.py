"""The tanh-Gaussian policy distribution with action masks, and the masked diagonal Gaussian."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Normal, TanhTransform, TransformedDistribution

from m3po.distributions import TanhGaussian, gaussian_log_prob

F64 = torch.float64


def one_dim(mu: float, std: float) -> TanhGaussian:
    return TanhGaussian(torch.tensor([[mu]], dtype=F64), torch.tensor([[math.log(std)]], dtype=F64))


@pytest.mark.parametrize(("mu", "std"), [(0.0, 1.0), (0.3, 0.5), (-1.2, 0.4), (2.0, 0.7)])
def test_density_integrates_to_one_on_a_grid_in_action_space(mu, std):
    a = torch.linspace(-1 + 1e-9, 1 - 1e-9, 400_001, dtype=F64).unsqueeze(-1)
    dist = TanhGaussian(torch.full_like(a, mu), torch.full_like(a, math.log(std)))
    assert torch.trapezoid(dist.log_prob(a).exp(), a.squeeze(-1)).item() == pytest.approx(1.0, abs=1e-4)


def test_log_prob_matches_a_finite_difference_change_of_variables():
    mu, std = torch.tensor([0.4, -0.7], dtype=F64), torch.tensor([0.6, 1.3], dtype=F64)
    u = torch.tensor([[-2.0, 0.5], [0.1, 3.0], [1.7, -1.1]], dtype=F64)
    h = 1e-6
    slope = (torch.tanh(u + h) - torch.tanh(u - h)) / (2 * h)  # da/du by central difference
    expected = (Normal(mu, std).log_prob(u) - slope.log()).sum(-1)
    dist = TanhGaussian(mu.expand(3, 2), std.log().expand(3, 2))
    torch.testing.assert_close(dist.log_prob(torch.tanh(u)), expected, rtol=0, atol=1e-8)


def test_log_prob_matches_torch_transformed_distribution():
    gen = torch.Generator().manual_seed(0)
    mu = torch.randn(64, 5, generator=gen)
    log_std = torch.randn(64, 5, generator=gen) * 0.5
    action = torch.rand(64, 5, generator=gen) * 1.8 - 0.9
    reference = TransformedDistribution(Normal(mu, log_std.exp()), TanhTransform()).log_prob(action).sum(-1)
    torch.testing.assert_close(TanhGaussian(mu, log_std).log_prob(action), reference, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("padded_value", [0.0, 0.5, -1.0, 1.0, 7.0, float("inf"), float("nan")])
def test_padded_dims_never_change_log_prob(padded_value):
    mu = torch.tensor([[0.2, -0.4, 0.0]])
    log_std = torch.tensor([[-0.3, 0.1, 0.0]])
    mask = torch.tensor([1.0, 1.0, 0.0])
    real_only = TanhGaussian(mu[:, :2], log_std[:, :2]).log_prob(torch.tensor([[0.3, -0.6]]))
    # Garbage in the padded mean and log-std too: it must not reach the density.
    mu[0, 2], log_std[0, 2] = padded_value, padded_value
    padded = TanhGaussian(mu, log_std, mask).log_prob(torch.tensor([[0.3, -0.6, padded_value]]))
    assert torch.isfinite(padded).all()
    torch.testing.assert_close(padded, real_only, rtol=0, atol=0)


def test_per_row_masks_of_different_tasks():
    mu, log_std = torch.zeros(2, 3), torch.zeros(2, 3)
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    action = torch.full((2, 3), 0.5)
    log_prob = TanhGaussian(mu, log_std, mask).log_prob(action)
    one = TanhGaussian(torch.zeros(1, 1), torch.zeros(1, 1)).log_prob(torch.full((1, 1), 0.5))
    torch.testing.assert_close(log_prob, torch.cat([3 * one, one]))


def test_samples_are_in_range_with_padded_dims_exactly_zero():
    mu = torch.randn(1000, 4) * 3
    mask = torch.tensor([1, 0, 1, 0])
    dist = TanhGaussian(mu, torch.zeros(1000, 4), mask)
    sample = dist.sample(torch.Generator().manual_seed(1))
    assert sample.shape == (1000, 4)
    assert (sample[:, [1, 3]] == 0).all()
    assert (sample.abs() <= 1).all() and (sample[:, [0, 2]] != 0).all()
    mode = dist.mode()
    torch.testing.assert_close(mode[:, [0, 2]], torch.tanh(mu[:, [0, 2]]))
    assert (mode[:, [1, 3]] == 0).all()


def test_sampling_follows_the_generator():
    dist = TanhGaussian(torch.zeros(8, 3), torch.zeros(8, 3))
    first = dist.sample(torch.Generator().manual_seed(5))
    again = dist.sample(torch.Generator().manual_seed(5))
    other = dist.sample(torch.Generator().manual_seed(6))
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_samples_follow_the_density():
    # The sample mean of tanh(u) agrees with the mean under the density (numerical integral).
    mu, std = 0.6, 0.9
    dist = TanhGaussian(torch.full((200_000, 1), mu), torch.full((200_000, 1), math.log(std)))
    u = torch.linspace(-10, 10, 100_001, dtype=F64)
    density_u = Normal(torch.tensor(mu, dtype=F64), torch.tensor(std, dtype=F64)).log_prob(u).exp()
    expected_mean = torch.trapezoid(torch.tanh(u) * density_u, u).item()
    assert dist.sample(torch.Generator().manual_seed(2)).mean().item() == pytest.approx(
        expected_mean, abs=5e-3
    )


@pytest.mark.parametrize("edge", [1.0, -1.0, 1 - 1e-7, -(1 - 1e-7)])
def test_log_prob_at_the_boundary_is_finite(edge):
    mu = torch.zeros(1, 2, requires_grad=True)
    log_std = torch.zeros(1, 2, requires_grad=True)
    log_prob = TanhGaussian(mu, log_std).log_prob(torch.tensor([[edge, 0.0]]))
    assert torch.isfinite(log_prob).all()
    log_prob.sum().backward()
    assert torch.isfinite(mu.grad).all() and torch.isfinite(log_std.grad).all()
    # The clamp to 1 - 1e-6 makes +-1 as dense as the clamp point, not more.
    at_clamp = TanhGaussian(torch.zeros(1, 2), torch.zeros(1, 2)).log_prob(
        torch.tensor([[math.copysign(1 - 1e-6, edge), 0.0]])
    )
    torch.testing.assert_close(log_prob.detach(), at_clamp)


def test_saturated_pre_tanh_values_keep_a_finite_entropy_estimate():
    # With |u| ~ 30, 1 - tanh(u)^2 underflows to 0 even in float64: a naive log-det would give -inf.
    dist = TanhGaussian(torch.tensor([[30.0, -30.0]]).expand(10_000, 2), torch.full((10_000, 2), -3.0))
    entropy = dist.entropy_estimate(torch.Generator().manual_seed(0))
    assert torch.isfinite(entropy).all()
    # -log pi = sum over dims of 0.5 z^2 + log_std + 0.5 log(2 pi) + log(1 - tanh(u)^2), and
    # log(1 - tanh(u)^2) = log 4 - 2|u| - 2 log(1 + exp(-2|u|)) ~ log 4 - 60 at |u| ~ 30; E[0.5 z^2] = 0.5.
    expected = 2 * (0.5 - 3.0 + 0.5 * math.log(2 * math.pi) + math.log(4) - 60)
    assert entropy.mean().item() == pytest.approx(expected, abs=0.05)


def test_gradients_flow_through_sample_and_entropy_estimate():
    mu = torch.tensor([[0.3, -0.2, 0.9]], requires_grad=True)
    log_std = torch.tensor([[-0.5, 0.2, 0.0]], requires_grad=True)
    mask = torch.tensor([1.0, 1.0, 0.0])
    dist = TanhGaussian(mu, log_std, mask)
    (dist.sample(torch.Generator().manual_seed(0)).sum() + dist.entropy_estimate().sum()).backward()
    assert (mu.grad[0, :2] != 0).all() and (log_std.grad[0, :2] != 0).all()
    assert (mu.grad[0, 2] == 0) and (log_std.grad[0, 2] == 0)


def true_entropy(mu: float, std: float) -> float:
    """Entropy of a 1-D tanh-Gaussian by numerical integration over the pre-tanh u."""
    u = torch.linspace(-10, 10, 200_001, dtype=F64)
    log_density_u = Normal(torch.tensor(mu, dtype=F64), torch.tensor(std, dtype=F64)).log_prob(u)
    log_density_a = log_density_u - torch.log(1 - torch.tanh(u) ** 2)
    return -torch.trapezoid(log_density_u.exp() * log_density_a, u).item()


def test_entropy_estimate_is_unbiased():
    mu, std = 0.4, 0.7
    dist = TanhGaussian(torch.full((200_000, 1), mu), torch.full((200_000, 1), math.log(std)))
    estimate = dist.entropy_estimate(torch.Generator().manual_seed(3)).mean().item()
    assert estimate == pytest.approx(true_entropy(mu, std), abs=1e-2)


def test_entropy_gradient_is_the_pathwise_gradient_of_the_true_entropy():
    # dH/dlog_std by a central difference of the numerically integrated entropy, against the mean
    # gradient of the one-sample estimate (a detached sample would give ~0 here).
    mu, log_std, h = 0.3, math.log(0.5), 1e-4
    expected = (true_entropy(mu, math.exp(log_std + h)) - true_entropy(mu, math.exp(log_std - h))) / (2 * h)
    log_std_leaf = torch.tensor([[log_std]], requires_grad=True)
    dist = TanhGaussian(torch.full((200_000, 1), mu), log_std_leaf.expand(200_000, 1))
    (grad,) = torch.autograd.grad(
        dist.entropy_estimate(torch.Generator().manual_seed(4)).mean(), log_std_leaf
    )
    assert grad.item() == pytest.approx(expected, abs=1e-2)


def test_gaussian_log_prob_over_real_dims_only():
    x = torch.tensor([[0.3, -1.5, 4.0], [2.0, 0.0, float("nan")]])
    mean = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.5, 0.0]])
    std = torch.tensor([[1.0, 0.5, 0.0], [2.0, 0.3, 0.0]])  # std 0 in the padded dimension
    mask = torch.tensor([1, 1, 0])
    expected = Normal(mean[:, :2], std[:, :2]).log_prob(x[:, :2]).sum(-1)
    torch.testing.assert_close(gaussian_log_prob(x, mean, std, mask), expected)
    full = gaussian_log_prob(x[:, :2], mean[:, :2], std[:, :2])
    torch.testing.assert_close(full, expected)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_cuda():
    mask = torch.tensor([1, 1, 0], device="cuda")
    dist = TanhGaussian(torch.zeros(4, 3, device="cuda"), torch.zeros(4, 3, device="cuda"), mask)
    sample = dist.sample(torch.Generator(device="cuda").manual_seed(0))
    assert sample.device.type == "cuda" and (sample[:, 2] == 0).all()
    cpu = TanhGaussian(torch.zeros(4, 3), torch.zeros(4, 3), mask.cpu()).log_prob(sample.cpu())
    torch.testing.assert_close(dist.log_prob(sample).cpu(), cpu)
