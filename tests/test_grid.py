"""The workflow's grid (suite/grid.py): the smoke profile's expansion, each run's overrides, the one
run-directory pattern, bad values, and the schema's lists against the registry."""

import copy
import json
import re
from pathlib import Path

import pytest
import yaml
from snakemake.exceptions import WorkflowError

from analysis.figures import ABLATIONS
from m3po.record import config_differences, run_dir_path
from suite import grid as grids
from suite.experiment import recorded_config
from suite.registry import ALGOS

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config"
SCHEMA = ROOT / "workflow" / "schema"
ALGOS_OF_FIG3A = ("m3po", "ppo", "sac", "dreamerv3")  # smoke.yaml


def smoke() -> dict:
    return yaml.safe_load((CONFIG / "smoke.yaml").read_text())


def load(grid: dict | None = None, profile: str = "smoke") -> grids.Grid:
    cfg = {"grid": grid} if grid is not None else {"profile": profile}
    return grids.load(cfg, CONFIG, SCHEMA)


def test_smoke_profile_expands_into_its_run_directories():
    g = load()
    root = "results/runs/smoke"
    single = [
        f"{root}/{a}/{t}/default/seed1" for t in ("cartpole-swingup", "mw-reach") for a in ALGOS_OF_FIG3A
    ]
    multi = "cartpole-swingup+mw-reach"
    assert g.profile == "smoke" and g.out == "results/smoke"
    assert set(g.runs) == {
        *single,
        *(f"{root}/{a}/{multi}/default/seed1" for a in ("m3po", "tdmpc2", "mt-ppo", "mt-sac")),
        *(f"{root}/{a}/{multi}/num_envs={n}/seed1" for a in ("m3po", "tdmpc2") for n in (2, 4)),
        *(f"{root}/m3po/cartpole-swingup/{v}/seed1" for v in ("alpha0=0", "horizon=1", "num_envs=4")),
    }
    assert len(g.runs) == 19
    # The ablations' default is fig3a's M3PO run: one run, in both figures.
    shared = f"{root}/m3po/cartpole-swingup/default/seed1"
    assert g.runs[shared].figures == ["fig3a", "ablations"]
    assert g.members["ablations"] == [
        shared, *(f"{root}/m3po/cartpole-swingup/{v}/seed1" for v in ("alpha0=0", "horizon=1", "num_envs=4"))
    ]  # fmt: skip
    assert set().union(*map(set, g.members.values())) == set(g.runs)
    # Every key is the one pattern's path.
    for key, run in g.runs.items():
        assert key == str(run_dir_path(root, run.algo, run.task, run.seed, run.variant))


def test_each_algorithm_takes_the_overrides_its_config_has():
    g = load()
    root = "results/runs/smoke"
    m3po = g.runs[f"{root}/m3po/cartpole-swingup/default/seed1"].overrides
    ppo = g.runs[f"{root}/ppo/cartpole-swingup/default/seed1"].overrides
    sac = g.runs[f"{root}/sac/mw-reach/default/seed1"].overrides
    shared = {"num_envs": 2, "eval_every": 128, "eval_episodes": 1, "checkpoint_every": 64}
    assert m3po == {
        **shared,
        "ppo.rollout_len": 32,
        "ppo.minibatch_size": 32,
        "ppo.epochs": 1,
        "eval_planner": False,
    }
    assert ppo == {**shared, "ppo.n_steps": 64, "ppo.n_epochs": 1}  # M3PO's ppo.* keys are not PPO's
    assert sac == {**shared, "sac.learning_starts": 64, "log_every": 32}
    # A variant's name is its override; fig4's env sweep is labelled as the default config.
    alpha0 = g.runs[f"{root}/m3po/cartpole-swingup/alpha0=0/seed1"]
    assert alpha0.overrides["bonus.alpha0"] == 0.0 and isinstance(alpha0.overrides["bonus.alpha0"], float)
    assert alpha0.label == "alpha0=0"
    sweep = g.runs[f"{root}/tdmpc2/cartpole-swingup+mw-reach/num_envs=4/seed1"]
    assert sweep.overrides["num_envs"] == 4 and sweep.overrides["utd_ratio"] == 0.25
    assert sweep.label == "default" and sweep.task == "cartpole-swingup,mw-reach"


