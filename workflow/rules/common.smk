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

GRID = grids.load(config, CONFIG_DIR, SCHEMA_DIR, workdir=Path.cwd())  # shipped runs stand in there
for _shipped, _why in GRID.stale.items():
    print(f"shipped run {_shipped} not used: {_why}", file=sys.stderr)
PROFILE = GRID.profile
RUNS = GRID.runs  # run directory -> suite.grid.Run
OUT = GRID.out
MONGO_URL = config.get("mongo_url", "")

# What the analysis reads besides the runs, as inputs so that a change to either reruns it: the paper
# grid's budgets (final-value claims are judged at them) and the TD-MPC2 authors' published curves
# (analysis.aggregate.PUBLISHED_PATH, not imported here: analysis loads pandas and rliable): the
# reference curves of fig3a/fig3b, the claims' stand-ins and the report's fidelity section. A checkout
# without the curves gets none of these, as analysis/report.py says.
PAPER_GRID = str(CONFIG_DIR / "paper.yaml")
_PUBLISHED = Path(workflow.basedir).parent / "baselines" / "published" / "tdmpc2_curves.parquet"
PUBLISHED = [str(_PUBLISHED)] if _PUBLISHED.exists() else []
# Figure -> its M3PO runs (every variant; "m3po" is analysis.aggregate.REFERENCE_ALGO): the report
# draws their off-policyness diagnostics, figures/diagnostics-<figure>.png and .pdf.
M3PO_RUNS = {fig: [key for key, r in RUNS.items() if r.algo == "m3po" and fig in r.figures] for fig in FIGURES}
M3PO_RUNS = {fig: runs for fig, runs in M3PO_RUNS.items() if runs}
DIAGNOSTICS = [f"{OUT}/figures/diagnostics-{fig}.{ext}" for fig in M3PO_RUNS for ext in ("png", "pdf")]
