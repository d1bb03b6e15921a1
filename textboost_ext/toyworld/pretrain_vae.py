"""Stage 1 of pretraining: the VAE, on renders of every pretraining scene.

L1 + MSE reconstruction with a tiny KL term (1e-6, as in SD's VAE the latents stay close to deterministic);
the encoder's log-variance starts at -6 so early training is not drowned in sampling noise. The latents'
scaling factor is set to 1/std of the posterior means over a fresh batch, so the UNet sees unit-variance
latents as SD's does.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from textboost_ext.toyworld.fit import fit_one_cycle
from textboost_ext.toyworld.render import render_array
from textboost_ext.toyworld.world import Scene


@dataclass
class VaeSettings:
    steps: int = 2500
    batch_size: int = 64
    learning_rate: float = 2e-3
    kl_weight: float = 1e-6


@dataclass
class DecoderSettings:
    steps: int = 3000
    batch_size: int = 64
    learning_rate: float = 5e-4


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, H, W) in [-1, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of images in [-1, 1]."""
    mse = ((a.clamp(-1, 1) - b.clamp(-1, 1)) / 2).pow(2).mean().item()
    return 10 * math.log10(1.0 / max(mse, 1e-12))


def _reconstruction_error(recon: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return (recon - x).abs().mean() + (recon - x).pow(2).mean()


def train_vae(vae: Any, scenes: list[Scene], settings: VaeSettings, seed: int,
              log: Callable[[str], None] = print, device: str = "cpu") -> Any:
    torch.manual_seed(seed)
    rng = random.Random(seed)
    with torch.no_grad():  # log-variance channels of the encoder output start small
        latent = vae.config.latent_channels
        vae.encoder.conv_out.bias[latent:].fill_(-6.0)

    def loss_of_step() -> torch.Tensor:
        x = to_tensor(render_array(rng.choices(scenes, k=settings.batch_size), rng)).to(device)
        posterior = vae.encode(x).latent_dist
        return _reconstruction_error(vae.decode(posterior.sample()).sample, x) + settings.kl_weight * posterior.kl().mean()

    vae.to(device).train()
    fit_one_cycle(list(vae.parameters()), settings.steps, settings.learning_rate, loss_of_step, "vae", log)
    vae.eval()
    with torch.no_grad():
        x = to_tensor(render_array(rng.choices(scenes, k=256), rng)).to(device)
        std = vae.encode(x).latent_dist.mean.std().item()
    vae.cpu()
    vae.register_to_config(scaling_factor=1.0 / std)
    return vae


def finetune_decoder(vae: Any, scenes: list[Scene], settings: DecoderSettings, seed: int,
                     log: Callable[[str], None] = print, device: str = "cpu") -> Any:
    """Train the decoder alone, on latents of the frozen encoder (L1 + MSE, one-cycle schedule).

    The latent space stays exactly the one the UNet was trained in, so a sharper decoder improves an
    already trained base without retraining it (how Stability made SD's ft-MSE VAE). Thin outlines (the
    "sketch" style) and star points are what the first decoder loses."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    vae.requires_grad_(False)
    decoder_params = list(vae.decoder.parameters()) + list(vae.post_quant_conv.parameters())
    for p in decoder_params:
        p.requires_grad_(True)

    def loss_of_step() -> torch.Tensor:
        x = to_tensor(render_array(rng.choices(scenes, k=settings.batch_size), rng)).to(device)
        with torch.no_grad():
            latents = vae.encode(x).latent_dist.sample()
        return _reconstruction_error(vae.decode(latents).sample, x)

    vae.to(device).train()
    fit_one_cycle(decoder_params, settings.steps, settings.learning_rate, loss_of_step, "vae decoder", log)
    vae.eval().cpu().requires_grad_(True)
    return vae


@torch.no_grad()
def vae_psnr(vae: Any, scenes: list[Scene], seed: int, n: int = 256) -> float:
    rng = random.Random(seed)
    x = to_tensor(render_array(rng.choices(scenes, k=n), rng))
    return psnr(vae.decode(vae.encode(x).latent_dist.mode()).sample, x)
