"""The stable-baselines3 baselines behind the runner: run records, resume, MT-SAC's temperatures."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from m3po.errors import RunDirectoryError
from suite.cli import main
from suite.registry import get_algorithm

TINY = {
    "ppo": {"ppo": {"n_steps": 16, "batch_size": 16, "n_epochs": 1, "net_width": 16}},
    "sac": {
        "log_every": 16,
        "sac": {"learning_starts": 16, "batch_size": 16, "net_width": 16, "buffer_size": 1000},
    },
}
TASKS = {
    "ppo": "mw-reach",
    "sac": "mw-reach",
    "mt-ppo": "cartpole-swingup,mw-reach",
    "mt-sac": "cartpole-swingup,mw-reach",
}


def tiny_config(algo, **updates):
    base = {
        "task": TASKS[algo], "num_envs": 2, "steps": 64, "eval_every": 0, "eval_episodes": 1,
        "checkpoint_every": 32, "device": "cpu", **TINY[algo.removeprefix("mt-")],
    }  # fmt: skip
    return get_algorithm(algo).make_config("cpu", **{**base, **updates})


def train(algo, cfg, run_dir, **kwargs):
    return get_algorithm(algo).load_train()(cfg, run_dir, progress=False, **kwargs)


def rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("algo", ["ppo", "sac", "mt-ppo", "mt-sac"])
def test_each_baseline_writes_a_complete_run_record(tmp_path, algo):
    cfg = tiny_config(algo)
    summary = train(algo, cfg, tmp_path)
    assert summary["step"] == 64
    assert json.loads((tmp_path / "status.json").read_text())["status"] == "finished"
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["algo"] == algo and config["task"] == TASKS[algo]
    evals = rows(tmp_path / "eval.jsonl")
    tasks = TASKS[algo].split(",")
    assert [(r["step"], r["task"]) for r in evals] == [(s, t) for s in (0, 64) for t in tasks]
    reach = [r for r in evals if r["task"] == "mw-reach"]
    assert all(r["score"] == 100 * r["success"] for r in reach)
    train_rows = rows(tmp_path / "train.jsonl")
    steps = [r["step"] for r in train_rows]
    assert steps == sorted(set(steps)) and steps[-1] == 64
    last = train_rows[-1]
    for key in ("time/sps", "time/wall", "mem/peak_rss_mib", "train/n_updates"):
        assert key in last, key
    if algo.endswith("ppo"):
        assert {"train/approx_kl", "train/clip_fraction", "train/value_loss"} <= set(last)
    else:
        assert {"train/ent_coef", "train/actor_loss", "train/critic_loss"} <= set(last)
    checkpoint = torch.load(tmp_path / "checkpoints" / "latest.pt", weights_only=False)
    assert checkpoint["state"]["step"] == 64
    assert (checkpoint["replay_buffer"] is not None) == algo.endswith("sac")


@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_interrupted_run_resumes_from_its_checkpoint_and_is_never_trained_again(tmp_path, algo):
    cfg = tiny_config(algo, num_envs=1)

    def interrupt(name, value, step):
        if step > 32:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(algo, cfg, tmp_path, on_metrics=interrupt)
    assert json.loads((tmp_path / "status.json").read_text())["status"] == "interrupted"
    summary = train(algo, cfg, tmp_path)
    assert summary["resumed_from"] == 32 and summary["step"] == 64
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["status"] == "finished"
    assert [a["resumed_from_step"] for a in status["attempts"]] == [None, 32]
    assert [r["step"] for r in rows(tmp_path / "eval.jsonl")] == [0, 64]
    steps = [r["step"] for r in rows(tmp_path / "train.jsonl")]
    assert steps == sorted(set(steps)) and steps[-1] == 64
    with pytest.raises(RunDirectoryError, match="finished run"):
        train(algo, cfg, tmp_path)


def test_mt_sac_has_one_temperature_per_task_and_they_move_independently(tmp_path):
    from baselines.sb3.train import SB3Run

    # Fill the replay buffer without learning (learning_starts > steps): no optimizer history yet.
    cfg = tiny_config("mt-sac", task="cartpole-swingup,reacher-easy", steps=32, eval_episodes=0)
    cfg.sac.learning_starts = 64
    run = SB3Run("mt-sac", cfg, tmp_path, progress=False)
    run.run()
    model = run.model
    assert model.log_ent_coef.shape == (2,)
    torch.testing.assert_close(model.task_target_entropy, torch.tensor([-1.0, -2.0]))  # -(action size)
    # Every stored transition made task 0's: only task 0's temperature may move (Adam is per element).
    buffer = model.replay_buffer
    saved = buffer.observations.copy(), buffer.next_observations.copy()
    for array in (buffer.observations, buffer.next_observations):
        array[..., -2:] = np.array([1.0, 0.0], dtype=np.float32)
    before = model.log_ent_coef.detach().clone()
    model.train(gradient_steps=3, batch_size=16)
    after = model.log_ent_coef.detach().clone()
    assert after[0] != before[0]
    assert after[1] == before[1]
    # With both tasks' samples, both move, each by its own entropy target.
    buffer.observations[:], buffer.next_observations[:] = saved
    model.train(gradient_steps=3, batch_size=16)
    assert torch.all(model.log_ent_coef.detach() != after)
    # And the padded action dim of cartpole (act size 1 of 2) is zero in the actor's actions.
    obs = torch.as_tensor(buffer.observations[:4, 0])
    actions, _ = model.actor.action_log_prob(obs)
    assert torch.all(actions[:, 1] == 0)


@pytest.mark.parametrize(
    ("updates", "message"),
    [
        (["algo=ppo", "task=cartpole-swingup,mw-reach"], "algo=ppo is single-task"),
        (["algo=sac", "task=mt30"], "algo=sac is single-task"),
        (["algo=mt-sac", "task=cartpole-swingup"], "algo=mt-sac is multi-task"),
        (["algo=mt-ppo", "task=cartpole-swingup"], "algo=mt-ppo is multi-task"),
        (["algo=sac", "ppo.n_steps=3"], "unknown config key 'ppo' for algo=sac"),
        (["algo=ppo", "ppo.n_step=3"], "ppo.n_steps"),
        (["algo=ppo", "ppo.batch_size=4096"], "exceeds the rollout"),
    ],
)
def test_bad_baseline_input_fails_before_any_run_directory_exists(tmp_path, capsys, updates, message):
    run_dir = tmp_path / "run"
    assert main(["train", "with", *updates, f"run_dir={run_dir}"]) == 2
    assert message in capsys.readouterr().err
    assert not run_dir.exists()
