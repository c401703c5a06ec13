"""Vendor the TD-MPC2 authors' per-task learning curves into ``tdmpc2_curves.parquet``.

``python -m baselines.published.vendor --mirror /work/.mirror/nicklashansen+tdmpc2/repo`` reads, from a
local git copy of https://github.com/nicklashansen/tdmpc2 (a bare git directory or a clone; its ``HEAD``
commit is read, nothing is downloaded), the CSV file ``results/<algo>/<task>.csv`` of every algorithm of
:data:`ALGOS` and every task of the suite's ``dmc39`` and ``mw50`` (``m3po.envs.registry``), and writes
one Parquet file with one row per (algorithm, task, seed, evaluation):

============ ==================================================================================
column       meaning
============ ==================================================================================
algo         ``tdmpc2``, ``sac`` or ``dreamerv3`` (the suite's names; the folder of their CSV)
task         the suite's task name (``walker-walk``, ``mw-assembly``)
task_set     ``dmc39`` or ``mw50``
their_task   the CSV's file name without ``.csv`` (the same spelling: the suite follows theirs)
path         the CSV's path in their repository
commit       the last commit of their repository that changed that file (40 hex digits)
env_step     their ``step`` column: environment steps (agent steps x action repeat 2)
step         agent steps, the suite's axis: ``env_step // 2`` (our agent step N is their row 2N)
seed         their ``seed`` column
raw          their value as published: ``reward`` (DMControl episode return, 0-1000) or ``success``
             (Meta-World success rate, a fraction in 0-1)
raw_column   ``reward`` or ``success``
score        the value on the suite's scale: the return for DMControl, ``100 x success`` for
             Meta-World (the suite scores Meta-World as success in percent, benchmarks.md)
============ ==================================================================================

The file's Parquet metadata (``m3po.published``, JSON) records the repository, the commit that was read
(``HEAD``), the step unit and the action repeat. The units: the maintainer says in nicklashansen/tdmpc2
issue #45 that the CSVs' ``step`` counts environment steps (action repeat applied before dumping), and
their ``eval_freq`` of 50k agent steps is the CSVs' 100k grid. Meta-World's action repeat is also 2 in
their code and in ours (``m3po.envs.registry.ACTION_REPEAT``). TD-MPC2's Meta-World curves are on
Meta-World v2 environments; the suite runs v3 (benchmarks.md): close relatives, not identical.

The rows are exactly the CSVs' (no interpolation, no filling): DreamerV3's CSVs skip some evaluations
of some seeds, and those rows are absent here too. A task of ``dmc39``/``mw50`` without a CSV for an
algorithm is an error (all 89 exist for all three at the commit vendored).
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from m3po.envs.registry import ACTION_REPEAT, SUITES

REPOSITORY = "https://github.com/nicklashansen/tdmpc2"
ALGOS = ("tdmpc2", "sac", "dreamerv3")
TASK_SETS = ("dmc39", "mw50")
OUT = Path(__file__).resolve().parent / "tdmpc2_curves.parquet"
METADATA_KEY = b"m3po.published"
COLUMNS = (
    "algo", "task", "task_set", "their_task", "path", "commit", "env_step", "step", "seed", "raw",
    "raw_column", "score",
)  # fmt: skip


def _git(git_dir: Path, *args: str) -> str:
    return subprocess.run(
        ["git", f"--git-dir={git_dir}", *args], capture_output=True, text=True, check=True
    ).stdout


def git_dir(mirror: Path) -> Path:
    """The git directory of a mirror: ``mirror`` itself (bare) or its ``.git``."""
    for candidate in (mirror / ".git", mirror):
        if (candidate / "HEAD").is_file() and (candidate / "objects").is_dir():
            return candidate
    raise FileNotFoundError(
        f"{mirror} is no git directory of {REPOSITORY} (no HEAD and objects/ in it or in its .git); "
        "give --mirror the path of a local copy"
    )


def their_task(task: str) -> str:
    """Their CSV's name for one of our tasks: the same (the suite spells tasks as TD-MPC2 does)."""
    return task


def read_csv(git: Path, algo: str, task: str, head: str) -> pd.DataFrame:
    """One CSV at ``head`` as rows of :data:`COLUMNS`."""
    path = f"results/{algo}/{their_task(task)}.csv"
    try:
        text = _git(git, "show", f"{head}:{path}")
    except subprocess.CalledProcessError as err:
        raise FileNotFoundError(f"{REPOSITORY} at {head} has no {path}") from err
    commit = _git(git, "log", "-1", "--format=%H", head, "--", path).strip()
    frame = pd.read_csv(io.StringIO(text))
    value = "success" if "success" in frame.columns else "reward"
    if set(frame.columns) != {"step", value, "seed"}:
        raise ValueError(f"{path}: columns {list(frame.columns)}, expected step, {value}, seed")
    task_set = next(name for name in TASK_SETS if task in SUITES[name])
    domain = "metaworld" if task_set == "mw50" else "dmc"
    repeat = ACTION_REPEAT[domain]
    if (frame["step"] % repeat).any():
        raise ValueError(f"{path}: a step is no multiple of the action repeat {repeat}")
    scale = 100.0 if value == "success" else 1.0
    return pd.DataFrame(
        {
            "algo": algo,
            "task": task,
            "task_set": task_set,
            "their_task": their_task(task),
            "path": path,
            "commit": commit,
            "env_step": frame["step"].astype("int64"),
            "step": (frame["step"] // repeat).astype("int64"),
            "seed": frame["seed"].astype("int64"),
            "raw": frame[value].astype("float64"),
            "raw_column": value,
            "score": frame[value].astype("float64") * scale,
        }
    )


def vendor(mirror: Path, out: Path = OUT) -> pd.DataFrame:
    """Read every CSV from the mirror's ``HEAD`` and write ``out``; returns the table."""
    git = git_dir(mirror)
    head = _git(git, "rev-parse", "HEAD").strip()
    frames = [
        read_csv(git, algo, task, head) for algo in ALGOS for name in TASK_SETS for task in SUITES[name]
    ]
    table = pd.concat(frames, ignore_index=True)
    table = table.sort_values(["algo", "task_set", "task", "seed", "step"], kind="stable")
    table = table.reset_index(drop=True)[list(COLUMNS)]
    for column in ("algo", "task", "task_set", "their_task", "path", "commit", "raw_column"):
        table[column] = table[column].astype("category")
    metadata = {
        "repository": REPOSITORY,
        "head": head,
        "files": "results/<algo>/<task>.csv",
        "step_unit": "env_step: environment steps (agent steps x action repeat 2); step: agent steps",
        "action_repeat": 2,
        "score": "DMControl: episode return (0-1000); Meta-World: 100 x success (success %)",
    }
    arrow = pa.Table.from_pandas(table, preserve_index=False)
    arrow = arrow.replace_schema_metadata(
        {**(arrow.schema.metadata or {}), METADATA_KEY: json.dumps(metadata).encode()}
    )
    pq.write_table(arrow, out, compression="zstd")
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m baselines.published.vendor", description=__doc__)
    parser.add_argument("--mirror", type=Path, required=True, help="a local git copy of " + REPOSITORY)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    table = vendor(args.mirror, args.out)
    print(
        f"{args.out}: {len(table)} rows, {table.groupby(['algo', 'task'], observed=True).ngroups} files, "
        f"commits {sorted(table['commit'].unique())}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
