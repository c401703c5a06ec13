"""Vectorized environments: padding, action masks, auto-reset, seeding, sync/async agreement, errors."""

from __future__ import annotations

import numpy as np
import pytest

import m3po.envs
from m3po.envs import UnknownTaskError, make_env, make_vec_env
from m3po.envs.vector import _Shard

TASKS = ["cartpole-swingup", "cheetah-run", "mw-reach"]  # obs 5/17/39, actions 1/6/4


def test_multitask_layout_padding_and_masks():
    with make_vec_env(TASKS, num_envs=5, seed=0) as env:
        assert (env.obs_dim, env.act_dim) == (39, 6)
        assert env.task_ids.tolist() == [0, 1, 2, 0, 1]
        assert env.task_counts == {"cartpole-swingup": 2, "cheetah-run": 2, "mw-reach": 1}
        np.testing.assert_array_equal(env.task_action_mask.sum(1), [1, 6, 4])
        np.testing.assert_array_equal(env.action_mask, env.task_action_mask[env.task_ids])
        obs, info = env.reset()
        np.testing.assert_array_equal(info["task_id"], env.task_ids)
        rng = np.random.default_rng(0)
        for _ in range(3):
            obs, reward, terminated, truncated, info = env.step(rng.uniform(-1, 1, (5, 6)))
            for i, task in enumerate(env.env_tasks):
                size = dict(zip(TASKS, env.task_obs_dims, strict=True))[task]
                assert np.all(obs[i, size:] == 0), f"padded entries of env {i} ({task}) are not zero"
                assert np.any(obs[i, :size] != 0)
            assert np.isnan(info["success"][[0, 1, 3, 4]]).all() and info["success"][2] in (0.0, 1.0)


def test_masked_action_dims_never_reach_the_environment():
    with make_vec_env(TASKS, num_envs=3, seed=0) as env:
        received = []
        for padded in env._shard.envs.envs:
            inner = padded.env

            def spy(action, inner=inner):
                received.append(np.array(action))
                return type(inner).step(inner, action)

            inner.step = spy
        env.reset()
        env.step(np.full((3, 6), 0.5, dtype=np.float32))
        assert [a.shape for a in received] == [(1,), (6,), (4,)]
        assert all(np.all(a == 0.5) for a in received)

    # The vector env also zeroes padded dims before any shard sees them.
    seen = []
    original = _Shard.step
    with make_vec_env(TASKS, num_envs=3, seed=0) as env:
        env._shard.step = lambda actions: (seen.append(actions.copy()), original(env._shard, actions))[1]
        env.reset()
        env.step(np.ones((3, 6), dtype=np.float32))
    np.testing.assert_array_equal(seen[0], env.action_mask)


def test_matches_single_envs_and_returns_final_obs_at_auto_reset():
    env = make_vec_env("mw-reach", num_envs=2, seed=4)
    singles = [make_env("mw-reach", seed=4 + i) for i in range(2)]
    obs, _ = env.reset()
    single_obs = np.stack([s.reset()[0] for s in singles])
    np.testing.assert_array_equal(obs, single_obs)
    rng = np.random.default_rng(1)
    for step in range(1, 101):
        actions = rng.uniform(-1, 1, (2, 4)).astype(np.float32)
        obs, reward, terminated, truncated, info = env.step(actions)
        results = [s.step(a) for s, a in zip(singles, actions, strict=True)]
        np.testing.assert_allclose(reward, [r[1] for r in results])
        np.testing.assert_array_equal(info["final_obs"], np.stack([r[0] for r in results]))
        np.testing.assert_array_equal(info["success"], [r[4]["success"] for r in results])
        assert truncated.tolist() == [step == 100] * 2 and not terminated.any()
    # After the time limit the envs were reset in the same step: obs is a fresh start, final_obs the end.
    assert not np.array_equal(obs, info["final_obs"])
    env.close()


def test_async_agrees_with_sync():
    def rollout(mode):
        with make_vec_env(TASKS, num_envs=4, seed=2, mode=mode, workers=2) as env:
            first, _ = env.reset(seed=9)
            rng = np.random.default_rng(3)
            steps = [env.step(rng.uniform(-1, 1, (4, 6))) for _ in range(5)]
        return first, np.stack([s[0] for s in steps]), np.stack([s[1] for s in steps])

    for sync_part, async_part in zip(rollout("sync"), rollout("async"), strict=True):
        np.testing.assert_array_equal(sync_part, async_part)


def test_reset_seed_reproduces_and_differs_between_envs():
    with make_vec_env("walker-walk", num_envs=3, seed=0) as env:
        a, _ = env.reset(seed=11)
        b, _ = env.reset(seed=11)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a[0], a[1])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"tasks": "cartpole-swingup", "num_envs": 0}, ValueError, "num_envs must be >= 1"),
        ({"tasks": "cartpole-swingup", "num_envs": 2.0}, TypeError, "num_envs must be an integer"),
        ({"tasks": "cartpole-swingup", "num_envs": 2, "mode": "threads"}, ValueError, "sync, async"),
        (
            {"tasks": ["cartpole-swingup", "cartpole-swingp"], "num_envs": 2},
            UnknownTaskError,
            "cartpole-swingup",
        ),
        ({"tasks": "mt30", "num_envs": 8}, ValueError, "every task needs at least one env"),
        ({"tasks": "cartpole-swingup", "num_envs": 2, "seed": -3}, ValueError, "seed"),
        ({"tasks": "cartpole-swingup", "num_envs": 2, "mode": "async", "workers": 0}, ValueError, "workers"),
    ],
)
def test_bad_input_fails_before_any_environment_starts(monkeypatch, kwargs, error, match):
    def no_env(*args, **kw):
        raise AssertionError("an environment was built before the input was validated")

    monkeypatch.setattr(m3po.envs, "make_env", no_env)
    with pytest.raises(error, match=match):
        make_vec_env(**kwargs)


def test_async_worker_failure_is_reported(monkeypatch):
    with pytest.raises(RuntimeError, match="vector env worker failed"):
        # The worker is forked after the patch, so building the env fails inside it.
        monkeypatch.setattr(m3po.envs, "make_env", lambda task, seed: 1 / 0)
        make_vec_env("cartpole-swingup", num_envs=2, mode="async", workers=2)


def test_wrong_action_shape_is_rejected():
    with make_vec_env("cartpole-swingup", num_envs=2) as env:
        env.reset()
        with pytest.raises(ValueError, match=r"\(2, 1\)"):
            env.step(np.zeros((2, 3)))
