"""M3PO's entry in the algorithm registry (:mod:`suite.registry` collects it)."""

from m3po import config
from m3po.algorithm import Algorithm

ALGORITHMS = (
    Algorithm(
        "m3po",
        "any",
        config.M3POConfig,
        config.PRESET_OVERRIDES,
        config.validate,
        "m3po.train:train",
        description="M3PO: PPO with a world model, MPPI planner and bonus",
        bench={"steps": 4096, "overrides": {"ppo": {"rollout_len": 128}}},
    ),
)
