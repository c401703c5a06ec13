"""Run records are safe to publish: no absolute path, host name or password in what ships, Sacred's
records and MongoDB's copy included; the scanner finds them; shipping refuses what is unsafe or
unfinished (suite/publish.py, m3po/record.py, suite/experiment.py)."""

from __future__ import annotations

import copy
import gzip
import importlib.util
import json
import math
import platform
import re
import shutil
import sys
import types
from itertools import count
from pathlib import Path
from typing import Any

import pytest

from m3po.record import host_description, log_file, path_roots, read_log_text, redact, redact_text
from suite import experiment, publish
from suite.cli import main
from suite.publish import (
    EVIDENCE_DIR,
    Reproduction,
    ShipError,
    check_complete,
    check_shippable,
    comparability,
    find_runs,
    first_evaluation_budget,
    reproduce_first_evaluation,
    scan_for_unsafe,
    scan_text,
    ship_runs,
    shipped_files,
)

ROOT = Path(__file__).resolve().parents[1]
HOST = platform.node()
PASSWORD = "s3cret-Pw"
MONGO_URL = f"mongodb://alice:{PASSWORD}@db.example.org:27017/m3po"
# A description (m3po.record.host_description): "<CPU model>, <n> logical CPUs, <arch>".
DESCRIPTION = re.compile(r".+, \d+ logical CPUs, \S+$")
TINY_RUN = [
    "algo=m3po", "task=mw-reach", "steps=32", "num_envs=2", "eval_episodes=1", "eval_planner=False",
    "progress=False", "threads=1", "ppo.rollout_len=16", "ppo.minibatch_size=16", "ppo.epochs=1",
    "model.latent_dim=16", "model.mlp_dim=32", "model.enc_dim=32",
    "planner.num_samples=16", "planner.num_pi_trajs=4", "planner.num_elites=4",
]  # fmt: skip


# ------------------------------------------------------------------------- a MongoDB stand-in
class _Cursor:
    def __init__(self, docs: list[dict]) -> None:
        self.docs = docs

    def sort(self, key: str, direction: int) -> _Cursor:
        return _Cursor(sorted(self.docs, key=lambda d: d[key], reverse=direction < 0))

    def limit(self, n: int) -> _Cursor:
        return _Cursor(self.docs[:n])

    def next(self) -> dict:
        return self.docs[0]


class FakeCollection:
    """What Sacred's MongoObserver calls of a pymongo collection, keeping deep copies of what it gets."""

    def __init__(self) -> None:
        self.docs: list[dict] = []
        self.ids = count(1)

    def _find(self, query: dict) -> dict | None:
        return next((d for d in self.docs if all(d.get(k) == v for k, v in query.items())), None)

    def find(self, query: dict, projection: Any = None) -> _Cursor:
        return _Cursor([d for d in self.docs if all(d.get(k) == v for k, v in query.items())])

    def find_one(self, query: dict) -> dict | None:
        return self._find(query)

    def count_documents(self, query: dict, limit: int = 0) -> int:
        return len(self.find(query).docs)

    def insert_one(self, document: dict) -> None:
        self.docs.append(copy.deepcopy(document))

    def update_one(self, query: dict, update: dict, upsert: bool = False) -> types.SimpleNamespace:
        doc, upserted = self._find(query), None
        if doc is None:
            doc, upserted = copy.deepcopy(query), next(self.ids)
            self.docs.append(doc)
        doc.update(copy.deepcopy(update.get("$set", {})))
        for key, value in update.get("$push", {}).items():
            doc.setdefault(key, []).extend(value["$each"])
        return types.SimpleNamespace(upserted_id=upserted)


class FakeGridFS:
    def __init__(self) -> None:
        self.files: list[dict] = []

    def find_one(self, query: dict) -> types.SimpleNamespace | None:
        hit = next((f for f in self.files if all(f.get(k) == v for k, v in query.items())), None)
        return None if hit is None else types.SimpleNamespace(_id=hit["_id"])

    def put(self, data: Any, **kwargs: Any) -> int:
        self.files.append({"_id": len(self.files) + 1, "data": data.read(), **kwargs})
        return len(self.files)


