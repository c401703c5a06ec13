"""stable-baselines3 baselines: PPO and SAC (single-task), MT-PPO and MT-SAC (task sets, one-hot task ids).

Registered in :mod:`suite.registry` as ``ppo``, ``sac``, ``mt-ppo`` and ``mt-sac``; configs in
:mod:`baselines.sb3.config` with the presets of ``hyperparams.yaml``; training in
:mod:`baselines.sb3.train`; the multi-task policies and MT-SAC in :mod:`baselines.sb3.multitask`.
"""
