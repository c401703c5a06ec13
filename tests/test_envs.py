"""The registry and single environments: every task builds and steps, conventions, seeding, errors."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from m3po.envs import (
    DMC39,
    MT30,
    MT80,
    MW50,
    UnknownTaskError,
    make_env,
    resolve_tasks,
    suite_tasks,
    task_dims,
    task_info,
)
from m3po.envs.registry import DMC_CUSTOM, DMC_STANDARD


def test_task_set_sizes_and_membership():
    assert len(DMC_STANDARD) == 28 and len(DMC_CUSTOM) == 11 and len(DMC39) == 39
    assert len(MW50) == 50 and len(MT30) == 30 and len(MT80) == 80
    assert len(set(DMC39)) == 39 and len(set(MW50)) == 50 and len(set(MT80)) == 80
    assert set(MT30) <= set(DMC39) and set(DMC_CUSTOM) <= set(MT30)
    assert MT80 == MT30 + MW50


def test_mw50_is_metaworld_mt50():
    from metaworld.env_dict import MT50_V3

    assert {"mw-" + name.removesuffix("-v3") for name in MT50_V3} == set(MW50)


@pytest.mark.parametrize("task", DMC39 + MW50)
def test_every_task_builds_resets_and_steps(task):
    env = make_env(task, seed=0)
    obs_dim, act_dim = task_dims(task)
    assert env.observation_space.shape == (obs_dim,)
    assert env.action_space.shape == (act_dim,)
    assert np.all(env.action_space.low == -1) and np.all(env.action_space.high == 1)
    obs, info = env.reset(seed=0)
    assert obs.shape == (obs_dim,) and obs.dtype == np.float32 and np.all(np.isfinite(obs))
    rng = np.random.default_rng(0)
    for _ in range(3):
        obs, reward, terminated, truncated, info = env.step(rng.uniform(-1, 1, act_dim).astype(np.float32))
        assert obs.shape == (obs_dim,) and np.all(np.isfinite(obs))
        assert isinstance(reward, float) and np.isfinite(reward)
        assert terminated is False and truncated is False
    if task_info(task).domain == "metaworld":
        assert info["success"] in (0.0, 1.0)
    env.close()


@pytest.mark.parametrize(
    ("task", "length", "discount"), [("cartpole-swingup", 500, 0.99), ("mw-reach", 100, 0.95)]
)
def test_episode_length_time_limit_and_discount(task, length, discount):
    env = make_env(task, seed=1)
    env.reset()
    info = task_info(task)
    assert info.episode_length == length and info.action_repeat == 2
    assert info.discount == pytest.approx(discount)
    action = np.zeros(env.action_space.shape, dtype=np.float32)
    for step in range(1, length + 1):
        _, _, terminated, truncated, step_info = env.step(action)
        assert not terminated
        assert truncated == (step == length), f"truncated={truncated} at step {step}"
    assert ("success" in step_info) == (info.domain == "metaworld")


def test_dmc_reward_is_summed_over_the_action_repeat_and_actions_are_rescaled():
    from dm_control import suite

    env = make_env("cheetah-run", seed=3)
    env.reset(seed=3)
    raw = suite.load("cheetah", "run", task_kwargs={"random": 3})
    raw.reset()
    spec = raw.action_spec()
    action = np.linspace(-1, 1, 6).astype(np.float32)
    native = spec.minimum + (action + 1) / 2 * (spec.maximum - spec.minimum)
    expected = sum(raw.step(native).reward for _ in range(2))
    _, reward, *_ = env.step(action)
    assert reward == pytest.approx(expected, rel=1e-6)


def test_out_of_range_actions_are_clipped():
    a, b = make_env("reacher-easy", seed=5), make_env("reacher-easy", seed=5)
    a.reset(seed=5), b.reset(seed=5)
    obs_a, *_ = a.step(np.array([7.0, -3.0], dtype=np.float32))
    obs_b, *_ = b.step(np.array([1.0, -1.0], dtype=np.float32))
    np.testing.assert_array_equal(obs_a, obs_b)


@pytest.mark.parametrize("task", ["walker-walk", "mw-push", "cheetah-run-backwards"])
def test_same_seed_same_observations_and_rewards(task):
    def rollout(seed):
        env = make_env(task, seed=seed)
        first, _ = env.reset(seed=seed)
        rng = np.random.default_rng(0)
        rewards = [env.step(rng.uniform(-1, 1, env.action_space.shape))[1] for _ in range(10)]
        return first, np.array(rewards)

    first_a, rewards_a = rollout(7)
    first_b, rewards_b = rollout(7)
    first_c, _ = rollout(8)
    np.testing.assert_array_equal(first_a, first_b)
    np.testing.assert_array_equal(rewards_a, rewards_b)
    assert not np.array_equal(first_a, first_c), "a different seed should give a different start"


def test_metaworld_goal_changes_between_resets():
    env = make_env("mw-reach", seed=0)
    goals = {tuple(np.round(env.reset()[0][-3:], 6)) for _ in range(3)}
    assert len(goals) == 3


def test_unknown_task_names_the_closest_valid_names():
    with pytest.raises(UnknownTaskError, match="cartpole-swingup"):
        make_env("cartpole-swingp", seed=0)
    with pytest.raises(UnknownTaskError, match="mw-reach"):
        task_info("mw-reahc")
    with pytest.raises(UnknownTaskError, match="dmc39"):
        suite_tasks("dmc38")


def test_bad_seed_is_rejected():
    for seed in (-1, 1.5, "3", True):
        with pytest.raises(ValueError, match="seed"):
            make_env("cartpole-swingup", seed=seed)


def test_resolve_tasks_accepts_names_suites_and_lists():
    assert resolve_tasks("cartpole-swingup") == ("cartpole-swingup",)
    assert resolve_tasks("mt80") == MT80
    assert resolve_tasks("walker-walk, mw-reach") == ("walker-walk", "mw-reach")
    assert resolve_tasks(["dmc39"]) == DMC39
    with pytest.raises(UnknownTaskError, match="walker-wlk"):
        resolve_tasks(["walker-walk", "walker-wlk"])
    with pytest.raises(UnknownTaskError, match="repeats"):
        resolve_tasks(["walker-walk", "walker-walk"])
    with pytest.raises(UnknownTaskError, match="empty"):
        resolve_tasks("")


def test_custom_dmc_tasks_dispatch_through_make_env():
    env = make_env("reacher-three-easy", seed=0)
    assert env.action_space.shape == (3,)
    assert env.physics.model.njnt >= 3


@pytest.mark.skipif(importlib.util.find_spec("deepmind_lab") is not None, reason="deepmind_lab is installed")
def test_dmlab_is_wired_into_make_env():
    from m3po.envs.dmlab import DMLabNotInstalledError

    with pytest.raises(DMLabNotInstalledError, match="deepmind_lab"):
        make_env("dmlab-rooms-watermaze", seed=0)
