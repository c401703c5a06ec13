"""The README's findings table: the claims report's verdicts on the runs that ship with the suite.

``python -m analysis.findings build [--profile evidence]`` judges the paper's claims from the finished
runs under ``results/evidence/<profile>`` (:func:`analysis.report.build`: collect, aggregate, draw,
judge; its figures and report page go to ``build/findings/<profile>``, not tracked) and writes
``results/evidence/<profile>-findings.json``: the shipped runs it rests on, the commit that judged
them, the bootstrap settings and ``claims.json``'s records. ``python -m analysis.findings readme``
writes the table from that file into ``README.md`` between :data:`START` and :data:`END`;
``--check`` only says whether the README is up to date. The same file holds every shipped run's score
at :data:`TASK_STEPS` and the TD-MPC2 authors' published means there, and ``readme`` writes them as the
per-task tables between :data:`TASKS_START` and :data:`TASKS_END`. ``tests/test_findings.py`` fails
when the README, the file and the shipped runs disagree, so a run shipped without rebuilding is caught.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
SHIPPED_ROOT = Path("results/evidence")  # relative to the repository: shipped runs of profile P in P/
START = "<!-- findings:start (python -m analysis.findings readme writes this table) -->"
END = "<!-- findings:end -->"
COLUMNS = ("claim", "paper", "ours", "verdict", "budget", "judged on")
TASKS_START = "<!-- evidence-tasks:start (python -m analysis.findings readme writes these tables) -->"
TASKS_END = "<!-- evidence-tasks:end -->"
# The agent steps the per-task tables read (the broad learning bar's: suite/bench/learning.py), each run
# at its first evaluation at or past them within analysis.verdicts.READ_TOLERANCE (M3PO's 100k: 100,352).
TASK_STEPS = (100_000, 500_000)


def findings_path(profile: str, root: Path = REPO) -> Path:
    """``results/evidence/<profile>-findings.json`` under ``root``."""
    return root / SHIPPED_ROOT / f"{profile}-findings.json"


def shipped_runs(profile: str, root: Path = REPO) -> list[str]:
    """The shipped run directories of ``profile`` (those the report reads), relative to ``root``
    (posix), sorted."""
    from analysis.collect import find_runs

    runs_root = root / SHIPPED_ROOT / profile
    return [p.relative_to(root).as_posix() for p in find_runs(runs_root)] if runs_root.is_dir() else []


def _commit(root: Path) -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True).stdout.strip()

    return {
        "commit": git("rev-parse", "HEAD") or None,
        "dirty": bool(git("status", "--porcelain", "analysis")),
    }


def _hosts(runs: Sequence[str], root: Path) -> list[str]:
    """The machines (descriptions, never host names) the runs' attempts trained on, sorted."""
    from m3po.record import read_status

    return sorted({str(a.get("host")) for run in runs for a in read_status(root / run).get("attempts", [])})


def build(profile: str, root: Path = REPO, reps: int | None = None, seed: int = 0) -> Path:
    """Judge the claims from ``profile``'s shipped runs and write its findings file.

    :param profile: a workflow profile (``config/<profile>.yaml``) whose runs ship
    :param root: the repository
    :param reps: bootstrap repetitions (default: the profile's ``reps``)
    :param seed: bootstrap seed
    :raises SystemExit: no shipped runs of ``profile`` (one line)
    :returns: the findings file written
    """
    from analysis import report

    runs = shipped_runs(profile, root)
    if not runs:
        raise SystemExit(f"no shipped runs of profile {profile!r} under {SHIPPED_ROOT / profile}")
    spec = yaml.safe_load((root / "config" / f"{profile}.yaml").read_text()) or {}
    reps = int(reps or spec.get("reps", 50_000))
    work = root / "build" / "findings" / profile
    work.mkdir(parents=True, exist_ok=True)
    link = work / "runs"  # report.build reads <results>/runs: point it at the shipped runs
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to((root / SHIPPED_ROOT / profile).resolve(), target_is_directory=True)
    out = report.build(work, report.DEFAULT_CLAIMS, reps, seed, workers=2)
    per_task, order = task_scores(profile, root), _task_order(spec)
    compute = report.compute_table(out["collected"].compute)
    record = {
        "profile": profile,
        "judged_by": "python -m analysis.findings build (analysis.report.build on the shipped runs)",
        **_commit(root),
        "bootstrap": {"reps": reps, "seed": seed},
        "runs": runs,
        "hosts": _hosts(runs, root),
        "threads": spec.get("threads"),
        "compute": [
            {
                "algo": r["algo"],
                "runs": int(r["runs"]),
                "wall_clock_h": round(float(r[report.COMPUTE_HEADERS["wall"]]), 2),
                "sps_median": round(float(r[report.COMPUTE_HEADERS["sps"]]), 1),
            }
            for r in compute.to_dict("records")
        ],
        "claims": json.loads((work / "claims.json").read_text()),
        "tasks": {
            "steps": list(TASK_STEPS),
            "order": order,
            "runs": per_task,
            "published": published_scores(sorted({r["task"] for r in per_task} | set(order))),
        },
    }
    path = findings_path(profile, root)
    path.write_text(json.dumps(record, indent=1) + "\n")
    return path