def install_fake_mongo(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Make ``mongo_url=...`` record into in-memory stand-ins for MongoDB's collections and GridFS,
    through the real SafeMongoObserver (Sacred's MongoObserver code); return them. Without pymongo
    installed, the few names that code imports from it (its error classes, DESCENDING) are stood in for."""
    if importlib.util.find_spec("pymongo") is None:
        errors = types.ModuleType("pymongo.errors")
        for name in ("AutoReconnect", "ConnectionFailure", "DuplicateKeyError", "InvalidDocument"):
            setattr(errors, name, type(name, (Exception,), {}))
        pymongo = types.ModuleType("pymongo")
        pymongo.errors, pymongo.DESCENDING = errors, -1  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, "pymongo", pymongo)
        monkeypatch.setitem(sys.modules, "pymongo.errors", errors)
    db: dict[str, Any] = {"runs": FakeCollection(), "metrics": FakeCollection(), "fs": FakeGridFS()}

    def mongo_observer(url: str, roots: dict[str, str]) -> Any:
        db["url"] = url  # what the observer would connect with
        return experiment.SafeMongoObserver.create_from(
            db["runs"], db["fs"], metrics_collection=db["metrics"], roots=roots
        )

    monkeypatch.setattr(experiment, "mongo_observer", mongo_observer)
    return db


# ------------------------------------------------------------------------------------ a real run
@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, Any]]:
    """One tiny real M3PO run (about 10 s) with a password in its mongo_url, recorded to files and to
    the MongoDB stand-in: (runs root, run directory, the stand-in's collections)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        db = install_fake_mongo(monkeypatch)
        root = tmp_path_factory.mktemp("runs")
        run_dir = root / "m3po" / "mw-reach" / "seed1"  # absolute, outside the repository
        experiment.run_from_args(["with", *TINY_RUN, f"run_dir={run_dir}", f"mongo_url={MONGO_URL}"])
    return root, run_dir, db


def test_a_real_runs_shipped_files_name_no_machine_and_no_password(real_run):
    root, run_dir, db = real_run
    files = shipped_files(run_dir)
    names = {str(p.relative_to(run_dir)) for p in files}
    assert {"config.json", "status.json", "eval.jsonl", "train.jsonl"} <= names
    assert {f"sacred/attempt1/{n}" for n in ("run.json", "config.json", "info.json", "cout.txt")} <= names
    assert any(n.startswith("sacred/_sources/experiment_") for n in names)
    # What does not ship: checkpoints, and TensorBoard files, whose names hold the host's name.
    assert (run_dir / "checkpoints").is_dir() and not any(
        n.startswith(("checkpoints", "tensorboard")) for n in names
    )
    assert any(HOST in p.name for p in (run_dir / "tensorboard").iterdir())

    assert scan_for_unsafe(files, [HOST]) == []
    for path in files:
        text = path.read_text()
        for secret in (PASSWORD, str(root), str(ROOT), str(Path.home())):
            assert len(secret) < 2 or secret not in text, (path, secret)

    # The host by description, in status.json and in Sacred's record; paths relative or named.
    attempt = json.loads((run_dir / "status.json").read_text())["attempts"][0]
    assert attempt["host"] == host_description() and DESCRIPTION.match(attempt["host"])
    assert attempt["compute"]["cpu_model"] in attempt["host"] and "slurm_job_id" in attempt
    run = json.loads((run_dir / "sacred" / "attempt1" / "run.json").read_text())
    assert run["status"] == "COMPLETED" and run["host"]["hostname"] == host_description()
    assert run["host"]["cpu"] and run["host"]["python_version"]  # Sacred's other host facts are kept
    assert run["experiment"]["base_dir"] == "suite"
    assert run["meta"]["config_updates"]["mongo_url"] == "mongodb://alice:***@db.example.org:27017/m3po"
    config = json.loads((run_dir / "sacred" / "attempt1" / "config.json").read_text())
    assert config["mongo_url"] == "mongodb://alice:***@db.example.org:27017/m3po"
    assert config["run_dir"] == "<run_dir>"
    info = json.loads((run_dir / "sacred" / "attempt1" / "info.json").read_text())
    assert info["run_dir"] == "<run_dir>" and info["resolved_config"]["task"] == "mw-reach"


def test_mongodbs_copy_is_redacted_the_same_way(real_run):
    _, _, db = real_run
    assert db["url"] == MONGO_URL  # the observer connects with the real URL ...
    (doc,) = db["runs"].docs  # ... and records none of it
    text = json.dumps(
        [doc, db["metrics"].docs, [{k: v for k, v in f.items() if k != "data"} for f in db["fs"].files]],
        default=str,
    )
    assert PASSWORD not in text and str(ROOT) not in text and not scan_text(text, [HOST])
    assert doc["status"] == "COMPLETED" and doc["_id"] == 1  # MongoDB's own id, not "attempt1"
    assert doc["host"]["hostname"] == host_description()
    assert doc["config"]["mongo_url"] == "mongodb://alice:***@db.example.org:27017/m3po"
    assert {f["filename"] for f in db["fs"].files} >= {"suite/experiment.py", "suite/registry.py"}
    assert db["metrics"].docs, "metrics were recorded"


def test_shipping_copies_only_the_shipped_files_of_finished_runs(real_run, tmp_path, capsys):
    root, run_dir, _ = real_run
    dest = tmp_path / "evidence"
    assert main(["ship", str(root), str(dest)]) == 0
    assert capsys.readouterr().out == f"shipped 1 run(s) to {dest}\n"
    copied = sorted(p.relative_to(dest) for p in dest.rglob("*") if p.is_file())
    # The large logs ship compressed (the same text, the same bytes whenever shipped); the rest as is.
    compressed = {"train.jsonl", "metrics.json"}
    assert set(publish.COMPRESSED_FILES) == compressed
    assert copied == sorted(
        p.relative_to(root).with_name(
            p.name + ".gz" if p.name in compressed or p.parent.name == "_sources" else p.name
        )
        for p in shipped_files(run_dir)
    )
    assert any(p.parent.name == "_sources" for p in copied)
    for name in ("train.jsonl", "sacred/attempt1/metrics.json"):
        shipped = dest / run_dir.relative_to(root) / f"{name}.gz"
        assert gzip.decompress(shipped.read_bytes()) == (run_dir / name).read_bytes()
        assert shipped.read_bytes()[4:8] == b"\0\0\0\0"  # no time in the gzip header
    assert shipped_files(dest / run_dir.relative_to(root)) == sorted(
        p for p in dest.rglob("*") if p.is_file()
    )
    assert scan_for_unsafe([dest], [HOST]) == []
    # Shipping again does not overwrite what shipped.
    with pytest.raises(ShipError, match="exists already"):
        ship_runs(root, dest)


def test_shipping_the_new_runs_passes_over_unfinished_and_shipped_ones(real_run, tmp_path, capsys):
    root, run_dir, _ = real_run
    runs = tmp_path / "runs"
    shutil.copytree(root, runs)
    running = runs / run_dir.relative_to(root).with_name("seed2")
    shutil.copytree(run_dir, running)
    _status(running, status="running")
    dest = tmp_path / "evidence"
    assert main(["ship", str(runs), str(dest)]) == 1  # the whole directory: the running run stops it
    assert "seed2: not shipped: the run is not finished (status 'running')" in capsys.readouterr().err
    assert main(["ship", "--new", str(runs), str(dest)]) == 0
    assert (
        capsys.readouterr().out
        == f"shipped 1 run(s) to {dest} (1 passed over: not finished or shipped already)\n"
    )
    assert [p.relative_to(dest) for p in find_runs(dest)] == [run_dir.relative_to(root)]
    assert main(["ship", "--new", str(runs), str(dest)]) == 0
    assert (
        capsys.readouterr().out
        == f"nothing new to ship from {runs} (2 run(s) not finished or shipped already)\n"
    )
    # Into a profile's evidence directory: the README's findings now lag the shipped runs, and it says so.
    evidence = tmp_path / "results" / "evidence" / "p"
    assert main(["ship", "--new", str(runs), str(evidence)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "the README's findings now lag them: python -m analysis.findings build --profile p "
        "&& python -m analysis.findings readme --profile p"
    )


# ------------------------------------------------------------- complete runs, and their reproduction
@pytest.fixture(scope="module")
def shipped_run(real_run, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real run as shipped (its shipped files only, no checkpoints), in a directory of its own."""
    root, _, _ = real_run
    (shipped,) = ship_runs(root, tmp_path_factory.mktemp("shipped"))
    return shipped


def _copy(run: Path, tmp_path: Path) -> tuple[Path, Path]:
    """(a directory of runs holding a copy of ``run``, the copy)."""
    root = tmp_path / "runs"
    shutil.copytree(run, root / "m3po" / "mw-reach" / "seed1")
    return root, root / "m3po" / "mw-reach" / "seed1"


def _lines(run: Path, name: str) -> list[str]:
    return read_log_text(run / name).splitlines(keepends=True)


def _write(run: Path, name: str, text: str) -> None:
    """Rewrite a log in the form the run has it (a shipped run's train.jsonl is compressed)."""
    path = log_file(run / name)
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)


def _status(run: Path, **changes: Any) -> None:
    status = json.loads((run / "status.json").read_text())
    (run / "status.json").write_text(json.dumps({**status, **changes}))


INCOMPLETE = {
    # name: (how the shipped copy is spoiled, what check_complete says, what ship_runs says)
    "eval.jsonl truncated": (
        lambda run: _write(run, "eval.jsonl", "".join(_lines(run, "eval.jsonl")[:-1])),
        "eval.jsonl: no evaluation at the final step 32 (last: 0)",
        "incomplete: eval.jsonl: no evaluation at the final step 32",
    ),
    "eval.jsonl cut mid-line": (
        lambda run: _write(run, "eval.jsonl", read_log_text(run / "eval.jsonl")[:-20]),
        "eval.jsonl line 2 is not JSON",
        "incomplete: eval.jsonl line 2 is not JSON",
    ),
    "status running": (
        lambda run: _status(run, status="running"),
        "status.json: the run is not finished (status 'running')",
        "the run is not finished (status 'running')",
    ),
    "short of its budget": (
        lambda run: _status(run, steps_total=64),
        "status.json: step 32 is short of steps_total 64",
        "incomplete: status.json: step 32 is short of steps_total 64",
    ),
    "train.jsonl missing": (
        lambda run: log_file(run / "train.jsonl").unlink(),
        "train.jsonl is missing",
        "it lacks train.jsonl",
    ),
    "eval step twice": (
        lambda run: _write(run, "eval.jsonl", "".join(_lines(run, "eval.jsonl") * 2)),
        "eval.jsonl: task mw-reach: step 0 after step 32 (line 3)",
        "incomplete: eval.jsonl: task mw-reach: step 0 after step 32",
    ),
    "train step twice": (
        lambda run: _write(run, "train.jsonl", "".join(_lines(run, "train.jsonl") * 2)),
        "train.jsonl: step 32 twice (line 2)",
        "incomplete: train.jsonl: step 32 twice",
    ),
    "no evaluation at step 0": (
        lambda run: _write(run, "eval.jsonl", "".join(_lines(run, "eval.jsonl")[1:])),
        "eval.jsonl: no evaluation at step 0",
        "incomplete: eval.jsonl: no evaluation at step 0",
    ),
    "Sacred's record missing": (
        lambda run: shutil.rmtree(run / "sacred" / "attempt1"),
        "sacred: Sacred records none, not attempt1.. one per start",
        "incomplete: sacred: Sacred records none",
    ),
    "last Sacred record not completed": (
        lambda run: (run / "sacred" / "attempt1" / "run.json").write_text(
            (run / "sacred" / "attempt1" / "run.json").read_text().replace('"COMPLETED"', '"INTERRUPTED"')
        ),
        "sacred/attempt1/run.json: the last attempt's status is 'INTERRUPTED', not COMPLETED",
        "incomplete: sacred/attempt1/run.json: the last attempt's status is 'INTERRUPTED'",
    ),
}


def test_a_shipped_run_is_complete(shipped_run):
    assert check_complete(shipped_run) == []


@pytest.mark.parametrize("case", INCOMPLETE)
def test_an_incomplete_run_is_caught_and_not_shipped(shipped_run, tmp_path, case):
    spoil, problem, refusal = INCOMPLETE[case]
    root, run = _copy(shipped_run, tmp_path)
    spoil(run)
    problems = check_complete(run)
    assert any(p.startswith(problem) for p in problems), problems
    dest = tmp_path / "evidence"
    with pytest.raises(ShipError) as err:
        ship_runs(root, dest)
    message = str(err.value)
    assert message.startswith(f"{run}: not shipped: ") and refusal in message and "\n" not in message
    assert not dest.exists()  # refused before anything is copied


def test_a_start_refused_before_training_leaves_a_failed_record_that_does_not_count(shipped_run, tmp_path):
    # `m3po train` asked with another config is refused after Sacred started its record: attempt2 FAILED,
    # status.json unchanged; the resume that follows is attempt3, status.json's second attempt.
    _, run = _copy(shipped_run, tmp_path)
    sacred = run / "sacred"
    first = json.loads((sacred / "attempt1" / "run.json").read_text())
    started = json.loads((run / "status.json").read_text())["attempts"][0]["started"]
    for n, status in ((2, "FAILED"), (3, "COMPLETED")):
        (sacred / f"attempt{n}").mkdir()
        later = {**first, "status": status, "start_time": f"2100-01-01T00:0{n}:00.000001"}
        (sacred / f"attempt{n}" / "run.json").write_text(json.dumps(later))
    resumed = {"started": 4102444950.0, "resumed_from_step": 0}  # 2100-01-01T00:02:30 UTC: in attempt2
    _status(run, attempts=[{"started": started}, resumed])
    assert check_complete(run) == [
        "sacred/attempt3: no attempt of status.json ran in it, and it did not fail (status 'COMPLETED')",
        "sacred/attempt3: started after the last attempt of status.json",
    ]
    resumed["started"] = 4102444990.0  # 00:03:10: in attempt3, after the refused attempt2
    _status(run, attempts=[{"started": started}, resumed])
    assert check_complete(run) == []
    refused = json.loads((sacred / "attempt2" / "run.json").read_text())
    (sacred / "attempt2" / "run.json").write_text(json.dumps({**refused, "status": "INTERRUPTED"}))
    assert check_complete(run) == [
        "sacred/attempt2: no attempt of status.json ran in it, and it did not fail (status 'INTERRUPTED')"
    ]


@pytest.fixture(scope="module")
def reproduction(shipped_run, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Reproduction]:
    """The shipped run's first evaluation retrained here (about 10 s): (the work directory, the result)."""
    workdir = tmp_path_factory.mktemp("reproduce")
    return workdir, reproduce_first_evaluation(shipped_run, workdir)


def test_the_first_evaluation_reproduces_exactly_on_this_machine(shipped_run, reproduction):
    workdir, result = reproduction
    assert result.matched is True, result.reason
    assert result.step == 32 and result.recorded == result.reproduced
    assert result.reason.startswith("identical at step 32 on 1 task(s), retrained on ")
    # It was retrained: a run of its own, through `m3po train`, from config.json alone.
    (rerun,) = [p for p in workdir.iterdir() if p.is_dir()]
    recorded = [json.loads(line) for line in _lines(shipped_run, "eval.jsonl")]
    retrained = [json.loads(line) for line in _lines(rerun, "eval.jsonl")]
    assert recorded == retrained  # every number, every float's every bit
    config = json.loads((rerun / "config.json").read_text())
    assert config == {
        **json.loads((shipped_run / "config.json").read_text()),
        "device": "cpu",
        "tensorboard": False,
    }


def test_a_doctored_score_is_a_mismatch(shipped_run, reproduction, tmp_path):
    workdir, _ = reproduction
    before = sorted(workdir.iterdir())
    _, run = _copy(shipped_run, tmp_path)
    rows = [json.loads(line) for line in _lines(run, "eval.jsonl")]
    rows[-1]["return"] = math.nextafter(rows[-1]["return"], math.inf)  # the last bit of one float
    (run / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = reproduce_first_evaluation(run, workdir)
    assert result.matched is False and result.step == 32
    assert result.reason.startswith("differs at step 32: mw-reach return ") and "retrained" in result.reason
    rows[-1]["score"] = rows[-1]["score_mean"] = 99.0
    (run / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = reproduce_first_evaluation(run, workdir)
    assert (result.matched, result.recorded) == (False, 99.0) and result.reproduced != 99.0
    assert sorted(workdir.iterdir()) == before  # the finished retrain was read again, not retrained


def _spoil_compute(run: Path, **changes: Any) -> None:
    status = json.loads((run / "status.json").read_text())
    status["attempts"][0]["compute"].update(changes)
    (run / "status.json").write_text(json.dumps(status))


def test_another_cpu_capability_is_not_comparable_and_trains_nothing(shipped_run, tmp_path, monkeypatch):
    _, run = _copy(shipped_run, tmp_path)
    here = json.loads((run / "status.json").read_text())["attempts"][0]["compute"]["torch_cpu_capability"]
    other = "AVX2" if here != "AVX2" else "AVX512"
    _spoil_compute(run, torch_cpu_capability=other)

    def no_training(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("nothing may be trained")

    monkeypatch.setattr(publish.subprocess, "run", no_training)
    result = reproduce_first_evaluation(run, tmp_path / "work")
    assert result.matched is None and (result.step, result.reproduced) == (32, None)
    assert (
        result.reason.startswith("not comparable exactly: recorded on ") and f"torch {other}" in result.reason
    )
    assert "this machine " in result.reason and "(differs in torch_cpu_capability)" in result.reason
    assert not (tmp_path / "work").exists()


def test_thread_settings_are_set_by_the_retrain_other_settings_must_match(shipped_run, tmp_path, monkeypatch):
    _, run = _copy(shipped_run, tmp_path)
    here = json.loads((run / "status.json").read_text())["attempts"][0]["compute"]["settings"]
    threads = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}  # the workflow's
    assert set(threads) == set(publish.THREAD_SETTINGS)
    _spoil_compute(run, settings={**here, **threads})
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert comparability(run, 32) == (None, 1)
    envs = []

    def retrain(command: list[str], **kwargs: Any) -> None:
        envs.append(kwargs["env"])
        raise RuntimeError("stop before training")

    monkeypatch.setattr(publish.subprocess, "run", retrain)
    with pytest.raises(RuntimeError, match="stop before training"):
        reproduce_first_evaluation(run, tmp_path / "work")
    assert {k: envs[0].get(k) for k in threads} == threads
    # A setting that changes the kernels is the machine's: it must match.
    _spoil_compute(run, settings={**here, **threads, "MKL_CBWR": "COMPATIBLE"})
    assert "(differs in settings)" in comparability(run, 32)[0]


def test_portable_mode_is_comparable_on_another_x86_cpu_and_versions_must_match(shipped_run, tmp_path):
    _, run = _copy(shipped_run, tmp_path)
    _spoil_compute(run, cpu_model="AMD EPYC 7763 64-Core Processor", torch_cpu_capability="DEFAULT")
    assert comparability(run, 32)[0].startswith("not comparable exactly: recorded on AMD EPYC 7763")
    _spoil_compute(run, portable=True)
    assert comparability(run, 32) == (None, 1)  # exact across x86-64 CPUs, on one thread
    _spoil_compute(run, machine="aarch64")
    assert "differs in machine" in comparability(run, 32)[0]
    _spoil_compute(run, machine=platform.machine())
    info = run / "sacred" / "attempt1" / "info.json"
    record = json.loads(info.read_text())
    record["versions"]["torch"] = "1.0.0"
    info.write_text(json.dumps(record))
    assert comparability(run, 32)[0].startswith(
        "not comparable exactly: recorded with torch 1.0.0 (this machine "
    )


def test_the_retrain_budget_goes_one_iteration_on_where_a_checkpoint_cut_the_first_interval(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"steps": 96, "checkpoint_every": 32, "num_envs": 2}))
    (run / "status.json").write_text(json.dumps({"steps_total": 96}))
    (run / "train.jsonl").write_text("".join(json.dumps({"step": s}) + "\n" for s in (16, 32, 48)))
    assert first_evaluation_budget(run, 32) == 34  # a checkpoint at 32 marked its last step as cut
    (run / "config.json").write_text(json.dumps({"steps": 96, "checkpoint_every": 40, "num_envs": 2}))
    assert first_evaluation_budget(run, 32) == 32  # none due at the iteration ending at 32
    assert first_evaluation_budget(run, 48) == 48 + 2  # 40 fell in the iteration (32, 48]
    (run / "status.json").write_text(json.dumps({"steps_total": 48}))
    assert first_evaluation_budget(run, 48) == 48  # the final iteration is never cut


# ------------------------------------------------------------------------------ Sacred's records
def test_sacred_rewrites_captured_output_and_failure_traces(tmp_path):
    from sacred import Experiment

    run_dir = tmp_path / "run"
    ex = Experiment("publish-check", save_git_info=False)
    ex.add_config(fail=False)

    @ex.main
    def work(fail: bool) -> None:
        print(f"reading {run_dir}/checkpoints/latest.pt and {ROOT}/config/paper.yaml from {MONGO_URL}")
        if fail:
            raise ValueError(f"cannot open {run_dir / 'x'}")

    experiment.add_observers(ex, run_dir / "sacred", run_dir)
    ex.run(options={"--id": "attempt1"})
    with pytest.raises(ValueError):
        ex.run(config_updates={"fail": True}, options={"--id": "attempt2"})
    records = [run_dir / "sacred" / f"attempt{n}" for n in (1, 2)]
    cout = (records[0] / "cout.txt").read_text()
    assert "reading <run_dir>/checkpoints/latest.pt and config/paper.yaml from mongodb://alice:***@" in cout
    run = json.loads((records[1] / "run.json").read_text())
    assert run["status"] == "FAILED" and "ValueError: cannot open <run_dir>/x" in run["fail_trace"][-1]
    assert any('File "tests/test_publish.py"' in line for line in run["fail_trace"])
    # This test's own source is snapshotted too (it holds the unsafe strings on purpose): not scanned.
    written = [r / n for r in records for n in ("run.json", "config.json", "cout.txt")]
    assert scan_for_unsafe(written, [HOST]) == []


def test_captured_output_is_rewritten_whole_when_a_path_comes_in_two_pieces(tmp_path):
    import datetime as dt

    roots = path_roots(tmp_path / "run")
    pieces = [
        f"a {ROOT}/con",
        f"fig/x.yaml\rb {str(ROOT)[:3]}",
        f"{str(ROOT)[3:]}/y\n{MONGO_URL[:20]}",
        f"{MONGO_URL[20:]}\n",
    ]
    # Sacred's filter sees what it returned before and what came since.
    redactor, out = experiment.CapturedOutRedactor(roots), ""
    for piece in pieces:
        out = redactor(out + piece)
    assert out == "a config/x.yaml\rb y\nmongodb://alice:***@db.example.org:27017/m3po\n"
    # The file observer, on its own, sees the raw output grow; cout.txt is its rewrite at every save.
    observer = experiment.SafeFileStorageObserver(tmp_path / "sacred", roots)
    ex_info = {"base_dir": str(ROOT / "suite"), "sources": [], "name": "x", "mainfile": "x.py"}
    now = dt.datetime.now()
    observer.started_event(ex_info, "main", {"hostname": HOST}, now, {}, {}, "attempt1")
    raw = ""
    for piece in pieces:
        raw += piece
        observer.heartbeat_event({}, raw, now, None)
        assert (tmp_path / "sacred" / "attempt1" / "cout.txt").read_bytes().decode() == redact_text(
            raw, roots
        )
    assert redact_text(raw, roots) == out


def test_redaction_rewrites_paths_and_passwords_and_is_idempotent(tmp_path):
    roots = path_roots(tmp_path / "run")
    cases = {
        f"{ROOT}/suite/experiment.py": "suite/experiment.py",
        str(ROOT): ".",
        f"{tmp_path}/run/sacred": "<run_dir>/sacred",
        f"{sys.prefix}/lib/x.py": "<python>/lib/x.py",
        f"mongodb://bob:{PASSWORD}@h1:27017,h2/db?x=1": "mongodb://bob:***@h1:27017,h2/db?x=1",
        "redis://:p@ss@cache:6379/0": "redis://:***@cache:6379/0",  # an unescaped '@' in the password
        "mongodb://bob@db/m3po https://example.com/home/x": None,  # no password; a URL's path
    }
    for text, want in cases.items():
        got = redact_text(text, roots)
        assert got == (text if want is None else want), text
        assert redact_text(got, roots) == got  # idempotent: Sacred filters again what it filtered
    # Another directory whose name starts like the repository's is not the repository.
    assert redact_text(f"{ROOT}2/x", roots).endswith(f"{ROOT.name}2/x")
    assert redact({"a": [f"{ROOT}/x", 1, (f"{tmp_path}/run",)], "$set": None}, roots) == {
        "a": ["x", 1, ("<run_dir>",)],
        "$set": None,
    }


def test_status_json_names_the_host_by_description_and_rewrites_errors(tmp_path):
    import torch

    from m3po.trainer.run_record import RunRecord
    from m3po.trainer.schedule import TrainState

    run_dir = tmp_path / "run"
    for attempt in (1, 2):  # a start, then a resume: one more attempt, each described
        record = RunRecord(run_dir, "m3po", {"seed": 1}, 32, torch.device("cpu"))
        record.open()
        record.start_attempt(TrainState(step=8 * (attempt - 1)), resumed_from=None if attempt == 1 else 8)
        with pytest.raises(OSError), record.guard(lambda: TrainState(step=8)):
            raise OSError(f"no space left writing {run_dir}/checkpoints/latest.pt.tmp (url {MONGO_URL})")
    status = json.loads((run_dir / "status.json").read_text())
    assert [a["resumed_from_step"] for a in status["attempts"]] == [None, 8]
    assert all(a["host"] == host_description() for a in status["attempts"])
    assert status["error"] == (
        "OSError: no space left writing <run_dir>/checkpoints/latest.pt.tmp "
        "(url mongodb://alice:***@db.example.org:27017/m3po)"
    )
    assert scan_for_unsafe([run_dir / "status.json"], [HOST]) == []


# ---------------------------------------------------------------------------------- the scanner
def test_the_scanner_flags_paths_host_names_and_passwords_but_not_urls_or_names(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(
        "\n".join(
            [
                '{"run_dir": "/home/alice/runs/m3po/seed1",',  # 1
                '"log": "C:\\\\Users\\\\bob\\\\run.txt", "other": "D:/data/x",',  # 2
                f'"mongo_url": "mongodb://alice:{PASSWORD}@db:27017/m3po",',  # 3
                '"host": "gpu-node-17.cluster.example", "tmp": "file:///tmp/x",',  # 4
                '"trace": "File \\"/usr/lib/python3.11/threading.py\\", line 3",',  # 5
                '"scratch": "/scratch/u/x /work/main/suite /root/.cache /mnt/d/x /var/tmp/x"}',  # 6
            ]
        )
    )
    good = tmp_path / "good.json"
    good.write_text(
        "\n".join(
            [
                '{"url": "https://example.com/home/x", "mongo": "mongodb://alice:***@db:27017/m3po",',
                '"bare": "/tmp", "metric": "eval/score/mw-reach", "run_dir": "results/runs/x/seed1",',
                '"named": "<run_dir>/sacred ~/.cache <python>/lib/x.py", "time": "2026-12-07T03:03:31",',
                '"host": "Intel(R) Xeon(R) Processor @ 2.80GHz, 2 logical CPUs, x86_64", "tmpl": "http://tmp/x",',
                '"words": "gpu-node-170 my-gpu-node-17 a/gpu-node-17x", "speed": "1000/s 3/4"}',
            ]
        )
    )
    findings = scan_for_unsafe([bad, good], ["gpu-node-17.cluster.example", "gpu-node-17"])
    assert all(file == str(bad) for file, _, _ in findings), findings
    lines = {(line, what.split(":")[0]) for _, line, what in findings}
    assert lines == {
        (1, "absolute path"), (2, "absolute path"), (3, "credential in a URL"), (4, "host name"),
        (4, "absolute path"), (5, "absolute path"), (6, "absolute path"),
    }  # fmt: skip
    assert sum(line == 6 for _, line, _ in findings) == 5 and sum(line == 2 for _, line, _ in findings) == 2
    assert not any(PASSWORD in what for _, _, what in findings)  # a finding never repeats the password


def test_the_suites_sources_pass_the_scan():
    # Sacred snapshots the experiment's sources (suite/) into every run's record: they must be clean.
    assert scan_for_unsafe(sorted((ROOT / "suite").rglob("*.py")), [HOST]) == []


# ------------------------------------------------------------------------------------ refusals
def _fake_run(run_dir: Path, status: str, extra: str = "") -> Path:
    """A run record complete in form (check_complete passes when ``status`` is finished), and a checkpoint."""
    run_dir.mkdir(parents=True)
    (run_dir / "config.json").write_text('{"algo": "m3po", "steps": 32}\n')
    attempts = [{"started": 1796616752.5, "resumed_from_step": None}]
    record = {"status": status, "step": 32, "steps_total": 32, "error": extra, "attempts": attempts}
    (run_dir / "status.json").write_text(json.dumps(record))
    rows = [{"step": s, "task": "mw-reach", "score": 1.0, "score_mean": 1.0} for s in (0, 32)]
    (run_dir / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run_dir / "train.jsonl").write_text('{"step": 32, "iteration": 1}\n')
    (run_dir / "sacred" / "attempt1").mkdir(parents=True)
    sacred = {"status": "COMPLETED", "start_time": "2026-12-07T04:12:30.000001"}  # UTC, before the start
    (run_dir / "sacred" / "attempt1" / "run.json").write_text(json.dumps(sacred))
    (run_dir / "checkpoints").mkdir()
    (run_dir / "checkpoints" / "latest.pt").write_bytes(b"\0")
    return run_dir


def test_shipping_refuses_an_unfinished_or_unsafe_run_and_copies_nothing(tmp_path, capsys):
    runs = tmp_path / "runs"
    _fake_run(runs / "a" / "seed1", "finished")
    _fake_run(runs / "b" / "seed1", "interrupted")
    _fake_run(runs / "a" / "seed2.corrupt-1", "running")  # set aside by the workflow: not a run
    assert find_runs(runs) == [runs / "a" / "seed1", runs / "b" / "seed1"]
    dest = tmp_path / "evidence"
    with pytest.raises(
        ShipError, match=r"b/seed1: not shipped: the run is not finished \(status 'interrupted'\)"
    ):
        ship_runs(runs, dest)
    assert not dest.exists()  # every run is checked before anything is copied
    assert main(["ship", str(runs), str(dest)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("m3po: error: ") and "not finished" in err and err.count("\n") == 1

    unsafe = _fake_run(tmp_path / "unsafe" / "seed1", "finished", extra="OSError: /home/alice/x")
    with pytest.raises(
        ShipError, match="unsafe to publish: status.json line 1: absolute path: /home/alice/x"
    ):
        check_shippable(unsafe)
    assert [p.name for p in check_shippable(runs / "a" / "seed1")] == [
        "config.json",
        "eval.jsonl",
        "run.json",
        "status.json",
        "train.jsonl",
    ]
    assert ship_runs(runs, dest, runs=[runs / "a" / "seed1"]) == [dest / "a" / "seed1"]
    assert not (dest / "a" / "seed1" / "checkpoints").exists()


# --------------------------------------------------------------------------- the shipped evidence
def test_every_shipped_file_is_safe_to_publish():
    evidence = ROOT / EVIDENCE_DIR
    if not evidence.is_dir():
        pytest.skip(f"no shipped runs exist yet ({EVIDENCE_DIR} is absent)")
    files = sorted(p for p in evidence.rglob("*") if p.is_file())
    # Paths and passwords in any file; host names where records keep the host: descriptions only.
    assert scan_for_unsafe(files) == []
    for path in files:
        assert not path.name.startswith("events.out.tfevents") and path.suffix not in (".pt", ".log"), path
        if path.name == "status.json":
            for attempt in json.loads(path.read_text()).get("attempts", []):
                assert DESCRIPTION.match(str(attempt.get("host"))), (path, attempt.get("host"))
        elif path.name == "run.json" and path.parent.parent.name == "sacred":
            assert DESCRIPTION.match(str(json.loads(path.read_text())["host"]["hostname"])), path


def _shipped_runs() -> list[Path]:
    evidence = ROOT / EVIDENCE_DIR
    runs = find_runs(evidence) if evidence.is_dir() else []
    if not runs:
        pytest.skip(f"no shipped runs exist yet (no {EVIDENCE_DIR}/**/status.json)")
    return runs


def test_every_shipped_run_is_finished_and_complete():
    problems = [f"{run.relative_to(ROOT)}: {p}" for run in _shipped_runs() for p in check_complete(run)]
    assert not problems, "\n".join(problems)


@pytest.mark.slow
def test_the_first_shipped_run_this_machine_can_redo_reproduces_its_first_evaluation_exactly(tmp_path):
    # The shipped runs come from more than one CPU: the first one recorded on a machine like this one
    # (or in portable mode) is retrained; the others are passed over without training.
    passed_over = []
    for run in _shipped_runs():
        result = reproduce_first_evaluation(run, tmp_path / run.relative_to(ROOT / EVIDENCE_DIR))
        if result.matched is None:
            passed_over.append(f"{run.relative_to(ROOT)}: {result.reason}")
            continue
        assert result.matched, f"{run.relative_to(ROOT)}: {result.reason}"
        return
    pytest.skip(
        f"no shipped run can be redone exactly here ({len(passed_over)}; the first: {passed_over[0]})"
    )
