"""The workflow's experiment grid: load a profile (or a user's own grid), validate it, expand it.

``workflow/rules/common.smk`` calls :func:`load` once, before any job runs; everything the rules need
comes from the :class:`Grid` it returns: ``runs`` (run directory -> :class:`Run`, what to train) and
``members`` (figure -> its run directories). A bad value stops the workflow there, with a
:class:`GridError` naming the value and the valid ones (or, for what the JSON schema checks, Snakemake's
validation error).

Run directories follow the one pattern of :func:`m3po.record.run_dir_path`:
``results/runs/{profile}/{algo}/{task}/{variant}/seed{n}``; a run's marker is ``<run_dir>.done``.
A run shipped with the repository (``m3po ship``: ``results/evidence/{profile}/...``, the same pattern)
stands in for its training when it is finished and records the config the grid asks for: the grid then
names its shipped directory instead (:attr:`Grid.shipped`), no job trains it, and the analysis reads it.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path

import yaml

from m3po.envs.registry import UnknownTaskError, resolve_tasks
from m3po.record import FINISHED, STATUS_FILE, config_differences, read_config, read_status, run_dir_path
from suite.publish import EVIDENCE_DIR
from suite.registry import ALGORITHMS, ALGOS

FIGURES = ("fig3a", "fig3b", "fig3c", "fig4", "ablations")
# A variant's name is its override: the short keys are analysis/report.py's ablation groups.
VARIANT_FIELDS = {
    "alpha0": ("bonus.alpha0", float),
    "horizon": ("planner.horizon", int),
    "num_envs": ("num_envs", int),
}
RUNS_ROOT = "results/runs"  # the workflow's runs: RUNS_ROOT/{profile}/...
LOGS_ROOT = "results/logs"  # the jobs' logs: LOGS_ROOT/{profile}/...
# The grid's top-level defaults (the schema's); nested ones are read with .get where used.
DEFAULTS = {"supported_algos_only": False, "threads": 1, "reps": 50000, "overrides": {}, "algo_overrides": {}}


class GridError(ValueError):
    """A bad grid value; the message names it and what is valid."""


def run_dir(profile: str, algo: str, task: str, variant: str, seed: int | str) -> str:
    """A workflow run's directory, relative to the working directory (the one pattern, see above)."""
    return str(run_dir_path(f"{RUNS_ROOT}/{profile}", algo, task, seed, variant))


def train_log(profile: str, algo: str, task: str, variant: str, seed: int | str) -> str:
    """The train job's log of a run: its run directory's path under ``LOGS_ROOT/{profile}/train``."""
    return f"{run_dir_path(f'{LOGS_ROOT}/{profile}/train', algo, task, seed, variant)}.log"


# The train rule's patterns (Snakemake wildcards in the place of each part).
RUN_DIR_PATTERN = run_dir("{profile}", "{algo}", "{task}", "{variant}", "{seed}")
TRAIN_LOG_PATTERN = train_log("{profile}", "{algo}", "{task}", "{variant}", "{seed}")


def marker(run_dir_: str) -> str:
    """The train job's output: written only once the run finished (or failed for good)."""
    return f"{run_dir_}.done"


@dataclass
class Run:
    """One training run of the grid."""

    algo: str
    task: str  # as the runner spells it (a comma list for a task set)
    variant: str  # directory name
    label: str  # variant as the analysis groups it (fig4's env sweep is the default config's)
    seed: int
    steps: int
    preset: str
    overrides: dict
    figures: list = field(default_factory=list)

    def updates(self, run_dir_: str) -> list[str]:
        """``m3po train with`` arguments (threads are added by the rule, from Snakemake's {threads}; the
        MongoDB URL travels in ``M3PO_MONGO_URL``, so no log or process list shows its password)."""
        values = {
            "algo": self.algo, "task": self.task, "seed": self.seed, "preset": self.preset,
            "steps": self.steps, "run_dir": run_dir_, "progress": False, **self.overrides,
        }  # fmt: skip
        return [f"{k}={v}" for k, v in values.items()]


