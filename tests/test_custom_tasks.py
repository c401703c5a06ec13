"""Tests for the 11 custom DMControl tasks in ``m3po.envs.dmc_custom``.

Reward tests set the physics state directly and call ``task.get_reward``, so each checks that the
reward responds to the quantity its definition (TD-MPC2's ``tdmpc2/envs/tasks/*.py``) names.
"""

from __future__ import annotations

import math

import mujoco
import numpy as np
import pytest
from dm_control import suite
from dm_control.rl import control
from dm_control.utils import rewards

from m3po.envs.dmc_custom import CUSTOM_TASKS, load
from m3po.envs.registry import DMC_CUSTOM

# Each custom task's dm_control counterpart (domain, task): same domain, time limit and observations.
COUNTERPARTS: dict[str, tuple[str, str]] = {
    "walker-walk-backwards": ("walker", "walk"),
    "walker-run-backwards": ("walker", "run"),
    "cheetah-run-backwards": ("cheetah", "run"),
    "cheetah-run-front": ("cheetah", "run"),
    "cheetah-run-back": ("cheetah", "run"),
    "cheetah-jump": ("cheetah", "run"),
    "hopper-hop-backwards": ("hopper", "hop"),
    "reacher-three-easy": ("reacher", "easy"),
    "reacher-three-hard": ("reacher", "hard"),
    "cup-spin": ("ball_in_cup", "catch"),
    "pendulum-spin": ("pendulum", "swingup"),
}


def set_state(
    env: control.Environment, qpos: dict[str, float] | None = None, qvel: dict[str, float] | None = None
) -> float:
    """Zero all joints, set the named joints' positions/velocities and return the task reward.

    With all joints at zero the walker and hopper stand straight up and the cheetah stands level.
    """
    physics = env.physics
    physics.data.qpos[:] = 0
    physics.data.qvel[:] = 0
    for name, value in (qpos or {}).items():
        physics.named.data.qpos[name] = value
    for name, value in (qvel or {}).items():
        physics.named.data.qvel[name] = value
    physics.forward()
    return float(env.task.get_reward(physics))


def reset_env(task: str) -> control.Environment:
    """A freshly reset env of ``task`` (so per-episode settings such as target size are applied)."""
    env = load(task, random=0)
    env.reset()
    return env


def test_task_names_match_registry() -> None:
    assert tuple(CUSTOM_TASKS) == DMC_CUSTOM
    assert set(COUNTERPARTS) == set(DMC_CUSTOM)


def test_unknown_task_raises_key_error() -> None:
    with pytest.raises(KeyError, match="cheetah-fly"):
        load("cheetah-fly")


@pytest.mark.parametrize("task", DMC_CUSTOM)
def test_builds_resets_and_steps(task: str) -> None:
    env = load(task, random=1)
    assert isinstance(env, control.Environment)
    ts = env.reset()
    spec = env.action_spec()
    rng = np.random.default_rng(0)
    for _ in range(25):
        ts = env.step(rng.uniform(spec.minimum, spec.maximum))
        assert all(np.all(np.isfinite(v)) for v in ts.observation.values())
        assert np.isfinite(ts.reward) and 0.0 <= ts.reward <= 1.0


@pytest.mark.parametrize("task", DMC_CUSTOM)
def test_matches_dm_control_domain(task: str) -> None:
    """Same observation keys, control timestep and 1000-step episodes as the dm_control domain."""
    env = load(task, random=0)
    reference = suite.load(*COUNTERPARTS[task], task_kwargs={"random": 0})
    assert list(env.observation_spec()) == list(reference.observation_spec())
    assert env.control_timestep() == pytest.approx(reference.control_timestep())
    assert env._step_limit == reference._step_limit == 1000
    if not task.startswith("reacher-three"):
        assert env.action_spec().shape == reference.action_spec().shape


def test_episode_is_1000_control_steps() -> None:
    env = load("pendulum-spin", random=0)
    env.reset()
    steps = 1
    while not env.step(np.zeros(1)).last():
        steps += 1
    assert steps == 1000


def test_environment_kwargs_are_passed_on() -> None:
    env = load("cup-spin", random=0, environment_kwargs={"flat_observation": True, "time_limit": 1.0})
    assert list(env.reset().observation) == ["observations"]
    assert env._step_limit == 50


