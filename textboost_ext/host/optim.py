"""Optimizer and learning-rate schedule for the built-in host (kohya option names and semantics).

``optimizer_args`` are kohya's ``["key=value", ...]`` strings, values parsed with ``ast.literal_eval``
(the parser is shared with config validation, so the keys accepted here are the keys validated there).
``weight_decay`` from ``optimizer_args`` is the default handed to the extension's
``prepare_optimizer_params``; the ``weight_decay`` each returned group carries wins (TextBoost's
embedding group has none).

``AdamW8bit`` needs bitsandbytes. When it cannot load, training stops with the reason and the switch
to plain AdamW: falling back silently would change memory use and results behind the user's back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from textboost_ext.config.validate import LR_SCHEDULERS, OPTIMIZERS, parse_optimizer_args

DEFAULT_WEIGHT_DECAY = 0.01  # the paper's LoRA weight decay (and torch's AdamW default)


def canonical_optimizer_type(optimizer_type: str) -> str:
    """kohya treats optimizer names case-insensitively: ``adamw8bit`` -> ``AdamW8bit``."""
    by_lower = {name.lower(): name for name in OPTIMIZERS}
    name = by_lower.get(optimizer_type.lower())
    if name is None:
        raise ValueError(f"optimizer_type = {optimizer_type!r} is not supported; choose one of: {', '.join(OPTIMIZERS)}")
    return name


def split_optimizer_args(optimizer_type: str, optimizer_args: Sequence[str]) -> tuple[dict[str, Any], float]:
    """``(kwargs without weight_decay, weight_decay)``; the decay is the param groups' default."""
    kwargs = parse_optimizer_args(canonical_optimizer_type(optimizer_type), list(optimizer_args))
    weight_decay = float(kwargs.pop("weight_decay", DEFAULT_WEIGHT_DECAY))  # type: ignore[arg-type]
    return kwargs, weight_decay


class OptimizerUnavailableError(RuntimeError):
    """The optimizer's library could not be loaded; the message names the key that switches it."""


def _adamw8bit_class() -> type[torch.optim.Optimizer]:
    try:
        import bitsandbytes  # noqa: F401  # imported for its side effect of loading the native library
        from bitsandbytes.optim import AdamW8bit
    except Exception as exc:  # bitsandbytes raises RuntimeError/OSError as well as ImportError
        raise OptimizerUnavailableError(
            f"optimizer_type = \"AdamW8bit\" needs bitsandbytes, which could not be loaded: "
            f"{type(exc).__name__}: {exc}. Install a bitsandbytes build for your platform "
            f"(pip install bitsandbytes), or set optimizer_type = \"AdamW\" to use plain torch AdamW "
            f"(more optimizer memory, same results in expectation)."
        ) from exc
    return AdamW8bit


def build_optimizer(param_groups: list[dict[str, Any]], optimizer_type: str, optimizer_args: Sequence[str]) -> torch.optim.Optimizer:
    """Build the optimizer over the extension's param groups (each has params, lr, weight_decay, name)."""
    name = canonical_optimizer_type(optimizer_type)
    kwargs, weight_decay = split_optimizer_args(name, optimizer_args)
    for index, group in enumerate(param_groups):
        if "params" not in group or "lr" not in group:
            raise ValueError(f"optimizer param group {index} ({group.get('name', '?')}) needs 'params' and 'lr'")
        group.setdefault("weight_decay", weight_decay)
        group.setdefault("name", f"group{index}")
    optimizer_class = torch.optim.AdamW if name == "AdamW" else _adamw8bit_class()
    return optimizer_class(param_groups, weight_decay=weight_decay, **kwargs)


def build_lr_scheduler(
    name: str, optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """A diffusers schedule, stepped once per optimizer step (so steps are optimizer steps)."""
    from diffusers.optimization import get_scheduler

    by_lower = {s.lower(): s for s in LR_SCHEDULERS}
    canonical = by_lower.get(name.lower())
    if canonical is None:
        raise ValueError(f"lr_scheduler = {name!r} is not supported; choose one of: {', '.join(LR_SCHEDULERS)}")
    if canonical == "constant" and warmup_steps:
        raise ValueError("lr_warmup_steps is set but lr_scheduler = \"constant\" has no warmup; use \"constant_with_warmup\"")
    return get_scheduler(canonical, optimizer, num_warmup_steps=warmup_steps, num_training_steps=total_steps)


def optimizer_state_dtypes(optimizer: torch.optim.Optimizer) -> set[torch.dtype]:
    """Dtypes of the optimizer's tensor state (8-bit AdamW keeps uint8 moments); for tests and logs."""
    return {v.dtype for state in optimizer.state.values() for v in state.values() if isinstance(v, torch.Tensor)}


def average_gradients(params: Sequence[torch.nn.Parameter], num_processes: int) -> None:
    """Average gradients across processes (kohya's ``all_reduce_network``); a no-op for one process.

    Used instead of DDP-wrapping the text encoder: it stays correct however many times an extension
    runs the encoder per step (LoRA on and off for a preservation loss) and under checkpointing.
    A parameter without a gradient on every process keeps ``grad = None`` (the optimizer then skips
    it, as in a single-process run); one with a gradient somewhere counts zeros elsewhere.
    """
    if num_processes == 1 or not params:
        return
    import torch.distributed as dist

    device = params[0].device
    has_grad = torch.tensor([p.grad is not None for p in params], dtype=torch.int32, device=device)
    dist.all_reduce(has_grad, op=dist.ReduceOp.MAX)  # one collective decides which tensors to reduce
    for param, anywhere in zip(params, has_grad.tolist()):
        if not anywhere:
            continue
        if param.grad is None:
            param.grad = torch.zeros_like(param)
        dist.all_reduce(param.grad, op=dist.ReduceOp.SUM)
        param.grad.div_(num_processes)
