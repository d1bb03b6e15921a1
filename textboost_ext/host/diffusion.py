"""Small pieces of the diffusion training step (in the spirit of diffusers' ``training_utils``).

Each function does one thing and takes what it needs explicitly, so the trainer's step reads as a
sequence of named operations. Randomness always comes from the generator passed in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F


def uniform_timesteps(batch_size: int, low: int, high: int, generator: torch.Generator) -> torch.Tensor:
    """kohya's draw: uniform over ``[low, high)`` on the CPU, or the constant ``low`` when ``low == high``."""
    if low == high:
        return torch.full((batch_size,), low, dtype=torch.long)
    return torch.randint(low, high, (batch_size,), generator=generator)


def checked_timesteps(drawn: torch.Tensor, batch_size: int, low: int, high: int, source: str) -> torch.Tensor:
    """Validate timesteps an extension drew: shape ``[B]``, integers, inside ``[low, high)``."""
    if tuple(drawn.shape) != (batch_size,) or drawn.dtype.is_floating_point or drawn.dtype == torch.bool:
        raise ValueError(f"{source}: sample_timesteps returned {tuple(drawn.shape)} {drawn.dtype}; expected ({batch_size},) int64")
    drawn = drawn.to("cpu", torch.long)
    in_range = bool(((drawn >= low) & (drawn < high)).all()) if low != high else bool((drawn == low).all())
    if not in_range:
        raise ValueError(f"{source}: sample_timesteps returned {drawn.tolist()}, outside [{low}, {high})")
    return drawn


@torch.no_grad()
def encode_latents(vae: Any, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Images in [-1, 1] -> scaled latents (a sample of the VAE posterior, as kohya and diffusers train)."""
    images = images.to(vae.device, vae.dtype)
    return vae.encode(images).latent_dist.sample(generator=generator) * vae.config.scaling_factor


def diffusion_target(scheduler: Any, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    """What the UNet must predict: the noise (epsilon models) or the velocity (v-prediction models)."""
    prediction_type = scheduler.config.prediction_type
    if prediction_type == "epsilon":
        return noise
    if prediction_type == "v_prediction":
        return scheduler.get_velocity(latents, noise, timesteps)
    raise ValueError(f"noise scheduler prediction_type {prediction_type!r} is not supported (epsilon or v_prediction)")


def sdxl_time_ids(
    original_sizes_hw: Sequence[tuple[int, int]], crop_top_lefts: Sequence[tuple[int, int]], target_hw: tuple[int, int],
    device: torch.device, dtype: torch.dtype,
) -> torch.Tensor:
    """SDXL's micro-conditioning ``[orig_h, orig_w, crop_top, crop_left, target_h, target_w]`` per sample."""
    rows = [[*orig, *crop, *target_hw] for orig, crop in zip(original_sizes_hw, crop_top_lefts)]
    return torch.tensor(rows, device=device, dtype=dtype)


def predict(
    unet: Any, noisy: torch.Tensor, timesteps: torch.Tensor, conditioning: list[torch.Tensor], time_ids: torch.Tensor | None = None
) -> torch.Tensor:
    """UNet forward on the text conditioning: SD ``[hidden]``; SDXL ``[hidden1, hidden2, pooled2]`` + time ids."""
    if time_ids is None:
        return unet(noisy, timesteps, conditioning[0].to(unet.dtype)).sample
    hidden = torch.cat([conditioning[0], conditioning[1]], dim=-1).to(unet.dtype)
    added = {"text_embeds": conditioning[2].to(unet.dtype), "time_ids": time_ids}
    return unet(noisy, timesteps, hidden, added_cond_kwargs=added).sample


def per_sample_mse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error per sample ``[B]``, computed in fp32 whatever the compute dtype."""
    return F.mse_loss(prediction.float(), target.float(), reduction="none").mean(dim=tuple(range(1, prediction.dim())))
