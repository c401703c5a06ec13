"""DreamerV3's entry in the algorithm registry (:mod:`suite.registry` collects it)."""

from baselines.dreamerv3 import config
from m3po.algorithm import Algorithm

ALGORITHMS = (
    Algorithm(
        "dreamerv3",
        "single",
        config.DreamerV3RunConfig,
        config.PRESETS,
        config.validate,
        "baselines.dreamerv3.train:train",
        ("sheeprl",),
        "DreamerV3 (sheeprl), vector observations",
        # Training from step 256, the first train.jsonl row: every measured step trains.
        {"steps": 768, "overrides": {"dreamer": {"learning_starts": 256, "log_every": 256}}},
    ),
)
