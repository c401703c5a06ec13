"""The M3PO agent on real environments: masks, the PPO ratio at collection, the bonus ablation."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from baselines.tdmpc2.agent import TDMPC2Agent
from baselines.tdmpc2.registration import make_config as tdmpc2_config
from m3po.agent import M3POAgent, Rollout
from m3po.envs import make_vec_env
from m3po.planner import ActOutput
from m3po.registration import make_config

SMALL = dict(
    model={"latent_dim": 16, "enc_dim": 32, "mlp_dim": 32, "num_bins": 21},
    planner={"num_samples": 16, "num_pi_trajs": 4, "num_elites": 4, "iterations": 2, "exec_noise": 0.3},
    ppo={"rollout_len": 8, "minibatch_size": 16, "epochs": 1},
)


def make_agent(env, **updates):
    cfg = make_config("cpu", **{**SMALL, **updates})
    discount = torch.tensor([info.discount for info in env.task_infos])
    return cfg, M3POAgent(
        cfg, env.obs_dim, env.act_dim, torch.as_tensor(env.task_action_mask), discount, "cpu"
    )


def collect(agent, env, steps):
    obs = torch.as_tensor(env.reset(seed=0)[0])
    task = torch.as_tensor(env.task_ids)
    buf = {k: [] for k in ("obs", "act", "rew", "term", "trunc", "next", "logp", "blogp")}
    for _ in range(steps):
        out = agent.act(obs, task)
        next_obs, reward, terminated, truncated, info = env.step(out.action.numpy())
        for key, value in zip(
            buf,
            (
                obs,
                out.action,
                reward,
                terminated,
                truncated,
                info["final_obs"],
                out.log_prob,
                out.behaviour_log_prob,
            ),
            strict=True,
        ):
            buf[key].append(torch.as_tensor(value, dtype=torch.float32 if key == "rew" else None))
        obs = torch.as_tensor(next_obs)
    stacked = {k: torch.stack(v) for k, v in buf.items()}
    return Rollout(
        stacked["obs"], stacked["act"], stacked["rew"], stacked["term"], stacked["trunc"], stacked["next"],
        stacked["logp"], stacked["blogp"], task,
    )  # fmt: skip


def test_two_tasks_of_different_sizes_never_plan_in_padded_dims():
    env = make_vec_env(["cartpole-swingup", "cheetah-run"], num_envs=4, seed=0)  # actions 1 and 6
    cfg, agent = make_agent(env)
    assert agent.model.multitask
    batch = collect(agent, env, 6)
    padded = batch.actions[:, torch.as_tensor(env.task_ids) == 0, 1:]
    assert padded.numel() and torch.all(padded == 0)
    assert torch.all(batch.actions[:, torch.as_tensor(env.task_ids) == 1].abs().sum(-1) > 0)
    assert torch.all(batch.actions.abs() < 1)
    assert torch.all(torch.isfinite(batch.log_prob))
    env.close()


BEHAVIOUR_OPTIONS = {
    "prior (the paper's reading)": dict(ppo={**SMALL["ppo"], "behaviour_density": "prior"}),
    "planner density": dict(ppo={**SMALL["ppo"], "behaviour_density": "planner"}),
    "planner density, prior mixed in": dict(
        ppo={**SMALL["ppo"], "behaviour_density": "planner"}, planner={**SMALL["planner"], "prior_mix": 0.5}
    ),
    "action-space planner": dict(
        planner={**SMALL["planner"], "sample_space": "action", "prior_centred": False}
    ),
    "planner off": dict(planner={**SMALL["planner"], "enabled": False}),
    "actor on the collection-time latent": dict(ppo={**SMALL["ppo"], "actor_latent": "collected"}),
    "target KL": dict(ppo={**SMALL["ppo"], "target_kl": 1e-4}),
    "state-independent sigma": dict(model={**SMALL["model"], "policy_std": "param"}),
    "distillation toward the planner": dict(ppo={**SMALL["ppo"], "distill_coef": 0.5}),
}


@pytest.mark.parametrize("option", BEHAVIOUR_OPTIONS)
def test_ppo_ratio_is_exactly_one_before_the_first_update(option):
    env = make_vec_env("walker-walk", num_envs=3, seed=1)
    cfg, agent = make_agent(env, **BEHAVIOUR_OPTIONS[option])
    batch = collect(agent, env, 5)
    assert torch.all(torch.isfinite(batch.behaviour_log_prob)) and torch.all(torch.isfinite(batch.log_prob))
    with torch.no_grad():
        z = agent.model.encode(batch.obs.reshape(-1, env.obs_dim), None)
        log_prob = agent.model.dist(z, None).log_prob(batch.actions.reshape(-1, env.act_dim))
    # The stored pi_old is the prior's density of what was executed (float32 rounding apart: the network
    # ran on a batch of another shape; a density of the wrong action or policy is off by far more).
    torch.testing.assert_close(log_prob, batch.log_prob.reshape(-1), rtol=0, atol=1e-3)
    stats = agent.update(batch, step=15)
    assert stats["ppo/first_ratio_error"] == 0.0
    env.close()


def test_target_kl_stops_the_actor_but_not_the_model():
    env = make_vec_env("walker-walk", num_envs=2, seed=5)
    ppo = {**SMALL["ppo"], "epochs": 4, "lr": 1e-3, "actor_lr": 1e-3}
    steps = {}
    for target_kl in (0.0, 1e-6):
        torch.manual_seed(0)
        _, agent = make_agent(env, ppo={**ppo, "target_kl": target_kl})
        batch = collect(agent, env, 8)
        actor_before = [p.clone() for p in agent.model._pi.parameters()]
        value_before = [p.clone() for p in agent.model._value.parameters()]
        stats = agent.update(batch, step=16)
        steps[target_kl] = stats["ppo/actor_steps"]
        if target_kl:
            # A KL of 1e-6 is passed at the second minibatch: the actor took one step, then froze.
            assert steps[target_kl] == 1
        actor_after, value_after = agent.model._pi.parameters(), agent.model._value.parameters()
        assert any(not torch.equal(a, b) for a, b in zip(actor_before, actor_after, strict=True))
        assert any(not torch.equal(a, b) for a, b in zip(value_before, value_after, strict=True))
    assert steps[0.0] == 4 * (16 // 16)  # epochs x minibatches of 16 transitions: every one
    env.close()


def test_update_kl_splits_into_actor_and_encoder_parts():
    env = make_vec_env("walker-walk", num_envs=2, seed=6)
    for latent in ("live", "collected"):
        _, agent = make_agent(env, ppo={**SMALL["ppo"], "epochs": 3, "actor_latent": latent})
        stats = agent.update(collect(agent, env, 8), step=16)
        for key in ("ppo/update_kl", "ppo/update_kl_actor", "ppo/update_kl_encoder"):
            assert stats[key] >= 0 and math.isfinite(stats[key])
        assert stats["ppo/update_kl_actor"] > 0 and stats["ppo/update_kl_encoder"] > 0
    env.close()


def test_prior_mix_executes_prior_samples_and_mixes_the_density():
    env = make_vec_env("walker-walk", num_envs=4, seed=4)
    planner = {**SMALL["planner"], "exec_noise": 0.0}
    _, always = make_agent(env, planner={**planner, "prior_mix": 1.0})
    batch = collect(always, env, 3)
    # Every action is the prior's own sample, so the behaviour density is the prior's.
    torch.testing.assert_close(batch.behaviour_log_prob, batch.log_prob, rtol=0, atol=1e-5)
    _, never = make_agent(env, planner={**planner, "prior_mix": 0.0})
    batch = collect(never, env, 3)
    assert not torch.allclose(batch.behaviour_log_prob, batch.log_prob, atol=1e-3)
    env.close()


def test_update_runs_and_alpha_zero_gives_no_bonus():
    env = make_vec_env("cartpole-swingup", num_envs=2, seed=2)
    for alpha0, expect_bonus in ((0.0, False), (1.0, True)):
        cfg, agent = make_agent(env, bonus={"alpha0": alpha0})
        stats = agent.update(collect(agent, env, 8), step=16)
        assert all(torch.isfinite(torch.tensor(v)) for v in stats.values())
        assert (stats["bonus/bonus_std"] > 0) == expect_bonus
        assert stats["bonus/alpha"] == alpha0 * (1 - 16 / cfg.bonus.anneal_steps)  # linear anneal at step 16
    env.close()


def test_same_seed_same_actions():
    actions = []
    for _ in range(2):
        env = make_vec_env("reacher-easy", num_envs=2, seed=3)
        torch.manual_seed(0)
        _, agent = make_agent(env)
        actions.append(collect(agent, env, 4).actions)
        env.close()
    torch.testing.assert_close(actions[0], actions[1], rtol=0, atol=0)


def test_state_independent_sigma_is_one_learned_value_per_task_and_dim():
    env = make_vec_env(["cartpole-swingup", "cheetah-run"], num_envs=4, seed=7)
    model_cfg = {**SMALL["model"], "policy_std": "param"}
    _, agent = make_agent(env, model=model_cfg, ppo={**SMALL["ppo"], "lr": 1e-2, "actor_lr": 1e-2})
    model = agent.model
    assert model._pi_log_std is not None and any(p is model._pi_log_std for p in agent._actor_params)
    obs, task = torch.randn(6, env.obs_dim), torch.tensor([0, 0, 0, 1, 1, 1])
    z = model.encode(obs, task)
    log_std = model.dist(z, task).log_std
    # Different states of one task share sigma; it starts at init_log_std (0) on the real dims.
    torch.testing.assert_close(log_std[:3], log_std[:1].expand(3, -1))
    torch.testing.assert_close(log_std[3:], log_std[3:4].expand(3, -1))
    assert torch.allclose(log_std[3], torch.zeros(env.act_dim), atol=1e-6)
    before = model._pi_log_std.detach().clone()
    agent.update(collect(agent, env, 8), step=32)
    assert not torch.equal(before, model._pi_log_std)  # the actor's optimizer trains it
    env.close()


def test_distillation_pulls_the_prior_toward_the_executed_actions():
    env = make_vec_env("walker-walk", num_envs=2, seed=8)
    ppo = {**SMALL["ppo"], "epochs": 8, "actor_lr": 1e-3}
    gains = {}
    for coef in (0.0, 5.0):
        torch.manual_seed(0)
        _, agent = make_agent(env, ppo={**ppo, "distill_coef": coef})
        batch = collect(agent, env, 8)
        # Executed actions far from the prior: only the pull (not PPO's clipped ratio) can follow them.
        batch.actions = torch.full_like(batch.actions, 0.9)
        obs, actions = batch.obs.reshape(-1, env.obs_dim), batch.actions.reshape(-1, env.act_dim)
        with torch.no_grad():
            before = agent.model.dist(agent.model.encode(obs, None), None).log_prob(actions).mean()
        stats = agent.update(batch, step=16)
        with torch.no_grad():
            after = agent.model.dist(agent.model.encode(obs, None), None).log_prob(actions).mean()
        gains[coef] = (after - before).item()
        assert math.isfinite(stats["loss/distill"])
    assert gains[5.0] > gains[0.0] + 1.0
    env.close()


def test_world_model_history_keeps_the_last_batches_for_the_model_losses_only(monkeypatch):
    env = make_vec_env("walker-walk", num_envs=2, seed=9)
    _, agent = make_agent(env, wm={"history_batches": 2})
    seen_envs = []
    original = M3POAgent._world_model_loss

    def spy(self, data, windows):
        seen_envs.append((data.rewards.shape[1], int(windows[:, 1].max())))
        return original(self, data, windows)

    monkeypatch.setattr(M3POAgent, "_world_model_loss", spy)
    batches = [collect(agent, env, 8) for _ in range(4)]
    widths = []
    for k, batch in enumerate(batches):
        seen_envs.clear()
        stats = agent.update(batch, step=16 * (k + 1))
        assert stats["ppo/first_ratio_error"] == 0.0  # the actor's ratio sees the current batch only
        widths.append(seen_envs[0][0])
        # Windows are drawn from the whole widened batch (a few minibatches reach an earlier batch's envs).
        assert max(w for _, w in seen_envs) < seen_envs[0][0]
    assert widths == [2, 4, 6, 6]  # the current batch's 2 envs, then 1 and 2 earlier batches beside them
    assert [b.obs.data_ptr() for b in agent._wm_history] == [b.obs.data_ptr() for b in batches[2:]]
    env.close()


def test_world_model_history_survives_a_checkpoint():
    env = make_vec_env("walker-walk", num_envs=2, seed=10)
    torch.manual_seed(0)
    _, agent = make_agent(env, wm={"history_batches": 3})
    for k in range(2):
        agent.update(collect(agent, env, 8), step=16 * (k + 1))
    batch = collect(agent, env, 8)
    torch.manual_seed(1)
    _, restored = make_agent(env, wm={"history_batches": 3})
    # A copy, as a checkpoint file gives: loading shares the optimizer's moment tensors otherwise.
    restored.load_state_dict(copy.deepcopy(agent.state_dict()))
    assert len(restored._wm_history) == 2
    agent.update(batch, step=48)
    restored.update(batch, step=48)
    for a, b in zip(agent.model.parameters(), restored.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    env.close()


def test_both_agents_act_with_the_one_act_output():
    # One type, defined below both agents; TD-MPC2 learns off-policy and leaves the densities and value unset.
    env = make_vec_env("cartpole-swingup", num_envs=2, seed=11)
    obs, task = torch.as_tensor(env.reset(seed=0)[0]), torch.as_tensor(env.task_ids)
    _, agent = make_agent(env)
    for plan in (True, False):
        out = agent.act(obs, task, plan=plan)
        assert type(out) is ActOutput and bool(out.stats) == plan
        assert out.log_prob.shape == out.behaviour_log_prob.shape == out.value.shape == (2,)
    cfg = tdmpc2_config(
        "cpu",
        latent_dim=16,
        enc_dim=32,
        mlp_dim=32,
        num_q=2,
        num_bins=21,
        planner={"num_samples": 16, "num_pi_trajs": 4, "num_elites": 4, "iterations": 2},
    )
    mask = torch.as_tensor(env.task_action_mask)
    td = TDMPC2Agent(cfg, env.obs_dim, env.act_dim, mask, torch.tensor([0.99]), "cpu")
    for plan in (True, False):
        out = td.act(obs, task, plan=plan)
        assert type(out) is ActOutput and out.action.shape == (2, env.act_dim) and bool(out.stats) == plan
        assert out.log_prob is None and out.behaviour_log_prob is None and out.value is None
    env.close()


def test_bonus_after_the_normalisation_keeps_both_guarantees_on_the_advantage_it_joins():
    # bonus.before_adv_norm=False: the bonus is clipped against each minibatch's normalised advantage,
    # the one it is added to, so |b| <= c|A_norm| and A_norm + b never flips A_norm's sign.
    env = make_vec_env("cartpole-swingup", num_envs=2, seed=2)
    cfg, agent = make_agent(env, bonus={"alpha0": 5.0, "scale": "std", "before_adv_norm": False})
    batch = collect(agent, env, 8)
    data = agent._advantages_and_bonus(batch, step=0)
    idx = torch.arange(16)
    adv, raw, bonus = agent._minibatch_advantage(data, idx, None)
    norm = data.adv_hat[idx]
    norm = (norm - norm.mean()) / (norm.std() + 1e-8)
    assert (raw != bonus).any()  # a weight this large must be clipped somewhere
    assert (bonus.abs() <= cfg.bonus.clip_factor * norm.abs() + 1e-6).all()
    assert (adv * norm >= 0).all()
    torch.testing.assert_close(adv, norm + bonus)
    stats = agent.update(batch, step=0)
    assert 0 < stats["bonus/clipped_share"] <= 1
    env.close()


def test_actor_and_entropy_gradients_do_not_reach_the_task_embedding():
    env = make_vec_env(["cartpole-swingup", "reacher-easy"], num_envs=2, seed=1)
    _, agent = make_agent(env)
    obs = torch.as_tensor(env.reset(seed=0)[0])
    task = torch.as_tensor(env.task_ids)
    dist = agent.model.dist(agent.model.encode(obs, task), task)
    action = dist.sample(agent.generator)
    (dist.log_prob(action).mean() + dist.entropy_estimate(agent.generator).mean()).backward()
    assert agent.model._task_emb.weight.grad is None
    assert agent.model._encoder[0].weight.grad is None
    assert all(p.grad is not None for p in agent.model.actor_parameters())
    env.close()


def test_update_kl_actor_counts_only_the_actor_weights():
    # A change of the task embedding alone (the model losses' doing) moves the policy's input, not the
    # actor: it counts in update_kl_encoder, and update_kl_actor stays exactly 0.
    env = make_vec_env(["cartpole-swingup", "reacher-easy"], num_envs=2, seed=1)
    _, agent = make_agent(env)
    obs = torch.as_tensor(env.reset(seed=0)[0]).repeat(4, 1)
    task = torch.as_tensor(env.task_ids).repeat(4)
    old = copy.deepcopy(agent.model).requires_grad_(False)
    actions = old.dist(old.encode(obs, task), task).mode()
    with torch.no_grad():
        agent.model._task_emb.weight.mul_(-0.5)
    drift = agent._policy_drift(old, obs, actions, task)
    assert drift["ppo/update_kl_actor"] == 0.0
    assert drift["ppo/update_kl_encoder"] > 0
    env.close()
