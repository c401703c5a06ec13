"""M3PO's entry in the algorithm registry (:mod:`suite.registry` collects it)."""

from m3po import config
from m3po.algorithm import Algorithm

M3PO = Algorithm(
    "m3po",
    "any",
    config.M3POConfig,
    config.PRESET_OVERRIDES,
    config.validate,
    "m3po.train:train",
    description="M3PO: PPO with a world model, MPPI planner and bonus",
    bench={"steps": 4096, "overrides": {"ppo": {"rollout_len": 128}}},
)
ALGORITHMS = (M3PO,)

# A validated M3POConfig of a preset with updates (``make_config("cpu", steps=1000, planner={...})``),
# and a preset's full values: the registry entry's own methods.
make_config = M3PO.make_config
preset_dict = M3PO.preset_dict
