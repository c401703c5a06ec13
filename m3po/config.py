"""The M3PO configuration: one typed dataclass, grouped by concern, with ``cpu`` and ``paper`` presets.

Every field says in a comment what it is; ``(choice)`` marks what the paper leaves open
(see ``shared/spec/m3po-algorithm.md``). The presets' values, with the source of each, are in
``presets.yaml`` beside this file.

:class:`RunConfig` holds the fields every algorithm's config shares (task, seed, budget, evaluation,
checkpoints, device); :func:`load_presets`, :func:`preset_values`, :func:`build_config` and
:func:`validate_run` load, build and check any algorithm's config dataclass the same way (see
:mod:`suite.registry`). A validated config of a preset comes from the algorithm's registry entry:
:meth:`m3po.algorithm.Algorithm.make_config` (M3PO's: ``m3po.registration.make_config``).
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from m3po.envs.registry import resolve_tasks, task_info
from m3po.planner_config import PlannerConfig

PRESETS = ("cpu", "paper")  # the preset names every algorithm has
# Metadata of the RunConfig fields that say where and how fast a run executes, not what it computes: a
# resume may change them (m3po.record.RUNTIME_KEYS, standard-library only, lists the same names).
_RUNTIME = {"runtime": True}


@dataclass
class RunConfig:
    """Fields every algorithm's config has: what it trains on, for how long, and how the run is recorded."""

    preset: str = "cpu"  # cpu | paper (each algorithm's own preset values)
    task: str = "cartpole-swingup"  # task or task set (dmc39, mw50, mt30, mt80, or a comma list)
    seed: int = 1  # run seed (env i gets seed + i)
    steps: int = 100_000  # agent-step budget, summed over envs
    num_envs: int = 8  # vectorized environments
    vec_mode: str = field(default="sync", metadata=_RUNTIME)  # sync | async
    eval_every: int = 10_000  # agent steps between evaluations
    eval_episodes: int = 10  # evaluation episodes per task
    checkpoint_every: int = 20_000  # agent steps between checkpoints
    device: str = field(default="auto", metadata=_RUNTIME)  # auto (CUDA if present) | cpu | cuda | cuda:N
    threads: int = field(default=0, metadata=_RUNTIME)  # torch threads (0: leave torch's default)
    tensorboard: bool = field(default=True, metadata=_RUNTIME)  # also write run_dir/tensorboard event files
    portable: bool = False  # CPU code paths all x86-64 CPUs share, 1 thread: same bits (m3po/portable.py)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (what Sacred stores)."""
        return dataclasses.asdict(self)


RUNTIME_FIELDS: frozenset[str] = frozenset(f.name for f in fields(RunConfig) if f.metadata.get("runtime"))


@dataclass
class ModelConfig:
    """World model and actor-critic sizes."""

    latent_dim: int = 128  # z size (TD-MPC2 1M: 128)
    enc_dim: int = 256  # encoder hidden width
    num_enc_layers: int = 2  # encoder hidden layers
    mlp_dim: int = 384  # hidden width of dynamics, reward, value and policy heads
    task_dim: int = 96  # learnable task embedding size in multi-task runs (0 in single-task runs)
    simnorm_dim: int = 8  # SimNorm group size on the latent
    num_bins: int = 101  # two-hot bins for reward (and value, if value_loss is twohot)
    vmin: float = -10.0  # lowest two-hot bin, symlog space
    vmax: float = 10.0  # highest two-hot bin, symlog space
    log_std_min: float = -5.0  # floor of the prior's log sigma (issue 8: a higher floor is an option)
    log_std_max: float = 0.5  # ceiling of the prior's log sigma (TD-MPC2: 2; lower: see docs/m3po.md)
    init_log_std: float = 0.0  # the prior's log sigma at initialisation (stable-baselines3's PPO: 0)
    obs_norm: bool = True  # standardise observations by running per-task statistics (SB3's VecNormalize)
    policy_std: str = "state"  # state: log sigma is an actor output (TD-MPC2) | param: per task and dim (SB3)


@dataclass
class BonusConfig:
    """Exploration bonus, Eq. 4-7."""

    alpha0: float = 0.1  # alpha at step 0 (choice); 0 is the "no bonus" ablation
    anneal_steps: int = 1_000_000  # K_anneal in agent steps (choice)
    schedule: str = "linear"  # linear | constant | cosine
    clip_factor: float = 2.0  # c: |b| <= c |A| ("never dominates the advantage by more than a factor of two")
    scale: str = "none"  # none | std: divide the centred epsilon by its batch std (choice)
    per_task: bool = True  # centre (and scale) per task in multi-task batches (choice)
    before_adv_norm: bool = True  # add the bonus before PPO's advantage normalisation (choice)


