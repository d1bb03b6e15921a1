"""The oracle: a small CNN that reads every attribute of a 32x32 toy-world image (the evaluator, never trained on).

It learns from renders of ALL scenes, novel subjects included (it must recognise a green star the base never
saw), under a "degrade" augmentation (blur, noise, colour shift) so generated images, which are softer and
noisier than renders, are read as reliably as renders.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from textboost_ext.toyworld.fit import fit_one_cycle
from textboost_ext.toyworld.render import render_array
from textboost_ext.toyworld.world import ATTRIBUTES, VALUES, Scene


class Oracle(nn.Module):
    def __init__(self) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU()]

        self.features = nn.Sequential(
            *block(3, 32), *block(32, 32), nn.MaxPool2d(2),
            *block(32, 64), *block(64, 64), nn.MaxPool2d(2),
            *block(64, 128), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(128 * 4 * 4, 256), nn.ReLU(),
        )
        self.heads = nn.ModuleDict({name: nn.Linear(256, len(VALUES[name])) for name in ATTRIBUTES})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.features(x)
        return {name: head(h) for name, head in self.heads.items()}


def images_to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, 32, 32, 3) -> float (N, 3, 32, 32) in [0, 1] (the oracle's input)."""
    return torch.from_numpy(np.array(images, dtype=np.uint8)).permute(0, 3, 1, 2).float().div(255.0)  # a copy: PIL arrays are read-only


def degrade(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Per-image random blur, noise and colour shift, like the imperfections of generated images."""
    n = x.shape[0]
    sigma = torch.rand(n, generator=gen) * 1.0
    kernel_x = torch.arange(-2, 3).float()
    out = []
    for img, s in zip(x, sigma):
        if s > 0.15:
            k = torch.exp(-(kernel_x**2) / (2 * s**2))
            k = k / k.sum()
            img = nn.functional.conv2d(img[:, None], k.view(1, 1, 1, 5), padding=(0, 2))
            img = nn.functional.conv2d(img, k.view(1, 1, 5, 1), padding=(2, 0))[:, 0]
        out.append(img)
    x = torch.stack(out)
    x = x + torch.randn(x.shape, generator=gen) * (torch.rand(n, 1, 1, 1, generator=gen) * 0.08)
    x = x + (torch.rand(n, 3, 1, 1, generator=gen) - 0.5) * 0.1
    return x.clamp(0, 1)


def labels(scenes: list[Scene]) -> dict[str, torch.Tensor]:
    return {name: torch.tensor([VALUES[name].index(getattr(s, name)) for s in scenes]) for name in ATTRIBUTES}


def train_oracle(scenes: list[Scene], steps: int, seed: int, batch_size: int = 64,
                 log: Callable[[str], None] = print, device: str = "cpu") -> Oracle:
    torch.manual_seed(seed)
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    oracle = Oracle().to(device)
    oracle.train()

    def loss_of_step() -> torch.Tensor:
        batch = rng.choices(scenes, k=batch_size)
        out = oracle(degrade(images_to_tensor(render_array(batch, rng)), gen).to(device))
        y = {name: v.to(device) for name, v in labels(batch).items()}
        return sum(nn.functional.cross_entropy(out[name], y[name]) for name in ATTRIBUTES)

    fit_one_cycle(list(oracle.parameters()), steps, 2e-3, loss_of_step, "oracle", log, weight_decay=1e-4, pct_start=0.1)
    return oracle.cpu().eval()


@torch.no_grad()
def read_tensor(oracle: Oracle, x: torch.Tensor) -> list[dict[str, str]]:
    out = oracle(x)
    picks = {name: out[name].argmax(dim=1).tolist() for name in ATTRIBUTES}
    return [{name: VALUES[name][picks[name][i]] for name in ATTRIBUTES} for i in range(x.shape[0])]


def attribute_accuracy(reads: list[dict[str, str]], scenes: list[Scene]) -> dict[str, float]:
    """Per attribute, the share of ``reads`` that name what the matching scene shows."""
    return {name: float(np.mean([r[name] == getattr(s, name) for r, s in zip(reads, scenes)])) for name in ATTRIBUTES}


def oracle_accuracy(oracle: Oracle, scenes: list[Scene], seed: int, n: int = 1000) -> dict[str, float]:
    """Per-attribute accuracy on ``n`` fresh renders (drawn from ``scenes``), degraded like training."""
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    batch = rng.choices(scenes, k=n)
    reads = []
    for i in range(0, n, 250):
        reads += read_tensor(oracle, degrade(images_to_tensor(render_array(batch[i:i + 250], rng)), gen))
    return attribute_accuracy(reads, batch)


def save_oracle(oracle: Oracle, path: Path) -> None:
    from safetensors.torch import save_file

    save_file({k: v.detach().half().contiguous() for k, v in oracle.state_dict().items()
               if v.dtype.is_floating_point} | {k: v for k, v in oracle.state_dict().items() if not v.dtype.is_floating_point},
              str(path))


def load_oracle(path: Path) -> Oracle:
    """fp16 weights on disk, fp32 in memory (CPU matmuls in fp16 are slow or unsupported)."""
    from safetensors.torch import load_file

    oracle = Oracle()
    state = {k: (v.float() if v.dtype.is_floating_point else v) for k, v in load_file(str(path)).items()}
    oracle.load_state_dict(state)
    return oracle.eval()
