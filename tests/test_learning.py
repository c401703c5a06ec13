"""M3PO learns: a short, deterministic CI run on an easy task beats a random policy by far, and the
default keeps PPO's ratio mostly inside its clip range (the spec's "known pitfall": all clipped).

Longer learning checks (100k steps, 3 tasks, 3 seeds) are benchmarks, not tests: see the README.
"""

from __future__ import annotations

import json

import pytest

from m3po.config import make_config
from m3po.train import Trainer

# cartpole-swingup, 500-step episodes: uniformly random actions score 40 +- 30 (10 episodes, measured
# with m3po.envs.make_env); stable-baselines3's PPO scored 240-270 after 10-20k steps on this machine.
# This run (seed 1, CPU, 2 threads) measured 146 at step 0 and 358 after 20k steps, every iteration's
# clip share at most 0.27 (log-sigma ceiling 0.5; with TD-MPC2's 2 it measured 264); the bar leaves room
# for float differences on other CPUs while staying five times the random policy's score.
RANDOM_POLICY_SCORE = 40.0
REQUIRED_SCORE = 200.0
MAX_CLIP_SHARE = 0.5  # share of PPO ratios outside [1 - eps, 1 + eps] in any iteration (issue 8's target)


@pytest.mark.slow
def test_m3po_learns_cartpole_swingup_in_20k_steps(tmp_path):
    cfg = make_config("cpu", task="cartpole-swingup", steps=20_480, eval_every=0, eval_episodes=5, threads=2)
    summary = Trainer(cfg, tmp_path, progress=False).run()
    evals = [json.loads(line) for line in (tmp_path / "eval.jsonl").read_text().splitlines()]
    first, last = evals[0]["score"], evals[-1]["score"]
    assert summary["final_score"] == last
    assert REQUIRED_SCORE >= 5 * RANDOM_POLICY_SCORE
    print(f"cartpole-swingup: score {first:.0f} at step 0, {last:.0f} after 20k steps")
    assert last >= REQUIRED_SCORE, f"score {last:.0f} after 20k steps (start {first:.0f})"
    assert last > first
    train = [json.loads(line) for line in (tmp_path / "train.jsonl").read_text().splitlines()]
    clip_shares = [row["ppo/clip_fraction"] for row in train]
    print("clip share per iteration:", [round(c, 2) for c in clip_shares])
    assert max(clip_shares) < MAX_CLIP_SHARE, f"clip shares {clip_shares}"