def test_a_runs_train_arguments():
    g = load()
    key = "results/runs/smoke/sac/mw-reach/default/seed1"
    assert g.runs[key].updates(key) == [
        "algo=sac", "task=mw-reach", "seed=1", "preset=cpu", "steps=128", f"run_dir={key}",
        "progress=False", "num_envs=2", "eval_every=128", "eval_episodes=1", "checkpoint_every=64",
        "sac.learning_starts=64", "log_every=32",
    ]  # fmt: skip


def test_the_train_rules_patterns_are_the_run_directory_pattern():
    assert grids.RUN_DIR_PATTERN == "results/runs/{profile}/{algo}/{task}/{variant}/seed{seed}"
    assert grids.TRAIN_LOG_PATTERN == "results/logs/{profile}/train/{algo}/{task}/{variant}/seed{seed}.log"
    assert grids.marker("results/runs/p/a/t/v/seed1") == "results/runs/p/a/t/v/seed1.done"
    assert grids.run_dir("p", "m3po", "a,b", "default", 2) == "results/runs/p/m3po/a+b/default/seed2"


def test_figure_files_and_failed_runs(tmp_path):
    g = load()
    assert g.figure_files("fig4") == ["results/smoke/figures/fig4.png", "results/smoke/figures/fig4.pdf"]
    assert [Path(f).stem for f in g.figure_files("ablations")][::2] == [
        "ablation-alpha0", "ablation-horizon", "ablation-num_envs"
    ]  # fmt: skip
    assert g.failed_runs(tmp_path) == []
    failed, finished = list(g.runs)[:2]
    for key, record in (
        (failed, {"status": "failed", "error": "loss 'reward' is nan"}),
        (finished, {"status": "finished"}),
    ):
        (tmp_path / key).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / grids.marker(key)).write_text(json.dumps(record))
    assert g.failed_runs(tmp_path) == [f"{failed}: loss 'reward' is nan"]


def _changed(change) -> dict:
    g = smoke()
    change(g)
    return g


def _conflict(g: dict) -> None:
    g["figures"]["ablations"]["steps"] = 256  # its default run is fig3a's, at 128 steps


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (
            lambda g: g["figures"]["fig3b"].update(tasks=["cartpol-swingup"]),
            ["'cartpol-swingup'", "cartpole-swingup"],
        ),
        (lambda g: g["overrides"].update({"ppo.rolout_len": 8}), ["'ppo.rolout_len'", "fig3a"]),
        (lambda g: g["algo_overrides"]["sac"].update({"planner.horizon": 2}), ["'planner.horizon'", "sac"]),
        (lambda g: g["figures"]["fig3a"].update(steps_by_task={"walker-walk": 9}), ["'walker-walk'"]),
        (
            lambda g: g["figures"]["fig4"].update(tasks=["cartpole-swingup", "mw-reach"]),
            ["fig4", "one task set"],
        ),
        (_conflict, ["results/runs/smoke/m3po/cartpole-swingup/default/seed1", "128 vs 256"]),
        (
            lambda g: g["figures"]["fig3a"].update(steps_by_algo={"tdmpc2": 64}),
            ["fig3a", "steps_by_algo", "'tdmpc2'", "not an algorithm of this figure"],
        ),
        (
            lambda g: g["figures"]["fig3a"].update(tasks_by_algo={"mt-sac": ["mw-reach"]}),
            ["fig3a", "tasks_by_algo", "'mt-sac'"],
        ),
        (
            lambda g: g["figures"]["fig3a"].update(tasks_by_algo={"sac": ["walker-walk"]}),
            ["fig3a", "tasks_by_algo[sac]", "'walker-walk'", "not a task of this figure"],
        ),
        (
            lambda g: g["figures"]["fig3a"].update(tasks_by_algo={"sac": ["mw-reech"]}),
            ["'mw-reech'", "mw-reach"],
        ),
    ],
    ids=[
        "task", "override", "algo-override", "steps-by-task", "task-sets", "conflict", "steps-by-algo",
        "tasks-by-algo-algo", "tasks-by-algo-task", "tasks-by-algo-unknown",
    ],
)  # fmt: skip
def test_bad_grid_values_raise_grid_error_naming_them(change, named):
    with pytest.raises(grids.GridError) as err:
        load(_changed(change))
    for text in named:
        assert text in str(err.value)


