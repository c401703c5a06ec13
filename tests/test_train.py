"""Training runs end to end: run record, resume equals uninterrupted, determinism, failures."""

from __future__ import annotations

import json

import pytest
import torch

from m3po.errors import NonFiniteLossError, RunDirectoryError
from m3po.registration import make_config
from m3po.train import Trainer

MEASURED = ("time/", "mem/")  # wall-clock and memory figures differ between identical runs


def small_config(**updates):
    base = dict(
        task="mw-reach",  # 100-step episodes keep evaluation short
        num_envs=2,
        steps=128,
        eval_every=0,  # evaluate at the start and the end only
        eval_episodes=1,
        checkpoint_every=64,
        model={"latent_dim": 16, "enc_dim": 32, "mlp_dim": 32, "num_bins": 21},
        planner={"num_samples": 16, "num_pi_trajs": 4, "num_elites": 4, "iterations": 1},
        ppo={"rollout_len": 16, "minibatch_size": 16, "epochs": 2},
    )
    for key, value in updates.items():
        if isinstance(value, dict):
            base[key] = {**base.get(key, {}), **value}
        else:
            base[key] = value
    return make_config("cpu", **base)


def rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def weights(run_dir):
    return torch.load(run_dir / "checkpoints" / "latest.pt", weights_only=False)["agent"]["model"]


def without_time(records):
    return [{k: v for k, v in r.items() if not k.startswith(MEASURED)} for r in records]


def test_run_writes_a_complete_record(tmp_path):
    summary = Trainer(small_config(), tmp_path, progress=False).run()
    assert summary["step"] == 128
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["status"] == "finished" and status["step"] == 128
    evals = rows(tmp_path / "eval.jsonl")
    assert [r["step"] for r in evals] == [0, 128]
    assert all(r["success"] in (0.0, 1.0) and r["score"] == 100 * r["success"] for r in evals)
    train = rows(tmp_path / "train.jsonl")
    assert [r["step"] for r in train] == [32, 64, 96, 128]
    for key in (
        "loss/actor", "loss/value", "loss/consistency", "loss/reward", "bonus/eps_mean",
        "bonus/clipped_share", "ppo/clip_fraction", "ppo/approx_kl", "ppo/log_prob_old_mean", "time/sps",
        "planner/prior_gap", "mem/peak_rss_mib",
    ):  # fmt: skip
        assert key in train[-1], key
    assert json.loads((tmp_path / "config.json").read_text())["steps"] == 128
    from analysis.collect import read_run

    _, compute = read_run(tmp_path)
    assert 0.05 < compute["peak_memory"] < 24  # GiB: recorded, and plausible for this machine


def test_interrupted_run_resumes_to_the_same_weights(tmp_path):
    cfg = small_config()
    Trainer(cfg, tmp_path / "straight", progress=False).run()

    def interrupt(name, value, step):
        if step > 64:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Trainer(cfg, tmp_path / "resumed", on_metrics=interrupt, progress=False).run()
    status = json.loads((tmp_path / "resumed" / "status.json").read_text())
    assert status["status"] == "interrupted"
    summary = Trainer(cfg, tmp_path / "resumed", progress=False).run()
    assert summary["resumed_from"] == 64
    straight, resumed = weights(tmp_path / "straight"), weights(tmp_path / "resumed")
    for name in straight:
        torch.testing.assert_close(resumed[name], straight[name], rtol=0, atol=0, msg=name)
    # The record has no duplicated or missing steps, and matches the uninterrupted run.
    assert without_time(rows(tmp_path / "resumed" / "train.jsonl")) == without_time(
        rows(tmp_path / "straight" / "train.jsonl")
    )
    assert rows(tmp_path / "resumed" / "eval.jsonl") == rows(tmp_path / "straight" / "eval.jsonl")
    attempts = json.loads((tmp_path / "resumed" / "status.json").read_text())["attempts"]
    assert [a["resumed_from_step"] for a in attempts] == [None, 64]


def test_same_seed_twice_gives_identical_runs_and_another_seed_differs(tmp_path):
    Trainer(small_config(steps=64), tmp_path / "a", progress=False).run()
    Trainer(small_config(steps=64), tmp_path / "b", progress=False).run()
    Trainer(small_config(steps=64, seed=2), tmp_path / "c", progress=False).run()
    a, b, c = (without_time(rows(tmp_path / d / "train.jsonl")) for d in "abc")
    assert a == b
    assert a != c