@dataclass
class Grid:
    """A validated, expanded grid."""

    spec: dict  # the grid, top-level defaults filled in
    runs: dict[str, Run]  # run directory -> run
    members: dict[str, list[str]]  # figure -> run directories
    shipped: set[str] = field(default_factory=set)  # the run directories that are shipped runs
    stale: dict[str, str] = field(default_factory=dict)  # shipped run not used -> why (trained instead)

    @property
    def profile(self) -> str:
        return self.spec["profile"]

    @property
    def out(self) -> str:
        """Where the tables, aggregates, figures and report go."""
        return f"results/{self.profile}"

    def figure_files(self, fig: str) -> list[str]:
        """What the figure rule draws (PNG and PDF each), as analysis/figures.py names them."""
        if fig in ("fig3a", "fig3b", "fig3c"):
            stems = [fig, f"{fig}-intervals", f"{fig}-profiles"]
        elif fig == "fig4":
            stems = ["fig4"]
        else:
            variants = self.spec["figures"]["ablations"].get("variants", ["default"])
            stems = [f"ablation-{key}" for key in sorted({v.split("=")[0] for v in variants} - {"default"})]
        return [f"{self.out}/figures/{stem}.{ext}" for stem in stems for ext in ("png", "pdf")]

    def done_file(self, key: str) -> str:
        """The file that says run ``key`` is done: its marker, or a shipped run's status.json (no job
        makes it, so none trains the run)."""
        return f"{key}/{STATUS_FILE}" if key in self.shipped else marker(key)

    def failed_runs(self, workdir: Path = Path(".")) -> list[str]:
        """Runs whose marker says they failed for good (a NaN loss), each with its error: the figures
        leave them out."""
        failed = []
        for key in self.runs:
            path = workdir / marker(key)
            if path.exists():
                record = json.loads(path.read_text())
                if record.get("status") == "failed":
                    failed.append(f"{key}: {record.get('error')}")
        return failed


def profiles(config_dir: Path) -> list[str]:
    """The grid profiles in ``config_dir`` (every YAML file but the workflow's settings)."""
    return sorted(p.stem for p in Path(config_dir).glob("*.yaml") if p.stem != "workflow")


def load_grid(cfg: dict, config_dir: Path) -> dict:
    """The workflow config's grid: its own ``grid:``, else the profile's file in ``config_dir``."""
    if cfg.get("grid"):
        return copy.deepcopy(dict(cfg["grid"]))
    valid = profiles(config_dir)
    name = str(cfg.get("profile", ""))
    if name not in valid:
        raise GridError(f"unknown profile {name!r}; valid profiles: {', '.join(valid)} (or give a grid:)")
    return yaml.safe_load((Path(config_dir) / f"{name}.yaml").read_text())


def has_key(algo: str, dotted: str) -> bool:
    """Whether ``algo``'s config has the (dotted) key; True for algorithms not registered."""
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
            raise GridError(
                f"figure {fig}: override {key!r} is a config key of none of its algorithms {algos}"
            )
    for key in list(own) + list(variant):
        if not has_key(algo, key):
            raise GridError(f"figure {fig}: override {key!r} is not a config key of algo {algo}")
    return {**{k: v for k, v in shared.items() if has_key(algo, k)}, **own, **variant}


def variant_overrides(name: str) -> dict:
    """A variant's override (``default``: none); an unknown variant key is a :class:`GridError`."""
    if name == "default":
        return {}
    key, _, value = name.partition("=")
    if key not in VARIANT_FIELDS or not value:
        raise GridError(
            f"unknown variant {name!r}; valid: default, " + ", ".join(f"{k}=VALUE" for k in VARIANT_FIELDS)
        )
    field_name, kind = VARIANT_FIELDS[key]
    return {field_name: kind(value)}


def _resolve(fig: str, mode: str, entries: list[str]) -> list[str]:
    """Each task of a ``single`` figure's entries (suites expanded), each entry (a task set) of a
    ``multi`` one's; an unknown name is a :class:`GridError`."""
    tasks = []
    for entry in entries:
        try:
            resolved = resolve_tasks(entry)
        except UnknownTaskError as err:
            raise GridError(f"figure {fig}: {err}") from err
        tasks += list(resolved) if mode == "single" else [entry]
    return tasks


