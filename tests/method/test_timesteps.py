from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from textboost_ext.method.timesteps import (
    TimestepSampler,
    log_snr,
    sample_timesteps,
    snr_from_alphas_cumprod,
    snr_timestep_weights,
    timestep_probabilities,
)

N_DRAWS = 200_000


def sd_alphas_cumprod() -> torch.Tensor:
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, dim=0)


def zero_terminal_snr(alphas_cumprod: torch.Tensor) -> torch.Tensor:
    # "Common Diffusion Noise Schedules and Sample Steps are Flawed": shift/scale sqrt(ᾱ) so ᾱ_T = 0
    s = alphas_cumprod.sqrt()
    s0, sT = s[0].clone(), s[-1].clone()
    return ((s - sT) * s0 / (s0 - sT)) ** 2


def binned_chisquare(samples: torch.Tensor, probs: torch.Tensor, bin_width: int = 20) -> float:
    counts = torch.bincount(samples, minlength=probs.numel()).double()
    obs = counts.view(-1, bin_width).sum(1)
    exp = probs.view(-1, bin_width).sum(1) * samples.numel()
    keep = exp > 0
    assert obs[~keep].sum() == 0, "samples fell where the probability is zero"
    return float(stats.chisquare(obs[keep].numpy(), exp[keep].numpy()).pvalue)


@pytest.fixture(scope="module")
def snr_draws() -> tuple[TimestepSampler, torch.Tensor]:
    sampler = TimestepSampler(sd_alphas_cumprod(), mode="snr")
    return sampler, sampler.sample(N_DRAWS, torch.Generator().manual_seed(0))


def test_log_snr_endpoints_of_sd_schedule() -> None:
    values = log_snr(sd_alphas_cumprod())
    assert values[0].item() == pytest.approx(7.07, abs=0.01)
    assert values[999].item() == pytest.approx(-5.36, abs=0.01)
    assert torch.all(values[1:] < values[:-1])
    snr = snr_from_alphas_cumprod(sd_alphas_cumprod())
    assert torch.allclose(snr.log(), values)


def test_analytic_moments_of_snr_distribution() -> None:
    p = TimestepSampler(sd_alphas_cumprod()).probabilities
    t = torch.arange(1000, dtype=torch.float64)
    assert p.dtype == torch.float64 and p.sum().item() == pytest.approx(1.0, abs=1e-12)
    assert p[0].item() == 0.0
    assert (t * p).sum().item() == pytest.approx(584, abs=1.0)
    median = int((torch.cumsum(p, 0) >= 0.5).nonzero()[0])
    assert abs(median - 616) <= 1
    assert p[500:].sum().item() == pytest.approx(0.62, abs=0.005)
    # w(t) = log SNR(0) - log SNR(t), normalised
    w = log_snr(sd_alphas_cumprod())[0] - log_snr(sd_alphas_cumprod())
    assert torch.allclose(p, w / w.sum())


def test_empirical_snr_draws_match_analytic(snr_draws) -> None:
    sampler, draws = snr_draws
    assert draws.dtype == torch.int64 and draws.device.type == "cpu" and draws.shape == (N_DRAWS,)
    assert int(draws.min()) >= 1  # p(0) = 0
    assert binned_chisquare(draws, sampler.probabilities) > 1e-3
    t = torch.arange(1000, dtype=torch.float64)
    sd = math.sqrt(float((sampler.probabilities * (t - sampler.mean()) ** 2).sum()) / N_DRAWS)
    assert abs(draws.double().mean().item() - 584.3) < 4 * sd
    assert (draws >= 500).double().mean().item() == pytest.approx(0.622, abs=0.005)
    assert abs(draws.double().median().item() - 616) <= 3


def test_uniform_mode_is_uniform_and_differs_from_snr(snr_draws) -> None:
    snr_sampler, snr_samples = snr_draws
    uniform = TimestepSampler(sd_alphas_cumprod(), mode="uniform")
    assert torch.allclose(uniform.probabilities, torch.full((1000,), 1e-3, dtype=torch.float64))
    draws = uniform.sample(N_DRAWS, torch.Generator().manual_seed(1))
    assert binned_chisquare(draws, uniform.probabilities) > 1e-3
    assert abs(draws.double().mean().item() - 499.5) < 3.0
    # each fails the other's distribution: snr cannot silently be uniform and vice versa
    assert binned_chisquare(snr_samples, uniform.probabilities) < 1e-12
    assert binned_chisquare(draws, snr_sampler.probabilities) < 1e-12


