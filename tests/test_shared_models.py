"""Envs sharing one compiled MuJoCo model (m3po.envs.shared) behave exactly as envs with their own."""

from __future__ import annotations

import numpy as np
import pytest

from m3po.envs import MT80, ModelCache, SharedModelError, make_env, make_vec_env
from m3po.envs.shared import _ASSET_FIELDS, _array_fields


def _model(env):
    inner = env.unwrapped
    return inner.mw_env.model if hasattr(inner, "mw_env") else inner.physics.model.ptr


def _rollout(envs, episodes=3, steps=30):
    """Interleaved episodes (every env steps in turn, as in a vector env): observations and rewards."""
    out = []
    rng = np.random.default_rng(0)
    shape = envs[0].action_space.shape
    for episode in range(episodes):
        out.extend(env.reset(seed=100 * episode + i)[0] for i, env in enumerate(envs))
        for _ in range(steps):
            actions = rng.uniform(-1, 1, (len(envs), *shape)).astype(np.float32)
            for env, action in zip(envs, actions, strict=True):
                obs, reward, _, _, info = env.step(action)
                out.extend([obs, np.float64(reward), np.float64(info.get("success", np.nan))])
    return out


# dmc, custom dmc, and Meta-World tasks; all but walker-walk write their model at reset.
@pytest.mark.parametrize(
    ("task", "writes"),
    [
        ("reacher-easy", {"geom_pos"}),
        ("finger-turn-hard", {"site_pos"}),
        ("walker-walk", set()),
        ("reacher-three-easy", {"geom_pos"}),
        ("mw-reach", {"site_pos", "eq_data"}),
        ("mw-button-press", {"body_pos", "eq_data"}),
        ("mw-assembly", {"body_pos", "site_pos", "eq_data"}),
    ],
)
def test_shared_model_envs_match_envs_with_their_own_model(task, writes):
    models = ModelCache()
    shared = [make_env(task, seed=i, models=models) for i in range(3)]
    own = [make_env(task, seed=i) for i in range(3)]
    assert len(models) == 1 and all(_model(env) is _model(shared[0]) for env in shared)
    assert len({id(_model(env)) for env in own}) == 3
    for a, b in zip(_rollout(shared), _rollout(own), strict=True):
        np.testing.assert_array_equal(a, b)  # bit for bit
    # The tasks that move bodies, sites or geoms at reset really exercise the per-env images.
    assert set(models.models()[0].dirty_fields) == writes


@pytest.mark.parametrize("task", MT80)
def test_no_mt80_task_writes_its_model_outside_reset_or_its_assets(task):
    models = ModelCache()
    envs = [make_env(task, seed=i, models=models) for i in range(2)]
    (shared,) = models.models()
    reference = _model(make_env(task, seed=0))  # a model nobody wrote to
    rng = np.random.default_rng(0)
    for episode in range(2):
        for i, env in enumerate(envs):
            env.reset(seed=10 * episode + i)
        for _ in range(5):
            for env in envs:
                env.step(rng.uniform(-1, 1, env.action_space.shape).astype(np.float32))
                # stronger than the per-step check: every parameter, not only the dirty ones
                np.testing.assert_array_equal(shared.snapshot(), env.unwrapped._slot.image)
    for (name, view), (ref_name, ref_view) in zip(
        _array_fields(shared.model), _array_fields(reference), strict=True
    ):
        assert name == ref_name
        if _ASSET_FIELDS.match(name) or name not in shared.dirty_fields:
            np.testing.assert_array_equal(view, ref_view, err_msg=f"{task}: {name} was written")


def test_writes_the_images_cannot_keep_apart_fail_loudly():
    models = ModelCache()
    a, b = (make_env("mw-button-press", seed=i, models=models) for i in range(2))
    a.reset(), b.reset()
    a.step(np.zeros(4, np.float32))
    model = _model(a)

    model.body_pos[-1, 0] += 0.1  # a dirty field changed during a step
    with pytest.raises(SharedModelError, match="a step changed model field body_pos"):
        a._slot.after_step()
    a._slot.image[:] = models.models()[0].snapshot()  # (accept it, to test the next check)

    friction = model.geom_friction[0, 0]
    model.geom_friction[0, 0] = friction + 0.1  # any other parameter changed outside a reset
    b.step(np.zeros(4, np.float32))
    with pytest.raises(SharedModelError, match="geom_friction .* changed outside a reset"):
        b.reset()
    model.geom_friction[0, 0] = friction

    model.opt.timestep *= 2  # options are shared as they are
    with pytest.raises(SharedModelError, match="model.opt"):
        b.reset()


def test_vector_env_shares_models_and_matches_unshared():
    tasks = ["cartpole-swingup", "reacher-easy", "mw-button-press"]

    def rollout(share, mode):
        with make_vec_env(tasks, num_envs=6, seed=3, mode=mode, workers=2, share_models=share) as env:
            if mode == "sync":
                models = {id(_model(e)) for e in env._shard.envs.envs}
                assert len(models) == (3 if share else 6)
            obs, _ = env.reset()
            rng = np.random.default_rng(5)
            # 105 steps: past the end of a Meta-World episode, so the auto-reset is covered
            steps = [env.step(rng.uniform(-1, 1, (6, env.act_dim))) for _ in range(105)]
        return [obs] + [part for s in steps for part in (s[0], s[1], s[4]["final_obs"], s[4]["success"])]

    unshared = rollout(False, "sync")
    for a, b, c in zip(unshared, rollout(True, "sync"), rollout(True, "async"), strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize(
    "tasks",
    [
        ["reacher-easy", "reacher-hard", "walker-walk", "walker-run"],  # one dm_control model per pair
        ["mw-coffee-button", "mw-coffee-pull", "mw-coffee-push"],  # one Meta-World model
        ["mw-door-lock", "mw-door-unlock"],
    ],
)
def test_different_tasks_on_one_model_match_their_own_models(tasks):
    def rollout(share):
        with make_vec_env(tasks, num_envs=2 * len(tasks), seed=7, share_models=share) as env:
            n_models = len({id(_model(e)) for e in env._shard.envs.envs})
            obs, _ = env.reset()
            rng = np.random.default_rng(2)
            steps = [env.step(rng.uniform(-1, 1, (env.num_envs, env.act_dim))) for _ in range(20)]
        return n_models, [obs] + [part for s in steps for part in (s[0], s[1], s[4]["success"])]

    (shared_models, shared), (own_models, own) = rollout(True), rollout(False)
    assert shared_models == (2 if tasks[0] == "reacher-easy" else 1) and own_models == 2 * len(tasks)
    for a, b in zip(shared, own, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("share", [True, False])
def test_bench_scale_figures_say_what_they_measured(share):
    from suite.bench.envs import scale_figures

    figures = scale_figures("cartpole-swingup,mw-reach", 4, steps=2, share_models=share)
    assert figures["share_models"] is share and figures["mode"] == "async" and figures["num_envs"] == 4
    assert "proportional set size" in figures["measured"]
    # The total can dip below 0 where the kernel reclaims this process's pages meanwhile; the workers' cannot.
    assert figures["workers_memory_mib"] > 0 and figures["startup_s"] > 0 and figures["agent_sps"] > 0
