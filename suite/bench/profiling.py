"""Where the time of one training iteration goes: M3PO (cpu preset) and one TD-MPC2 agent step.

Used by ``m3po bench algos --profile`` (see docs/performance.md). For each setting it reports the
seconds per part (env stepping, planning, the update and its pieces, logging), the FLOPs per agent step
of acting and of updating (``torch.utils.flop_counter``: 2 FLOPs per multiply-add of every matmul,
forward and backward; elementwise ops not counted), the achieved GFLOP/s of each part and the matmul
peak of this machine measured in the same process (:func:`matmul_peak`).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode


def matmul_peak(threads: int | None = None, size: int = 1024, seconds: float = 1.0) -> float:
    """GFLOP/s of a float32 ``size x size`` matmul with the current threads (best of a few timed runs)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    out = torch.empty(size, size)
    for _ in range(3):
        torch.mm(a, b, out=out)
    best = 0.0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        for _ in range(4):
            torch.mm(a, b, out=out)
        best = max(best, 4 * 2 * size**3 / (time.perf_counter() - start) / 1e9)
    return best


def count_flops(fn: Callable[[], Any]) -> tuple[int, Any]:
    """FLOPs (matmuls, forward and backward) of ``fn()`` and its result."""
    counter = FlopCounterMode(display=False)
    with counter:
        result = fn()
    return counter.get_total_flops(), result


class Timers:
    """Seconds per named part, accumulated by wrapping bound methods (:meth:`wrap`)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def wrap(self, obj: Any, method: str, name: str) -> None:
        inner = getattr(obj, method)

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - start
                self.calls[name] += 1

        setattr(obj, method, timed)


class OpCounter(torch.utils._python_dispatch.TorchDispatchMode):
    """Counts the aten ops dispatched (forward and backward) while active."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        self.count += 1
        return func(*args, **(kwargs or {}))


def op_cost_us(repeats: int = 2000) -> float:
    """Microseconds of one tiny aten op (a 64-element add): the fixed cost every dispatched op pays."""
    x = torch.ones(64)
    for _ in range(100):
        x.add(x)
    start = time.perf_counter()
    for _ in range(repeats):
        x.add(x)
    return (time.perf_counter() - start) / repeats * 1e6


def _patch(timers: Timers, cls: type, method: str, name: str) -> Callable[[], None]:
    inner = getattr(cls, method)

    def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return inner(self, *args, **kwargs)
        finally:
            timers.seconds[name] += time.perf_counter() - start
            timers.calls[name] += 1

    setattr(cls, method, timed)
    return lambda: setattr(cls, method, inner)