def _task_order(spec: Mapping[str, Any]) -> list[str]:
    """The single-task figures' tasks in the profile's order (the per-task tables' columns)."""
    order: list[str] = []
    for fig in (spec.get("figures") or {}).values():
        if fig.get("mode") == "single":
            order += [t for t in fig.get("tasks", []) if t not in order]
    return order


def task_scores(profile: str, root: Path = REPO) -> list[dict[str, Any]]:
    """Every shipped single-task run's score at each of :data:`TASK_STEPS` it reached (None where it
    evaluated nowhere within the read tolerance of it): ``algo``, ``variant``, ``task``, ``seed``,
    ``at`` (step -> score), ``read_at`` (step -> the evaluation read), sorted as the runs are.

    :param profile: a profile whose runs ship under ``results/evidence/<profile>``
    """
    from analysis.collect import run_variant
    from analysis.verdicts import read_at
    from m3po.record import read_config, read_jsonl

    out = []
    for run in shipped_runs(profile, root):
        config = read_config(root / run)
        task = str(config["task"])
        rows = read_jsonl(root / run / "eval.jsonl")
        if any(row.get("task", task) != task for row in rows):  # multi-task: no per-task cell
            continue
        scores = {row["step"]: row["score"] for row in rows}
        read = {str(step): read_at(scores, step) for step in TASK_STEPS}
        out.append(
            {
                "algo": config["algo"],
                "variant": run_variant(config, root / run),
                "task": task,
                "seed": int(config["seed"]),
                "at": {step: None if at is None else scores[at] for step, at in read.items()},
                "read_at": read,
            }
        )
    return out


def published_scores(tasks: Sequence[str]) -> dict[str, dict[str, dict[str, list[float]]]]:
    """The TD-MPC2 authors' per-seed scores at each of :data:`TASK_STEPS`
    (:func:`analysis.aggregate.published_at`), per published algorithm and step, for the ``tasks`` they
    evaluated there."""
    from analysis.aggregate import PUBLISHED_ALGOS, load_published, published_at

    published = load_published()
    out: dict[str, dict[str, dict[str, list[float]]]] = {}
    for algo in PUBLISHED_ALGOS:
        for step in TASK_STEPS:
            for task, scores in published_at(algo, tasks, step, published).items():
                out.setdefault(algo, {}).setdefault(task, {})[str(step)] = scores
    return out


def _mean_cell(per_step: Sequence[list[float | None]]) -> str:
    """``a / b``: the seeds' mean at each step ("–" where a seed has none), "(n)" for n > 1 seeds."""
    means = []
    for values in per_step:
        known = [v for v in values if v is not None]
        means.append(f"{sum(known) / len(known):.0f}" if known and len(known) == len(values) else "–")
    seeds = max((len(v) for v in per_step), default=0)
    return " / ".join(means) + (f" ({seeds})" if seeds > 1 else "")


