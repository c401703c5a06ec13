"""Training runs of the stable-baselines3 baselines, writing the suite's run record (:mod:`m3po.trainer`).

SB3 trains as usual (``model.learn``); a callback writes the record at the points where the model
is between updates:

when a rollout starts, i.e. after the previous update (PPO: every ``n_steps`` vectorized steps;
SAC: every ``train_freq`` steps, once the transitions are stored and the gradient steps done).

- train.jsonl: PPO one row per update, SAC one row every ``log_every`` agent steps, with SB3's
  logged ``train/*`` metrics (losses, approx_kl, clip_fraction, ent_coef(s) ...), the mean return of
  the last 100 training episodes, ``time/sps`` and ``time/wall``;
- evaluation and checkpoints at the first such point at or after every ``eval_every`` /
  ``checkpoint_every`` agent steps (as M3PO's fall on its update boundaries), and at the end; a PPO
  run may end up to one rollout past ``steps``.

Evaluation is the shared protocol with deterministic actions (the policy's mean). A checkpoint holds
the model (SB3's zip), the replay buffer (SAC) and the VecNormalize statistics (PPO); re-running the
same command resumes from it with freshly seeded episodes (``_last_obs`` is dropped, as SB3's own
``load`` does), never from zero and never on top of a finished run.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from baselines.sb3.config import PPORunConfig, SACRunConfig
from baselines.sb3.envs import TaskSetVecEnv, append_one_hot, make_sb3_vec_env
from baselines.sb3.multitask import MTSAC, MaskedActorCriticPolicy, MTSACPolicy
from m3po.envs.registry import resolve_tasks
from m3po.evaluation import episode_seed, evaluate
from m3po.trainer import MetricWindow, Trainer
from m3po.trainer.run_record import MetricsCallback


class SB3Run(Trainer):
    """One run of an SB3 baseline, on the trainer base; SB3's ``learn`` is the loop.

    :param algo: ``ppo``, ``sac``, ``mt-ppo`` or ``mt-sac``
    :param cfg: the validated config
    :param run_dir: the run's own directory
    :param on_metrics: callback ``(name, value, step)`` for every scalar (Sacred's ``log_scalar``)
    :param progress: show a progress bar on stderr
    """

    def __init__(
        self,
        algo: str,
        cfg: PPORunConfig | SACRunConfig,
        run_dir: Path,
        on_metrics: MetricsCallback | None = None,
        progress: bool = True,
    ) -> None:
        super().__init__(cfg, run_dir, on_metrics, progress, algo=algo)
        self.multi_task = algo.startswith("mt-")
        self.on_policy = isinstance(cfg, PPORunConfig)
        self.tasks = resolve_tasks(cfg.task)

    # ----------------------------------------------------------------------------- the run
    def run(self) -> dict[str, Any]:
        """Train to ``cfg.steps`` (resuming if the run directory has a checkpoint); return a summary."""
        cfg = self.cfg
        checkpoint = self.open()
        venv = make_sb3_vec_env(self.tasks, cfg.num_envs, cfg.seed, cfg.vec_mode, self.multi_task)
        try:
            if checkpoint is None:
                self.venv = self._normalize(venv, None)
                self.model = self._build(self.venv)
            else:
                self.venv = self._normalize(venv, checkpoint["vec_normalize"])
                self.model = self._load(checkpoint, self.venv)
            self.model.set_logger(Logger(folder=None, output_formats=[]))
            self.start_attempt(sb3_class=type(self.model).__name__)
            callback = _RecordCallback(self)
            with self.record.guard(lambda: self.state):
                if self.needs_first_eval():
                    self.evaluate_now()
                remaining = cfg.steps - self.model.num_timesteps
                if remaining > 0:  # else the final checkpoint (written after the final evaluation) is here
                    self.model.learn(
                        remaining, callback=callback, log_interval=None, reset_num_timesteps=False
                    )
                    callback.close()
            return self.finish()
        finally:
            self.bar.close()
            venv.close()

    # -------------------------------------------------------------------------- the model
    def _normalize(self, venv: VecEnv, saved: bytes | None) -> VecEnv:
        """PPO's VecNormalize (rl-baselines3-zoo's ``normalize: true``), restored from a checkpoint."""
        if not self.on_policy or not (self.cfg.ppo.normalize_obs or self.cfg.ppo.normalize_reward):
            return venv
        if saved is not None:
            normalized = pickle.loads(saved)
            normalized.set_venv(venv)
            return normalized
        p = self.cfg.ppo
        return VecNormalize(venv, norm_obs=p.normalize_obs, norm_reward=p.normalize_reward, gamma=p.gamma)

    def _build(self, venv: VecEnv) -> BaseAlgorithm:
        cfg = self.cfg
        common = {"seed": cfg.seed, "device": str(self.device), "verbose": 0}
        if self.on_policy:
            p = cfg.ppo
            hidden = [p.net_width] * p.net_depth
            policy_kwargs: dict[str, Any] = {
                "net_arch": {"pi": hidden, "vf": hidden},
                "log_std_init": p.log_std_init,
                "ortho_init": p.ortho_init,
            }
            policy: Any = "MlpPolicy"
            if self.multi_task:
                policy = MaskedActorCriticPolicy
                policy_kwargs["task_action_mask"] = self._task_action_mask(venv)
            return PPO(
                policy, venv, learning_rate=p.learning_rate, n_steps=p.n_steps, batch_size=p.batch_size,
                n_epochs=p.n_epochs, gamma=p.gamma, gae_lambda=p.gae_lambda, clip_range=p.clip_range,
                ent_coef=p.ent_coef, vf_coef=p.vf_coef, max_grad_norm=p.max_grad_norm,
                policy_kwargs=policy_kwargs, **common,
            )  # fmt: skip
        s = cfg.sac
        kwargs = dict(
            learning_rate=s.learning_rate, buffer_size=s.buffer_size, learning_starts=s.learning_starts,
            batch_size=s.batch_size, tau=s.tau, gamma=s.gamma, train_freq=s.train_freq,
            gradient_steps=s.gradient_steps, target_update_interval=s.target_update_interval,
            ent_coef=f"auto_{s.ent_coef_init}", **common,
        )  # fmt: skip
        net_arch = [s.net_width] * s.net_depth
        if self.multi_task:
            policy_kwargs = {"net_arch": net_arch, "task_action_mask": self._task_action_mask(venv)}
            return MTSAC(
                MTSACPolicy, venv, task_names=list(self.tasks), policy_kwargs=policy_kwargs, **kwargs
            )
        return SAC("MlpPolicy", venv, policy_kwargs={"net_arch": net_arch}, **kwargs)

    @staticmethod
    def _task_action_mask(venv: VecEnv) -> list[list[float]]:
        inner = venv.venv if isinstance(venv, VecNormalize) else venv
        assert isinstance(inner, TaskSetVecEnv)
        return inner.env.task_action_mask.tolist()

    def _model_class(self) -> type[BaseAlgorithm]:
        if self.on_policy:
            return PPO
        return MTSAC if self.multi_task else SAC

    def _load(self, checkpoint: dict[str, Any], venv: VecEnv) -> BaseAlgorithm:
        # SB3's load drops _last_obs (force_reset): the resumed attempt starts fresh, seeded episodes.
        model = self._model_class().load(io.BytesIO(checkpoint["model"]), env=venv, device=str(self.device))
        if checkpoint["replay_buffer"] is not None:
            model.load_replay_buffer(io.BytesIO(checkpoint["replay_buffer"]))
        model.set_random_seed(episode_seed(self.cfg.seed, self.state.step))
        return model

    def checkpoint_now(self) -> None:
        """Model, replay buffer (SAC) and normalisation statistics (PPO), with the run's counters."""
        model_bytes = io.BytesIO()
        self.model.save(model_bytes)
        buffer_bytes = None
        if not self.on_policy:
            buffer = io.BytesIO()
            self.model.save_replay_buffer(buffer)
            buffer_bytes = buffer.getvalue()
        normalize = pickle.dumps(self.venv) if isinstance(self.venv, VecNormalize) else None
        self.save_checkpoint(
            {"model": model_bytes.getvalue(), "replay_buffer": buffer_bytes, "vec_normalize": normalize}
        )

    # ------------------------------------------------------------------------- evaluation
    def policy(self, obs: np.ndarray, task_ids: np.ndarray) -> np.ndarray:
        """Deterministic actions for the evaluation protocol's (padded) observations."""
        if self.multi_task:
            obs = append_one_hot(obs, task_ids, len(self.tasks))
        if isinstance(self.venv, VecNormalize):
            obs = self.venv.normalize_obs(obs)
        action, _ = self.model.predict(obs, deterministic=True)
        return action

    def evaluate_now(self) -> None:
        """Evaluate at the current step (the shared protocol) and log it."""
        cfg = self.cfg
        self.log_eval(evaluate(self.policy, self.tasks, cfg.seed, self.state.step, cfg.eval_episodes))


