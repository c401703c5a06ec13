"""The exploration bonus (Eq. 4-7): hand-computed small batches."""

from __future__ import annotations

import math

import pytest
import torch

from m3po.bonus import alpha_at, apply_bonus, exploration_bonus, one_step_q
from m3po.config import BonusConfig

F64 = torch.float64


def t(values: list[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=F64)


def test_one_step_q_drops_the_bootstrap_only_on_termination():
    # 1 + 0.9*10 = 10, 2 (terminated), 3 + 0.9*30 = 30
    q = one_step_q(t([1.0, 2.0, 3.0]), t([10.0, 20.0, 30.0]), torch.tensor([False, True, False]), 0.9)
    torch.testing.assert_close(q, t([10.0, 2.0, 30.0]))
    # Per-transition gamma (per task): 3 + 0.5*30 = 18
    q = one_step_q(t([1.0, 2.0, 3.0]), t([10.0, 20.0, 30.0]), torch.tensor([0, 1, 0]), t([0.9, 0.9, 0.5]))
    torch.testing.assert_close(q, t([10.0, 2.0, 18.0]))


def test_both_q_estimates_and_their_gap():
    # Q_MF: real reward, V of the real next state;  Q_MB: predicted reward, V of the predicted next latent.
    terminated = torch.tensor([0, 0])
    q_mf = one_step_q(t([1.0, 0.5]), t([4.0, 2.0]), terminated, 0.5)  # 1 + 2 = 3, 0.5 + 1 = 1.5
    q_mb = one_step_q(t([0.8, 0.5]), t([5.0, 1.0]), terminated, 0.5)  # 0.8 + 2.5 = 3.3, 0.5 + 0.5 = 1.0
    torch.testing.assert_close(q_mf, t([3.0, 1.5]))
    torch.testing.assert_close(q_mb, t([3.3, 1.0]))
    # eps = |3 - 3.3|, |1.5 - 1| = 0.3, 0.5; mean 0.4; b = 1 * (eps - 0.4) = -0.1, 0.1 (no clip with A = 10)
    bonus, stats = exploration_bonus(q_mf, q_mb, t([10.0, 10.0]), 1.0, BonusConfig())
    torch.testing.assert_close(bonus, t([-0.1, 0.1]))
    assert stats["eps_mean"] == pytest.approx(0.4) and stats["eps_std"] == pytest.approx(0.1)


# A batch of 8: eps = |q_mf - q_mb| = 0..7 (signs mixed, so the absolute value matters), mean 3.5,
# centred -3.5..3.5; with alpha = 0.1 the raw bonus is -0.35, -0.25, ..., 0.35. Each advantage picks a case:
Q_MF = [1.0, 2.0, 0.0, 5.0, -4.0, 5.0, 6.0, 7.0]
Q_MB = [1.0, 1.0, 2.0, 2.0, 0.0, 0.0, 0.0, 0.0]
ADV = [
    -0.1,  # raw -0.35, c|A| = 0.2 -> -0.2                  (c|A| clip, A < 0)
    1.0,  # raw -0.25, within both                         (unchanged)
    0.1,  # raw -0.15, c|A| = 0.2 ok, b >= -A -> -0.1      (sign clamp only: A + b = 0)
    0.01,  # raw -0.05, c|A| = 0.02 -> -0.02, then -> -0.01 (both clips)
    0.0,  # raw  0.05, c|A| = 0 -> 0                        (A = 0: b = 0)
    0.05,  # raw  0.15, c|A| = 0.1 -> 0.1                    (c|A| clip, A > 0)
    -0.2,  # raw  0.25, c|A| = 0.4 ok, b <= -A -> 0.2        (sign clamp only, A < 0)
    -3.0,  # raw  0.35, within both                         (unchanged)
]
BONUS = [-0.2, -0.25, -0.1, -0.01, 0.0, 0.1, 0.2, 0.35]


def test_centring_clip_and_sign_clamp():
    bonus, stats = exploration_bonus(t(Q_MF), t(Q_MB), t(ADV), 0.1, BonusConfig(clip_factor=2.0))
    torch.testing.assert_close(bonus, t(BONUS))
    torch.testing.assert_close(apply_bonus(t(ADV), bonus), t([-0.3, 0.75, 0.0, 0.0, 0.0, 0.15, 0.0, -2.65]))
    assert stats["eps_mean"] == pytest.approx(3.5)
    assert stats["eps_std"] == pytest.approx(math.sqrt(5.25))  # population std of 0..7
    assert stats["bonus_mean"] == pytest.approx(0.09 / 8)  # post-clip: no longer 0
    assert stats["bonus_std"] == pytest.approx(math.sqrt(0.2851 / 8 - (0.09 / 8) ** 2))
    assert stats["clipped_share"] == pytest.approx(6 / 8)
    assert stats["alpha"] == 0.1


def test_clip_factor_is_read_from_the_config():
    # c = 1: c|A| binds on elements 0 (-> -0.1), 2 (-> -0.1), 3 (-> -0.01), 5 (-> 0.05), 6 (-> 0.2).
    bonus, _ = exploration_bonus(t(Q_MF), t(Q_MB), t(ADV), 0.1, BonusConfig(clip_factor=1.0))
    torch.testing.assert_close(bonus, t([-0.1, -0.25, -0.1, -0.01, 0.0, 0.05, 0.2, 0.35]))


def test_std_scaling():
    # centred -3.5..3.5 divided by the std sqrt(5.25); alpha 1 and large advantages: no clipping.
    bonus, stats = exploration_bonus(t(Q_MF), t(Q_MB), t([100.0] * 8), 1.0, BonusConfig(scale="std"))
    expected = t([-3.5, -2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5]) / math.sqrt(5.25)
    torch.testing.assert_close(bonus, expected)
    assert stats["clipped_share"] == 0.0


def test_std_scaling_of_a_constant_gap_gives_zero_not_nan():
    bonus, _ = exploration_bonus(t([2.0] * 4), t([1.0] * 4), t([1.0] * 4), 1.0, BonusConfig(scale="std"))
    assert torch.equal(bonus, torch.zeros(4, dtype=F64))


# Two tasks, interleaved, non-contiguous ids: task 3 has eps 1 and 3, task 7 eps 100 and 300.
TASKS = torch.tensor([3, 7, 3, 7])
Q_TASKS = [1.0, 100.0, 3.0, 300.0]
BIG_ADV = [1000.0] * 4  # no clipping: the centring alone is under test


def test_per_task_centring():
    # Task means 2 and 200: centred -1, -100, 1, 100; alpha 0.1
    bonus, _ = exploration_bonus(t(Q_TASKS), t([0.0] * 4), t(BIG_ADV), 0.1, BonusConfig(per_task=True), TASKS)
    torch.testing.assert_close(bonus, t([-0.1, -10.0, 0.1, 10.0]))


def test_per_task_std_scaling_puts_tasks_on_one_scale():
    # Task stds 1 and 100: both tasks give -1, +1
    cfg = BonusConfig(per_task=True, scale="std")
    bonus, _ = exploration_bonus(t(Q_TASKS), t([0.0] * 4), t(BIG_ADV), 0.1, cfg, TASKS)
    torch.testing.assert_close(bonus, t([-0.1, -0.1, 0.1, 0.1]))


@pytest.mark.parametrize(("per_task", "task_ids"), [(False, TASKS), (True, None)])
def test_global_centring(per_task, task_ids):
    # Global mean 101: centred -100, -1, -98, 199
    cfg = BonusConfig(per_task=per_task)
    bonus, _ = exploration_bonus(t(Q_TASKS), t([0.0] * 4), t(BIG_ADV), 0.1, cfg, task_ids)
    torch.testing.assert_close(bonus, t([-10.0, -0.1, -9.8, 19.9]))


def test_a_task_with_one_transition_gets_zero():
    cfg = BonusConfig(per_task=True, scale="std")
    bonus, _ = exploration_bonus(
        t([5.0, 1.0, 3.0]), t([0.0] * 3), t([10.0] * 3), 1.0, cfg, torch.tensor([0, 1, 1])
    )
    torch.testing.assert_close(bonus, t([0.0, -1.0, 1.0]))


def test_alpha_zero_leaves_the_advantage_exactly_untouched():
    gen = torch.Generator().manual_seed(0)
    advantages = torch.randn(100, generator=gen)
    q_mf = torch.randn(100, generator=gen)
    q_mf[3] = float("inf")  # even a diverged model estimate must not leak through
    bonus, stats = exploration_bonus(q_mf, torch.randn(100, generator=gen), advantages, 0.0, BonusConfig())
    assert torch.equal(bonus, torch.zeros(100))
    assert torch.equal(apply_bonus(advantages, bonus), advantages)
    assert stats["alpha"] == 0.0 and stats["clipped_share"] == 0.0 and stats["bonus_mean"] == 0.0


def test_bonus_is_bounded_never_flips_a_sign_and_carries_no_gradient():
    gen = torch.Generator().manual_seed(1)
    advantages = torch.randn(10_000, generator=gen)
    advantages[:100] = 0.0
    q_mf = (torch.randn(10_000, generator=gen) * 5).requires_grad_()
    bonus, stats = exploration_bonus(q_mf, torch.randn(10_000, generator=gen), advantages, 3.0, BonusConfig())
    assert not bonus.requires_grad
    assert (bonus.abs() <= 2.0 * advantages.abs()).all()
    combined = apply_bonus(advantages, bonus)
    assert (combined[advantages > 0] >= 0).all() and (combined[advantages < 0] <= 0).all()
    assert (bonus[:100] == 0).all()
    assert 0 < stats["clipped_share"] < 1


@pytest.mark.parametrize(
    ("step", "expected"), [(0, 0.1), (500, 0.05), (1000, 0.0), (2000, 0.0), (250, 0.075)]
)
def test_linear_anneal(step, expected):
    assert alpha_at(step, BonusConfig(alpha0=0.1, anneal_steps=1000, schedule="linear")) == pytest.approx(
        expected
    )


@pytest.mark.parametrize("step", [0, 500, 1000, 2000])
def test_constant_schedule(step):
    assert alpha_at(step, BonusConfig(alpha0=0.1, anneal_steps=1000, schedule="constant")) == 0.1


@pytest.mark.parametrize(
    ("step", "expected"),
    [(0, 0.1), (250, 0.05 * (1 + math.sqrt(0.5))), (500, 0.05), (1000, 0.0), (2000, 0.0)],
)
def test_cosine_anneal(step, expected):
    assert alpha_at(step, BonusConfig(alpha0=0.1, anneal_steps=1000, schedule="cosine")) == pytest.approx(
        expected
    )


def test_unknown_options_are_errors():
    with pytest.raises(ValueError, match="schedule"):
        alpha_at(0, BonusConfig(schedule="exponential"))
    with pytest.raises(ValueError, match="scale"):
        exploration_bonus(t([1.0]), t([0.0]), t([1.0]), 0.1, BonusConfig(scale="mad"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_cuda():
    cfg = BonusConfig(per_task=True, scale="std")
    cpu, _ = exploration_bonus(t(Q_TASKS), t([0.0] * 4), t(BIG_ADV), 0.1, cfg, TASKS)
    cuda, _ = exploration_bonus(
        t(Q_TASKS).cuda(), torch.zeros(4, dtype=F64, device="cuda"), t(BIG_ADV).cuda(), 0.1, cfg, TASKS.cuda()
    )
    assert cuda.device.type == "cuda"
    torch.testing.assert_close(cuda.cpu(), cpu)


def test_drawing_from_a_seeded_stream_leaves_the_generator_where_it_was():
    from m3po.rng import drawing_from

    gen, twin = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    with drawing_from(gen, 7):
        inside = torch.rand(3, generator=gen)
    with drawing_from(gen, 7):
        again = torch.rand(5, generator=gen)[:3]
    assert torch.equal(inside, again)  # the block's draws depend on its seed alone
    assert torch.equal(torch.rand(4, generator=gen), torch.rand(4, generator=twin))  # outside: untouched
