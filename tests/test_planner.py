"""MPPI planner: convergence on analytic models, batching, masking, seeding, warm start, prior centring."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import Tensor

from m3po.planner import MPPIPlanner, PlanOutput, shift_warm_start, trajectory_return
from m3po.planner_config import PlannerConfig

# Converges in a few iterations on the quadratic models below (TD-MPC2's sizes, more iterations).
CFG = PlannerConfig(
    horizon=3,
    iterations=6,
    num_samples=256,
    num_pi_trajs=16,
    num_elites=32,
    temperature=0.5,
    min_std=0.05,
    max_std=2.0,
    exec_noise=0.0,
    prior_centred=False,
    sample_space="action",  # TD-MPC2's planner; the pre-tanh mode has tests of its own below
)


class TargetModel:
    """Latent = per-env target action a* (never changes); reward -||a - a*||^2, V = 0.

    The prior is off target: its mean is tanh(-a*) (the mirror image), sigma 0.37.
    """

    def next(self, z: Tensor, a: Tensor, task: Tensor | None) -> Tensor:
        return z

    def reward(self, z: Tensor, a: Tensor, task: Tensor | None) -> Tensor:
        return -((a - z) ** 2).sum(-1, keepdim=True)

    def V(self, z: Tensor, task: Tensor | None) -> Tensor:
        return torch.zeros(z.shape[0], 1, device=z.device)

    def pi(self, z: Tensor, task: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        mu = -z
        log_std = torch.full_like(z, -1.0)
        return torch.tanh(mu), mu, log_std


class MaskRecordingModel(TargetModel):
    """Latent = the env's action mask; records the largest |a| any model call saw in a padded dim.

    The prior puts mass in every dim (mu = 0.5 everywhere), so masking has to be the planner's doing.
    """

    def __init__(self) -> None:
        self.padded_max = 0.0
        self.calls = 0

    def _check(self, z: Tensor, a: Tensor) -> None:
        self.calls += 1
        self.padded_max = max(self.padded_max, float((a * (1 - z)).abs().max()))

    def next(self, z: Tensor, a: Tensor, task: Tensor | None) -> Tensor:
        self._check(z, a)
        return z

    def reward(self, z: Tensor, a: Tensor, task: Tensor | None) -> Tensor:
        self._check(z, a)
        return -((a - 0.3 * z) ** 2).sum(-1, keepdim=True)

    def pi(self, z: Tensor, task: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        mu = torch.full_like(z, 0.5)
        return torch.tanh(mu), mu, torch.zeros_like(z)


class StepModel:
    """Latent = step counter h (starts 0); reward 1 only at step H-1, V = 1 only at step H."""

    def __init__(self, horizon: int) -> None:
        self.horizon = horizon

    def next(self, z: Tensor, a: Tensor, task: Tensor | None) -> Tensor:
        return z + 1

    def reward(self, z: Tensor, a: Tensor, task: Tensor | None) -> Tensor:
        return (z == self.horizon - 1).float()

    def V(self, z: Tensor, task: Tensor | None) -> Tensor:
        return (z == self.horizon).float()

    def pi(self, z: Tensor, task: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        raise AssertionError("scoring must not call the prior")


class ChainModel:
    """Latent evolves with the action (z' = 0.5 z + a) and the prior's mean depends on z, so the prior's
    mean rollout differs from repeating its first action. Reward 0, V 0: every sequence scores the same.
    """

    def next(self, z: Tensor, a: Tensor, task: Tensor | None) -> Tensor:
        return 0.5 * z + a

    def reward(self, z: Tensor, a: Tensor, task: Tensor | None) -> Tensor:
        return torch.zeros(z.shape[0], 1, device=z.device)

    def V(self, z: Tensor, task: Tensor | None) -> Tensor:
        return torch.zeros(z.shape[0], 1, device=z.device)

    def pi(self, z: Tensor, task: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        mu = 1.5 * z - 0.2
        return torch.tanh(mu), mu, torch.full_like(z, -1.5)


def _plan(
    planner: MPPIPlanner,
    model: object,
    z: Tensor,
    mask: Tensor | None = None,
    prev_mean: Tensor | None = None,
    eval_mode: bool = True,
    seed: int = 0,
) -> PlanOutput:
    num_envs, act_dim = z.shape[0], planner.act_dim
    mask = torch.ones(num_envs, act_dim) if mask is None else mask
    discount = torch.full((num_envs,), 0.99)
    generator = torch.Generator().manual_seed(seed)
    return planner.plan(model, z, None, discount, mask, prev_mean, eval_mode=eval_mode, generator=generator)


# Executed eval action vs a*: elites concentrate within about min_std of the target; 0.15 per dim
# leaves room for the drawn elite's spread but is far below the prior's error (|2 a*| >= 0.6 here).
TOL = 0.15


def test_converges_to_target_action() -> None:
    target = torch.tensor([[0.6, -0.3, 0.8]])
    out = _plan(MPPIPlanner(CFG, 3), TargetModel(), target)
    assert (out.action - target).abs().max() < TOL
    assert (out.mean[:, 0] - target).abs().max() < TOL
    assert out.stats["prior_gap"] > 0.5  # the prior's mean tanh(-a*) is far from where the planner went


def test_batched_envs_keep_their_own_targets() -> None:
    targets = torch.tensor([[0.6, -0.3, 0.8], [-0.7, 0.5, -0.4], [0.0, 0.9, -0.9], [0.3, 0.3, 0.3]])
    out = _plan(MPPIPlanner(CFG, 3), TargetModel(), targets)
    assert out.action.shape == (4, 3) and out.mean.shape == (4, 3, 3) and out.std.shape == (4, 3, 3)
    assert (out.action - targets).abs().max() < TOL
    # Batched planning must match planning each env alone (same targets, any seed) within the tolerance.
    for i in range(len(targets)):
        alone = _plan(MPPIPlanner(CFG, 3), TargetModel(), targets[i : i + 1], seed=i + 1)
        assert (alone.action - out.action[i]).abs().max() < 2 * TOL


@pytest.mark.parametrize("prior_centred", [False, True])
def test_padded_action_dims_stay_zero(prior_centred: bool) -> None:
    cfg = dataclasses.replace(CFG, exec_noise=0.3, prior_centred=prior_centred, iterations=3)
    mask = torch.tensor([[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    model = MaskRecordingModel()
    prev_mean = torch.full((2, cfg.horizon, 4), 0.7)  # nonzero everywhere, padded dims included
    out = _plan(MPPIPlanner(cfg, 4), model, mask.clone(), mask, prev_mean, eval_mode=False)
    assert model.calls > 0 and model.padded_max == 0.0  # every action the model was asked about
    assert torch.all(out.action[0, 2:] == 0) and torch.all(out.mean[0, :, 2:] == 0)
    assert torch.all(out.behaviour_mean[0, 2:] == 0)
    assert torch.all(out.action[1] != 0)  # the full-size task keeps all its dims
    assert out.action.abs().max() <= 1.0
    assert torch.all(out.behaviour_std >= cfg.exec_noise)  # exec noise is part of the behaviour density


def test_same_seed_same_plan_different_seed_different_action() -> None:
    cfg = dataclasses.replace(CFG, exec_noise=0.1, iterations=2)
    z = torch.tensor([[0.2, -0.1, 0.4], [0.5, 0.5, -0.5]])
    first, second = (_plan(MPPIPlanner(cfg, 3), TargetModel(), z, eval_mode=False, seed=7) for _ in range(2))
    for field in ("action", "mean", "std", "behaviour_mean", "behaviour_std"):
        assert torch.equal(getattr(first, field), getattr(second, field)), field
    assert first.stats == second.stats
    other = _plan(MPPIPlanner(cfg, 3), TargetModel(), z, eval_mode=False, seed=8)
    assert not torch.equal(first.action, other.action)


def test_shift_warm_start_helper() -> None:
    prev = torch.arange(2 * 3 * 2, dtype=torch.float32).view(2, 3, 2)
    shifted = shift_warm_start(prev)
    assert torch.equal(shifted[:, :2], prev[:, 1:])
    assert torch.all(shifted[:, 2] == 0)


def test_warm_start_is_shifted_inside_plan() -> None:
    # All sequences score the same and sigma is tiny, so the refit mean is the mean the planner sampled
    # around: the shifted previous mean for env 0, zero for env 1 (a row the caller zeroed).
    cfg = dataclasses.replace(CFG, min_std=1e-3, max_std=1e-3, num_pi_trajs=0, iterations=1)
    prev = torch.tensor([[[0.1, 0.2], [0.3, -0.4], [0.5, 0.6]], [[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]]])
    out = _plan(MPPIPlanner(cfg, 2), ChainModel(), torch.zeros(2, 2), prev_mean=prev)
    expected = torch.tensor([[[0.3, -0.4], [0.5, 0.6], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]]])
    torch.testing.assert_close(out.mean, expected, atol=2e-3, rtol=0)
    no_warm = _plan(MPPIPlanner(cfg, 2), ChainModel(), torch.zeros(2, 2), prev_mean=None)
    torch.testing.assert_close(no_warm.mean, torch.zeros(2, 3, 2), atol=2e-3, rtol=0)


def _prior_mean_rollout(model: ChainModel, z: Tensor, horizon: int) -> tuple[Tensor, Tensor]:
    actions, stds = [], []
    for _ in range(horizon):
        _, mu, log_std = model.pi(z, None)
        actions.append(torch.tanh(mu))
        stds.append(log_std.exp())
        z = model.next(z, actions[-1], None)
    return torch.stack(actions, 1), torch.stack(stds, 1)


def test_prior_centred_initial_gaussian_is_the_prior_rollout() -> None:
    cfg = dataclasses.replace(CFG, prior_centred=True, min_std=0.05, max_std=0.2)
    model, z, mask = ChainModel(), torch.tensor([[0.4, -0.2], [-0.6, 0.1]]), torch.ones(2, 2)
    planner = MPPIPlanner(cfg, 2)
    prior = planner.rollout_prior(
        model, z, None, torch.full((2,), 0.99), mask, torch.Generator().manual_seed(0)
    )
    mean, std = planner.initial_gaussian(prior, torch.full((2, 3, 2), 0.9), mask)  # warm start ignored
    expected_mean, expected_std = _prior_mean_rollout(model, z, cfg.horizon)
    torch.testing.assert_close(mean, expected_mean)
    torch.testing.assert_close(std, expected_std.clamp(0.05, 0.2))
    assert not torch.allclose(expected_mean[:, 1], expected_mean[:, 0])  # the rollout matters
    assert prior.samples.shape == (2, cfg.num_pi_trajs, cfg.horizon, 2)


def test_prior_centred_plan_stays_on_the_prior_sequence() -> None:
    cfg = dataclasses.replace(
        CFG, prior_centred=True, min_std=1e-3, max_std=1e-3, iterations=1, num_pi_trajs=0
    )
    z = torch.tensor([[0.4, -0.2], [-0.6, 0.1]])
    out = _plan(MPPIPlanner(cfg, 2), ChainModel(), z, prev_mean=torch.full((2, 3, 2), 0.9))
    torch.testing.assert_close(
        out.mean, _prior_mean_rollout(ChainModel(), z, cfg.horizon)[0], atol=2e-3, rtol=0
    )
    assert out.stats["prior_gap"] < 5e-3


def test_scoring_discounts_per_env() -> None:
    horizon = 3
    z = torch.zeros(2, 1)
    actions = torch.zeros(2, 5, horizon, 1)
    gamma = torch.tensor([0.9, 0.5])
    values = trajectory_return(StepModel(horizon), z, actions, None, gamma)
    # reward only at h = H-1 (weight gamma^(H-1)), value only at H (weight gamma^H)
    expected = (gamma ** (horizon - 1) + gamma**horizon).unsqueeze(1).expand(2, 5)
    torch.testing.assert_close(values, expected)


def test_large_action_spaces_get_extra_iterations() -> None:
    assert MPPIPlanner(CFG, 19).iterations == CFG.iterations
    assert MPPIPlanner(CFG, 20).iterations == CFG.iterations + CFG.extra_iters_large_action


def test_stats_are_finite_floats() -> None:
    out = _plan(MPPIPlanner(dataclasses.replace(CFG, iterations=1), 3), TargetModel(), torch.zeros(2, 3))
    assert {"elite_return", "best_return", "prior_return", "std0", "prior_gap", "elite_prior_share"} <= set(
        out.stats
    )
    assert all(isinstance(v, float) and v == v for v in out.stats.values())


def test_exec_noise_only_in_training() -> None:
    cfg = dataclasses.replace(CFG, exec_noise=0.2, iterations=2)
    z = torch.tensor([[0.2, -0.1, 0.4], [0.5, 0.5, -0.5]])
    train = _plan(MPPIPlanner(cfg, 3), TargetModel(), z, eval_mode=False, seed=3)
    evaluation = _plan(MPPIPlanner(cfg, 3), TargetModel(), z, eval_mode=True, seed=3)
    # Same seed, same plan up to the drawn elite; only the training action gets the extra noise.
    assert torch.equal(train.mean, evaluation.mean)
    assert not torch.equal(train.action, evaluation.action)
    assert torch.equal(evaluation.behaviour_std, evaluation.std[:, 0])
    quiet = dataclasses.replace(cfg, exec_noise=0.0)
    assert torch.equal(
        _plan(MPPIPlanner(quiet, 3), TargetModel(), z, eval_mode=False, seed=3).action,
        _plan(MPPIPlanner(quiet, 3), TargetModel(), z, eval_mode=True, seed=3).action,
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_plans_on_cuda() -> None:
    targets = torch.tensor([[0.6, -0.3, 0.8], [-0.7, 0.5, -0.4]], device="cuda")
    discount, mask = torch.full((2,), 0.99, device="cuda"), torch.ones(2, 3, device="cuda")
    generator = torch.Generator(device="cuda").manual_seed(0)
    planner = MPPIPlanner(CFG, 3, device="cuda")
    out = planner.plan(
        TargetModel(), targets, None, discount, mask, None, eval_mode=True, generator=generator
    )
    assert out.action.device.type == "cuda"
    assert (out.action - targets).abs().max() < TOL


def test_pretanh_planning_starts_at_the_prior_and_never_executes_plus_minus_one() -> None:
    cfg = dataclasses.replace(
        CFG, prior_centred=True, sample_space="pretanh", exec_noise=0.3, min_std=0.05, max_std=2.0
    )
    model, z = SaturatedPriorModel(), torch.tensor([[0.4, -0.2], [-0.6, 0.1]])
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    planner = MPPIPlanner(cfg, 2)
    prior = planner.rollout_prior(
        model, z, None, torch.full((2,), 0.99), mask, torch.Generator().manual_seed(0)
    )
    mean, std = planner.initial_gaussian(prior, None, mask)
    torch.testing.assert_close(mean[:, 0], torch.tensor([[6.0, -6.0], [6.0, 0.0]]))  # pre-tanh mu, masked
    for seed in range(5):
        out = _plan(planner, model, z, mask=mask, eval_mode=False, seed=seed)
        assert torch.all(out.action.abs() < 1.0), "a pre-tanh plan must not execute an action at +-1"
        assert torch.all(out.action[1, 1] == 0) and torch.all(out.mean[1, :, 1] == 0)


class SaturatedPriorModel:
    """A prior whose mean sits deep in tanh's tails (mu = +6, -6): TD-MPC2's clamp would give +-1."""

    def next(self, z: Tensor, a: Tensor, task: Tensor | None) -> Tensor:
        return z

    def reward(self, z: Tensor, a: Tensor, task: Tensor | None) -> Tensor:
        return -(a**2).sum(-1, keepdim=True)

    def V(self, z: Tensor, task: Tensor | None) -> Tensor:  # noqa: N802
        return torch.zeros(z.shape[0], 1)

    def pi(self, z: Tensor, task: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        mu = torch.tensor([6.0, -6.0]).expand(z.shape[0], 2)
        return torch.tanh(mu), mu, torch.full_like(mu, -1.0)


@pytest.mark.parametrize("sample_space", ["action", "pretanh"])
def test_eval_action_mean_executes_the_weighted_mean_in_evaluation_only(sample_space: str) -> None:
    cfg = dataclasses.replace(CFG, iterations=2, eval_action="mean", sample_space=sample_space)
    z = torch.tensor([[0.2, -0.1, 0.4], [0.5, 0.5, -0.5]])
    out = _plan(MPPIPlanner(cfg, 3), TargetModel(), z, eval_mode=True, seed=4)
    squash = torch.tanh if sample_space == "pretanh" else (lambda x: x.clamp(-1, 1))
    torch.testing.assert_close(out.action, squash(out.mean[:, 0]))
    # Training still executes a drawn elite: the same plan, a different action.
    train = _plan(MPPIPlanner(cfg, 3), TargetModel(), z, eval_mode=False, seed=4)
    assert torch.equal(train.mean, out.mean) and not torch.equal(train.action, out.action)
    elite = _plan(MPPIPlanner(dataclasses.replace(cfg, eval_action="elite"), 3), TargetModel(), z, seed=4)
    assert torch.equal(elite.action, train.action)


class CountingModel(TargetModel):
    """TargetModel that records the batch size of every terminal-value call."""

    def __init__(self) -> None:
        self.v_rows: list[int] = []

    def V(self, z: Tensor, task: Tensor | None) -> Tensor:  # noqa: N802
        self.v_rows.append(z.shape[0])
        return super().V(z, task)


@pytest.mark.parametrize("rescore", [False, True])
def test_rescore_prior_scores_the_whole_population_every_iteration(rescore: bool) -> None:
    cfg = dataclasses.replace(CFG, rescore_prior=rescore)
    model, num_envs = CountingModel(), 2
    z = torch.tensor([[0.6, -0.3, 0.8], [-0.2, 0.5, 0.1]])
    out = _plan(MPPIPlanner(cfg, 3), model, z)
    scored = cfg.num_samples if rescore else cfg.num_samples - cfg.num_pi_trajs
    # the prior's rollout first (its N_pi samples and its mean), then one batch per iteration
    assert model.v_rows == [num_envs * (cfg.num_pi_trajs + 1)] + [num_envs * scored] * cfg.iterations
    assert (out.action - z).abs().max() < TOL  # a deterministic model: the same plan either way


def test_rescore_prior_changes_nothing_for_a_deterministic_model() -> None:
    z = torch.tensor([[0.6, -0.3, 0.8]])
    once = _plan(MPPIPlanner(CFG, 3), TargetModel(), z, eval_mode=False)
    again = _plan(
        MPPIPlanner(dataclasses.replace(CFG, rescore_prior=True), 3), TargetModel(), z, eval_mode=False
    )
    torch.testing.assert_close(again.action, once.action)
    torch.testing.assert_close(again.mean, once.mean)