def test_min_max_limits() -> None:
    ac = sd_alphas_cumprod()
    sampler = TimestepSampler(ac, mode="snr", min_timestep=200, max_timestep=800)
    p = sampler.probabilities
    assert p[:201].sum() == 0 and p[800:].sum() == 0  # p(t_min) = 0 too
    w = log_snr(ac)[200] - log_snr(ac)[200:800]
    assert torch.allclose(p[200:800], w / w.sum())
    draws = sampler.sample(20_000, torch.Generator().manual_seed(2))
    assert int(draws.min()) > 200 and int(draws.max()) < 800
    uniform = TimestepSampler(ac, mode="uniform", min_timestep=200, max_timestep=800).sample(20_000, torch.Generator().manual_seed(2))
    assert int(uniform.min()) == 200 and int(uniform.max()) == 799
    weights = snr_timestep_weights(ac, 100, 300)
    assert weights[:100].sum() == 0 and weights[300:].sum() == 0 and weights[100] == 0 and torch.all(weights[101:300] > 0)


@pytest.mark.parametrize("mode", ["snr", "uniform"])
def test_min_equal_max_is_a_constant_timestep(mode: str) -> None:
    sampler = TimestepSampler(sd_alphas_cumprod(), mode=mode, min_timestep=400, max_timestep=400)
    assert torch.equal(sampler.sample(64, torch.Generator().manual_seed(0)), torch.full((64,), 400))
    # a one-timestep range holds t_min only, whose SNR weight is 0: falls back to that timestep
    one = TimestepSampler(sd_alphas_cumprod(), mode=mode, min_timestep=999, max_timestep=1000)
    assert torch.equal(one.sample(8), torch.full((8,), 999))


def test_zero_terminal_snr_schedule_is_finite() -> None:
    ac = zero_terminal_snr(sd_alphas_cumprod())
    assert ac[-1].item() == 0.0
    assert snr_from_alphas_cumprod(ac)[-1].item() == 0.0
    values = log_snr(ac)
    assert torch.isfinite(values).all() and values[-1] == values[-2]
    for mode in ("snr", "uniform"):
        p = timestep_probabilities(ac, mode)
        assert torch.isfinite(p).all() and (p >= 0).all() and p.sum().item() == pytest.approx(1.0)
    p = timestep_probabilities(ac, "snr")
    assert p[999] == p[998] and p[999] > 0
    draws = TimestepSampler(ac).sample(10_000, torch.Generator().manual_seed(3))
    assert int(draws.max()) <= 999
    # a schedule starting at ᾱ = 1 (SNR inf) is clamped the same way
    starts_at_one = torch.cat([torch.ones(1, dtype=torch.float64), sd_alphas_cumprod()[:-1]])
    assert torch.isfinite(timestep_probabilities(starts_at_one)).all()


def test_weights_depend_only_on_the_schedule_not_the_prediction_type() -> None:
    from diffusers import DDPMScheduler

    kw = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000)
    eps = DDPMScheduler(prediction_type="epsilon", **kw).alphas_cumprod
    v = DDPMScheduler(prediction_type="v_prediction", **kw).alphas_cumprod
    assert torch.equal(TimestepSampler(eps).probabilities, TimestepSampler(v).probabilities)
    # float32 scheduler values give the same distribution to within float32 precision
    assert torch.allclose(TimestepSampler(eps).probabilities, TimestepSampler(sd_alphas_cumprod()).probabilities, atol=1e-6)


def test_reproducible_with_generator() -> None:
    sampler = TimestepSampler(sd_alphas_cumprod())
    a = sampler.sample(100, torch.Generator().manual_seed(5))
    b = sampler.sample(100, torch.Generator().manual_seed(5))
    c = sampler.sample(100, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert sample_timesteps(sampler.probabilities, 0).shape == (0,)


@pytest.mark.parametrize(
    "kwargs",
    [dict(min_timestep=500, max_timestep=400), dict(max_timestep=1001), dict(min_timestep=-1), dict(min_timestep=1000, max_timestep=1000), dict(mode="lognormal")],
)
def test_invalid_settings_raise(kwargs) -> None:
    with pytest.raises(ValueError):
        TimestepSampler(sd_alphas_cumprod(), **kwargs)


@pytest.mark.parametrize("bad", [torch.tensor([0.5]), torch.tensor([0.9, 1.5]), torch.tensor([0.9, float("nan")]), torch.zeros(2, 3), torch.tensor([0.0, 0.0])])
def test_invalid_schedules_raise(bad: torch.Tensor) -> None:
    with pytest.raises(ValueError):
        TimestepSampler(bad)