class _RecordCallback(BaseCallback):
    """Writes the run record while SB3 trains (see the module docstring for when)."""

    def __init__(self, run: SB3Run) -> None:
        super().__init__()
        self.run = run

    def _on_training_start(self) -> None:
        self.window = MetricWindow(self.run.state.step)

    def _on_rollout_start(self) -> None:
        run = self.run
        if self.num_timesteps == self.window.step:
            return  # nothing trained since the last row
        run.state.step = self.num_timesteps
        if run.schedule.log_due(run.state):
            run.schedule.logged(run.state)
            self._row()
        self._evaluate_and_checkpoint()

    def _on_step(self) -> bool:
        return True

    def _row(self) -> None:
        state = self.run.state
        for key, value in self.logger.name_to_value.items():
            if isinstance(value, int | float | np.number) and not isinstance(value, bool):
                self.window.add({key: float(value)})
        self.logger.dump(self.num_timesteps)  # clears SB3's values (this logger has no outputs)
        episodes = self.model.ep_info_buffer
        if episodes:
            self.window.add({"rollout/ep_rew_mean": float(np.mean([e["r"] for e in episodes]))})
        state.step = self.num_timesteps
        state.iteration += 1
        self.run.log_row({"step": state.step, "iteration": state.iteration}, self.window.flush(state.step))

    def _evaluate_and_checkpoint(self, final: bool = False) -> None:
        run, state = self.run, self.run.state
        state.step = self.num_timesteps
        evaluated = checkpointed = False
        # At the end: evaluate unless this step was (a PPO run may end up to one rollout past steps).
        if run.schedule.eval_due(state) if not final else run.evaluated_at != state.step:
            run.evaluate_now()
            evaluated = True
        if final or run.schedule.checkpoint_due(state):
            run.checkpoint_now()
            checkpointed = True
        if evaluated or checkpointed:  # keep evaluation and checkpoint time out of time/sps
            self.window.restart(state.step)

    def close(self) -> None:
        """After ``learn``: the last update's row, the final evaluation and the final checkpoint."""
        if self.num_timesteps > self.window.step:
            self._row()
        self._evaluate_and_checkpoint(final=True)


def train_ppo(
    cfg: PPORunConfig, run_dir: Path, on_metrics: MetricsCallback | None = None, progress: bool = True
):
    """Registry entry of ``ppo``."""
    return SB3Run("ppo", cfg, run_dir, on_metrics, progress).run()


def train_mt_ppo(
    cfg: PPORunConfig, run_dir: Path, on_metrics: MetricsCallback | None = None, progress: bool = True
):
    """Registry entry of ``mt-ppo``."""
    return SB3Run("mt-ppo", cfg, run_dir, on_metrics, progress).run()


def train_sac(
    cfg: SACRunConfig, run_dir: Path, on_metrics: MetricsCallback | None = None, progress: bool = True
):
    """Registry entry of ``sac``."""
    return SB3Run("sac", cfg, run_dir, on_metrics, progress).run()


def train_mt_sac(
    cfg: SACRunConfig, run_dir: Path, on_metrics: MetricsCallback | None = None, progress: bool = True
):
    """Registry entry of ``mt-sac``."""
    return SB3Run("mt-sac", cfg, run_dir, on_metrics, progress).run()
