"""TD-MPC2's entry in the algorithm registry (:mod:`suite.registry` collects it)."""

from baselines.tdmpc2 import config
from m3po.algorithm import Algorithm

ALGORITHMS = (
    Algorithm(
        "tdmpc2",
        "any",
        config.TDMPC2Config,
        config.PRESETS,
        config.validate,
        "baselines.tdmpc2.train:train",
        description="TD-MPC2 (ours, from the published definitions)",
        # Learning from step 500 rather than 2500, so the measured steps include one update each.
        bench={"steps": 1500, "overrides": {"seed_steps": 500, "log_every": 250}},
    ),
)
