"""The step's small pieces: timestep draws, targets, SDXL time ids, the per-sample loss."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDPMScheduler

from textboost_ext.host import diffusion


def _scheduler(prediction_type: str) -> DDPMScheduler:
    return DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", prediction_type=prediction_type)


def test_uniform_timesteps_range_and_constant() -> None:
    t = diffusion.uniform_timesteps(4096, 100, 200, torch.Generator().manual_seed(0))
    assert t.dtype == torch.long and int(t.min()) == 100 and int(t.max()) == 199
    assert diffusion.uniform_timesteps(3, 500, 500, torch.Generator()).tolist() == [500, 500, 500]


def test_checked_timesteps_rejects_bad_draws() -> None:
    ok = diffusion.checked_timesteps(torch.tensor([0, 999], dtype=torch.int32), 2, 0, 1000, "ext")
    assert ok.dtype == torch.long
    with pytest.raises(ValueError, match=r"ext: sample_timesteps returned \(3,\)"):
        diffusion.checked_timesteps(torch.zeros(3, dtype=torch.long), 2, 0, 1000, "ext")
    with pytest.raises(ValueError, match=r"torch.float32"):
        diffusion.checked_timesteps(torch.zeros(2), 2, 0, 1000, "ext")
    with pytest.raises(ValueError, match=r"outside \[10, 20\)"):
        diffusion.checked_timesteps(torch.tensor([10, 20]), 2, 10, 20, "ext")


def test_targets_epsilon_and_velocity() -> None:
    latents, noise = torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)
    t = torch.tensor([10, 900])
    assert diffusion.diffusion_target(_scheduler("epsilon"), latents, noise, t) is noise
    v = diffusion.diffusion_target(_scheduler("v_prediction"), latents, noise, t)
    abar = _scheduler("v_prediction").alphas_cumprod[t].view(-1, 1, 1, 1)
    torch.testing.assert_close(v, abar.sqrt() * noise - (1 - abar).sqrt() * latents)
    with pytest.raises(ValueError, match=r"prediction_type 'sample'"):
        diffusion.diffusion_target(_scheduler("sample"), latents, noise, t)


def test_sdxl_time_ids_and_per_sample_mse() -> None:
    ids = diffusion.sdxl_time_ids([(600, 800), (64, 64)], [(0, 12), (0, 0)], (64, 64), torch.device("cpu"), torch.float32)
    assert ids.tolist() == [[600, 800, 0, 12, 64, 64], [64, 64, 0, 0, 64, 64]]
    pred = torch.zeros(2, 4, 2, 2, dtype=torch.bfloat16)
    target = torch.stack([torch.ones(4, 2, 2), 2 * torch.ones(4, 2, 2)])
    loss = diffusion.per_sample_mse(pred, target)
    assert loss.dtype == torch.float32 and loss.tolist() == [1.0, 4.0]
