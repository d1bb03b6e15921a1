"""Stage 2 of pretraining: text encoder + UNet, jointly, on captioned renders (the VAE frozen).

The recipe, and why:
- batch 32, AdamW 6e-4 with warm-up and cosine decay, EMA 0.999 of both models (the EMA is what ships);
- 10% empty captions, so classifier-free guidance has an unconditional model to push against;
- v-prediction, the image error weighted clamp(SNR, 1, 5), uniform timesteps: the shipped base (five runs:
  12,000 steps from scratch, then four times 6,000 more at 3e-4 with ``init_from``; README "Rebuilding the
  base"). The place of the object is decided at t >~ 800, where the earlier recipe (epsilon, min-SNR-5: the
  weight there is the SNR itself, < 0.03) taught nothing about it: its base ignored position words (17%), this
  one follows them (99.6%). Either change alone does not (position-only world, README "Why the first base
  ignored position"). Other knobs kept for experiments: ``high_noise_share`` (that share of timesteps drawn
  from [600, 1000)) and ``multires_noise_iterations`` (coarse noise); neither taught position.
Checkpoints every ``checkpoint_every`` steps (atomic), so a killed run resumes where it stopped.
"""

from __future__ import annotations

import copy
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from textboost_ext.host.diffusion import diffusion_target
from textboost_ext.toyworld.captions import random_caption
from textboost_ext.toyworld.models import build_scheduler
from textboost_ext.toyworld.pretrain_vae import to_tensor
from textboost_ext.toyworld.render import render_array
from textboost_ext.toyworld.world import Scene


@dataclass
class T2iSettings:
    steps: int = 12_000
    batch_size: int = 32
    learning_rate: float = 6e-4
    warmup: int = 300
    ema_decay: float = 0.999
    empty_caption_p: float = 0.1
    high_noise_share: float = 0.0
    high_noise_from: int = 600
    snr_floor: float = 1.0  # with v-prediction: what teaches position (README, toy world)
    snr_gamma: float = 5.0
    multires_noise_iterations: int = 0
    multires_noise_discount: float = 0.5
    checkpoint_every: int = 1000
    prediction_type: str = "v_prediction"


def _lr_lambda(settings: T2iSettings) -> Callable[[int], float]:
    import math

    def f(step: int) -> float:
        if step < settings.warmup:
            return (step + 1) / settings.warmup
        progress = (step - settings.warmup) / max(1, settings.steps - settings.warmup)
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return f


def draw_timesteps(n: int, settings: T2iSettings, gen: torch.Generator, total: int = 1000) -> torch.Tensor:
    uniform = torch.randint(0, total, (n,), generator=gen)
    high = torch.randint(settings.high_noise_from, total, (n,), generator=gen)
    return torch.where(torch.rand(n, generator=gen) < settings.high_noise_share, high, uniform)


def loss_weights(timesteps: torch.Tensor, alphas_cumprod: torch.Tensor, settings: T2iSettings) -> torch.Tensor:
    """Per-sample weights of the prediction MSE equal to an image-error weight clamp(SNR, floor, gamma).

    An epsilon error is an image error times sqrt(SNR); a velocity error one times sqrt(SNR + 1)."""
    a = alphas_cumprod[timesteps]
    snr = a / (1 - a)
    image_weight = snr.clamp(settings.snr_floor, settings.snr_gamma)
    if settings.prediction_type == "epsilon":
        return image_weight / snr
    if settings.prediction_type == "v_prediction":
        return image_weight / (snr + 1)
    raise ValueError(f"prediction_type {settings.prediction_type!r}: choose epsilon or v_prediction")


def multires_noise(shape: torch.Size, iterations: int, discount: float, gen: torch.Generator) -> torch.Tensor:
    """Gaussian noise plus coarser noise grids (each side halved per level, weight ``discount`` ** level),
    rescaled to unit variance per sample: kohya's ``multires_noise_iterations`` idea, with fixed halving.

    An experiment knob (off in the shipped recipe). The hypothesis it tests: at the highest timesteps of the
    SD schedule the latent keeps ~7% of its signal, and at 8x8 the object's place is its coarsest feature, so
    the UNet might read the place from the noisy latent instead of the caption; coarse noise would hide it.
    In a position-only trial it did not help (README "How good the shipped base is").
    """
    noise = torch.randn(shape, generator=gen)
    b, c, h, w = shape
    for level in range(1, iterations + 1):
        side_h, side_w = max(1, h >> level), max(1, w >> level)
        coarse = torch.randn((b, c, side_h, side_w), generator=gen)
        noise = noise + discount ** level * torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear")
        if side_h == 1 and side_w == 1:
            break
    return noise / noise.std(dim=(1, 2, 3), keepdim=True)


