"""DreamerV3 runs: sheeprl's own training loop on the suite's environments, writing the suite's run record.

sheeprl (``sheeprl==0.8.4``) is started as its command line starts it: its Hydra configs
(``exp=dreamer_v3 algo=dreamer_v3_{size}``) composed with our settings, then
``sheeprl.cli.check_configs`` and ``sheeprl.cli.run_algorithm``, which runs
``sheeprl.algos.dreamer_v3.dreamer_v3.main``. Three hooks, all through sheeprl's configuration, join
it to the run record (:mod:`m3po.trainer`):

- the environment (``env.wrapper._target_``) is :func:`m3po.envs.make_env`: flat float32 vector
  observations under the MLP key ``state`` (``algo.mlp_keys.encoder=[state]``, no CNN keys),
  actions in [-1, 1], action repeat and time limit inside our env (sheeprl's ``action_repeat=1``);
- the logger (``metric.logger``) is :class:`RecordLogger`: sheeprl's logged metrics (losses, KL,
  entropies, gradient norms, training-episode returns, replay ratio) become train.jsonl rows
  every ``dreamer.log_every`` agent steps, beside ``time/sps``, ``time/wall`` and peak memory;
- the checkpoint callback (``fabric.callbacks``) is :class:`RecordCheckpointCallback`: sheeprl
  writes its checkpoint (models, optimizers, replay-buffer reference) as usual, then the run
  evaluates when an evaluation is due and records the checkpoint in ``checkpoints/latest.pt``.

sheeprl checkpoints every ``gcd(eval_every, checkpoint_every)`` agent steps (rounded up by sheeprl to
whole iterations of ``num_envs`` steps) and at the end. Evaluation is the shared protocol
(:func:`m3po.evaluation.evaluate`) with sheeprl's player acting greedily (``get_actions(greedy=True)``:
the modes of the actor's distributions), at step 0 (the untrained agent, built by sheeprl's
``build_agent`` with the run seed) and whenever ``eval_every`` agent steps have passed, and at the end.
Re-running the same command resumes through sheeprl's own ``checkpoint.resume_from`` (the replay
buffer comes back from its memory-mapped files in ``run_dir/sheeprl``); sheeprl starts fresh
episodes on a resume, as it does after any checkpoint.
"""

from __future__ import annotations

import math
import os
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.fabric.loggers.logger import Logger
from sheeprl.utils.callback import CheckpointCallback

from baselines.dreamerv3.config import DreamerV3RunConfig
from m3po.envs import task_dims
from m3po.errors import RunDirectoryError
from m3po.evaluation import evaluate
from m3po.trainer import Trainer
from m3po.trainer.run_record import MetricsCallback

ALGO = "dreamerv3"
OBS_KEY = "state"  # the MLP key of our vector observations in sheeprl's dict observations
# sheeprl's metric groups -> the run record's names ("Loss/reward_loss" -> "train/reward_loss")
_GROUPS = {"Loss": "train", "State": "train", "Params": "train", "Grads": "train/grad_norm", "Time": "time"}
_RENAMED = {
    "Rewards/rew_avg": "train/episode_return",  # mean return of the training episodes ended in the window
    "Game/ep_len_avg": "train/episode_length",
    "Time/sps_train": "time/gradient_steps_per_s",  # sheeprl: gradient steps per second of training
    "Time/sps_env_interaction": "time/sps_env",  # sheeprl: agent steps per second of acting
}
# The runs in this process, by id: sheeprl builds the logger and the callback from its config.
_RUNS: dict[str, DreamerV3Run] = {}


def metric_name(name: str) -> str:
    """The run record's name of one of sheeprl's metrics."""
    if name in _RENAMED:
        return _RENAMED[name]
    group, _, rest = name.partition("/")
    return f"{_GROUPS[group]}/{rest}" if group in _GROUPS and rest else f"sheeprl/{name}"


