"""DeepMind Lab's DMLab-30 levels as gymnasium environments, with this suite's conventions.

Actions in [-1, 1]^7 mapped to DMLab's seven integer actions, action repeat 4 (DMLab advances 4 frames
per agent step and sums their rewards), at most ``DMLAB_EPISODE_LENGTH`` agent steps per episode (time
limit only: an episode ends by truncation, never termination) and observations flattened to one
float32 vector, because the suite's agents take vector observations.

DeepMind Lab is not on PyPI: its Python module ``deepmind_lab`` is built from source with Bazel (see
:class:`DMLabNotInstalledError`). This module imports it only when an environment is made, so the rest
of the suite works without it.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from types import ModuleType
from typing import Any

import gymnasium as gym
import numpy as np

from m3po.envs.registry import DMLAB30, DMLAB30_LEVELS, UnknownTaskError, task_info

_INSTALL_MESSAGE = (
    "DeepMind Lab's Python module `deepmind_lab` is not importable, so the dmlab30 tasks cannot run. "
    "It is not on PyPI: build it from source from the deepmind/lab repository with Bazel, using the "
    "same Python as this environment (that repository's docs/users/build.md lists the system "
    "packages it needs): `bazel build -c opt //python/pip_package:build_pip_package`, then "
    "`./bazel-bin/python/pip_package/build_pip_package /tmp/dmlab_pkg`, then pip-install the wheel "
    "it wrote into this environment: `python -m pip install /tmp/dmlab_pkg/*.whl`."
)

# DMLab's observation name for the player's view as (height, width, 3) uint8 RGB.
_RGB = "RGB_INTERLEAVED"

# The seven actions of DMLab's action_spec, in its order; our 7-dim action follows this order.
ACTION_NAMES: tuple[str, ...] = (
    "LOOK_LEFT_RIGHT_PIXELS_PER_FRAME",
    "LOOK_DOWN_UP_PIXELS_PER_FRAME",
    "STRAFE_LEFT_RIGHT",
    "MOVE_BACK_FORWARD",
    "FIRE",
    "JUMP",
    "CROUCH",
)
_LOOK = slice(0, 2)
_MOVE = slice(2, 4)
_BUTTONS = slice(4, 7)
# |a| below this leaves strafe/move at 0, so a policy near 0 does not drift.
MOVE_DEAD_ZONE = 1.0 / 3.0

# Reset seeds go to the Lab as a C int, so they are drawn below this bound.
_LAB_SEED_BOUND = 2**31


class DMLabNotInstalledError(ImportError):
    """``deepmind_lab`` cannot be imported; the message says how to build and install it.

    :param detail: why the import failed (the original ``ImportError``'s text), if known
    """

    def __init__(self, detail: str = "") -> None:
        suffix = f" (import error: {detail})" if detail else ""
        super().__init__(_INSTALL_MESSAGE + suffix, name="deepmind_lab")


def import_deepmind_lab() -> ModuleType:
    """The ``deepmind_lab`` module; raises :class:`DMLabNotInstalledError` if it cannot be imported."""
    try:
        import deepmind_lab
    except ImportError as err:
        raise DMLabNotInstalledError(str(err)) from err
    return deepmind_lab


def _check_dmlab_task(task: str) -> str:
    """The DMLab-30 level of ``task``; :class:`UnknownTaskError` (naming close matches) otherwise."""
    info = task_info(task)  # raises UnknownTaskError with the closest names for unknown tasks
    if info.domain != "dmlab":
        close = difflib.get_close_matches(task, DMLAB30, n=3, cutoff=0.3)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise UnknownTaskError(
            f"{task!r} is a {info.domain} task, not a DeepMind Lab one.{hint} "
            "See `m3po tasks dmlab30` for the DMLab-30 tasks."
        )
    return DMLAB30_LEVELS[DMLAB30.index(task)]


def make_dmlab_env(task: str, seed: int, *, width: int = 64, height: int = 64) -> gym.Env:
    """A DMLab-30 task as a :class:`DMLabEnv`.

    The task name is checked first, then ``deepmind_lab`` is imported, so a missing installation fails
    at once with :class:`DMLabNotInstalledError` before anything is built.

    :param task: a ``dmlab30`` task, e.g. ``dmlab-rooms-watermaze``
    :param seed: seed of the environment's generator, which draws the Lab's per-episode seeds
    :param width: observation width in pixels
    :param height: observation height in pixels
    """
    _check_dmlab_task(task)
    import_deepmind_lab()
    return DMLabEnv(task, seed, width=width, height=height)


class DMLabEnv(gym.Env):
    """A DMLab-30 level with actions in [-1, 1]^7, action repeat and a time limit.

    Observations are the player's ``RGB_INTERLEAVED`` view at ``height`` x ``width``, flattened to a
    float32 vector of length ``height * width * 3`` (row-major over height, width, RGB) scaled to
    [0, 1]: the suite's agents take vector observations.

    Actions (a 7-vector in [-1, 1], DMLab's action_spec order): the two look actions are
    ``round(a * max_look)`` pixels per frame; strafe and move are -1, 0 or 1, with ``|a| < 1/3`` giving
    0; fire, jump and crouch are pressed when ``a > 0``. The result is clamped to the level's
    action_spec bounds. Each agent step runs the action for ``action_repeat`` frames (one Lab ``step``
    call) and returns their summed reward.

    An episode is truncated when the level stops running (its own time limit) or after the task's
    ``episode_length`` agent steps; nothing terminates it. Once the level has stopped, DMLab offers no
    observation, so that step returns the last observation seen. ``info["level_ended"]`` says whether
    the level stopped.

    :param task: a ``dmlab30`` task, e.g. ``dmlab-rooms-watermaze``
    :param seed: seed of the environment's generator, from which each ``reset`` draws the Lab's seed;
        ``reset(seed=s)`` reseeds it, so the same seed gives the same first observation
    :param width: observation width in pixels
    :param height: observation height in pixels
    :param renderer: DMLab's renderer, ``software`` (no display needed) or ``hardware``
    :param max_look_left_right: pixels per frame of a full left/right look action (IMPALA's 20)
    :param max_look_down_up: pixels per frame of a full down/up look action (IMPALA's 10)
    :param extra_config: further Lab settings, e.g. ``{"datasetPath": ...}`` for levels that need a
        data set; values are passed as strings, as the Lab requires
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self,
        task: str,
        seed: int | None,
        *,
        width: int = 64,
        height: int = 64,
        renderer: str = "software",
        max_look_left_right: float = 20.0,
        max_look_down_up: float = 10.0,
        extra_config: Mapping[str, object] | None = None,
    ) -> None:
        level = _check_dmlab_task(task)
        deepmind_lab = import_deepmind_lab()
        if width <= 0 or height <= 0:
            raise ValueError(f"width and height must be positive, got {width}x{height}")
        if renderer not in ("software", "hardware"):
            raise ValueError(f"renderer must be 'software' or 'hardware', got {renderer!r}")
        self.task = task_info(task)
        self.level_path = f"contributed/dmlab30/{level}"
        self.width = int(width)
        self.height = int(height)
        self._look_scale = np.array([max_look_left_right, max_look_down_up], dtype=np.float64)
        # The Lab only accepts string settings (it reads them as UTF-8 strings).
        config = {"width": str(self.width), "height": str(self.height), "logLevel": "WARN"}
        config.update({str(k): str(v) for k, v in (extra_config or {}).items()})
        # The Lab's constructor requires a list (not a tuple) of observations and a dict config.
        self._lab = deepmind_lab.Lab(self.level_path, [_RGB], config=config, renderer=renderer)
        self._closed = False

        spec = list(self._lab.action_spec())
        names = [entry["name"] for entry in spec]
        missing = [name for name in ACTION_NAMES if name not in names]
        if missing:
            raise RuntimeError(f"level {self.level_path} lacks the actions {missing}; its actions: {names}")
        # Positions of our 7 actions in the Lab's action vector; any further actions stay at 0.
        self._index = np.array([names.index(name) for name in ACTION_NAMES])
        self._action_min = np.array([entry["min"] for entry in spec], dtype=np.int64)
        self._action_max = np.array([entry["max"] for entry in spec], dtype=np.int64)

        obs_dim = self.height * self.width * 3
        self.observation_space = gym.spaces.Box(0.0, 1.0, (obs_dim,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (len(ACTION_NAMES),), np.float32)
        # Seeded here so that a plain reset() after construction is reproducible from `seed`.
        self._np_random, self._np_random_seed = gym.utils.seeding.np_random(seed)
        self._last_obs: np.ndarray | None = None
        self._steps = 0
        self._needs_reset = True

    @property
    def lab(self) -> Any:
        """The wrapped ``deepmind_lab.Lab``, for tests and diagnostics."""
        return self._lab

    def lab_action(self, action: np.ndarray) -> np.ndarray:
        """DMLab's integer action (dtype ``np.intc``) for an action in [-1, 1]^7.

        :param action: 7 finite numbers; values outside [-1, 1] are clipped
        """
        a = np.asarray(action, dtype=np.float64)
        if a.shape != self.action_space.shape:
            raise ValueError(f"action must have shape {self.action_space.shape}, got {a.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"action must be finite, got {a}")
        a = np.clip(a, -1.0, 1.0)
        ours = np.zeros(len(ACTION_NAMES), dtype=np.int64)
        ours[_LOOK] = np.rint(a[_LOOK] * self._look_scale)
        ours[_MOVE] = np.where(np.abs(a[_MOVE]) < MOVE_DEAD_ZONE, 0, np.sign(a[_MOVE]))
        ours[_BUTTONS] = a[_BUTTONS] > 0
        full = np.zeros(len(self._action_min), dtype=np.int64)
        full[self._index] = ours
        return np.clip(full, self._action_min, self._action_max).astype(np.intc)

    def _observation(self) -> np.ndarray:
        frame = np.asarray(self._lab.observations()[_RGB])
        expected = (self.height, self.width, 3)
        if frame.shape != expected:
            raise RuntimeError(f"DMLab returned a {_RGB} frame of shape {frame.shape}, expected {expected}")
        return frame.reshape(-1).astype(np.float32) / np.float32(255.0)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._lab.reset(seed=int(self.np_random.integers(0, _LAB_SEED_BOUND)))
        self._steps = 0
        self._needs_reset = False
        self._last_obs = self._observation()
        return self._last_obs.copy(), {}

    def step(self, action: np.ndarray):
        if self._needs_reset:
            raise RuntimeError("the episode has ended (or not begun): call reset() before step()")
        reward = float(self._lab.step(self.lab_action(action), num_steps=self.task.action_repeat))
        self._steps += 1
        level_ended = not self._lab.is_running()
        if not level_ended:
            self._last_obs = self._observation()
        truncated = level_ended or self._steps >= self.task.episode_length
        self._needs_reset = truncated
        return self._last_obs.copy(), reward, False, truncated, {"level_ended": level_ended}

    def close(self) -> None:
        if not self._closed:
            self._lab.close()
            self._closed = True
