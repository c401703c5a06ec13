"""TD-MPC2's entry in the algorithm registry (:mod:`suite.registry` collects it)."""

from baselines.tdmpc2 import config
from m3po.algorithm import Algorithm

TDMPC2 = Algorithm(
    "tdmpc2",
    "any",
    config.TDMPC2Config,
    config.PRESETS,
    config.validate,
    "baselines.tdmpc2.train:train",
    description="TD-MPC2 (ours, from the published definitions)",
    # Learning from step 500 rather than 2500, so the measured steps include one update each.
    bench={"steps": 1500, "overrides": {"seed_steps": 500, "log_every": 250}},
)
ALGORITHMS = (TDMPC2,)

# A validated TDMPC2Config of a preset with updates (``make_config("cpu", planner={"iterations": 2})``),
# and a preset's full values: the registry entry's own methods.
make_config = TDMPC2.make_config
preset_dict = TDMPC2.preset_dict