def _figure_tasks(fig: str, spec: dict) -> list[str]:
    """The figure's runs' tasks: each task of a ``single`` figure (suites expanded), each entry (a
    task set) of a ``multi`` one; unknown names are a :class:`GridError`."""
    tasks = _resolve(fig, spec["mode"], spec["tasks"])
    unknown = sorted(set(spec.get("steps_by_task", {})) - set(tasks))
    if unknown:
        raise GridError(f"figure {fig}: steps_by_task names {unknown[0]!r}, not a task of this figure")
    if fig in ("fig3c", "fig4") and len(tasks) != 1:
        raise GridError(f"figure {fig}: needs exactly one task set, got {tasks}")
    return tasks


def _per_algo(fig: str, spec: dict, tasks: list[str]) -> tuple[dict[str, int], dict[str, list[str]]]:
    """The figure's ``steps_by_algo`` and ``tasks_by_algo`` (resolved as ``tasks`` are), checked: each
    key an algorithm the figure lists, each task one of the figure's (a :class:`GridError` otherwise)."""
    steps_by_algo = spec.get("steps_by_algo", {})
    tasks_by_algo = {
        algo: _resolve(fig, spec["mode"], entries) for algo, entries in spec.get("tasks_by_algo", {}).items()
    }
    for key, names in (("steps_by_algo", steps_by_algo), ("tasks_by_algo", tasks_by_algo)):
        for algo in names:
            if algo not in spec["algos"]:
                raise GridError(
                    f"figure {fig}: {key} names {algo!r}, not an algorithm of this figure {spec['algos']}"
                )
    for algo, own in tasks_by_algo.items():
        extra = [t for t in own if t not in tasks]
        if extra:
            raise GridError(
                f"figure {fig}: tasks_by_algo[{algo}] names {extra[0]!r}, not a task of this figure"
            )
    return steps_by_algo, tasks_by_algo


def _figure_runs(grid: dict, fig: str) -> list[Run]:
    """Every run ``fig`` asks for, in the order algo, task, variant, seed: an algorithm of
    ``tasks_by_algo`` on its own tasks only, one of ``steps_by_algo`` at its own budget (on every task,
    ``steps_by_task``'s included); the others on every task at ``steps_by_task``'s or ``steps``."""
    spec = grid["figures"][fig]
    algos = [a for a in spec["algos"] if a in ALGOS or not grid.get("supported_algos_only", False)]
    if not algos:
        raise GridError(
            f"figure {fig}: none of its algorithms {spec['algos']} is supported by the runner yet "
            f"(supported: {', '.join(ALGOS)})"
        )
    shared = {**grid.get("overrides", {}), **spec.get("overrides", {})}
    tasks = _figure_tasks(fig, spec)
    steps_by_algo, tasks_by_algo = _per_algo(fig, spec, tasks)
    runs = []
    for algo, task, variant in product(algos, tasks, spec.get("variants", ["default"])):
        if task not in tasks_by_algo.get(algo, tasks):
            continue
        own = grid.get("algo_overrides", {}).get(algo, {})
        overrides = overrides_for(algo, fig, algos, shared, own, variant_overrides(variant))
        label = "default" if fig == "fig4" else variant
        steps = steps_by_algo.get(algo, spec.get("steps_by_task", {}).get(task, spec["steps"]))
        runs += [
            Run(algo, task, variant, label, seed, steps, grid["preset"], overrides, [fig])
            for seed in range(1, grid["seeds"] + 1)
        ]
    return runs


def expand_grid(grid: dict) -> tuple[dict[str, Run], dict[str, list[str]]]:
    """(run directory -> Run, figure -> run directories); stops at the first bad value.

    :param grid: a validated grid with its top-level defaults (:data:`DEFAULTS`) filled in
    """
    runs: dict[str, Run] = {}
    members: dict[str, list[str]] = {}
    for fig in FIGURES:
        members[fig] = []
        for run in _figure_runs(grid, fig):
            key = run_dir(grid["profile"], run.algo, run.task, run.variant, run.seed)
            old = runs.get(key)
            if old is None:
                runs[key] = run
            # Figures share runs with the same config (ablations' default = fig3a's M3PO runs); the
            # same directory with another config would be refused by the runner.
            elif (old.steps, old.overrides, old.label) != (run.steps, run.overrides, run.label):
                raise GridError(
                    f"run {key} is asked for by figures {old.figures} and {fig} with different configs "
                    f"(steps {old.steps} vs {run.steps}, overrides {old.overrides} vs {run.overrides}); "
                    "give them the same budget and overrides or another variant"
                )
            else:
                old.figures.append(fig)
            members[fig].append(key)
    return runs, members


