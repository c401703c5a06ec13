"""DeepMind Lab adapter: install error, task checks, and the env against a fake ``deepmind_lab``.

The fake follows the real module's Python API (``python/dmlab_module.c`` in deepmind/lab) and is
stricter where the real one is undefined (out-of-spec actions), so mistakes in the adapter show up.
"""

from __future__ import annotations

import importlib.util
import sys
import types

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from m3po.envs import dmlab
from m3po.envs.dmlab import DMLabEnv, DMLabNotInstalledError, make_dmlab_env
from m3po.envs.registry import (
    ACTION_REPEAT,
    DMLAB30,
    DMLAB30_LEVELS,
    DMLAB_EPISODE_LENGTH,
    UnknownTaskError,
)

TASK = "dmlab-rooms-watermaze"

# The action_spec DMLab documents (docs/users/python_api.md).
DOC_ACTION_SPEC = (
    {"min": -512, "max": 512, "name": "LOOK_LEFT_RIGHT_PIXELS_PER_FRAME"},
    {"min": -512, "max": 512, "name": "LOOK_DOWN_UP_PIXELS_PER_FRAME"},
    {"min": -1, "max": 1, "name": "STRAFE_LEFT_RIGHT"},
    {"min": -1, "max": 1, "name": "MOVE_BACK_FORWARD"},
    {"min": 0, "max": 1, "name": "FIRE"},
    {"min": 0, "max": 1, "name": "JUMP"},
    {"min": 0, "max": 1, "name": "CROUCH"},
)


def fake_frame(seed: int, frame: int, height: int, width: int) -> np.ndarray:
    """The fake's deterministic (height, width, 3) uint8 view, holding both 0 and 255."""
    pixels = np.random.default_rng([seed, frame]).integers(0, 256, (height, width, 3), dtype=np.uint8)
    pixels[0, 0, 0] = 0
    pixels[-1, -1, -1] = 255
    return pixels


class FakeLab:
    """``deepmind_lab.Lab`` stand-in; records what it is given. ``module`` is set per fake module.

    Each frame ``f`` (1, 2, ...) of an episode gives reward ``f``; the level stops running after
    ``module.EPISODE_FRAMES`` frames.
    """

    module: types.ModuleType

    def __init__(self, level, observations, config=None, renderer="software", level_cache=None):
        if not isinstance(level, str):
            raise TypeError("level must be a str")
        if type(observations) is not list:
            raise TypeError("observations must be a list")
        config = {} if config is None else config
        if type(config) is not dict or not all(isinstance(x, str) for kv in config.items() for x in kv):
            raise TypeError("config must be a dict of str to str")
        if renderer not in ("software", "hardware"):
            raise RuntimeError(f"renderer must be 'hardware' or 'software', got {renderer!r}")
        unknown = [name for name in observations if name != "RGB_INTERLEAVED"]
        if unknown:
            raise ValueError(f"Unknown observation {unknown}")
        self.level, self.observation_names, self.config, self.renderer = level, observations, config, renderer
        self.width = int(config.get("width", "320"))
        self.height = int(config.get("height", "240"))
        self.spec = [dict(entry) for entry in self.module.ACTION_SPEC]
        self.episode_frames = self.module.EPISODE_FRAMES
        self.actions: list[np.ndarray] = []
        self.num_steps_args: list[int] = []
        self.seeds: list[int] = []
        self.running = False
        self.close_calls = 0
        self.module.instances.append(self)

    def reset(self, episode=-1, seed=None):
        if seed is None:
            seed = int(np.random.default_rng().integers(2**31))
        # The real Lab takes a Python int (not a numpy integer) and stores it as a C int.
        if type(seed) is not int:
            raise ValueError(f"'seed' must be int or None, was '{type(seed).__name__}'")
        if not -(2**31) <= seed < 2**31:
            raise OverflowError("seed does not fit a C int")
        self.seeds.append(seed)
        self.frame = 0
        self.running = True
        return True

    def is_running(self):
        return self.running

    def step(self, action, num_steps=1):
        if not self.running:
            raise RuntimeError("Environment in wrong status to advance.")
        if not isinstance(action, np.ndarray) or action.shape != (len(self.spec),):
            raise ValueError(f"action must have shape ({len(self.spec)})")
        if action.dtype != np.intc:
            raise ValueError("action must have dtype np.intc")
        lows = [entry["min"] for entry in self.spec]
        highs = [entry["max"] for entry in self.spec]
        if np.any(action < lows) or np.any(action > highs):
            raise ValueError(f"action {action} outside the action_spec")
        self.actions.append(action.copy())
        self.num_steps_args.append(num_steps)
        reward = 0.0
        for _ in range(num_steps):
            self.frame += 1
            reward += float(self.frame)
            if self.frame >= self.episode_frames:
                self.running = False
                break
        return reward

    def observations(self):
        if not self.running:
            raise RuntimeError("Environment in wrong status for call to observations()")
        return {"RGB_INTERLEAVED": fake_frame(self.seeds[-1], self.frame, self.height, self.width)}

    def action_spec(self):
        return [dict(entry) for entry in self.spec]

    def observation_spec(self):
        return [{"name": "RGB_INTERLEAVED", "dtype": np.uint8, "shape": (self.height, self.width, 3)}]

    def num_steps(self):
        return self.frame

    def close(self):
        self.close_calls += 1
        self.running = False
        return True