def test_finished_run_is_not_trained_again_and_config_must_match(tmp_path):
    Trainer(small_config(steps=32), tmp_path, progress=False).run()
    with pytest.raises(RunDirectoryError, match="finished run"):
        Trainer(small_config(steps=32), tmp_path, progress=False).run()
    (tmp_path / "status.json").unlink()
    with pytest.raises(RunDirectoryError, match="another config"):
        Trainer(small_config(steps=32, seed=5), tmp_path, progress=False).run()


def test_nan_loss_stops_the_run_naming_loss_and_step(tmp_path, monkeypatch):
    import m3po.agent

    original = m3po.agent.M3POAgent._world_model_loss

    def poisoned(self, batch, windows):
        consistency, reward = original(self, batch, windows)
        return consistency, reward * float("nan") if self._poison else reward

    monkeypatch.setattr(m3po.agent.M3POAgent, "_world_model_loss", poisoned)
    monkeypatch.setattr(m3po.agent.M3POAgent, "_poison", False, raising=False)

    def arm(name, value, step):
        if step >= 64:
            m3po.agent.M3POAgent._poison = True

    with pytest.raises(NonFiniteLossError, match=r"'reward'.*step 96"):
        Trainer(small_config(), tmp_path, on_metrics=arm, progress=False).run()
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["status"] == "failed" and "reward" in status["error"]
    state = torch.load(tmp_path / "checkpoints" / "latest.pt", weights_only=False)["state"]
    assert state["step"] == 64  # the last good checkpoint is kept


def test_unwritable_run_directory_fails_before_training(tmp_path):
    target = tmp_path / "file"
    target.write_text("not a directory")
    with pytest.raises((RunDirectoryError, OSError)):
        Trainer(small_config(), target / "run", progress=False).run()


def test_training_does_not_depend_on_the_evaluation_schedule(tmp_path):
    # Evaluation's planner noise is drawn from its own (seed, step) stream, so how often and how long a
    # run evaluates leaves its training exactly as it is; the evaluations at a step are paired across runs.
    planner = {"exec_noise": 0.3}
    Trainer(
        small_config(eval_every=0, eval_episodes=1, planner=planner), tmp_path / "a", progress=False
    ).run()
    Trainer(
        small_config(eval_every=32, eval_episodes=2, planner=planner), tmp_path / "b", progress=False
    ).run()
    a, b = (without_time(rows(tmp_path / d / "train.jsonl")) for d in "ab")
    assert a == b
    torch.testing.assert_close(weights(tmp_path / "a"), weights(tmp_path / "b"), rtol=0, atol=0)
    assert len(rows(tmp_path / "b" / "eval.jsonl")) > len(rows(tmp_path / "a" / "eval.jsonl"))


@pytest.mark.parametrize(("discount", "expected"), [(0.0, 0.95), (0.99, 0.99)])
def test_discount_is_the_tasks_rule_unless_set(tmp_path, discount, expected):
    # mw-reach's own discount is 0.95 (the spec's rule for 100-step episodes); ppo.discount replaces it
    from m3po.envs import make_vec_env

    cfg = small_config(ppo={"discount": discount})
    trainer = Trainer(cfg, tmp_path / "run")
    env = make_vec_env(cfg.task, num_envs=cfg.num_envs, seed=cfg.seed)
    try:
        trainer.build(env)
    finally:
        env.close()
    assert trainer.agent.task_discount.tolist() == pytest.approx([expected])


def test_a_run_recorded_before_a_field_existed_resumes_at_its_default(tmp_path):
    # A switch added later (here ppo.discount) is missing from older records; the run ran with its
    # default, so a resume at the default goes on and a resume with another value is refused.
    def interrupt(name, value, step):
        if step > 64:
            raise KeyboardInterrupt

    run_dir = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        Trainer(small_config(), run_dir, on_metrics=interrupt, progress=False).run()
    config = json.loads((run_dir / "config.json").read_text())
    del config["ppo"]["discount"]
    (run_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(RunDirectoryError, match=r"differs in: ppo\.discount \(not recorded\)"):
        Trainer(small_config(ppo={"discount": 0.99}), run_dir, progress=False).run()
    assert Trainer(small_config(), run_dir, progress=False).run()["resumed_from"] == 64
