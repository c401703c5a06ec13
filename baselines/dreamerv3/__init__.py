"""DreamerV3 baseline: sheeprl's PyTorch DreamerV3 (``sheeprl==0.8.4``) on the suite's environments.

Registered in :mod:`suite.registry` as ``dreamerv3`` (single-task); the config and presets are in
:mod:`baselines.dreamerv3.config`, the run (sheeprl's own training loop, with the suite's run record,
evaluation protocol and resume) in :mod:`baselines.dreamerv3.train`.
"""
