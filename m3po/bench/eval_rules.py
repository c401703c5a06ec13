"""``m3po bench eval-rules``: re-evaluate finished M3PO runs under each evaluation rule.

The same trained weights (a run's latest checkpoint) are evaluated with the shared protocol three ways:
``elite`` (the planner executes one elite drawn by its weight, TD-MPC2's rule and the default),
``mean`` (the planner executes MPPI's weighted mean, ``planner.eval_action=mean``) and ``prior`` (the
prior's mode alone, ``eval_planner=False``). Each rule sees the same evaluation episodes (same seeds),
so the differences are paired. Only the model's weights are loaded, so runs from older commits (with
another optimizer layout) can be read. Prints one JSON line: per run its step and the three scores, and
per rule the mean over runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from m3po.agent import M3POAgent
from m3po.config import ConfigError, M3POConfig, build_config, validate
from m3po.envs import make_vec_env
from m3po.envs.registry import resolve_tasks
from m3po.errors import RunDirectoryError
from m3po.runs import CHECKPOINT, evaluate_planning_agent

RULES = ("elite", "mean", "prior")


def _check_run(run_dir: Path) -> dict[str, Any]:
    """The run's config dict; a clear error if ``run_dir`` is not a finished-enough M3PO run."""
    config_path, checkpoint = run_dir / "config.json", run_dir / "checkpoints" / CHECKPOINT
    if not config_path.is_file() or not checkpoint.is_file():
        raise RunDirectoryError(
            f"{run_dir} is not an M3PO run directory with a checkpoint (needs config.json and "
            f"checkpoints/{CHECKPOINT})"
        )
    values = json.loads(config_path.read_text())
    algo = values.pop("algo", "m3po")
    if algo != "m3po":
        raise RunDirectoryError(f"{run_dir} is a run of {algo!r}; eval-rules reads M3PO runs only")
    return values


def evaluate_run(run_dir: Path, values: dict[str, Any], episodes: int | None = None) -> dict[str, Any]:
    """Scores of one run's latest checkpoint under every rule in :data:`RULES`.

    :param run_dir: an M3PO run directory
    :param values: its recorded config, as :func:`_check_run` returns it
    :param episodes: evaluation episodes (None: the run's own ``eval_episodes``)
    :return: ``{"step": int, "elite": float, "mean": float, "prior": float}``
    """
    checkpoint = torch.load(run_dir / "checkpoints" / CHECKPOINT, map_location="cpu", weights_only=False)
    step = int(checkpoint["state"]["step"])
    device = torch.device("cpu")
    out: dict[str, Any] = {"step": step}
    env = make_vec_env(values["task"], len(resolve_tasks(values["task"])), seed=values["seed"])  # sizes only
    try:
        discount = torch.tensor([info.discount for info in env.task_infos])
        mask = torch.as_tensor(env.task_action_mask)
        for rule in RULES:
            rule_values = json.loads(json.dumps(values))
            rule_values["planner"]["eval_action"] = "mean" if rule == "mean" else "elite"
            cfg: M3POConfig = validate(build_config(M3POConfig, rule_values))
            # A fresh agent per rule: its generator starts from the run seed each time, so every rule
            # draws the same planner noise and the comparison stays paired.
            agent = M3POAgent(cfg, env.obs_dim, env.act_dim, mask, discount, device)
            agent.model.load_state_dict(checkpoint["agent"]["model"])
            rows = evaluate_planning_agent(
                agent, env.tasks, cfg.seed, step, episodes or cfg.eval_episodes, rule != "prior", device
            )
            out[rule] = round(sum(row["score"] for row in rows) / len(rows), 1)
    finally:
        env.close()
    return out


def run(run_dirs: list[str], episodes: int | None = None, threads: int = 1) -> dict[str, Any]:
    """Every run under every rule; see the module docstring."""
    if not run_dirs:
        raise ConfigError("eval-rules needs --runs DIR[,DIR...] (M3PO run directories)")
    # Every bad directory fails before any evaluation starts.
    configs = {Path(d): _check_run(Path(d)) for d in run_dirs}
    torch.set_num_threads(threads)
    runs = {str(path): evaluate_run(path, values, episodes) for path, values in configs.items()}
    means = {rule: round(sum(r[rule] for r in runs.values()) / len(runs), 1) for rule in RULES}
    return {"runs": runs, "mean": means}