class EMA:
    def __init__(self, modules: list[torch.nn.Module], decay: float) -> None:
        self.decay = decay
        self.shadow = [copy.deepcopy(m).eval().requires_grad_(False) for m in modules]

    @torch.no_grad()
    def update(self, modules: list[torch.nn.Module]) -> None:
        for shadow, live in zip(self.shadow, modules):
            for s, p in zip(shadow.parameters(), live.parameters()):
                s.lerp_(p, 1 - self.decay)


def _tokenize(tokenizer: Any, captions: list[str]) -> torch.Tensor:
    return tokenizer(captions, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                     return_tensors="pt").input_ids


def train_t2i(vae: Any, text_encoder: Any, unet: Any, tokenizer: Any, scenes: list[Scene], settings: T2iSettings,
              seed: int, checkpoint: Path, log: Callable[[str], None] = print,
              on_step: Callable[[int, EMA], None] | None = None, device: str = "cpu") -> EMA:
    """Train in place; returns the EMA copies [text_encoder, unet] (moved back to the CPU at the end).

    Random draws (captions, renders, noise, timesteps) come from CPU generators, so a GPU run sees the same
    data as a CPU run."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    scheduler = build_scheduler(settings.prediction_type)
    alphas = scheduler.alphas_cumprod.to(device)
    vae.requires_grad_(False).eval().to(device)
    models = [text_encoder.to(device), unet.to(device)]
    for m in models:
        m.train()
    params = [p for m in models for p in m.parameters()]
    opt = torch.optim.AdamW(params, lr=settings.learning_rate, weight_decay=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(settings))
    ema = EMA(models, settings.ema_decay)
    start_step = 0
    if checkpoint.is_file():
        state = torch.load(checkpoint, weights_only=False, map_location=device)
        text_encoder.load_state_dict(state["text_encoder"])
        unet.load_state_dict(state["unet"])
        for shadow, sd in zip(ema.shadow, state["ema"]):
            shadow.load_state_dict(sd)
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        rng.setstate(state["rng"])
        gen.set_state(state["gen"])
        torch.set_rng_state(state["torch_rng"])
        start_step = state["step"]
        log(f"t2i resumed from step {start_step}")
    scaling = vae.config.scaling_factor
    started = time.time()
    for step in range(start_step + 1, settings.steps + 1):
        batch = rng.choices(scenes, k=settings.batch_size)
        captions = ["" if rng.random() < settings.empty_caption_p else random_caption(s, rng) for s in batch]
        with torch.no_grad():
            posterior = vae.encode(to_tensor(render_array(batch, rng)).to(device)).latent_dist
            sample_noise = torch.randn(posterior.mean.shape, generator=gen).to(device)
            latents = (posterior.mean + posterior.std * sample_noise) * scaling
        if settings.multires_noise_iterations:
            noise = multires_noise(latents.shape, settings.multires_noise_iterations,
                                   settings.multires_noise_discount, gen).to(device)
        else:
            noise = torch.randn(latents.shape, generator=gen).to(device)
        t = draw_timesteps(len(batch), settings, gen).to(device)
        noisy = scheduler.add_noise(latents, noise, t)
        hidden = text_encoder(_tokenize(tokenizer, captions).to(device))[0]
        pred = unet(noisy, t, hidden).sample
        per_sample = (pred - diffusion_target(scheduler, latents, noise, t)).pow(2).mean(dim=(1, 2, 3))
        loss = (per_sample * loss_weights(t, alphas, settings)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        ema.update(models)
        if step % 100 == 0:
            rate = (time.time() - started) / (step - start_step)
            log(f"t2i step {step}/{settings.steps} loss {loss.item():.4f} lr {sched.get_last_lr()[0]:.2e} ({rate:.2f} s/step)")
        if step % settings.checkpoint_every == 0 or step == settings.steps:
            state = {
                "text_encoder": text_encoder.state_dict(), "unet": unet.state_dict(),
                "ema": [m.state_dict() for m in ema.shadow], "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(), "rng": rng.getstate(), "gen": gen.get_state(),
                "torch_rng": torch.get_rng_state(), "step": step, "settings": asdict(settings),
            }
            tmp = checkpoint.with_name(checkpoint.name + ".tmp")
            torch.save(state, tmp)
            os.replace(tmp, checkpoint)
        if on_step is not None:
            on_step(step, ema)
    for m in models + ema.shadow:
        m.cpu()
    vae.cpu()
    return ema