def test_an_algorithm_can_run_on_its_own_tasks_at_its_own_budget():
    def change(g):
        fig3a = g["figures"]["fig3a"]
        fig3a["tasks"] = ["cartpole-swingup", "reacher-easy"]
        fig3a["steps_by_algo"] = {"sac": 64}
        fig3a["tasks_by_algo"] = {"sac": ["reacher-easy"], "ppo": ["cartpole-swingup", "reacher-easy"]}

    g = load(_changed(change))
    fig3a = {(g.runs[key].algo, g.runs[key].task): g.runs[key].steps for key in g.members["fig3a"]}
    assert fig3a == {
        **{(a, t): 128 for a in ("m3po", "ppo", "dreamerv3") for t in ("cartpole-swingup", "reacher-easy")},
        ("sac", "reacher-easy"): 64,  # SAC on its own task only, at its own budget
    }
    # The other figures are the smoke grid's.
    assert {k for k in g.runs if k not in g.members["fig3a"]} == {
        k for k in load().runs if k not in load().members["fig3a"]
    }
    # steps_by_algo comes before steps_by_task for its algorithm; the others keep steps_by_task.
    fig3b = {"steps_by_algo": {"sac": 64}, "steps_by_task": {"mw-reach": 96}}
    runs = load(_changed(lambda g: g["figures"]["fig3b"].update(fig3b))).runs
    assert runs["results/runs/smoke/sac/mw-reach/default/seed1"].steps == 64
    assert runs["results/runs/smoke/ppo/mw-reach/default/seed1"].steps == 96


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda g: g["figures"]["fig3a"].update(steps_by_algo={"sac": 0}), "0 is less than the minimum of 1"),
        (lambda g: g["figures"]["fig3a"].update(steps_by_algo={"sac2": 64}), "'sac2' is not one of"),
        (lambda g: g["figures"]["fig3a"].update(tasks_by_algo={"sac": []}), "should be non-empty"),
    ],
    ids=["steps", "algo", "empty"],
)
def test_the_schema_refuses_bad_per_algorithm_values(change, named):
    with pytest.raises(WorkflowError) as err:
        load(_changed(change))
    assert named in str(err.value)


def test_unknown_profile_and_variant_name_the_valid_ones():
    with pytest.raises(grids.GridError, match=r"'papr'; valid profiles: evidence, paper, quick, smoke"):
        load(profile="papr")
    with pytest.raises(
        grids.GridError, match=r"'H=5'; valid: default, alpha0=VALUE, horizon=VALUE, num_envs=VALUE"
    ):
        grids.variant_overrides("H=5")


def test_unsupported_algorithms_only_name_the_supported_ones():
    g = {**copy.deepcopy(grids.DEFAULTS), **smoke()}
    g["figures"]["fig3a"]["algos"] = ["not-registered"]
    with pytest.raises(
        grids.GridError, match=r"fig3a: none of its algorithms \['not-registered'\].*supported: m3po"
    ):
        grids.expand_grid(g)


def test_the_schema_refuses_values_before_expansion():
    with pytest.raises(WorkflowError) as err:
        load(_changed(lambda g: g["figures"]["fig3a"].update(algos=["m3po", "ppo2"])))
    assert "'ppo2' is not one of" in str(err.value) and "dreamerv3" in str(err.value)