@pytest.fixture
def fake_lab(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """A fake ``deepmind_lab`` module in ``sys.modules``; set its ``ACTION_SPEC``/``EPISODE_FRAMES``."""
    fake = types.ModuleType("deepmind_lab")
    fake.ACTION_SPEC = DOC_ACTION_SPEC
    fake.EPISODE_FRAMES = 10**6
    fake.instances = []
    fake.Lab = type("Lab", (FakeLab,), {"module": fake})
    monkeypatch.setitem(sys.modules, "deepmind_lab", fake)
    return fake


@pytest.fixture
def no_lab(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``import deepmind_lab`` fail, whether or not it is installed."""
    monkeypatch.setitem(sys.modules, "deepmind_lab", None)


def _assert_install_message(err: DMLabNotInstalledError) -> None:
    message = str(err)
    for needle in ("deepmind_lab", "Bazel", "deepmind/lab", "build_pip_package", "pip install"):
        assert needle in message
    assert "http" not in message
    assert isinstance(err, ImportError)


# --- without deepmind_lab ---------------------------------------------------------------------------


def test_missing_deepmind_lab_fails_at_once(no_lab, monkeypatch: pytest.MonkeyPatch) -> None:
    built = []
    monkeypatch.setattr(dmlab, "DMLabEnv", lambda *args, **kwargs: built.append(args))
    with pytest.raises(DMLabNotInstalledError) as info:
        make_dmlab_env(TASK, 0)
    _assert_install_message(info.value)
    assert built == []


@pytest.mark.skipif(importlib.util.find_spec("deepmind_lab") is not None, reason="deepmind_lab is installed")
def test_real_missing_module_gives_install_error() -> None:
    with pytest.raises(DMLabNotInstalledError) as info:
        make_dmlab_env(TASK, 0)
    _assert_install_message(info.value)


def test_env_class_also_needs_deepmind_lab(no_lab) -> None:
    with pytest.raises(DMLabNotInstalledError):
        DMLabEnv(TASK, 0)


def test_unknown_task_is_checked_before_the_import(no_lab) -> None:
    with pytest.raises(UnknownTaskError, match="dmlab-rooms-watermaze"):
        make_dmlab_env("dmlab-rooms-watermaz", 0)


def test_non_dmlab_task_is_refused(no_lab) -> None:
    with pytest.raises(UnknownTaskError, match="not a DeepMind Lab"):
        make_dmlab_env("cartpole-swingup", 0)


# --- with a fake deepmind_lab -----------------------------------------------------------------------


@pytest.mark.parametrize("task, level", list(zip(DMLAB30, DMLAB30_LEVELS, strict=True)))
def test_level_path(fake_lab, task: str, level: str) -> None:
    make_dmlab_env(task, 0)
    (lab,) = fake_lab.instances
    assert lab.level == f"contributed/dmlab30/{level}"


def test_lab_settings(fake_lab) -> None:
    make_dmlab_env(TASK, 0, width=32, height=24)
    (lab,) = fake_lab.instances
    assert lab.observation_names == ["RGB_INTERLEAVED"]
    assert lab.config == {"width": "32", "height": "24", "logLevel": "WARN"}
    assert lab.renderer == "software"
    DMLabEnv(TASK, 0, renderer="hardware", extra_config={"datasetPath": "/data/bk", "mixerSeed": 7})
    lab = fake_lab.instances[-1]
    assert lab.renderer == "hardware"
    assert lab.config["datasetPath"] == "/data/bk"
    assert lab.config["mixerSeed"] == "7"


def test_spaces_and_task_conventions(fake_lab) -> None:
    env = make_dmlab_env(TASK, 0, width=8, height=6)
    assert env.action_space == gym.spaces.Box(-1.0, 1.0, (7,), np.float32)
    assert env.observation_space == gym.spaces.Box(0.0, 1.0, (6 * 8 * 3,), np.float32)
    assert env.task.action_repeat == ACTION_REPEAT["dmlab"] == 4
    assert env.task.episode_length == DMLAB_EPISODE_LENGTH


def test_observation_shape_and_scale(fake_lab) -> None:
    env = make_dmlab_env(TASK, 0, width=8, height=6)
    obs, info = env.reset(seed=1)
    lab = fake_lab.instances[0]
    assert obs.shape == (6 * 8 * 3,) and obs.dtype == np.float32
    assert obs.min() == 0.0 and obs.max() == 1.0
    expected = fake_frame(lab.seeds[-1], 0, 6, 8).reshape(-1).astype(np.float32) / 255.0
    np.testing.assert_allclose(obs, expected, rtol=0, atol=1e-7)
    assert env.observation_space.contains(obs)
    obs, *_ = env.step(np.zeros(7, dtype=np.float32))
    expected = fake_frame(lab.seeds[-1], 4, 6, 8).reshape(-1).astype(np.float32) / 255.0
    np.testing.assert_allclose(obs, expected, rtol=0, atol=1e-7)


def test_seed_gives_same_first_observation(fake_lab) -> None:
    env = make_dmlab_env(TASK, 0, width=8, height=6)
    first, _ = env.reset(seed=3)
    again, _ = env.reset(seed=3)
    other, _ = env.reset(seed=4)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    lab = fake_lab.instances[0]
    assert lab.seeds[0] == lab.seeds[1] != lab.seeds[2]
    # The constructor's seed makes a plain reset() reproducible too.
    plain = [make_dmlab_env(TASK, 3, width=8, height=6).reset()[0] for _ in range(2)]
    np.testing.assert_array_equal(plain[0], plain[1])
    # Later episodes of one env get fresh Lab seeds.
    env.reset()
    env.reset()
    assert lab.seeds[-1] != lab.seeds[-2]


def _lab_action(env: DMLabEnv, action) -> list[int]:
    lab = env.lab
    env.step(np.asarray(action, dtype=np.float32))
    sent = lab.actions[-1]
    assert sent.dtype == np.intc
    return sent.tolist()


def test_action_extremes(fake_lab) -> None:
    env = make_dmlab_env(TASK, 0, width=8, height=6)
    env.reset(seed=0)
    assert _lab_action(env, np.ones(7)) == [20, 10, 1, 1, 1, 1, 1]
    assert _lab_action(env, -np.ones(7)) == [-20, -10, -1, -1, 0, 0, 0]
    assert _lab_action(env, np.zeros(7)) == [0, 0, 0, 0, 0, 0, 0]
    # Out-of-range inputs act like the bound.
    assert _lab_action(env, [5, -3, 2, -9, 4, 7, 1.5]) == [20, -10, 1, -1, 1, 1, 1]
    # Look actions scale linearly and round to the nearest pixel.
    assert _lab_action(env, [0.5, -0.5, 0, 0, 0, 0, 0]) == [10, -5, 0, 0, 0, 0, 0]
    assert _lab_action(env, [0.26, 0.26, 0, 0, 0, 0, 0]) == [5, 3, 0, 0, 0, 0, 0]


def test_move_dead_zone(fake_lab) -> None:
    env = make_dmlab_env(TASK, 0, width=8, height=6)
    env.reset(seed=0)
    assert _lab_action(env, [0, 0, 0.3, -0.3, 0, 0, 0])[2:4] == [0, 0]
    assert _lab_action(env, [0, 0, -0.34, 0.34, 0, 0, 0])[2:4] == [-1, 1]
    assert _lab_action(env, [0, 0, 0.9, -0.9, 0, 0, 0])[2:4] == [1, -1]


def test_buttons_press_above_zero(fake_lab) -> None:
    env = make_dmlab_env(TASK, 0, width=8, height=6)
    env.reset(seed=0)
    assert _lab_action(env, [0, 0, 0, 0, 1e-3, 0.0, -0.5])[4:] == [1, 0, 0]
    assert _lab_action(env, [0, 0, 0, 0, -1e-3, 0.6, 0.01])[4:] == [0, 1, 1]


def test_actions_clamped_to_the_level_spec(fake_lab) -> None:
    spec = [dict(entry) for entry in DOC_ACTION_SPEC]
    spec[0].update(min=-15, max=15)
    spec[1].update(min=-4, max=6)
    spec[3].update(min=0)  # a level that cannot move backwards
    spec[6].update(max=0)  # nor crouch
    fake_lab.ACTION_SPEC = spec
    env = make_dmlab_env(TASK, 0, width=8, height=6)
    env.reset(seed=0)
    assert _lab_action(env, np.ones(7)) == [15, 6, 1, 1, 1, 1, 0]
    assert _lab_action(env, -np.ones(7)) == [-15, -4, -1, 0, 0, 0, 0]


def test_actions_follow_the_spec_names(fake_lab) -> None:
    # A level whose action vector has an extra action first: ours land by name, the extra stays 0.
    fake_lab.ACTION_SPEC = ({"min": -1, "max": 1, "name": "SWITCH_GADGET"},) + DOC_ACTION_SPEC
    env = make_dmlab_env(TASK, 0, width=8, height=6)
    env.reset(seed=0)
    assert _lab_action(env, [1, -1, 1, -1, 1, 0, 1]) == [0, 20, -10, 1, -1, 1, 0, 1]


def test_missing_spec_action_is_an_error(fake_lab) -> None:
    fake_lab.ACTION_SPEC = DOC_ACTION_SPEC[:6]
    with pytest.raises(RuntimeError, match="CROUCH"):
        make_dmlab_env(TASK, 0)


def test_custom_look_scale(fake_lab) -> None:
    env = DMLabEnv(TASK, 0, width=8, height=6, max_look_left_right=40, max_look_down_up=5)
    env.reset(seed=0)
    assert _lab_action(env, [1, -1, 0, 0, 0, 0, 0])[:2] == [40, -5]


def test_bad_actions_are_refused(fake_lab) -> None:
    env = make_dmlab_env(TASK, 0, width=8, height=6)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(6, dtype=np.float32))
    with pytest.raises(ValueError, match="finite"):
        env.step(np.array([np.nan, 0, 0, 0, 0, 0, 0], dtype=np.float32))


def test_action_repeat_and_reward_sum(fake_lab) -> None:
    env = make_dmlab_env(TASK, 0, width=8, height=6)
    env.reset(seed=0)
    lab = fake_lab.instances[0]
    _, reward, terminated, truncated, _ = env.step(np.zeros(7, dtype=np.float32))
    assert lab.num_steps_args == [4] and len(lab.actions) == 1
    assert reward == 1 + 2 + 3 + 4
    assert (terminated, truncated) == (False, False)
    _, reward, *_ = env.step(np.zeros(7, dtype=np.float32))
    assert reward == 5 + 6 + 7 + 8
    assert lab.num_steps() == 8


def test_truncated_when_the_level_stops(fake_lab) -> None:
    fake_lab.EPISODE_FRAMES = 10
    env = make_dmlab_env(TASK, 0, width=8, height=6)
    env.reset(seed=0)
    action = np.zeros(7, dtype=np.float32)
    for _ in range(2):
        last_obs, _, terminated, truncated, info = env.step(action)
        assert not terminated and not truncated and not info["level_ended"]
    obs, reward, terminated, truncated, info = env.step(action)
    assert reward == 9 + 10  # only the frames the level ran
    assert truncated and not terminated and info["level_ended"]
    # DMLab gives no observation once stopped: the last one seen is returned.
    np.testing.assert_array_equal(obs, last_obs)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(action)
    obs, _ = env.reset()
    assert obs.shape == (8 * 6 * 3,)
    assert not env.step(action)[3]


def test_truncated_at_the_step_limit(fake_lab) -> None:
    env = make_dmlab_env(TASK, 0, width=2, height=2)
    env.reset(seed=0)
    action = np.zeros(7, dtype=np.float32)
    for step in range(1, DMLAB_EPISODE_LENGTH + 1):
        _, _, terminated, truncated, info = env.step(action)
        assert not terminated
        assert truncated == (step == DMLAB_EPISODE_LENGTH)
    assert not info["level_ended"] and fake_lab.instances[0].is_running()
    with pytest.raises(RuntimeError, match="reset"):
        env.step(action)


def test_step_before_reset_is_an_error(fake_lab) -> None:
    env = make_dmlab_env(TASK, 0, width=8, height=6)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(7, dtype=np.float32))


def test_close_releases_the_lab_once(fake_lab) -> None:
    env = make_dmlab_env(TASK, 0, width=8, height=6)
    env.close()
    env.close()
    assert fake_lab.instances[0].close_calls == 1


def test_gymnasium_env_checker(fake_lab) -> None:
    check_env(make_dmlab_env(TASK, 0, width=8, height=6), skip_render_check=True)
