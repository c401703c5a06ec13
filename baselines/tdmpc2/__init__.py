"""TD-MPC2 (Hansen, Su and Wang, ICLR 2024), written for this suite from its published definitions.

``config`` (one typed dataclass, ``paper`` and ``cpu`` presets), ``world_model``, ``buffer``, ``agent`` and
``train`` (the loop over vectorized envs, writing the suite's run record). See docs/tdmpc2.md.
"""