class RecordLogger(Logger):
    """sheeprl's logger (``metric.logger``): its metrics go to the run's train.jsonl.

    :param run_id: the :class:`DreamerV3Run` this logger writes for
    """

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self._run = _RUNS[run_id]

    @property
    def name(self) -> str:
        return ALGO

    @property
    def version(self) -> int:
        return 0

    @property
    def log_dir(self) -> str:
        # sheeprl writes its config, checkpoints and replay buffer here (always the same directory).
        return str(self._run.sheeprl_dir)

    @property
    def root_dir(self) -> str:
        return str(self._run.sheeprl_dir)

    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        """The resolved config is config.json (ours) and sheeprl_dir/config.yaml (sheeprl's)."""

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self._run.add_metrics(metrics, int(step or 0))

    def finalize(self, status: str) -> None:
        self._run.flush_metrics()


class RecordCheckpointCallback(CheckpointCallback):
    """sheeprl's checkpoint callback, then the run's evaluation and its ``checkpoints/latest.pt``.

    :param run_id: the :class:`DreamerV3Run` this callback works for
    :param keep_last: sheeprl checkpoints kept (the newest), at least the two latest.pt and previous.pt name
    :param memmap_buffer: how sheeprl saves the memory-mapped replay buffer (``reference``: its file paths)
    """

    def __init__(self, run_id: str, keep_last: int = 2, memmap_buffer: str = "reference") -> None:
        super().__init__(keep_last=keep_last, memmap_buffer=memmap_buffer)
        self._run = _RUNS[run_id]

    def on_checkpoint_coupled(
        self, fabric: Any, ckpt_path: str, state: dict[str, Any], replay_buffer: Any = None
    ) -> None:
        super().on_checkpoint_coupled(fabric, ckpt_path, state, replay_buffer)
        self._run.on_checkpoint(fabric, ckpt_path, state)


