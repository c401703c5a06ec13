"""``m3po bench cost``: what a workflow profile costs: its runs and compute per figure, from measured speed.

The profile's grid (``config/<profile>.yaml``) is expanded as the workflow expands it
(:func:`suite.grid.load`); each run's agent steps are divided by its algorithm's measured agent
steps/s. The rates come from a saved JSON line (``--rates FILE``): ``m3po bench algos``' output gives
CPU-hours (its ``sps`` per algorithm), ``m3po bench gpu``'s gives GPU-hours for M3PO and TD-MPC2 (the
``paper``-preset speed at the env count nearest each run's). Without ``--rates`` the algorithms are
measured now with ``m3po bench algos``' short runs (one thread, ``cpu`` preset: minutes).

A rate measured at one preset and env count stands for every run of that algorithm, so the figure
is an estimate of the order of the cost, not a schedule: the JSON says which rate each algorithm
got. Evaluation (the ``eval_episodes`` per ``eval_every``) is not in the rates, and is left out.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from m3po.config import ConfigError
from suite.grid import FIGURES, Grid, load

ROOT = Path(__file__).resolve().parents[2]


def load_profile(profile: str) -> Grid:
    """The expanded grid of a workflow profile (a bad name lists the valid ones)."""
    from suite.grid import GridError

    try:
        return load({"profile": profile}, ROOT / "config", ROOT / "workflow" / "schema", workdir=ROOT)
    except GridError as err:
        raise ConfigError(str(err)) from err


def _gpu_rates(figures: dict[str, Any]) -> dict[str, dict[int, float]]:
    """``m3po bench gpu``'s speed part as algo -> env count -> agent steps/s."""
    return {
        algo: {int(n): f["sps"] for n, f in per_envs.items()} for algo, per_envs in figures["speed"].items()
    }


def read_rates(path: Path) -> tuple[str, dict[str, Any]]:
    """(``cpu`` or ``gpu``, the rates) from a saved JSON line of ``m3po bench algos`` or ``gpu``."""
    try:
        figures = json.loads(Path(path).read_text().strip().splitlines()[-1])
    except (OSError, json.JSONDecodeError, IndexError) as err:
        raise ConfigError(f"--rates {path}: not a JSON line of m3po bench algos or gpu ({err})") from err
    if "speed" in figures:
        return "gpu", _gpu_rates(figures)
    if "algos" in figures:
        return "cpu", {name: f.get("sps") for name, f in figures["algos"].items() if f.get("status") == "ok"}
    raise ConfigError(f"--rates {path}: has neither 'algos' (m3po bench algos) nor 'speed' (m3po bench gpu)")


def _rate(kind: str, rates: dict[str, Any], algo: str, num_envs: int) -> float | None:
    if kind == "cpu":
        return rates.get(algo)
    per_envs = rates.get(algo)
    if not per_envs:
        return None
    nearest = min(per_envs, key=lambda n: abs(n - num_envs))
    return per_envs[nearest]


def estimate(grid: Grid, kind: str, rates: dict[str, Any]) -> dict[str, Any]:
    """Runs, agent steps and hours per figure of ``grid`` at ``rates`` (see the module docstring).

    A run that several figures share is counted once, under the first figure that has it; algorithms
    without a rate are listed, their steps counted, their hours not. ``left`` counts the same for the
    runs still to train: those without a shipped copy that stands in for them (:attr:`Grid.shipped`).
    """
    unit = f"{kind}_hours"
    per_figure: dict[str, dict[str, Any]] = {
        fig: {"runs": 0, "agent_steps": 0, unit: 0.0, "without_rate": []} for fig in FIGURES
    }
    totals: dict[str, Any] = {"runs": 0, "agent_steps": 0, unit: 0.0}
    left: dict[str, Any] = {"runs": 0, "agent_steps": 0, unit: 0.0}
    per_algo: dict[str, int] = defaultdict(int)
    for key, run in grid.runs.items():
        fig = run.figures[0]
        num_envs = int(run.overrides.get("num_envs", 0)) or _preset_envs(run)
        rate = _rate(kind, rates, run.algo, num_envs)
        row = per_figure[fig]
        row["runs"] += 1
        row["agent_steps"] += run.steps
        totals["runs"] += 1
        totals["agent_steps"] += run.steps
        per_algo[run.algo] += 1
        hours = run.steps / rate / 3600 if rate else 0.0
        row[unit] += hours
        totals[unit] += hours
        if not rate and run.algo not in row["without_rate"]:
            row["without_rate"].append(run.algo)
        if key not in grid.shipped:
            left["runs"] += 1
            left["agent_steps"] += run.steps
            left[unit] += hours
    for row in [*per_figure.values(), totals, left]:
        row[unit] = round(row[unit], 1)
    return {
        "figures": {f: r for f, r in per_figure.items() if r["runs"]},
        "total": totals,
        "left": left,
        "runs_per_algo": per_algo,
    }


def _preset_envs(run: Any) -> int:
    from suite.registry import get_algorithm

    return int(get_algorithm(run.algo).preset_dict(run.preset)["num_envs"])


def run(profile: str = "paper", rates_file: Path | None = None) -> dict[str, Any]:
    """The cost of ``profile`` (see the module docstring)."""
    grid = load_profile(profile)
    if rates_file is not None:
        kind, rates = read_rates(rates_file)
        source = str(rates_file)
    else:
        from suite.bench import algos

        algo_names = sorted({r.algo for r in grid.runs.values()})
        measured = algos.run(threads=1, algos=algo_names)
        kind = "cpu"
        rates = {name: f.get("sps") for name, f in measured["algos"].items() if f.get("status") == "ok"}
        source = "m3po bench algos (measured now: cpu preset, 1 thread)"
    out = {"profile": profile, "rates": {"kind": kind, "source": source, "agent_steps_per_s": rates}}
    out.update(estimate(grid, kind, rates))
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default="paper", help="a workflow profile (config/<profile>.yaml)")
    parser.add_argument(
        "--rates", type=Path, default=None,
        help="a saved JSON line of `m3po bench algos` (CPU-hours) or `m3po bench gpu` (GPU-hours)",
    )  # fmt: skip


def main(args: argparse.Namespace) -> dict[str, Any]:
    return run(args.profile, args.rates)
