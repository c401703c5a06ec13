"""The evaluation protocol every algorithm follows, and the seeds of a run's episodes.

Evaluation (:func:`evaluate`) takes a policy callable ``(obs, task_ids) -> actions`` over numpy
batches and runs ``episodes`` fresh episodes per task on environments seeded apart from training
(``seed + EVAL_SEED_OFFSET``, and the step), so that every algorithm is scored the same way: the
return summed over the episode, and for Meta-World success at the episode's last step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from m3po.envs import make_vec_env
from m3po.rng import drawing_from

EVAL_SEED_OFFSET = 1_000_003  # evaluation episodes never reuse a training seed
# (observations (n, obs_dim) float32, task ids (n,) int64) -> actions (n, act_dim), deterministic
Policy = Callable[[np.ndarray, np.ndarray], np.ndarray]


def episode_seed(seed: int, step: int) -> int:
    """Seed of the episodes started at ``step`` of a run seeded ``seed``."""
    return (seed * 1_000_003 + step) % (2**31 - 1)


def evaluate(
    policy: Policy,
    tasks: Sequence[str],
    seed: int,
    step: int,
    episodes: int,
    on_round_start: Callable[[], None] | None = None,
) -> list[dict[str, Any]]:
    """The evaluation protocol: ``episodes`` fresh episodes per task with ``policy``'s actions.

    One task: ``episodes`` envs at once. A task set: one env per task, ``episodes`` rounds. Envs are
    seeded from ``seed + EVAL_SEED_OFFSET`` and ``step`` (never a training seed). The policy must be
    deterministic (its evaluation mode); padded action dims it returns are zeroed by the env.

    :param policy: ``(obs (n, obs_dim) float32, task_ids (n,) int64) -> actions (n, act_dim)``
    :param tasks: the run's tasks (their order gives the task ids)
    :param seed: the run seed
    :param step: the agent step being evaluated (recorded, and part of the episodes' seeds)
    :param episodes: episodes per task (0: no evaluation, an empty list)
    :param on_round_start: called before each round's episodes start (e.g. to clear a warm start)
    :return: one row per task: step, task, return (mean), success (mean, Meta-World; else None),
        score (return, or success in percent), episodes
    """
    if episodes == 0:
        return []
    n_tasks = len(tasks)
    parallel = episodes if n_tasks == 1 else 1
    rounds = math.ceil(episodes / parallel)
    env = make_vec_env(list(tasks), n_tasks * parallel, seed=seed + EVAL_SEED_OFFSET)
    returns: dict[str, list[float]] = {t: [] for t in env.tasks}
    successes: dict[str, list[float]] = {t: [] for t in env.tasks}
    try:
        for r in range(rounds):
            obs = env.reset(seed=episode_seed(seed + EVAL_SEED_OFFSET, step + r))[0]
            if on_round_start is not None:
                on_round_start()
            total = np.zeros(env.num_envs)
            done = np.zeros(env.num_envs, dtype=bool)
            last_success = np.full(env.num_envs, np.nan)
            while not done.all():
                action = np.asarray(policy(obs, env.task_ids))
                obs, reward, terminated, truncated, info = env.step(action)
                total += np.where(done, 0.0, reward)
                ended = (terminated | truncated) & ~done
                last_success[ended] = info["success"][ended]
                done |= terminated | truncated
            for i, task in enumerate(env.env_tasks):
                returns[task].append(float(total[i]))
                successes[task].append(float(last_success[i]))
    finally:
        env.close()
    rows = []
    for info in env.task_infos:
        rets = returns[info.name][:episodes]
        succ = successes[info.name][:episodes]
        is_success = info.score_kind == "success"
        rows.append(
            {
                "step": step,
                "task": info.name,
                "return": float(np.mean(rets)),
                "success": float(np.mean(succ)) if is_success else None,
                "score": 100.0 * float(np.mean(succ)) if is_success else float(np.mean(rets)),
                "episodes": len(rets),
            }
        )
    return rows


def evaluate_planning_agent(
    agent: Any, tasks: Sequence[str], seed: int, step: int, episodes: int, plan: bool, device: torch.device
) -> list[dict[str, Any]]:
    """:func:`evaluate` for an agent with ``act(obs, task_ids, eval_mode, plan)`` and a planner warm start
    (M3PO, TD-MPC2): every evaluation round starts without a warm start, and training's is kept aside.

    The planner's noise (and TD-MPC2's choice of Q heads) in evaluation comes from the agent's
    ``generator`` seeded from (seed, step) alone (:func:`m3po.rng.drawing_from`), and the generator is
    left where training had it: so evaluations at the same step are paired across runs of the same
    seed, and training never depends on ``eval_every`` or ``eval_episodes``.

    :param agent: the agent (``act`` returns an object with ``action``; ``swap_warm_start`` as M3PO's;
        ``generator``, the torch generator it acts with)
    :param plan: act with the planner (False: the prior's mode alone)
    :return: the evaluation rows, as :func:`evaluate`'s
    """

    def policy(obs: np.ndarray, task_ids: np.ndarray) -> np.ndarray:
        obs_t, task_t = torch.as_tensor(obs, device=device), torch.as_tensor(task_ids, device=device)
        return agent.act(obs_t, task_t, eval_mode=True, plan=plan).action.cpu().numpy()

    saved_plan = agent.swap_warm_start(None)
    try:
        with drawing_from(agent.generator, episode_seed(seed + EVAL_SEED_OFFSET, step)):
            return evaluate(
                policy, tasks, seed, step, episodes, on_round_start=lambda: agent.swap_warm_start(None)
            )
    finally:
        agent.swap_warm_start(saved_plan)
