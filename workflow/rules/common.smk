# The experiment grid: load the chosen profile (or the user's own `grid:`), validate it against
# workflow/schema/ before any job runs, and expand it (suite/grid.py) into the runs to train and each
# figure's members.

import sys
from pathlib import Path

from suite import grid as grids

PYTHON = sys.executable  # the interpreter running Snakemake: the suite's environment
CONFIG_DIR = Path(workflow.basedir).parent / "config"
SCHEMA_DIR = Path(workflow.basedir) / "schema"
FIGURES = grids.FIGURES

GRID = grids.load(config, CONFIG_DIR, SCHEMA_DIR)
PROFILE = GRID.profile
RUNS = GRID.runs  # run directory -> suite.grid.Run
OUT = GRID.out
MONGO_URL = config.get("mongo_url", "")
