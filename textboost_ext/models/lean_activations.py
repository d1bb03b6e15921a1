"""CLIP's quick-GELU with a smaller backward footprint: the same values, one saved tensor instead of two.

CLIP-L (SD 1.x, SDXL's first encoder) activates its MLP with ``x * sigmoid(1.702 x)``. Autograd keeps both
``x`` and ``sigmoid(1.702 x)`` for the backward, each a (batch, 77, 3072) tensor per layer; TextBoost runs
two text-encoder passes with gradients per step, so on a CPU that second tensor is about 90 MB of the peak
(mid benchmark, batch 8). Here the backward recomputes the sigmoid from ``x``: the forward is the same
computation, the gradient the same formula (equal up to float rounding), the cost one extra sigmoid per
layer in the backward.
"""

from __future__ import annotations

from typing import Any

import torch

QUICK_GELU_SLOPE = 1.702


class _LeanQuickGelu(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x * torch.sigmoid(QUICK_GELU_SLOPE * x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        s = torch.sigmoid(QUICK_GELU_SLOPE * x)
        # d/dx x·s(1.702x) = s + 1.702·x·s·(1 - s); sigmoid_backward(g, s) is g·s·(1 - s) in one kernel
        return torch.add(grad * s, torch.ops.aten.sigmoid_backward(grad * x, s), alpha=QUICK_GELU_SLOPE)


class LeanQuickGELU(torch.nn.Module):
    """Drop-in for transformers' ``QuickGELUActivation``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _LeanQuickGelu.apply(x)


def use_lean_quick_gelu(encoder: torch.nn.Module) -> int:
    """Swap every quick-GELU of ``encoder`` (transformers' CLIP MLPs) for ``LeanQuickGELU``; returns how many.
    Other activations (OpenCLIP's exact GELU already saves only its input) are left as they are."""
    from transformers.activations import QuickGELUActivation

    swapped = 0
    for module in list(encoder.modules()):
        for name, child in list(module.named_children()):
            if type(child) is QuickGELUActivation:
                setattr(module, name, LeanQuickGELU())
                swapped += 1
    return swapped