@pytest.mark.parametrize("task", DMC_CUSTOM)
def test_same_seed_same_first_observation(task: str) -> None:
    def first_obs(seed: int | np.random.RandomState) -> np.ndarray:
        obs = load(task, random=seed).reset().observation
        return np.concatenate([np.ravel(v) for v in obs.values()])

    np.testing.assert_array_equal(first_obs(3), first_obs(3))
    np.testing.assert_array_equal(first_obs(3), first_obs(np.random.RandomState(3)))
    assert not np.array_equal(first_obs(3), first_obs(4))


# --- models -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "domain", "floor", "x_size"),
    [
        ("cheetah-run-backwards", "cheetah", "ground", 200.0),
        ("walker-walk-backwards", "walker", "floor", 500.0),
    ],
)
def test_longer_floor_and_otherwise_dm_control_model(
    task: str, domain: str, floor: str, x_size: float
) -> None:
    model = load(task).physics.model
    reference = suite.load(domain, "run").physics.model
    assert model.name2id(floor, "geom") == reference.name2id(floor, "geom")
    floor_id = model.name2id(floor, "geom")
    assert model.geom_size[floor_id, 0] == x_size
    assert reference.geom_size[floor_id, 0] == x_size / 2
    # Everything else is dm_control's model.
    np.testing.assert_array_equal(
        np.delete(model.geom_size, floor_id, 0), np.delete(reference.geom_size, floor_id, 0)
    )
    np.testing.assert_array_equal(model.geom_size[floor_id, 1:], reference.geom_size[floor_id, 1:])
    for field in ("geom_pos", "body_pos", "body_mass", "jnt_range", "dof_damping", "actuator_gear"):
        np.testing.assert_array_equal(getattr(model, field), getattr(reference, field), err_msg=field)
    assert model.opt.timestep == reference.opt.timestep


def test_three_link_reacher_model() -> None:
    physics = load("reacher-three-easy").physics
    model, named = physics.model, physics.named.model
    assert model.njnt == 3 and all(model.jnt_type == mujoco.mjtJoint.mjJNT_HINGE)
    assert [model.id2name(i, "joint") for i in range(3)] == ["shoulder0", "shoulder1", "wrist"]
    assert named.jnt_limited["shoulder0"] == 0
    for joint in ("shoulder1", "wrist"):
        assert named.jnt_limited[joint] == 1
        np.testing.assert_allclose(named.jnt_range[joint], np.deg2rad([-80, 80]))
    np.testing.assert_allclose(model.actuator_gear[:, 0], 0.05)
    np.testing.assert_allclose(model.actuator_ctrlrange, [[-1, 1]] * 3)
    np.testing.assert_allclose(model.dof_damping, 0.01)
    assert model.opt.timestep == pytest.approx(0.02)
    assert model.opt.disableflags & mujoco.mjtDisableBit.mjDSBL_CONTACT
    # Link lengths: arm0 -> arm1 -> hand -> finger at 0.09 m steps; hand capsule 0.1 m long.
    np.testing.assert_allclose(named.body_pos["arm1"], [0.09, 0, 0])
    np.testing.assert_allclose(named.body_pos["hand"], [0.09, 0, 0])
    np.testing.assert_allclose(named.body_pos["finger"], [0.09, 0, 0])
    assert 2 * named.geom_size["hand", 1] == pytest.approx(0.1)
    # Arena as dm_control's reacher.
    reference = suite.load("reacher", "easy").physics.named.model
    for geom in ("ground", "wall_x", "wall_y", "wall_neg_x", "wall_neg_y", "target"):
        np.testing.assert_array_equal(named.geom_pos[geom], reference.geom_pos[geom])
        np.testing.assert_array_equal(named.geom_size[geom], reference.geom_size[geom])


# --- rewards ----------------------------------------------------------------------------------


def test_cheetah_run_backwards_rewards_backward_speed() -> None:
    env = reset_env("cheetah-run-backwards")
    assert set_state(env, qvel={"rootx": -8.0}) == pytest.approx(1.0)
    assert set_state(env, qvel={"rootx": -4.0}) == pytest.approx(0.5)
    assert set_state(env, qvel={"rootx": 0.0}) == pytest.approx(0.0)
    assert set_state(env, qvel={"rootx": 8.0}) == pytest.approx(0.0)


# Torso lifted to 1.2 m and pitched by 1 rad: positive pitch raises the back foot above 1.2 m.
_BACK_FOOT_UP = {"rootz": 0.5, "rooty": 1.0}
_FRONT_FOOT_UP = {"rootz": 0.5, "rooty": -1.0}