@dataclass
class PPOConfig:
    """On-policy learning of actor and critic."""

    rollout_len: int = 64  # T, agent steps per env between updates
    epochs: int = 10  # E, passes over the batch per update (stable-baselines3's PPO default)
    minibatch_size: int = 256  # transitions per minibatch
    clip: float = 0.2  # epsilon_clip (choice: PPO's default; the paper's value was lost)
    ent_coef: float = 0.0  # entropy bonus weight, sample estimate -log pi (choice; SB3's PPO default 0)
    value_coef: float = 0.5  # critic loss weight
    gae_lambda: float = 0.95  # lambda (choice)
    discount: float = 0.0  # 0: each task's own (spec: 0.99 DMControl, 0.95 Meta-World); else for every task
    lr: float = 3e-4  # Adam learning rate of critic and world model (the encoder's is scaled by wm)
    actor_lr: float = 3e-4  # Adam learning rate of the policy prior (its steps move the PPO ratio)
    adam_eps: float = 1e-5  # Adam's epsilon (SB3's PPO value; torch's 1e-8 learned less: docs/m3po.md)
    max_grad_norm: float = 0.5  # gradient-norm clip of the policy head (PPO's default)
    normalize_advantage: bool = True  # standardise advantages per minibatch
    log_ratio_clamp: float = 20.0  # clamp of log pi_new - log pi_old before exp (overflow guard)
    behaviour_density: str = "prior"  # prior: pi_old(a|s) as the paper reads | planner: x pi_old/b_planner
    is_clip: float = 1.0  # truncation of the weight pi_old(a|s) / b(a|s) (behaviour_density=planner)
    target_kl: float = 0.0  # the actor stops for the update once approx-KL > 1.5x this (0: off; SB3's rule)
    actor_latent: str = "live"  # live: the actor reads the encoder as it trains | collected: as at collection
    distill_coef: float = 0.0  # weight of -log pi(a_exec|s): pulls the prior toward the planner's actions


@dataclass
class WorldModelLossConfig:
    """World-model losses on contiguous windows of the on-policy batch (TD-MPC2's weights)."""

    consistency_coef: float = 20.0  # latent consistency weight
    reward_coef: float = 0.1  # reward loss weight
    rho: float = 0.5  # temporal decay of the per-step losses
    horizon: int = 3  # rollout length of the losses (H)
    enc_lr_scale: float = 0.3  # encoder learning rate multiplier
    max_grad_norm: float = (
        20.0  # gradient-norm clip of world model and critic (TD-MPC2's), apart from the actor
    )
    history_batches: int = 0  # previous batches the model losses also draw windows from (spec's FIFO; 0 off)


@dataclass
class M3POConfig(RunConfig):
    """Everything an M3PO run needs; ``preset`` picks sizes, explicit fields override them."""

    eval_planner: bool = True  # evaluate with the planner (False: the prior's mode alone, a diagnostic)
    # Float results within a stated tolerance of the eager path (tests/test_compile.py).
    compile: bool = False  # torch.compile planner scoring and world-model loss, fused Adam (False: exact)
    model: ModelConfig = field(default_factory=ModelConfig)  # sizes
    planner: PlannerConfig = field(default_factory=PlannerConfig)  # MPPI
    bonus: BonusConfig = field(default_factory=BonusConfig)  # exploration bonus
    ppo: PPOConfig = field(default_factory=PPOConfig)  # actor-critic learning
    wm: WorldModelLossConfig = field(default_factory=WorldModelLossConfig)  # world-model losses


class ConfigError(ValueError):
    """A bad configuration value; the message names the field and what is valid."""


# A float written 1e-4 (no dot) is a string to YAML 1.1, which PyYAML reads: presets write 1.0e-4.
_FLOAT_AS_STRING = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def load_presets(path: str | Path, key: str | None = None) -> dict[str, dict[str, Any]]:
    """Preset name -> overrides of a config dataclass's defaults, from a YAML file.

    :param path: the YAML file (one mapping per preset, a comment with the source beside each value)
    :param key: the file's top-level section to read (a file holding several algorithms' presets)
    :raises ConfigError: when the file does not map preset names to mappings, or holds a float that
        YAML reads as a string (``1e-4``: write ``1.0e-4``)
    """
    where = f"{path}" + (f" [{key}]" if key is not None else "")
    data = yaml.safe_load(Path(path).read_text())
    if key is not None:
        data = data[key]
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ConfigError(f"{where} must map each preset name to a mapping of overrides")

    def check(values: dict[str, Any], prefix: str) -> None:
        for name, value in values.items():
            if isinstance(value, dict):
                check(value, f"{prefix}{name}.")
            elif isinstance(value, str) and _FLOAT_AS_STRING.fullmatch(value):
                raise ConfigError(
                    f"{where}: {prefix}{name}: {value} reads as a string in YAML; write floats with a dot "
                    "(1.0e-4, not 1e-4)"
                )

    for preset, values in data.items():
        check(values, f"{preset}.")
    return data


