"""SNR-weighted and uniform timestep sampling (TextBoost, method.md "SNR-weighted timestep sampling").

Text conditioning matters most at high noise, so timesteps are drawn with probability proportional to

    w(t) = log SNR(t_min) - log SNR(t),   SNR(t) = ᾱ_t / (1 - ᾱ_t),

over the allowed range ``[min_timestep, max_timestep)`` (zero outside), where ``t_min`` is the first
allowed timestep; so ``p(t_min) = 0`` and the weight grows as log-SNR falls. On SD's scaled-linear
schedule this gives mean t ≈ 584 and P(t ≥ 500) ≈ 0.62 instead of 499.5 and 0.5.

The weights depend only on the noise schedule (``alphas_cumprod``), never on the prediction type:
epsilon and v-prediction models with the same schedule sample the same timesteps.

All arithmetic is float64 on CPU: the distribution is computed once, and float32 log-SNR near ᾱ = 1
loses digits that matter for p(t) at small t.
"""

from __future__ import annotations

from typing import Literal

import torch

TimestepMode = Literal["snr", "uniform"]
TIMESTEP_MODES: tuple[str, ...] = ("snr", "uniform")


def snr_from_alphas_cumprod(alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """SNR(t) = ᾱ_t / (1 − ᾱ_t) in float64. Unclamped: ᾱ = 0 gives 0 and ᾱ = 1 gives inf."""
    ac = _check_alphas_cumprod(alphas_cumprod)
    return ac / (1.0 - ac)


def log_snr(alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """log SNR(t) in float64, finite everywhere.

    A zero-terminal-SNR schedule has ᾱ_T = 0 (log SNR = −inf) and a schedule may start at ᾱ = 1
    (+inf). Non-finite values are clamped to the smallest / largest finite log-SNR of the schedule,
    so the endpoint gets the same weight as its neighbour instead of an infinite (or arbitrarily
    eps-dependent) one.
    """
    ac = _check_alphas_cumprod(alphas_cumprod)
    with torch.no_grad():
        values = torch.log(ac) - torch.log1p(-ac)
    finite = torch.isfinite(values)
    if not bool(finite.any()):
        raise ValueError("alphas_cumprod: every value is 0 or 1, so log-SNR is infinite everywhere; not a noise schedule")
    lo, hi = values[finite].min(), values[finite].max()
    return torch.where(values == float("-inf"), lo, torch.where(values == float("inf"), hi, values))


def snr_timestep_weights(
    alphas_cumprod: torch.Tensor, min_timestep: int = 0, max_timestep: int | None = None
) -> torch.Tensor:
    """Unnormalised w(t) = log SNR(t_min) − log SNR(t) on ``[min_timestep, max_timestep)``, 0 elsewhere.

    Returns float64 [T], finite and ≥ 0 (negative values, possible only if a schedule's log-SNR
    rises, are clipped to 0). ``min_timestep == max_timestep`` is a constant timestep: weight 1 there.
    """
    n = _check_alphas_cumprod(alphas_cumprod).numel()
    lo, hi = _check_range(n, min_timestep, max_timestep)
    weights = torch.zeros(n, dtype=torch.float64)
    if lo == hi:
        weights[lo] = 1.0
        return weights
    values = log_snr(alphas_cumprod)
    weights[lo:hi] = (values[lo] - values[lo:hi]).clamp_min(0.0)
    return weights


def timestep_probabilities(
    alphas_cumprod: torch.Tensor,
    mode: TimestepMode = "snr",
    min_timestep: int = 0,
    max_timestep: int | None = None,
) -> torch.Tensor:
    """Normalised p(t), float64 [T], summing to 1; zero outside ``[min_timestep, max_timestep)``.

    ``min_timestep == max_timestep`` puts all mass on that timestep (kohya pins validation timesteps
    this way). If the SNR weights of a non-empty range are all zero (a one-timestep range, where
    t = t_min has w = 0), the range is sampled uniformly.
    """
    n = _check_alphas_cumprod(alphas_cumprod).numel()
    lo, hi = _check_range(n, min_timestep, max_timestep)
    if mode == "snr":
        weights = snr_timestep_weights(alphas_cumprod, lo, hi)
    elif mode == "uniform":
        weights = torch.zeros(n, dtype=torch.float64)
        weights[lo : max(hi, lo + 1)] = 1.0
    else:
        raise ValueError(f"timestep_sampling: unknown mode {mode!r}; use one of {TIMESTEP_MODES}")
    total = weights.sum()
    if total <= 0:
        weights[lo : max(hi, lo + 1)] = 1.0
        total = weights.sum()
    return weights / total


def sample_timesteps(
    probabilities: torch.Tensor, batch_size: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Draw ``batch_size`` timesteps i.i.d. from ``probabilities`` (``torch.multinomial`` with replacement).

    Returns int64 on CPU. A CUDA generator is honoured: the draw runs on its device and moves back.
    """
    if batch_size < 0:
        raise ValueError(f"batch_size must be >= 0, got {batch_size}")
    if probabilities.dim() != 1 or probabilities.numel() == 0:
        raise ValueError(f"probabilities must be a non-empty 1-D tensor, got shape {tuple(probabilities.shape)}")
    if batch_size == 0:
        return torch.zeros(0, dtype=torch.int64)
    device = generator.device if generator is not None else probabilities.device
    draws = torch.multinomial(probabilities.to(device), batch_size, replacement=True, generator=generator)
    return draws.to("cpu", torch.int64)


class TimestepSampler:
    """Timestep sampler for one noise schedule: ``sample(batch_size, generator)`` -> int64 CPU [B].

    ``mode="snr"`` (TextBoost default) or ``"uniform"``; timesteps lie in ``[min_timestep,
    max_timestep)``, ``max_timestep=None`` meaning the schedule length. ``min_timestep ==
    max_timestep`` always returns that timestep. Same weights for epsilon and v-prediction models.
    """

    def __init__(
        self,
        alphas_cumprod: torch.Tensor,
        mode: TimestepMode = "snr",
        min_timestep: int = 0,
        max_timestep: int | None = None,
    ) -> None:
        ac = _check_alphas_cumprod(alphas_cumprod)
        self.mode = mode
        self.num_train_timesteps = ac.numel()
        self.min_timestep, self.max_timestep = _check_range(ac.numel(), min_timestep, max_timestep)
        self.probabilities = timestep_probabilities(ac, mode, self.min_timestep, self.max_timestep)

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return sample_timesteps(self.probabilities, batch_size, generator)

    def mean(self) -> float:
        """Expected timestep under this sampler (for logs and metadata)."""
        t = torch.arange(self.num_train_timesteps, dtype=torch.float64)
        return float((t * self.probabilities).sum())

    def __repr__(self) -> str:
        return (
            f"TimestepSampler(mode={self.mode!r}, range=[{self.min_timestep}, {self.max_timestep}), "
            f"T={self.num_train_timesteps}, mean_t={self.mean():.1f})"
        )


def _check_alphas_cumprod(alphas_cumprod: torch.Tensor) -> torch.Tensor:
    if not isinstance(alphas_cumprod, torch.Tensor):
        alphas_cumprod = torch.as_tensor(alphas_cumprod)
    if alphas_cumprod.dim() != 1 or alphas_cumprod.numel() < 2:
        raise ValueError(f"alphas_cumprod must be 1-D with at least 2 entries, got shape {tuple(alphas_cumprod.shape)}")
    ac = alphas_cumprod.detach().to("cpu", torch.float64)
    if not bool(torch.isfinite(ac).all()) or bool((ac < 0).any()) or bool((ac > 1).any()):
        raise ValueError("alphas_cumprod must be finite and within [0, 1] (take it from the noise scheduler)")
    return ac


def _check_range(n: int, min_timestep: int, max_timestep: int | None) -> tuple[int, int]:
    hi = n if max_timestep is None else int(max_timestep)
    lo = int(min_timestep)
    if not 0 <= lo <= hi <= n:
        raise ValueError(
            f"min_timestep/max_timestep must satisfy 0 <= min_timestep <= max_timestep <= {n} "
            f"(the schedule length); got {min_timestep} and {max_timestep}"
        )
    if lo == hi == n:
        raise ValueError(f"min_timestep == max_timestep == {n} is past the last timestep ({n - 1}); use at most {n - 1}")
    return lo, hi