def task_tables(record: Mapping[str, Any]) -> str:
    """The per-task tables (markdown, one per suite) of a findings file's ``tasks``: each shipped
    algorithm and variant, then the published curves, at :data:`TASK_STEPS`."""
    from analysis.aggregate import PUBLISHED_ALGOS
    from analysis.collect import task_domain
    from analysis.figures import label

    tasks = record["tasks"]
    steps = [str(s) for s in tasks["steps"]]
    runs = tasks["runs"]
    shipped = sorted({r["task"] for r in runs})
    order = list(tasks["order"]) + [t for t in shipped if t not in tasks["order"]]
    rows_of = sorted({(r["algo"], r["variant"]) for r in runs}, key=lambda k: (k != ("m3po", "default"), k))
    names = "the seeds' mean at " + " / ".join(f"{int(s) // 1000}k" for s in steps)
    out = [
        f"Score (return, or success % on Meta-World): {names} agent steps; (n) after a cell: n seeds. "
        f"Each run is read at its first evaluation at or past the step; published: the TD-MPC2 authors' "
        f"seeds at their row 2N.",
    ]
    for domain in ("dmc", "metaworld"):
        cols = [t for t in order if task_domain(t) == domain]
        if not cols:
            continue
        lines = ["", "| | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
        for algo, variant in rows_of:
            name = label(algo) + ("" if variant == "default" else f" ({variant})")
            cells = []
            for task in cols:
                mine = [r for r in runs if (r["algo"], r["variant"], r["task"]) == (algo, variant, task)]
                cells.append(_mean_cell([[r["at"][s] for r in mine] for s in steps]) if mine else "not yet")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        for algo in PUBLISHED_ALGOS:
            curves = tasks["published"].get(algo, {})
            cells = [_mean_cell([curves.get(t, {}).get(s, [None]) for s in steps]) for t in cols]
            lines.append(f"| {label(algo)} (published) | " + " | ".join(cells) + " |")
        out += lines
    return "\n".join(out)


def _cell(text: Any) -> str:
    return str(text or "—").replace("|", "\\|").replace("\n", " ")


def table(record: Mapping[str, Any]) -> str:
    """The findings table (markdown) of a findings file's record, with a line on what it rests on."""
    rows = [
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    for c in record["claims"]:
        rows.append(
            "| "
            + " | ".join(_cell(c[k]) for k in ("claim", "paper", "ours", "verdict", "budget", "scope"))
            + " |"
        )
    algos = sorted({Path(r).relative_to(SHIPPED_ROOT / record["profile"]).parts[0] for r in record["runs"]})
    commit = (record.get("commit") or "unknown")[:7] + (
        " with uncommitted analysis changes" if record.get("dirty") else ""
    )
    spent = ", ".join(
        f"{c['algo']} {c['runs']} runs, {c['wall_clock_h']:.1f} h at a median "
        f"{c['sps_median']:,.0f} agent steps/s"
        for c in record["compute"]
    )
    hours = sum(c["wall_clock_h"] for c in record["compute"])
    rows += [
        "",
        f"Training them took {hours:.1f} h of wall-clock ({spent}; the report's compute table) on "
        f"{'; '.join(record['hosts'])}, {record['threads']} torch thread(s) per run.",
        "",
        f"Judged from the {len(record['runs'])} runs of the `{record['profile']}` profile that ship under "
        f"`{SHIPPED_ROOT / record['profile']}` ({', '.join(algos)}), by the analysis at {commit} "
        f"({record['bootstrap']['reps']:,} bootstrap repetitions): `python -m analysis.findings build "
        f"--profile {record['profile']} && python -m analysis.findings readme "
        f"--profile {record['profile']}`.",
    ]
    return "\n".join(rows)


def with_table(readme: str, text: str, start_mark: str = START, end_mark: str = END) -> str:
    """``readme`` with the text between ``start_mark`` and ``end_mark`` replaced by ``text``.

    :raises ValueError: the markers are missing or out of order
    """
    start, end = readme.find(start_mark), readme.find(end_mark)
    if start < 0 or end < start:
        raise ValueError(f"README has no findings markers ({start_mark!r} then {end_mark!r})")
    return readme[: start + len(start_mark)] + "\n" + text + "\n" + readme[end:]


def with_tables(readme: str, record: Mapping[str, Any]) -> str:
    """``readme`` with the findings table and the per-task tables of ``record`` in their markers."""
    readme = with_table(readme, table(record))
    return with_table(readme, task_tables(record), TASKS_START, TASKS_END)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis.findings", description=__doc__)
    parser.add_argument("command", choices=("build", "readme"))
    parser.add_argument("--profile", default="evidence", help="a profile whose runs ship (default: evidence)")
    parser.add_argument(
        "--reps", type=int, default=None, help="bootstrap repetitions (build; default: the profile's)"
    )
    parser.add_argument("--readme", type=Path, default=REPO / "README.md")
    parser.add_argument("--check", action="store_true", help="readme: only say whether it is up to date")
    args = parser.parse_args(argv)
    if args.command == "build":
        print(build(args.profile, reps=args.reps))
        return 0
    path = findings_path(args.profile)
    if not path.is_file():
        print(
            f"no findings file {path.relative_to(REPO)}: run python -m analysis.findings build first",
            file=sys.stderr,
        )
        return 2
    record = json.loads(path.read_text())
    if "tasks" not in record:
        print(
            f"{path.relative_to(REPO)} holds no per-task scores (built by an older analysis): "
            f"python -m analysis.findings build --profile {args.profile}",
            file=sys.stderr,
        )
        return 1
    if record["runs"] != shipped_runs(args.profile):
        print(
            f"{path.relative_to(REPO)} rests on {len(record['runs'])} runs, "
            f"{len(shipped_runs(args.profile))} ship now: python -m analysis.findings build "
            f"--profile {args.profile}",
            file=sys.stderr,
        )
        return 1
    readme = args.readme.read_text()
    try:
        new = with_tables(readme, record)
    except ValueError as err:
        print(err, file=sys.stderr)
        return 2
    if args.check:
        if new != readme:
            print(
                f"{args.readme} findings tables are stale: python -m analysis.findings readme",
                file=sys.stderr,
            )
            return 1
        return 0
    args.readme.write_text(new)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
