"""What the workflow's analysis scripts share (each rule has its own script beside this module).

Each step calls :mod:`analysis`; what the scripts add is the workflow's knowledge the run records
lack: which figure each run belongs to, and its variant (a run's ``config.json`` records its
``algo``, which every trainer writes, but not its variant; the grid knows both). So every figure is
aggregated from its own runs only (fig4's env sweep does not leak into fig3c), and a grid's stand-in
task set (the quick profile's two-task set for mt80) is aggregated under fig3c's spec with its own
suite name.
"""

import traceback
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import yaml

from analysis import report

TABLE_NAMES = ("scores", "excluded", "compute")


def claims(path: str) -> list[dict[str, Any]]:
    """The claims the report judges: ``path``, or the suite's default (analysis/report.py)."""
    return yaml.safe_load(Path(path or report.DEFAULT_CLAIMS).read_text())["claims"]


def run(smk: Any, step: Callable[[Any], None]) -> None:
    """``step(smk)`` with its output and any traceback in the rule's log."""
    with open(smk.log[0], "w") as log, redirect_stdout(log), redirect_stderr(log):
        try:
            step(smk)
        except BaseException:
            traceback.print_exc()
            raise