def profile_m3po(
    num_envs: int, iterations: int = 2, rollout_len: int = 256, **overrides: Any
) -> dict[str, Any]:
    """Seconds per part of M3PO's ``cpu``-preset training (the last of ``iterations`` iterations counted
    apart from the first, which pays the warm-up), FLOPs per agent step of acting and updating."""
    import tempfile
    from pathlib import Path

    from m3po import trainer as trainer_pkg
    from m3po.agent import M3POAgent
    from m3po.registration import make_config
    from m3po.train import Trainer
    from m3po.trainer import base

    steps = iterations * rollout_len * num_envs
    cfg = make_config(
        "cpu", steps=steps, num_envs=num_envs, eval_episodes=0, checkpoint_every=0, eval_every=10**9,
        ppo={"rollout_len": rollout_len}, **overrides,
    )  # fmt: skip
    timers = Timers()
    undo = [
        _patch(timers, M3POAgent, "act", "act (plan)"),
        _patch(timers, M3POAgent, "update", "update"),
        _patch(timers, M3POAgent, "_advantages_and_bonus", "update/advantages+bonus"),
        _patch(timers, M3POAgent, "_actor_critic_losses", "update/actor+critic losses"),
        _patch(timers, M3POAgent, "_world_model_loss", "update/world-model loss"),
        _patch(timers, M3POAgent, "_optimizer_step", "update/backward+clip+adam"),
        _patch(timers, M3POAgent, "_minibatch_stats", "update/minibatch stats"),
        _patch(timers, M3POAgent, "_policy_drift", "update/policy drift"),
        _patch(timers, Trainer, "_collect", "collect"),
        _patch(timers, Trainer, "log_row", "logging"),
        _patch(timers, Trainer, "evaluate", "evaluation"),
    ]
    real_make = base.make_vec_env

    def make(*args: Any, **kwargs: Any) -> Any:
        env = real_make(*args, **kwargs)
        timers.wrap(env, "step", "env step")
        return env

    base.make_vec_env = make
    try:
        with tempfile.TemporaryDirectory() as tmp:
            trainer = Trainer(cfg, Path(tmp), progress=False)
            # the first iteration is warm-up: count from the second on
            original_iteration = trainer.iteration
            marks: list[float] = []

            def iteration(env: Any, cut: bool) -> None:
                if len(marks) == 1:
                    timers.seconds.clear()
                    timers.calls.clear()
                marks.append(time.perf_counter())
                original_iteration(env, cut)

            trainer.iteration = iteration
            start = time.perf_counter()
            trainer.run()
            wall_last = time.perf_counter() - marks[-1] if len(marks) > 1 else time.perf_counter() - start
            agent, obs = trainer.agent, trainer.obs
    finally:
        base.make_vec_env = real_make
        for u in undo:
            u()
    del trainer_pkg
    counted_iters = max(1, iterations - 1)
    agent_steps = counted_iters * rollout_len * num_envs
    seconds = {k: v / counted_iters for k, v in sorted(timers.seconds.items())}
    # acting and updating FLOPs and ops on the run's last state
    task_ids = torch.zeros(num_envs, dtype=torch.long)
    act_flops, _ = count_flops(lambda: agent.act(obs, task_ids))
    ops = OpCounter()
    with ops:
        agent.act(obs, task_ids)
    act_ops = ops.count
    batch = _fake_rollout(agent, obs, rollout_len, num_envs)
    import copy

    probe = copy.deepcopy(agent)
    update_flops, _ = count_flops(lambda: probe.update(batch, steps))
    probe = copy.deepcopy(agent)
    ops = OpCounter()
    with ops:
        probe.update(batch, steps)
    update_ops = ops.count
    return {
        "num_envs": num_envs,
        "rollout_len": rollout_len,
        "agent_steps_per_iteration": rollout_len * num_envs,
        "seconds_per_iteration": round(sum(v for k, v in seconds.items() if k in ("collect", "update")), 3),
        "seconds": {k: round(v, 4) for k, v in seconds.items()},
        "act_flops_per_step": act_flops / num_envs,
        "update_flops_per_step": update_flops / (rollout_len * num_envs),
        "act_ops_per_decision": act_ops,
        "update_ops_per_iteration": update_ops,
        "wall_last_iteration": round(wall_last, 3),
        "agent_steps_counted": agent_steps,
    }


def _fake_rollout(agent: Any, obs: torch.Tensor, T: int, E: int) -> Any:
    from m3po.agent import Rollout

    g = torch.Generator().manual_seed(0)
    A = agent.model.act_dim
    return Rollout(
        obs=obs.expand(T, E, -1) + 0.01 * torch.randn(T, E, obs.shape[-1], generator=g),
        actions=torch.rand(T, E, A, generator=g) * 2 - 1,
        rewards=torch.rand(T, E, generator=g),
        terminated=torch.zeros(T, E, dtype=torch.bool),
        truncated=torch.zeros(T, E, dtype=torch.bool),
        next_obs=obs.expand(T, E, -1) + 0.01 * torch.randn(T, E, obs.shape[-1], generator=g),
        log_prob=torch.zeros(T, E),
        behaviour_log_prob=torch.zeros(T, E),
        task=torch.zeros(E, dtype=torch.long),
    )


