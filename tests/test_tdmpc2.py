"""TD-MPC2 baseline: deterministic update, action masks in multi-task sets, buffer windows, run records."""

from __future__ import annotations

import json

import pytest
import torch

from baselines.tdmpc2.agent import TDMPC2Agent
from baselines.tdmpc2.buffer import Batch, SequenceBuffer
from baselines.tdmpc2.config import seed_steps
from baselines.tdmpc2.registration import make_config
from baselines.tdmpc2.train import train
from m3po.config import ConfigError
from m3po.envs import make_vec_env

SMALL = dict(
    latent_dim=16,
    enc_dim=32,
    mlp_dim=32,
    task_dim=8,
    num_q=3,
    num_bins=21,
    batch_size=16,
    planner={"num_samples": 16, "num_pi_trajs": 4, "num_elites": 4, "iterations": 2},
)


def make_agent(seed: int, act_dims=(1,), obs_dim: int = 5, **updates) -> TDMPC2Agent:
    torch.manual_seed(seed)  # weight init and dropout draw from the global generator, as in a run
    cfg = make_config("cpu", seed=seed, **{**SMALL, **updates})
    mask = torch.zeros(len(act_dims), max(act_dims))
    for i, size in enumerate(act_dims):
        mask[i, :size] = 1
    return TDMPC2Agent(cfg, obs_dim, mask.shape[1], mask, torch.full((len(act_dims),), 0.99), "cpu")


def fixed_batch(horizon: int = 3, batch: int = 16, obs_dim: int = 5, act_dim: int = 1) -> Batch:
    g = torch.Generator().manual_seed(0)
    return Batch(
        obs=torch.randn(horizon + 1, batch, obs_dim, generator=g),
        action=torch.rand(horizon, batch, act_dim, generator=g) * 2 - 1,
        reward=torch.rand(horizon, batch, 1, generator=g),
        task=torch.zeros(batch, dtype=torch.long),
    )


def test_one_update_on_a_fixed_batch_is_deterministic_under_a_fixed_seed():
    runs = []
    for seed in (3, 3, 4):
        agent = make_agent(seed)
        stats = agent.update(fixed_batch())
        params = torch.cat(
            [p.detach().flatten() for p in agent.model.state_dict().values() if p.is_floating_point()]
        )
        runs.append((stats, params))
    assert runs[0][0] == runs[1][0]
    assert torch.equal(runs[0][1], runs[1][1])
    assert not torch.equal(runs[0][1], runs[2][1])  # another seed: other weights, so the check can fail
    assert all(torch.isfinite(torch.tensor(list(runs[0][0].values()))))


def test_update_moves_the_targets_by_tau_and_keeps_them_without_gradients():
    agent = make_agent(1)
    before = [p.clone() for p in agent.model._target_Qs.parameters()]
    agent.update(fixed_batch())
    online = list(agent.model._Qs.parameters())
    for old, new, live in zip(before, agent.model._target_Qs.parameters(), online, strict=True):
        assert not new.requires_grad
        torch.testing.assert_close(new, old + agent.cfg.tau * (live - old))


def test_action_masks_zero_padded_dims_of_planned_prior_and_random_actions():
    env = make_vec_env(["cartpole-swingup", "cheetah-run"], num_envs=4, seed=0)  # action sizes 1 and 6
    cfg = make_config("cpu", task="cartpole-swingup,cheetah-run", num_envs=4, **SMALL)
    agent = TDMPC2Agent(
        cfg, env.obs_dim, env.act_dim, torch.as_tensor(env.task_action_mask), torch.full((2,), 0.99), "cpu"
    )
    assert agent.model.multitask
    prior_actions = []
    view_pi = agent.view.pi

    def recording_pi(z, task):
        out = view_pi(z, task)
        prior_actions.append((out, task))
        return out

    agent.view.pi = recording_pi
    task_ids = torch.as_tensor(env.task_ids)
    cartpole = task_ids == 0
    obs = torch.as_tensor(env.reset(seed=0)[0])
    for eval_mode in (False, True, False):
        out = agent.act(obs, task_ids, eval_mode=eval_mode)
        assert torch.all(out.action[cartpole, 1:] == 0)
        assert torch.all(out.action[~cartpole].abs().sum(-1) > 0)
        assert torch.all(agent._plan_mean[cartpole, :, 1:] == 0)  # the refit mean (next warm start)
        obs = torch.as_tensor(env.step(out.action.numpy())[0])
    assert prior_actions
    for (action, mu, _), task in prior_actions:
        padded = agent.model.task_action_mask[task] == 0
        assert padded.any() and torch.all(action[padded] == 0) and torch.all(mu[padded] == 0)
    sample = agent.model.pi(agent.model.encode(obs, task_ids), task_ids)
    assert torch.all(sample.action[cartpole, 1:] == 0) and torch.all(sample.mean[cartpole, 1:] == 0)
    assert torch.all(agent.random_action(task_ids)[cartpole, 1:] == 0)
    prior_only = agent.act(obs, task_ids, plan=False).action
    assert torch.all(prior_only[cartpole, 1:] == 0)
    env.close()