@pytest.mark.parametrize(("task", "raised", "lowered"), [
    ("cheetah-run-front", _BACK_FOOT_UP, _FRONT_FOOT_UP),
    ("cheetah-run-back", _FRONT_FOOT_UP, _BACK_FOOT_UP),
])  # fmt: skip
def test_cheetah_run_on_one_foot(task: str, raised: dict[str, float], lowered: dict[str, float]) -> None:
    """run-front runs on the front foot with the back foot up; run-back the other way round."""
    env = reset_env(task)
    good = set_state(env, raised, {"rootx": 6.0})
    foot = "bfoot" if task == "cheetah-run-front" else "ffoot"
    assert env.physics.named.data.xpos[foot, "z"] > 1.2
    assert good == pytest.approx(1.0)
    assert set_state(env, lowered, {"rootx": 6.0}) < 0.5
    # Speed: forward at 0.6x dm_control's run speed (6 m/s) is full; standing still or going
    # backwards keeps only the 1/6 floor of the speed factor.
    assert set_state(env, raised, {"rootx": 3.0}) == pytest.approx(0.5 * 5 / 6 + 1 / 6)
    assert set_state(env, raised, {"rootx": 0.0}) == pytest.approx(1 / 6)
    assert set_state(env, raised, {"rootx": -6.0}) == pytest.approx(1 / 6)
    # On the ground, still: almost nothing.
    assert set_state(env, {"rootz": 0.0}) < 0.05


def test_cheetah_jump_rewards_height_in_place() -> None:
    env = reset_env("cheetah-jump")
    on_ground = set_state(env, {"rootz": 0.0})
    half_up = set_state(env, {"rootz": 0.5})
    airborne = set_state(env, {"rootz": 1.0})
    assert on_ground < 0.25 < half_up < airborne == pytest.approx(1.0)
    # Jumping must be in place: moving at 1 m/s loses the speed share (1/6) of the reward.
    assert set_state(env, {"rootz": 1.0}, {"rootx": 1.0}) == pytest.approx(5 / 6)
    assert set_state(env, {"rootz": 1.0}, {"rootx": 0.5}) == pytest.approx(1.0)
    # Pitched, one foot high and one low: the mean of "torso and back foot high" and "torso and
    # front foot high", each a Gaussian-margin height term (full from 1.2 m, 0.1 at 0.6 m below).
    reward = set_state(env, {"rootz": 0.5, "rooty": 1.0})
    z = env.physics.named.data.xpos[["torso", "bfoot", "ffoot"], "z"]
    assert z[1] > 1.2 > z[2]

    def high(height: float) -> float:
        return rewards.tolerance(height, bounds=(1.2, float("inf")), margin=0.6)

    expected = ((5 * high((z[0] + z[1]) / 2) + 1) / 6 + (5 * high((z[0] + z[2]) / 2) + 1) / 6) / 2
    assert reward == pytest.approx(expected)


@pytest.mark.parametrize(("task", "speed"), [("walker-walk-backwards", 1.0), ("walker-run-backwards", 8.0)])
def test_walker_backwards_rewards_backward_speed(task: str, speed: float) -> None:
    env = reset_env(task)
    assert set_state(env, qvel={"rootx": -speed}) == pytest.approx(1.0)
    assert set_state(env, qvel={"rootx": -speed / 2}) == pytest.approx((5 * 0.5 + 1) / 6)
    assert set_state(env, qvel={"rootx": 0.0}) == pytest.approx(1 / 6)
    assert set_state(env, qvel={"rootx": speed}) == pytest.approx(1 / 6)
    # Fast backwards but lying down: the standing factor scales the reward down.
    assert set_state(env, {"rootz": -1.0, "rooty": 1.5}, {"rootx": -speed}) < 0.3


def test_hopper_hop_backwards_rewards_standing_backward_speed() -> None:
    env = reset_env("hopper-hop-backwards")
    assert set_state(env, qvel={"rootx": -1.0}) == pytest.approx(1.0)
    assert set_state(env, qvel={"rootx": -3.0}) == pytest.approx(1.0)
    assert set_state(env, qvel={"rootx": -0.5}) == pytest.approx(0.5)
    assert set_state(env, qvel={"rootx": 0.0}) == pytest.approx(0.0)
    assert set_state(env, qvel={"rootx": 1.0}) == pytest.approx(0.0)
    # Torso below 0.6 m over the foot (crouched): not standing, no reward.
    assert set_state(env, {"hip": -2.5, "knee": 2.5}, {"rootx": -1.0}) < 0.5