# Per-preset overrides of M3POConfig's defaults, with the source of each value: presets.yaml.
PRESET_OVERRIDES: dict[str, dict[str, Any]] = load_presets(Path(__file__).with_name("presets.yaml"))


def check_overrides(overrides: Sequence[str]) -> None:
    """Every command-line override (``--set``) must read ``KEY=VALUE``; a clear error names the first that
    does not."""
    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise ConfigError(f"--set takes KEY=VALUE, got {bad[0]!r}")


def merge(target: dict[str, Any], updates: dict[str, Any]) -> None:
    """Update the nested dict ``target`` with ``updates`` in place, section by section."""
    for key, value in updates.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = value


def preset_values(cls: type[RunConfig], overrides: dict[str, dict[str, Any]], preset: str) -> dict[str, Any]:
    """The full config dict of ``cls`` for ``preset``: its defaults with ``overrides[preset]`` applied."""
    if preset not in overrides:
        raise ConfigError(f"unknown preset {preset!r}; valid presets: {', '.join(sorted(overrides))}")
    values = cls(preset=preset).to_dict()
    merge(values, overrides[preset])
    return values


def build_config(cls: type, values: dict[str, Any], path: str = "") -> Any:
    """``cls(**values)`` with nested dataclass sections, types checked; unknown fields name the close ones."""
    hints = get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        close = difflib.get_close_matches(unknown[0], names, n=1)
        hint = f" (did you mean {path}{close[0]}?)" if close else ""
        raise ConfigError(f"unknown config field {path}{unknown[0]}{hint}; valid: {', '.join(sorted(names))}")
    kwargs = {}
    for name, value in values.items():
        kind = hints[name]
        if dataclasses.is_dataclass(kind):
            if not isinstance(value, dict):
                raise ConfigError(f"{path}{name} must be a mapping of fields, got {value!r}")
            kwargs[name] = build_config(kind, value, f"{path}{name}.")
            continue
        kwargs[name] = _coerce(f"{path}{name}", value, kind)
    return cls(**kwargs)


def _coerce(name: str, value: Any, kind: type) -> Any:
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is bool and isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"  # Sacred reads `compile=true` as the string 'true'
    if kind is bool and not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    if not isinstance(value, kind):
        raise ConfigError(f"{name} must be of type {kind.__name__}, got {value!r}")
    return value


_CHOICES = {
    "bonus.schedule": ("linear", "constant", "cosine"),
    "bonus.scale": ("none", "std"),
    "ppo.behaviour_density": ("prior", "planner"),
    "ppo.actor_latent": ("live", "collected"),
    "model.policy_std": ("state", "param"),
    "planner.eval_action": ("elite", "mean"),
    "planner.sample_space": ("pretanh", "action"),
}
_RUN_NON_NEGATIVE = ("steps", "eval_every", "eval_episodes", "checkpoint_every", "threads", "seed")
_NON_NEGATIVE = ("bonus.alpha0", "ppo.distill_coef", "wm.history_batches")
_POSITIVE = (
    "ppo.rollout_len", "ppo.epochs", "ppo.minibatch_size", "planner.horizon",
    "planner.iterations", "planner.num_samples", "planner.num_elites", "model.latent_dim",
    "bonus.anneal_steps", "wm.horizon",
)  # fmt: skip