def profile_tdmpc2(steps: int = 40, obs_dim: int = 5, act_dim: int = 1, **overrides: Any) -> dict[str, Any]:
    """Seconds of one TD-MPC2 ``cpu``-preset agent step (plan for one env + one update of a batch)."""
    from baselines.tdmpc2.agent import TDMPC2Agent
    from baselines.tdmpc2.buffer import Batch
    from baselines.tdmpc2.registration import make_config

    cfg = make_config("cpu", **overrides)
    torch.manual_seed(0)
    agent = TDMPC2Agent(cfg, obs_dim, act_dim, torch.ones(1, act_dim), torch.tensor([0.99]), "cpu")
    obs, task = torch.randn(1, obs_dim), torch.zeros(1, dtype=torch.long)
    H, B = cfg.planner.horizon, cfg.batch_size
    g = torch.Generator().manual_seed(0)
    batch = Batch(
        torch.randn(H + 1, B, obs_dim, generator=g),
        torch.rand(H, B, act_dim, generator=g) * 2 - 1,
        torch.rand(H, B, 1, generator=g),
        torch.zeros(B).long(),
    )
    for _ in range(3):
        agent.act(obs, task)
        agent.update(batch)
    timers = Timers()
    for name in ("_td_target", "_model_update", "_policy_update", "_update_stats"):
        timers.wrap(agent, name, f"update/{name.strip('_')}")
    for _ in range(steps):
        start = time.perf_counter()
        agent.act(obs, task)
        mid = time.perf_counter()
        agent.update(batch)
        end = time.perf_counter()
        timers.seconds["plan"] += mid - start
        timers.seconds["update"] += end - mid
    act_flops, _ = count_flops(lambda: agent.act(obs, task))
    update_flops, _ = count_flops(lambda: agent.update(batch))
    counts = []
    for fn in (lambda: agent.act(obs, task), lambda: agent.update(batch)):
        ops = OpCounter()
        with ops:
            fn()
        counts.append(ops.count)
    return {
        "seconds": {k: round(v / steps, 5) for k, v in sorted(timers.seconds.items())},
        "act_flops_per_step": act_flops,
        "update_flops_per_step": update_flops,
        "act_ops_per_decision": counts[0],
        "update_ops_per_update": counts[1],
    }


def summarise(part: dict[str, Any], peak: float, op_us: float, act: str = "act (plan)") -> dict[str, Any]:
    """Achieved GFLOP/s of acting and updating, their share of the peak, and the per-op overhead share."""
    s = part["seconds"]
    per_steps = part.get("agent_steps_per_iteration", 1)
    act_s, upd_s = s.get(act, s.get("plan", 0.0)), s["update"]
    out = {}
    for name, secs, flops, ops in (
        (
            "act",
            act_s,
            part["act_flops_per_step"] * per_steps,
            part["act_ops_per_decision"] * (per_steps // part.get("num_envs", 1)),
        ),
        (
            "update",
            upd_s,
            part["update_flops_per_step"] * per_steps,
            part.get("update_ops_per_iteration", part.get("update_ops_per_update")),
        ),
    ):
        gflops = flops / secs / 1e9 if secs else 0.0
        out[name] = {
            "seconds": round(secs, 4),
            "gflop": round(flops / 1e9, 4),
            "gflops_per_s": round(gflops, 2),
            "share_of_peak": round(gflops / peak, 4),
            "ops": ops,
            "overhead_share": round(min(1.0, ops * op_us * 1e-6 / secs), 3) if secs else None,
        }
    return out


def run() -> dict[str, Any]:
    """The profile of docs/performance.md: the matmul peak, the op cost, M3PO at 8 and 32 envs, TD-MPC2."""
    peak, op_us = matmul_peak(), op_cost_us()
    out: dict[str, Any] = {
        "threads": torch.get_num_threads(),
        "peak_gflops": round(peak, 1),
        "op_us": round(op_us, 2),
    }
    for num_envs in (8, 32):
        part = profile_m3po(num_envs)
        part["summary"] = summarise(part, peak, op_us)
        out[f"m3po_{num_envs}"] = part
    part = profile_tdmpc2()
    part["summary"] = summarise(part, peak, op_us)
    out["tdmpc2"] = part
    return out
