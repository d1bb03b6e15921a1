"""Sampling the toy base with the settings in ``textboost_ext.toyworld.sampling``.

Each image has its own CPU generator seeded from its seed, so an image depends only on (prompt, seed), not on
the batch it was drawn in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from textboost_ext.toyworld.sampling import GUIDANCE, STEPS

__all__ = ["GUIDANCE", "STEPS", "ddim", "generate"]


def ddim(pipe: Any) -> Any:
    from diffusers import DDIMScheduler

    if not isinstance(pipe.scheduler, DDIMScheduler):
        pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    return pipe


@torch.no_grad()
def generate(pipe: Any, prompts: Sequence[str], seeds: Sequence[int], steps: int = STEPS,
             guidance: float = GUIDANCE, batch_size: int = 64) -> np.ndarray:
    """uint8 images (N, 32, 32, 3), one per (prompt, seed)."""
    ddim(pipe)
    pipe.set_progress_bar_config(disable=True)
    out = []
    for i in range(0, len(prompts), batch_size):
        chunk = list(prompts[i:i + batch_size])
        gens = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds[i:i + batch_size]]
        images = pipe(chunk, num_inference_steps=steps, guidance_scale=guidance, generator=gens,
                      height=32, width=32, output_type="np").images
        out.append((np.clip(images, 0, 1) * 255).round().astype(np.uint8))
    return np.concatenate(out)