def _get(config: Any, dotted: str) -> Any:
    value: Any = config
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def validate_run(config: RunConfig, presets: tuple[str, ...] = PRESETS) -> tuple[str, ...]:
    """Check the :class:`RunConfig` fields and return the run's tasks.

    :raises ConfigError: naming the bad value and the valid ones
    """
    if config.preset not in presets:
        raise ConfigError(f"unknown preset {config.preset!r}; valid presets: {', '.join(presets)}")
    if config.vec_mode not in ("sync", "async"):
        raise ConfigError(f"vec_mode={config.vec_mode!r} is not valid; choose one of: sync, async")
    for name in _RUN_NON_NEGATIVE:
        if _get(config, name) < 0:
            raise ConfigError(f"{name} must be >= 0, got {_get(config, name)}")
    if config.num_envs < 1:
        raise ConfigError(f"num_envs must be >= 1, got {config.num_envs}")
    check_device(config.device)
    tasks = resolve_tasks(config.task)  # UnknownTaskError names the closest valid names
    if config.num_envs < len(tasks):
        raise ConfigError(f"num_envs={config.num_envs} is smaller than the task set ({len(tasks)} tasks)")
    if any(task_info(t).domain == "dmlab" for t in tasks):
        _check_dmlab(config.task)
    return tasks


_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


def check_device(device: str) -> None:
    """``device`` must read auto, cpu, cuda or cuda:N, and a CUDA device must exist here.

    Torch is imported only for a ``cuda`` device, so that checking other configs stays light.

    :raises ConfigError: naming the device and the valid ones
    """
    if not _DEVICE.fullmatch(device):
        raise ConfigError(f"device={device!r} is not valid; choose one of: auto, cpu, cuda, cuda:N")
    if not device.startswith("cuda"):
        return
    import torch

    if not torch.cuda.is_available():
        raise ConfigError(f"device={device!r}, but CUDA is not available here; valid here: auto, cpu")
    index, count = int(device.partition(":")[2] or 0), torch.cuda.device_count()
    if index >= count:
        raise ConfigError(
            f"device={device!r}, but this machine has {count} CUDA device(s); valid: auto, cpu, cuda, "
            + ", ".join(f"cuda:{i}" for i in range(count))
        )


def _check_dmlab(task: str) -> None:
    """A DMLab-30 task needs ``deepmind_lab``; its absence is a config error (how to build it) before
    any work starts, rather than a traceback when the first environment is made."""
    from m3po.envs.dmlab import DMLabNotInstalledError, import_deepmind_lab

    try:
        import_deepmind_lab()
    except DMLabNotInstalledError as err:
        raise ConfigError(f"task={task!r} cannot run here: {err}") from err


def validate(config: M3POConfig) -> M3POConfig:
    """Check ranges and choices; raise :class:`ConfigError` naming the bad value."""
    validate_run(config)
    for name, choices in _CHOICES.items():
        if _get(config, name) not in choices:
            raise ConfigError(
                f"{name}={_get(config, name)!r} is not valid; choose one of: {', '.join(choices)}"
            )
    for name in _NON_NEGATIVE:
        if _get(config, name) < 0:
            raise ConfigError(f"{name} must be >= 0, got {_get(config, name)}")
    for name in _POSITIVE:
        if _get(config, name) < 1:
            raise ConfigError(f"{name} must be >= 1, got {_get(config, name)}")
    p = config.planner
    if not 0 <= p.num_pi_trajs < p.num_samples:
        raise ConfigError(f"planner.num_pi_trajs must be in [0, num_samples), got {p.num_pi_trajs}")
    if p.num_elites > p.num_samples:
        raise ConfigError(
            f"planner.num_elites ({p.num_elites}) exceeds planner.num_samples ({p.num_samples})"
        )
    if not 0 < p.min_std <= p.max_std:
        raise ConfigError(f"need 0 < planner.min_std <= planner.max_std, got {p.min_std}, {p.max_std}")
    if not 0.0 <= p.prior_mix <= 1.0:
        raise ConfigError(f"planner.prior_mix is a probability, got {p.prior_mix}")
    for name in ("ppo.lr", "ppo.actor_lr", "ppo.adam_eps"):
        if not _get(config, name) > 0:
            raise ConfigError(f"{name} must be > 0, got {_get(config, name)}")
    if config.ppo.target_kl < 0:
        raise ConfigError(f"ppo.target_kl must be >= 0 (0: no early stop), got {config.ppo.target_kl}")
    if not 0.0 <= config.ppo.discount < 1.0:
        raise ConfigError(f"ppo.discount must be in [0, 1) (0: the per-task rule), got {config.ppo.discount}")
    if config.ppo.is_clip <= 0:
        raise ConfigError(f"ppo.is_clip must be > 0, got {config.ppo.is_clip}")
    m = config.model
    if not m.log_std_min < m.init_log_std < m.log_std_max:
        raise ConfigError(f"model.init_log_std={m.init_log_std} must lie in (log_std_min, log_std_max)")
    if config.model.latent_dim % config.model.simnorm_dim:
        raise ConfigError("model.latent_dim must be a multiple of model.simnorm_dim")
    return config