def test_the_schemas_algorithms_and_variants_are_the_registrys():
    schema = yaml.safe_load((SCHEMA / "grid.schema.yaml").read_text())
    assert schema["$defs"]["algo"]["enum"] == list(ALGOS)
    pattern = schema["$defs"]["figure"]["properties"]["variants"]["items"]["pattern"]
    keys = re.findall(r"\|([a-z_0-9]+)=", pattern)
    assert keys == list(grids.VARIANT_FIELDS) == list(ABLATIONS)
    for key, (field_name, _) in grids.VARIANT_FIELDS.items():
        assert grids.has_key("m3po", field_name), key


def test_recorded_config_is_what_a_run_records():
    g = load()
    key = "results/runs/smoke/m3po/cartpole-swingup/alpha0=0/seed1"
    updates = [*g.runs[key].updates(key), "threads=1"]
    wanted, defaults = recorded_config(updates)
    assert wanted["algo"] == "m3po" and wanted["task"] == "cartpole-swingup" and wanted["steps"] == 128
    assert wanted["bonus"]["alpha0"] == 0.0 and wanted["ppo"]["rollout_len"] == 32
    assert "run_dir" not in wanted and "progress" not in wanted
    assert config_differences(wanted, wanted, defaults) == []
    other, _ = recorded_config([*updates, "steps=256", "threads=4"])
    assert config_differences(wanted, other, defaults) == ["steps"]  # threads is a runtime key


def _ship(workdir: Path, key: str, config: dict, status: str = "finished") -> Path:
    """A shipped copy of run ``key`` as far as the grid reads it: its status and recorded config."""
    shipped = workdir / grids.shipped_dir(key)
    shipped.mkdir(parents=True)
    (shipped / "status.json").write_text(json.dumps({"status": status}))
    (shipped / "config.json").write_text(json.dumps(config))
    return shipped


def test_a_shipped_run_stands_in_for_its_training_only_where_it_records_the_grids_config(tmp_path):
    g = load()
    fig3a_m3po = "results/runs/smoke/m3po/cartpole-swingup/default/seed1"  # fig3a's and the ablations'
    changed = "results/runs/smoke/ppo/cartpole-swingup/default/seed1"
    unfinished = "results/runs/smoke/ppo/mw-reach/default/seed1"
    for key, status, steps in (
        (fig3a_m3po, "finished", None),
        (changed, "finished", 256),
        (unfinished, "running", None),
    ):
        config, _ = recorded_config([*g.runs[key].updates(key), "threads=2"])  # threads: a runtime key
        _ship(tmp_path, key, {**config, "steps": steps or config["steps"]}, status)
    assert grids.shipped_dir(fig3a_m3po) == "results/evidence/smoke/m3po/cartpole-swingup/default/seed1"
    assert grids.run_dir_of_shipped(grids.shipped_dir(fig3a_m3po)) == fig3a_m3po

    shipped = grids.load({"profile": "smoke"}, CONFIG, SCHEMA, workdir=tmp_path)
    used = grids.shipped_dir(fig3a_m3po)
    assert shipped.shipped == {used}
    assert set(shipped.runs) == set(g.runs) - {fig3a_m3po} | {used}
    assert shipped.runs[used] == g.runs[fig3a_m3po]
    for fig in ("fig3a", "ablations"):
        assert shipped.members[fig] == [used if k == fig3a_m3po else k for k in g.members[fig]]
    # No job makes a shipped run's done file (the train rule's output is a marker under results/runs).
    assert shipped.done_file(used) == f"{used}/status.json"
    assert shipped.done_file(changed) == grids.marker(changed)
    # The others are trained, and the workflow says why their shipped copies are not used.
    assert shipped.stale == {
        grids.shipped_dir(changed): f"differs from the grid in steps: trained as {changed}",
        grids.shipped_dir(unfinished): f"not finished (status 'running'): trained as {unfinished}",
    }
    # shipped: false (or no workdir) trains every run.
    for off in (grids.load({"profile": "smoke", "shipped": False}, CONFIG, SCHEMA, workdir=tmp_path), g):
        assert set(off.runs) == set(g.runs) and off.shipped == set() and off.stale == {}
