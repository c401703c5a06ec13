"""The stable-baselines3 baselines' entries in the algorithm registry (:mod:`suite.registry`)."""

from baselines.sb3 import config as sb3
from m3po.algorithm import Algorithm

_NEEDS = ("stable_baselines3",)
# PPO: 512-step rollouts give several updates in a short run (the cost per step is the same).
_PPO_BENCH = {"steps": 3072, "overrides": {"ppo": {"n_steps": 512}}}
# SAC: learning from step 500 rather than 5000, so the measured steps include updates.
_SAC_BENCH = {"steps": 2000, "overrides": {"sac": {"learning_starts": 500}, "log_every": 250}}

ALGORITHMS = (
    Algorithm(
        "ppo", "single", sb3.PPORunConfig, sb3.presets("ppo"), sb3.validate_ppo,
        "baselines.sb3.train:train_ppo", _NEEDS, "stable-baselines3 PPO", _PPO_BENCH,
    ),
    Algorithm(
        "sac", "single", sb3.SACRunConfig, sb3.presets("sac"), sb3.validate_sac,
        "baselines.sb3.train:train_sac", _NEEDS, "stable-baselines3 SAC", _SAC_BENCH,
    ),
    Algorithm(
        "mt-ppo", "multi", sb3.PPORunConfig, sb3.presets("mt-ppo"), sb3.validate_ppo,
        "baselines.sb3.train:train_mt_ppo", _NEEDS, "stable-baselines3 PPO, one-hot task id",
        {"steps": 4096, "overrides": {"ppo": {"n_steps": 128}}},
    ),
    Algorithm(
        "mt-sac", "multi", sb3.SACRunConfig, sb3.presets("mt-sac"), sb3.validate_sac,
        "baselines.sb3.train:train_mt_sac", _NEEDS, "SAC, one-hot task id, a temperature per task",
        _SAC_BENCH,
    ),
)  # fmt: skip
