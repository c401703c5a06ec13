"""Baseline algorithms (PPO, SAC, MT-PPO, MT-SAC, TD-MPC2, DreamerV3) behind the common runner."""
