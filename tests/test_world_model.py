"""The world model's running observation statistics (``model.obs_norm``)."""

from __future__ import annotations

import torch

from m3po.registration import make_config
from m3po.world_model import WorldModel


def test_running_obs_stats_match_the_batch_statistics_per_task_and_zero_padded_dims():
    cfg = make_config("cpu", model={"obs_norm": True})
    model = WorldModel(cfg.model, 3, 2, torch.tensor([[1.0, 1.0], [1.0, 0.0]]))
    generator = torch.Generator().manual_seed(0)
    first = torch.randn(100, 3, generator=generator) * 5 + 2
    second = torch.randn(60, 3, generator=generator) * 0.1 - 1
    second[:, 2] = 0.0  # a padded observation dim of the second task
    obs = torch.cat([first, second])
    task = torch.cat([torch.zeros(100), torch.ones(60)]).long()
    before = model.normalize_obs(obs, task)
    torch.testing.assert_close(before, obs.clamp(-10, 10), rtol=0, atol=1e-6)  # no data yet: identity
    order = torch.randperm(160, generator=generator)
    model.update_obs_stats(obs[order[:70]], task[order[:70]])  # two batches, tasks interleaved
    model.update_obs_stats(obs[order[70:]], task[order[70:]])
    for t, x in ((0, first), (1, second)):
        torch.testing.assert_close(model.obs_mean[t], x.mean(0))
        torch.testing.assert_close(model.obs_var[t], x.var(0, unbiased=False))
    normalized = model.normalize_obs(obs, task)
    torch.testing.assert_close(normalized[:100].std(0), torch.ones(3), rtol=0.02, atol=0)
    assert torch.all(normalized[100:, 2] == 0)
    assert torch.all(normalized.abs() <= 10)


def test_obs_norm_off_leaves_observations_untouched():
    cfg = make_config("cpu", model={"obs_norm": False})
    model = WorldModel(cfg.model, 3, 1, torch.ones(1, 1))
    obs = torch.randn(5, 3) * 100
    assert model.normalize_obs(obs, None) is obs