def test_cup_spin_rewards_ball_swinging_around_cup() -> None:
    env = reset_env("cup-spin")
    physics = env.physics
    # Ball in the cup: never rewarded, however fast.
    assert set_state(env, {"ball_x": 0.0, "ball_z": 0.35}) == 0.0
    assert physics.in_target() == 1.0
    assert set_state(env, {"ball_x": 0.0, "ball_z": 0.35}, {"ball_x": 6.0}) == 0.0
    # Ball out of the cup (string slack), swinging tangentially around the cup.
    out = {"ball_x": 0.2, "ball_z": 0.15}
    still = set_state(env, out)
    radius = physics.named.data.xpos["ball", ["x", "z"]] - physics.named.data.site_xpos["cup", ["x", "z"]]
    tangent = np.array([-radius[1], radius[0]]) / np.linalg.norm(radius)
    fast = set_state(env, out, {"ball_x": 6.0 * tangent[0], "ball_z": 6.0 * tangent[1]})
    slow = set_state(env, out, {"ball_x": 3.0 * tangent[0], "ball_z": 3.0 * tangent[1]})
    assert physics.in_target() == 0.0
    assert still < slow < fast
    # The speed term is 2/3 of the reward: full at 6 m/s, half at 3 m/s.
    assert fast - still == pytest.approx(2 / 3)
    assert slow - still == pytest.approx(1 / 3)
    # Without speed, the distance term (1/3 of the reward) is linear: 1 at 0.5 m from the cup's
    # target region, 0.5 at 0.25 m.
    set_state(env, out)
    distance = np.linalg.norm(physics.ball_to_target())
    assert still == pytest.approx((1 - 0.5 * (0.5 - distance) / 0.25) / 3)
    # Farther from the cup pays more.
    near = set_state(env, {"ball_x": 0.05, "ball_z": 0.25})
    assert near < still


def test_cup_spin_starts_mostly_in_cup() -> None:
    """As published, 90% of episodes start with the ball in the cup (the rest anywhere)."""
    env = load("cup-spin", random=0)
    in_cup = []
    for _ in range(200):
        env.reset()
        in_cup.append(env.physics.in_target())
    assert 0.8 < np.mean(in_cup) < 0.97


def test_pendulum_spin_rewards_angular_speed() -> None:
    env = reset_env("pendulum-spin")
    assert set_state(env, qvel={"hinge": 9.0}) == pytest.approx(1.0)
    assert set_state(env, qvel={"hinge": -9.0}) == pytest.approx(1.0)
    assert set_state(env, qvel={"hinge": 15.0}) == pytest.approx(1.0)
    assert set_state(env, qvel={"hinge": 4.5}) == pytest.approx(0.5)
    assert set_state(env, qvel={"hinge": 0.0}) == pytest.approx(0.0, abs=1e-6)
    # The pole's angle does not matter, only its speed.
    assert set_state(env, {"hinge": math.pi}, {"hinge": 9.0}) == pytest.approx(1.0)


def test_reacher_three_rewards_finger_in_target() -> None:
    easy, hard = reset_env("reacher-three-easy"), reset_env("reacher-three-hard")
    easy_size = easy.physics.named.model.geom_size["target", 0]
    hard_size = hard.physics.named.model.geom_size["target", 0]
    assert (easy_size, hard_size) == (pytest.approx(0.05), pytest.approx(0.015))
    arm = {"shoulder0": 0.3, "shoulder1": 0.5, "wrist": -0.4}

    def reward_with_target_at(env: control.Environment, offset: float) -> float:
        """Reward with the arm posed as ``arm`` and the target ``offset`` m from the finger along x."""
        physics = env.physics
        set_state(env, arm)
        finger = physics.named.data.geom_xpos["finger", :2]
        physics.named.model.geom_pos["target", :2] = finger + np.array([offset, 0.0])
        return set_state(env, arm)

    # Sparse: 1 while the finger touches the target (distance < target + finger radius), else 0.
    assert reward_with_target_at(easy, 0.0) == 1.0
    assert reward_with_target_at(easy, 0.05) == 1.0
    assert reward_with_target_at(easy, 0.15) == 0.0
    assert reward_with_target_at(hard, 0.0) == 1.0
    assert reward_with_target_at(hard, 0.02) == 1.0
    # A 0.05 m miss still touches the easy target but not the smaller hard one.
    assert reward_with_target_at(hard, 0.05) == 0.0
