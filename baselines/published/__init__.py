"""Published reference numbers, vendored as data (no code): see ``tdmpc2_results.yaml``."""
