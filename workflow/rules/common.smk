# The experiment grid: load the chosen profile (or the user's own `grid:`), validate it before any
# job runs, and expand it into RUNS (run directory -> what to train) and MEMBERS (figure -> runs).

import json
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from snakemake.utils import validate

from suite.registry import ALGORITHMS
from m3po.envs.registry import UnknownTaskError, resolve_tasks
from suite.experiment import ALGOS

ROOT = Path(workflow.basedir)
PYTHON = sys.executable  # the interpreter running Snakemake: the suite's environment
CONFIG_DIR = ROOT / "pipelines" / "config"
FIGURES = ("fig3a", "fig3b", "fig3c", "fig4", "ablations")
# A variant's name is its override: the short keys are analysis/report.py's ablation groups.
VARIANT_FIELDS = {"alpha0": ("bonus.alpha0", float), "horizon": ("planner.horizon", int), "num_envs": ("num_envs", int)}


class GridError(ValueError):
    """A bad grid value; the message names it and what is valid."""


def load_grid(cfg: dict) -> dict:
    if cfg.get("grid"):
        return dict(cfg["grid"])
    profiles = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml") if p.stem != "workflow")
    name = str(cfg.get("profile", ""))
    if name not in profiles:
        raise GridError(f"unknown profile {name!r}; valid profiles: {', '.join(profiles)} (or give a grid:)")
    return yaml.safe_load((CONFIG_DIR / f"{name}.yaml").read_text())


@dataclass
class Run:
    algo: str
    task: str  # as the runner spells it (a comma list for a task set)
    variant: str  # directory name
    label: str  # variant as the analysis groups it (fig4's env sweep is the default config's)
    seed: int
    steps: int
    overrides: dict
    figures: list = field(default_factory=list)

    def args(self, run_dir: str, mongo_url: str) -> list[str]:
        """``m3po train with`` arguments (threads are added by the rule, from Snakemake's {threads})."""
        values = {
            "algo": self.algo, "task": self.task, "seed": self.seed, "preset": GRID["preset"],
            "steps": self.steps, "run_dir": run_dir, "progress": False, **self.overrides,
        }  # fmt: skip
        if mongo_url:
            values["mongo_url"] = mongo_url
        return [f"{k}={v}" for k, v in values.items()]


def has_key(algo: str, dotted: str) -> bool:
    """Whether ``algo``'s config has the (dotted) key; True for algorithms not registered yet."""
    if algo not in ALGORITHMS:
        return True
    values = ALGORITHMS[algo].preset_dict("cpu")
    for part in dotted.split("."):
        if not isinstance(values, dict) or part not in values:
            return False
        values = values[part]
    return True


def overrides_for(algo: str, fig: str, algos: list, shared: dict, own: dict, variant: dict) -> dict:
    """The run's overrides: the grid's and the figure's keys that ``algo``'s config has (each algorithm
    takes the keys it knows: ``ppo.rollout_len`` is M3PO's, ``sac.learning_starts`` SAC's), then
    ``algo_overrides[algo]`` and the variant's, which must all be ``algo``'s."""
    for key in shared:
        if not any(has_key(a, key) for a in algos):
            raise GridError(f"figure {fig}: override {key!r} is a config key of none of its algorithms {algos}")
    for key in list(own) + list(variant):
        if not has_key(algo, key):
            raise GridError(f"figure {fig}: override {key!r} is not a config key of algo {algo}")
    return {**{k: v for k, v in shared.items() if has_key(algo, k)}, **own, **variant}


def variant_overrides(name: str) -> dict:
    if name == "default":
        return {}
    key, value = name.split("=")
    field_name, kind = VARIANT_FIELDS[key]
    return {field_name: kind(value)}


def expand_grid(grid: dict) -> tuple[dict, dict]:
    """(run directory -> Run, figure -> run directories); stops at the first bad value."""
    profile = grid["profile"]
    runs: dict[str, Run] = {}
    members: dict[str, list] = {}
    for fig in FIGURES:
        spec = grid["figures"][fig]
        algos = [a for a in spec["algos"] if a in ALGOS or not grid.get("supported_algos_only", False)]
        if not algos:
            raise GridError(
                f"figure {fig}: none of its algorithms {spec['algos']} is supported by the runner yet "
                f"(supported: {', '.join(ALGOS)})"
            )
        tasks = []
        for entry in spec["tasks"]:
            try:
                resolved = resolve_tasks(entry)
            except UnknownTaskError as err:
                raise GridError(f"figure {fig}: {err}") from err
            tasks += list(resolved) if spec["mode"] == "single" else [entry]
        unknown = sorted(set(spec.get("steps_by_task", {})) - set(tasks))
        if unknown:
            raise GridError(f"figure {fig}: steps_by_task names {unknown[0]!r}, not a task of this figure")
        if fig in ("fig3c", "fig4") and len(tasks) != 1:
            raise GridError(f"figure {fig}: needs exactly one task set, got {tasks}")
        members[fig] = []
        for algo in algos:
            for task in tasks:
                for variant in spec.get("variants", ["default"]):
                    shared = {**grid.get("overrides", {}), **spec.get("overrides", {})}
                    own = grid.get("algo_overrides", {}).get(algo, {})
                    overrides = overrides_for(algo, fig, algos, shared, own, variant_overrides(variant))
                    label = "default" if fig == "fig4" else variant
                    for seed in range(1, grid["seeds"] + 1):
                        run = Run(algo, task, variant, label, seed, spec.get("steps_by_task", {}).get(task, spec["steps"]), overrides)
                        key = f"results/runs/{profile}/{algo}/{task.replace(',', '+')}/{variant}/seed{seed}"
                        old = runs.setdefault(key, run)
                        # Figures share runs with the same config (ablations' default = fig3a's M3PO
                        # runs); the same directory with another config would be refused by the runner.
                        if (old.steps, old.overrides, old.label) != (run.steps, run.overrides, run.label):
                            raise GridError(
                                f"run {key} is asked for by figures {old.figures} and {fig} with different "
                                f"configs (steps {old.steps} vs {run.steps}, overrides {old.overrides} vs "
                                f"{run.overrides}); give them the same budget and overrides or another variant"
                            )
                        old.figures.append(fig)
                        members[fig].append(key)
    return runs, members


validate(config, ROOT / "pipelines" / "schema" / "workflow.schema.yaml")
GRID = load_grid(config)
validate(GRID, ROOT / "pipelines" / "schema" / "grid.schema.yaml", set_default=True)
# Top-level defaults (the schema's); nested ones are read with .get where used.
GRID = {"supported_algos_only": False, "threads": 1, "reps": 50000, "overrides": {}, "algo_overrides": {}, **GRID}
PROFILE = GRID["profile"]
MONGO_URL = config.get("mongo_url", "")
RUNS, MEMBERS = expand_grid(GRID)
OUT = f"results/{PROFILE}"


def figure_files(fig: str) -> list[str]:
    """What the figure rule draws (PNG and PDF each), as analysis/figures.py names them."""
    if fig in ("fig3a", "fig3b", "fig3c"):
        stems = [fig, f"{fig}-intervals", f"{fig}-profiles"]
    elif fig == "fig4":
        stems = ["fig4"]
    else:
        keys = sorted({v.split("=")[0] for v in GRID["figures"]["ablations"].get("variants", ["default"])} - {"default"})
        stems = [f"ablation-{key}" for key in keys]
    return [f"{OUT}/figures/{stem}.{ext}" for stem in stems for ext in ("png", "pdf")]


def markers(keys) -> list[str]:
    return [f"{key}.done" for key in keys]
