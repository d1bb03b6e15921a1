"""Stage 1 of pretraining: the VAE, on renders of every pretraining scene.

L1 + MSE reconstruction with a tiny KL term (1e-6, as in SD's VAE the latents stay close to deterministic);
the encoder's log-variance starts at -6 so early training is not drowned in sampling noise. The latents'
scaling factor is set to 1/std of the posterior means over a fresh batch, so the UNet sees unit-variance
latents as SD's does.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

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


def _fit(vae: Any, params: list[torch.nn.Parameter], scenes: list[Scene], steps: int, batch_size: int,
         learning_rate: float, rng: random.Random, loss_of: Callable[[torch.Tensor], torch.Tensor], label: str,
         log: Callable[[str], None], device: str) -> None:
    """AdamW with a one-cycle schedule over fresh renders: ``loss_of(images)`` is minimised over ``params``."""
    opt = torch.optim.AdamW(params, lr=learning_rate, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=learning_rate, total_steps=steps, pct_start=0.05)
    vae.to(device).train()
    start = time.time()
    for step in range(1, steps + 1):
        loss = loss_of(to_tensor(render_array(rng.choices(scenes, k=batch_size), rng)).to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 100 == 0 or step == steps:
            log(f"{label} step {step}/{steps} loss {loss.item():.4f} ({time.time() - start:.0f} s)")
    vae.eval()


def _reconstruction_error(recon: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return (recon - x).abs().mean() + (recon - x).pow(2).mean()


def train_vae(vae: Any, scenes: list[Scene], settings: VaeSettings, seed: int,
              log: Callable[[str], None] = print, device: str = "cpu") -> Any:
    torch.manual_seed(seed)
    rng = random.Random(seed)
    with torch.no_grad():  # log-variance channels of the encoder output start small
        latent = vae.config.latent_channels
        vae.encoder.conv_out.bias[latent:].fill_(-6.0)

    def loss_of(x: torch.Tensor) -> torch.Tensor:
        posterior = vae.encode(x).latent_dist
        return _reconstruction_error(vae.decode(posterior.sample()).sample, x) + settings.kl_weight * posterior.kl().mean()

    _fit(vae, list(vae.parameters()), scenes, settings.steps, settings.batch_size, settings.learning_rate, rng,
         loss_of, "vae", log, device)
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

    def loss_of(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            latents = vae.encode(x).latent_dist.sample()
        return _reconstruction_error(vae.decode(latents).sample, x)

    _fit(vae, decoder_params, scenes, settings.steps, settings.batch_size, settings.learning_rate, rng, loss_of,
         "vae decoder", log, device)
    vae.cpu().requires_grad_(True)
    return vae


@torch.no_grad()
def vae_psnr(vae: Any, scenes: list[Scene], seed: int, n: int = 256) -> float:
    rng = random.Random(seed)
    x = to_tensor(render_array(rng.choices(scenes, k=n), rng))
    return psnr(vae.decode(vae.encode(x).latent_dist.mode()).sample, x)