class DreamerV3Run(Trainer):
    """One DreamerV3 run in ``run_dir``, on the trainer base; sheeprl's ``main`` is the loop.

    :param cfg: the validated config
    :param run_dir: the run's own directory
    :param on_metrics: callback ``(name, value, step)`` for every scalar (Sacred's ``log_scalar``)
    :param progress: show a progress bar on stderr
    """

    def __init__(
        self,
        cfg: DreamerV3RunConfig,
        run_dir: Path,
        on_metrics: MetricsCallback | None = None,
        progress: bool = True,
    ) -> None:
        super().__init__(cfg, Path(run_dir).resolve(), on_metrics, progress, algo=ALGO)
        self.sheeprl_dir = self.run_dir / "sheeprl"
        self.obs_dim, self.act_dim = task_dims(cfg.task)
        self._pending: dict[int, dict[str, float]] = {}
        self._window_step = 0
        self._window_start = 0.0
        self._sheeprl_cfg: dict[str, Any] | None = None

    # ------------------------------------------------------------------------------ sheeprl config
    def sheeprl_config(self, run_id: str, resume_from: Path | None) -> Any:
        """sheeprl's resolved config for this run (a ``dotdict``), as its ``run`` command builds it."""
        from hydra import compose, initialize_config_module
        from omegaconf import OmegaConf, open_dict
        from sheeprl.cli import resume_from_checkpoint
        from sheeprl.utils.utils import dotdict

        cfg, d = self.cfg, self.cfg.dreamer
        # sheeprl checkpoints (and the run evaluates) on a common period of both; 0 and 0: at the end only
        period = math.gcd(cfg.eval_every, cfg.checkpoint_every) or cfg.steps
        overrides = [
            "exp=dreamer_v3",
            f"algo=dreamer_v3_{d.size}",
            "env=default",
            f"seed={cfg.seed}",
            f"algo.total_steps={cfg.steps}",
            f"algo.replay_ratio={d.replay_ratio}",
            f"algo.learning_starts={d.learning_starts}",
            f"algo.per_rank_batch_size={d.batch_size}",
            f"algo.per_rank_sequence_length={d.sequence_length}",
            "algo.cnn_keys.encoder=[]",
            "algo.cnn_keys.decoder=[]",
            f"algo.mlp_keys.encoder=[{OBS_KEY}]",
            f"algo.mlp_keys.decoder=[{OBS_KEY}]",
            "algo.run_test=False",  # the run record's evaluation replaces sheeprl's one test episode
            f"env.id={cfg.task}",
            f"env.num_envs={cfg.num_envs}",
            f"env.sync_env={cfg.vec_mode == 'sync'}",
            "env.capture_video=False",
            "env.action_repeat=1",  # our environments repeat actions (2) and sum the rewards
            "env.max_episode_steps=null",  # our environments end their episodes (time limit only)
            f"buffer.size={d.buffer_size}",
            "buffer.checkpoint=True",
            f"checkpoint.every={period}",
            "checkpoint.save_last=True",
            f"metric.log_every={d.log_every}",
            "fabric.precision=32-true",
            f"num_threads={torch.get_num_threads()}",
            "model_manager.disabled=True",
        ]
        with initialize_config_module("sheeprl.configs", version_base="1.3"):
            composed = compose("config", overrides=overrides)
        with open_dict(composed):
            if resume_from is not None:
                composed.checkpoint.resume_from = str(resume_from)
                # sheeprl checks the env and the algorithm, and restores the checkpoint's config
                composed = resume_from_checkpoint(composed)
            self._set_runtime(composed, run_id)
        return dotdict(OmegaConf.to_container(composed, resolve=True, throw_on_missing=True))

    def _set_runtime(self, composed: Any, run_id: str) -> None:
        """The parts of sheeprl's config that belong to this process (set again after a resume)."""
        cfg = self.cfg
        composed.env.wrapper = {"_target_": "m3po.envs.make_env", "task": cfg.task, "seed": cfg.seed}
        composed.metric.logger = {"_target_": f"{__name__}.RecordLogger", "run_id": run_id}
        composed.fabric.callbacks = [
            {"_target_": f"{__name__}.RecordCheckpointCallback", "run_id": run_id, "keep_last": 2}
        ]
        composed.fabric.accelerator, composed.fabric.devices = self._fabric_device()
        composed.algo.total_steps = cfg.steps
        # sheeprl's own log directory is the logger's (RecordLogger.log_dir); these only name it.
        composed.root_dir = composed.log_root = str(self.sheeprl_dir)
        composed.run_name = ALGO

    # ----------------------------------------------------------------------------------- the run
    def run(self) -> dict[str, Any]:
        """Train to ``cfg.steps`` (resuming from the run directory's checkpoint); return a summary."""
        from sheeprl.cli import check_configs, run_algorithm

        cfg, record = self.cfg, self.record
        checkpoint = self.open()
        resume_from = None
        if checkpoint is not None:
            resume_from = self.run_dir / checkpoint["sheeprl_checkpoint"]
            if not resume_from.exists():
                raise RunDirectoryError(
                    f"{record.checkpoint_dir / 'latest.pt'} names sheeprl's checkpoint {resume_from}, "
                    "which is missing; delete the run directory to start again"
                )
        self.sheeprl_dir.mkdir(parents=True, exist_ok=True)
        self.start_attempt(sheeprl=_sheeprl_version())
        run_id = uuid.uuid4().hex
        _RUNS[run_id] = self
        try:
            with record.guard(lambda: self.state):
                self._sheeprl_cfg = self.sheeprl_config(run_id, resume_from)
                check_configs(self._sheeprl_cfg)
                if self.needs_first_eval():
                    self._evaluate(None)
                self._open_window()
                run_algorithm(self._sheeprl_cfg)
                self.flush_metrics()
                if self.state.step < cfg.steps:
                    raise RuntimeError(
                        f"sheeprl stopped at agent step {self.state.step} of {cfg.steps} without an error"
                    )
        finally:
            _RUNS.pop(run_id, None)
            self.bar.close()
        return self.finish()

    def _open_window(self) -> None:
        self._window_start = time.perf_counter()
        self._window_step = self.state.step

    # ---------------------------------------------------------------------------------- hooks
    def add_metrics(self, metrics: dict[str, float], step: int) -> None:
        """sheeprl logs a step's metrics in several calls: they are gathered, then written as one row.

        A row is written when the next one starts, at a checkpoint or at the end; its times are
        those of its first call (the moment sheeprl logged it).
        """
        if any(s != step for s in self._pending):
            self.flush_metrics()
        if step not in self._pending:
            now = time.perf_counter()
            self._pending[step] = {
                "time/sps": (step - self._window_step) / max(now - self._window_start, 1e-9),
                "time/wall": self.wall_time(),
            }
            self._window_step, self._window_start = step, now
        row = self._pending[step]
        for name, value in metrics.items():
            row[metric_name(name)] = float(value)

    def flush_metrics(self) -> None:
        """Write the gathered metrics as train.jsonl rows."""
        for step, metrics in sorted(self._pending.items()):
            self.log_row({"step": step}, metrics)
        self._pending.clear()

    def on_checkpoint(self, fabric: Any, ckpt_path: str, state: dict[str, Any]) -> None:
        """After sheeprl's checkpoint (end of an iteration): evaluate if due, then record the checkpoint."""
        cfg = self.cfg
        self.flush_metrics()
        self.state.step = int(state["iter_num"]) * cfg.num_envs  # one process: iter_num counts its iterations
        self.state.updates = int(state["per_rank_gradient_steps"])
        if self.state.step >= self.state.next_eval or self.state.step >= cfg.steps:
            # Building the player draws initial weights: training's random streams are left as they were.
            cuda = [self.device.index or 0] if self.device.type == "cuda" else []
            with torch.random.fork_rng(devices=cuda):
                self._evaluate(state, fabric)
        self.save_checkpoint({"sheeprl_checkpoint": os.path.relpath(ckpt_path, self.run_dir)})
        self.record.write_status("running", self.state, attempts=self.record.attempts)
        # Evaluation and checkpoint time stay out of time/sps and time/wall.
        self._open_window()

    # ----------------------------------------------------------------------------- evaluation
    def _fabric_device(self) -> tuple[str, Any]:
        """Fabric's ``accelerator`` and ``devices`` for the run's device (``cuda:N`` is the list ``[N]``)."""
        if self.device.type == "cuda":
            return "cuda", [self.device.index] if self.device.index is not None else 1
        return "cpu", 1

    def _fabric(self) -> Any:
        from lightning import Fabric

        accelerator, devices = self._fabric_device()
        return Fabric(accelerator=accelerator, devices=devices, precision="32-true")

    def _obs_space(self) -> Any:
        import gymnasium as gym

        box = gym.spaces.Box(-np.inf, np.inf, (self.obs_dim,), np.float32)
        return gym.spaces.Dict({OBS_KEY: box})

    def _evaluate(self, state: dict[str, Any] | None, fabric: Any = None) -> None:
        """The shared evaluation protocol with sheeprl's player acting greedily.

        :param state: sheeprl's checkpoint state (its ``world_model`` and ``actor`` weights); None: the
            untrained agent, as sheeprl's ``build_agent`` initialises it under the run seed
        :param fabric: sheeprl's Fabric (None: a single-device one on the run's device)
        """
        from sheeprl.algos.dreamer_v3.agent import build_agent

        if self.cfg.eval_episodes == 0:
            self.schedule.evaluated(self.state)
            return
        if fabric is None:
            fabric = self._fabric()
            fabric.seed_everything(self.cfg.seed, verbose=False)
        weights = (state["world_model"], state["actor"]) if state is not None else (None, None)
        obs_space = self._obs_space()
        *_, player = build_agent(fabric, (self.act_dim,), True, self._sheeprl_cfg, obs_space, *weights)
        n = self.cfg.eval_episodes
        player.num_envs = n

        @torch.inference_mode()
        def policy(obs: np.ndarray, task_ids: np.ndarray) -> np.ndarray:
            batch = torch.as_tensor(obs, dtype=torch.float32, device=fabric.device)
            torch_obs = {OBS_KEY: batch.view(1, n, -1)}  # (time, envs, features), as sheeprl's prepare_obs
            actions = player.get_actions(torch_obs, greedy=True)
            return torch.cat(actions, -1).reshape(n, -1).cpu().numpy()

        cfg = self.cfg
        self.log_eval(evaluate(policy, [cfg.task], cfg.seed, self.state.step, n, player.init_states))


def _sheeprl_version() -> str:
    from importlib.metadata import version

    return version("sheeprl")


def train(
    cfg: DreamerV3RunConfig,
    run_dir: Path,
    on_metrics: MetricsCallback | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train DreamerV3 (sheeprl) as ``cfg`` says, writing the run record into ``run_dir`` (module doc)."""
    return DreamerV3Run(cfg, run_dir, on_metrics, progress).run()
