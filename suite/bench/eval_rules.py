"""``m3po bench eval-rules``: re-evaluate finished M3PO runs under each evaluation rule.

The same trained weights (a run's latest checkpoint) are evaluated with the shared protocol three ways:
``elite`` (the planner executes one elite drawn by its weight, TD-MPC2's rule and the default),
``mean`` (the planner executes MPPI's weighted mean, ``planner.eval_action=mean``) and ``prior`` (the
prior's mode alone, ``eval_planner=False``). Each rule sees the same evaluation episodes (same seeds),
so the differences are paired. ``--set KEY=VALUE`` (repeatable) adds a fourth rule, ``set``: the run's
config with those overrides (e.g. a larger planner at evaluation only), evaluated as that config says
(``eval_planner``, ``planner.eval_action``; the ``elite`` rule's unless overridden). Only the model's
weights are loaded, so runs from older commits (with another optimizer layout) can be read. Prints one
JSON line: per run its step and each rule's score, and per rule the mean over runs.
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path
from typing import Any

import torch

from m3po.agent import M3POAgent
from m3po.config import ConfigError, M3POConfig, build_config, check_overrides, merge, validate
from m3po.envs import make_vec_env
from m3po.envs.registry import resolve_tasks
from m3po.errors import RunDirectoryError
from m3po.evaluation import evaluate_planning_agent
from m3po.train import task_discounts
from m3po.trainer.run_record import CHECKPOINT
from suite.bench import at_least

RULES = ("elite", "mean", "prior")
SET_RULE = "set"  # the extra rule of --set overrides


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


def _parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings as a nested dict, values parsed as ``m3po train with`` parses them."""
    from sacred.arg_parser import get_config_updates

    check_overrides(overrides)
    return get_config_updates(overrides)[0]


def _rule_config(values: dict[str, Any], rule: str, overrides: dict[str, Any]) -> M3POConfig:
    """The run's config as ``rule`` evaluates it (validated: a bad override fails here)."""
    rule_values = copy.deepcopy(values)
    rule_values["planner"]["eval_action"] = "mean" if rule == "mean" else "elite"
    if rule == SET_RULE:
        merge(rule_values, overrides)
    return validate(build_config(M3POConfig, rule_values))


def evaluate_run(
    run_dir: Path,
    values: dict[str, Any],
    episodes: int | None = None,
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Scores of one run's latest checkpoint under every rule in :data:`RULES` (and ``set``).

    :param run_dir: an M3PO run directory
    :param values: its recorded config, as :func:`_check_run` returns it
    :param episodes: evaluation episodes (None: the run's own ``eval_episodes``)
    :param overrides: nested config overrides of the extra ``set`` rule (None or empty: no such rule)
    :return: ``{"step": int, "elite": float, "mean": float, "prior": float[, "set": float]}``
    """
    checkpoint = torch.load(run_dir / "checkpoints" / CHECKPOINT, map_location="cpu", weights_only=False)
    step = int(checkpoint["state"]["step"])
    device = torch.device("cpu")
    out: dict[str, Any] = {"step": step}
    env = make_vec_env(values["task"], len(resolve_tasks(values["task"])), seed=values["seed"])  # sizes only
    try:
        mask = torch.as_tensor(env.task_action_mask)
        for rule in RULES + ((SET_RULE,) if overrides else ()):
            cfg = _rule_config(values, rule, overrides or {})
            # A fresh agent per rule: its generator starts from the run seed each time, so every rule
            # draws the same planner noise and the comparison stays paired.
            discount = task_discounts(cfg, env.task_infos)  # the run's (ppo.discount), as it trained
            agent = M3POAgent(cfg, env.obs_dim, env.act_dim, mask, discount, device)
            agent.model.load_state_dict(checkpoint["agent"]["model"])
            # The set rule plans as its config says; the others as their names say.
            plan = cfg.eval_planner if rule == SET_RULE else rule != "prior"
            rows = evaluate_planning_agent(
                agent, env.tasks, cfg.seed, step, episodes or cfg.eval_episodes, plan, device
            )
            out[rule] = round(sum(row["score"] for row in rows) / len(rows), 1)
    finally:
        env.close()
    return out


def run(
    run_dirs: list[str], episodes: int | None = None, threads: int = 1, overrides: list[str] | None = None
) -> dict[str, Any]:
    """Every run under every rule; see the module docstring.

    :param overrides: ``KEY=VALUE`` config overrides of the extra ``set`` rule (``--set``)
    """
    if not run_dirs:
        raise ConfigError("eval-rules needs --runs DIR[,DIR...] (M3PO run directories)")
    parsed = _parse_overrides(overrides or [])
    # Every bad directory and override fails before any evaluation starts.
    configs = {Path(d): _check_run(Path(d)) for d in run_dirs}
    for values in configs.values():
        _rule_config(values, SET_RULE, parsed)
    torch.set_num_threads(threads)
    runs = {str(path): evaluate_run(path, values, episodes, parsed) for path, values in configs.items()}
    rules = RULES + ((SET_RULE,) if parsed else ())
    means = {rule: round(sum(r[rule] for r in runs.values()) / len(runs), 1) for rule in rules}
    return {"runs": runs, "mean": means, **({"set": overrides} if parsed else {})}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", default="", help="comma list of M3PO run directories")
    parser.add_argument("--episodes", type=at_least(int), default=0, help="episodes (0: the run's own)")
    parser.add_argument("--threads", type=at_least(int), default=1, help="torch threads")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override of an extra rule (repeat)",
    )


def main(args: argparse.Namespace) -> dict[str, Any]:
    runs = [d for d in args.runs.split(",") if d]
    return run(runs, episodes=args.episodes or None, threads=args.threads, overrides=args.set)
