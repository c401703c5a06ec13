"""Published reference numbers, vendored as data: ``tdmpc2_results.yaml`` (the few rows ``m3po bench
fidelity`` compares at) and ``tdmpc2_curves.parquet`` (the TD-MPC2 authors' per-task curves of TD-MPC2,
SAC and DreamerV3 on every dmc39 and mw50 task, which the claims report reads), written by ``vendor.py``
from a local git copy of their repository."""