def shipped_dir(run_dir_: str) -> str:
    """Where ``m3po ship`` puts a workflow run: the same path under ``results/evidence``."""
    return str(EVIDENCE_DIR / Path(run_dir_).relative_to(RUNS_ROOT))


def run_dir_of_shipped(shipped: str) -> str:
    """The workflow run a shipped directory stands in for (the inverse of :func:`shipped_dir`)."""
    return str(Path(RUNS_ROOT) / Path(shipped).relative_to(EVIDENCE_DIR))


def why_not_shipped(run: Run, key: str, workdir: Path) -> str | None:
    """Whether run ``key``'s shipped copy can stand in for its training: None when it has none, ""
    when it can, else why not (not finished, or the keys where its recorded config differs from the
    grid's).

    :param run: the grid's run
    :param key: its run directory under ``results/runs``
    :param workdir: the directory the workflow runs in
    """
    shipped = workdir / shipped_dir(key)
    if not (shipped / STATUS_FILE).is_file():
        return None
    status = read_status(shipped).get("status")
    if status != FINISHED:
        return f"not finished (status {status!r})"
    recorded = read_config(shipped)
    if recorded is None:
        return "its config.json is missing"
    from suite.experiment import recorded_config  # Sacred's parser: only where runs are shipped

    # threads: a runtime key, which config_differences passes over (any value compares the same).
    wanted, defaults = recorded_config([*run.updates(key), "threads=1"])
    differ = config_differences(recorded, wanted, defaults)
    return f"differs from the grid in {', '.join(differ)}" if differ else ""


def _use_shipped(
    runs: dict[str, Run], members: dict[str, list[str]], workdir: Path
) -> tuple[dict[str, Run], dict[str, list[str]], set[str], dict[str, str]]:
    """``runs`` and ``members`` with every shipped run that can stand in for its training in its
    place; also the shipped directories in use, and those that cannot stand in, with why."""
    moved, stale = {}, {}
    for key, run in runs.items():
        why = why_not_shipped(run, key, workdir)
        if why:
            stale[shipped_dir(key)] = f"{why}: trained as {key}"
        elif why is not None:
            moved[key] = shipped_dir(key)
    runs = {moved.get(key, key): run for key, run in runs.items()}
    members = {fig: [moved.get(key, key) for key in keys] for fig, keys in members.items()}
    return runs, members, set(moved.values()), stale


def load(cfg: dict, config_dir: Path, schema_dir: Path, workdir: Path | None = None) -> Grid:
    """Validate the workflow config ``cfg``, load its grid, validate that, and expand it; given a
    ``workdir`` and with ``shipped`` on (the workflow's default), every run shipped under
    ``workdir/results/evidence`` that can stand in for its training does (:func:`why_not_shipped`).

    :param cfg: the workflow config (``config/workflow.yaml`` with ``--config``/``--configfile``)
    :param config_dir: where the profiles' grids are (``config/``)
    :param schema_dir: where ``workflow.schema.yaml`` and ``grid.schema.yaml`` are
    :param workdir: the directory the workflow runs in, where shipped runs are looked for (None: not)
    :raises GridError: a bad profile, task, override or run conflict
    :raises snakemake.exceptions.WorkflowError: a value the JSON schema refuses
    """
    from snakemake.utils import validate

    validate(cfg, str(Path(schema_dir) / "workflow.schema.yaml"))
    grid = load_grid(cfg, config_dir)
    validate(grid, str(Path(schema_dir) / "grid.schema.yaml"), set_default=True)
    grid = {**copy.deepcopy(DEFAULTS), **grid}
    runs, members = expand_grid(grid)
    if workdir is None or str(cfg.get("shipped", True)).lower() == "false":  # --config gives a string
        return Grid(grid, runs, members)
    return Grid(grid, *_use_shipped(runs, members, Path(workdir)))