def test_buffer_windows_stay_inside_one_episode():
    buf = SequenceBuffer(64, 2, 1, 1, 3, torch.tensor([0, 0]), seed=0)
    buf.start(torch.arange(2), torch.zeros(2, 1))
    for t in range(1, 40):  # env 0 ends an episode every 5 steps, env 1 every 7; obs counts steps
        done = torch.tensor([t % 5 == 0, t % 7 == 0])
        obs = torch.full((2, 1), float(t))
        buf.add(obs, obs.squeeze(1), obs, done, torch.zeros(2, 1))
    batch = buf.sample(256)
    assert batch.obs.shape == (4, 256, 1) and batch.action.shape == (3, 256, 1)
    steps = batch.obs.squeeze(-1)
    # Within a window the observation counts up by one (a reset row holds 0 and only starts a window).
    follow = steps[1:] - steps[:-1]
    assert torch.all((follow == 1) | ((steps[:-1] == 0) & (steps[1:] > 0)))
    torch.testing.assert_close(batch.action, batch.obs[1:])  # a_t stored beside o_{t+1}, as TD-MPC2


def test_config_errors_name_the_bad_value():
    with pytest.raises(ConfigError, match="utd_ratio"):
        make_config("cpu", utd_ratio=0.0)
    with pytest.raises(ConfigError, match="sample_space"):
        make_config("cpu", planner={"sample_space": "pretanh"})
    with pytest.raises(ConfigError, match="unknown preset"):
        make_config("gpu")
    assert seed_steps(make_config("paper"), 500) == 2500  # official max(1000, 5 * 500)
    assert seed_steps(make_config("paper", num_envs=3), 500) == 2502  # whole env batches


RUN = dict(
    SMALL, seed_steps=40, steps=120, eval_episodes=1, eval_every=120, log_every=20, checkpoint_every=60,
    utd_ratio=0.5,
)  # fmt: skip


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize(
    ("task", "eval_planner"), [("cartpole-swingup", True), ("cartpole-swingup,cheetah-run", False)]
)
def test_short_run_writes_a_complete_run_record(tmp_path, task, eval_planner):
    cfg = make_config("cpu", **{**RUN, "task": task, "num_envs": 2, "eval_planner": eval_planner})
    summary = train(cfg, tmp_path / "run", progress=False)
    run_dir = tmp_path / "run"
    assert summary["step"] == 120 and summary["updates"] == 60  # 0.5 per agent step, seed data included
    recorded = json.loads((run_dir / "config.json").read_text())
    assert recorded == {"algo": "tdmpc2", **json.loads(json.dumps(cfg.to_dict()))}
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "finished" and status["step"] == 120 and status["seed_steps"] == 40
    evals = _rows(run_dir / "eval.jsonl")
    assert [(r["step"], r["task"]) for r in evals] == [(s, t) for s in (0, 120) for t in task.split(",")]
    rows = _rows(run_dir / "train.jsonl")
    assert [r["step"] for r in rows] == [20, 40, 60, 80, 100, 120]
    assert rows[-1]["updates"] == 60
    assert {"train/value_loss", "train/pi_loss", "planner/elite_return", "time/sps"} <= set(rows[-1])
    checkpoint = torch.load(run_dir / "checkpoints" / "latest.pt", weights_only=False)
    assert checkpoint["buffer"]["count"].sum() > 0 and checkpoint["state"]["step"] == 120


def test_an_interrupted_run_resumes_to_what_an_uninterrupted_run_writes(tmp_path):
    cfg = make_config("cpu", **{**RUN, "eval_planner": False, "num_envs": 2})
    train(cfg, tmp_path / "whole", progress=False)

    def stop(name, value, step):
        if step >= 100:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "cut", on_metrics=stop, progress=False)
    assert json.loads((tmp_path / "cut" / "status.json").read_text())["status"] == "interrupted"
    assert train(cfg, tmp_path / "cut", progress=False)["resumed_from"] == 60

    def strip(rows):
        return [{k: v for k, v in r.items() if not k.startswith(("time/", "mem/"))} for r in rows]

    assert strip(_rows(tmp_path / "cut" / "train.jsonl")) == strip(_rows(tmp_path / "whole" / "train.jsonl"))
    assert _rows(tmp_path / "cut" / "eval.jsonl") == _rows(tmp_path / "whole" / "eval.jsonl")


def test_the_runner_trains_tdmpc2_from_the_command_line(tmp_path):
    from suite.cli import main

    run_dir = tmp_path / "run"
    args = [
        "train", "with", "algo=tdmpc2", "task=cartpole-swingup", "steps=30", "seed_steps=20", "num_envs=2",
        "eval_episodes=0", "progress=False", "latent_dim=16", "mlp_dim=32", "enc_dim=32", "batch_size=8",
        "planner.num_samples=16", "planner.num_pi_trajs=4", "planner.num_elites=4", "log_every=10",
        f"run_dir={run_dir}",
    ]  # fmt: skip
    assert main(args) == 0
    assert json.loads((run_dir / "config.json").read_text())["algo"] == "tdmpc2"
    assert json.loads((run_dir / "status.json").read_text())["status"] == "finished"
    assert main([*args[:-1], f"run_dir={tmp_path / 'bad'}", "planner.sample_space=pretanh"]) == 2
