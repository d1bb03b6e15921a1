"""Optimizer and learning-rate schedule for the built-in host (kohya option names and semantics).

``optimizer_args`` are kohya's ``["key=value", ...]`` strings, values parsed with ``ast.literal_eval``
(the parser is shared with config validation, so the keys accepted here are the keys validated there).
``weight_decay`` from ``optimizer_args`` is the default handed to the extension's
``prepare_optimizer_params``; the ``weight_decay`` each returned group carries wins (TextBoost's
embedding group has none).

``optimizer_type`` takes kohya's names (``config.options.OPTIMIZER_CLASSES``: AdamW, AdamW8bit, the Paged
and Lion variants, SGDNesterov, Adafactor, Prodigy) or any importable ``module.Class``. When a library
cannot load, training stops with the reason and the switch to plain AdamW: falling back silently would
change memory use and results behind the user's back.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Sequence
from typing import Any

import torch

from textboost_ext.config.options import OPTIMIZER_CLASSES, is_custom_optimizer
from textboost_ext.config.validate import LR_SCHEDULERS, OPTIMIZERS, parse_optimizer_args

DEFAULT_WEIGHT_DECAY = 0.01  # the paper's LoRA weight decay (and torch's AdamW default)


def canonical_optimizer_type(optimizer_type: str) -> str:
    """kohya treats optimizer names case-insensitively: ``adamw8bit`` -> ``AdamW8bit``; ``module.Class`` as is."""
    if is_custom_optimizer(optimizer_type):
        return optimizer_type
    by_lower = {name.lower(): name for name in OPTIMIZERS}
    name = by_lower.get(optimizer_type.lower())
    if name is None:
        raise ValueError(f"optimizer_type = {optimizer_type!r} is not supported; choose one of: {', '.join(OPTIMIZERS)} "
                         "or an importable module.Class")
    return name


def split_optimizer_args(optimizer_type: str, optimizer_args: Sequence[str]) -> tuple[dict[str, Any], float]:
    """``(kwargs without weight_decay, weight_decay)``; the decay is the param groups' default."""
    kwargs = parse_optimizer_args(canonical_optimizer_type(optimizer_type), list(optimizer_args))
    weight_decay = float(kwargs.pop("weight_decay", DEFAULT_WEIGHT_DECAY))  # type: ignore[arg-type]
    return kwargs, weight_decay


class OptimizerUnavailableError(RuntimeError):
    """The optimizer's library could not be loaded; the message names the key that switches it."""


def optimizer_class(optimizer_type: str) -> tuple[type[torch.optim.Optimizer], dict[str, Any]]:
    """The class ``optimizer_type`` names and the fixed keyword arguments kohya gives it (SGDNesterov: nesterov)."""
    name = canonical_optimizer_type(optimizer_type)
    if name in OPTIMIZER_CLASSES:
        module_name, class_name, fixed, package = OPTIMIZER_CLASSES[name]
    else:
        (module_name, _, class_name), fixed, package = name.rpartition("."), {}, name.split(".")[0]
    try:
        module = importlib.import_module(module_name)
        if module_name.startswith("bitsandbytes"):
            import bitsandbytes  # noqa: F401  # loads the native library (raises here if it cannot)
        cls = getattr(module, class_name)
    except Exception as exc:  # bitsandbytes raises RuntimeError/OSError as well as ImportError
        raise OptimizerUnavailableError(
            f"optimizer_type = {optimizer_type!r} needs {module_name}.{class_name}, which could not be loaded: "
            f"{type(exc).__name__}: {exc}. Install it (pip install {package}), or set optimizer_type = \"AdamW\" "
            "to use plain torch AdamW."
        ) from exc
    return cls, dict(fixed)


def check_optimizer(optimizer_type: str, optimizer_args: Sequence[str]) -> None:
    """Everything the run checks about the optimizer before it trains (``--dry_run`` runs it too): the class
    loads, and every ``optimizer_args`` key is one of its constructor's parameters."""
    cls, fixed = optimizer_class(optimizer_type)
    kwargs, _ = split_optimizer_args(optimizer_type, optimizer_args)
    params = inspect.signature(cls.__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    allowed = [n for n in params if n not in ("self", "params", "lr")]
    unknown = [k for k in [*kwargs, *fixed] if k not in allowed]
    if unknown:
        raise ValueError(f"optimizer_args: {cls.__module__}.{cls.__name__} takes no argument(s) {unknown}; "
                         f"allowed: {', '.join(allowed)}")


def build_optimizer(param_groups: list[dict[str, Any]], optimizer_type: str, optimizer_args: Sequence[str]) -> torch.optim.Optimizer:
    """Build the optimizer over the extension's param groups (each has params, lr, weight_decay, name)."""
    name = canonical_optimizer_type(optimizer_type)
    kwargs, weight_decay = split_optimizer_args(name, optimizer_args)
    for index, group in enumerate(param_groups):
        if "params" not in group or "lr" not in group:
            raise ValueError(f"optimizer param group {index} ({group.get('name', '?')}) needs 'params' and 'lr'")
        group.setdefault("weight_decay", weight_decay)
        group.setdefault("name", f"group{index}")
    check_optimizer(name, optimizer_args)
    cls, fixed = optimizer_class(name)
    # lr too: some classes require it (bitsandbytes' SGD8bit), though every group carries its own
    return cls(param_groups, lr=param_groups[0]["lr"], weight_decay=weight_decay, **{**fixed, **kwargs})


def build_lr_scheduler(
    name: str, optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int, *,
    num_cycles: int = 1, power: float = 1.0,
) -> torch.optim.lr_scheduler.LRScheduler:
    """A diffusers schedule, stepped once per optimizer step (so steps are optimizer steps).

    kohya's ``lr_scheduler_num_cycles`` (cosine_with_restarts) and ``lr_scheduler_power`` (polynomial)."""
    from diffusers.optimization import get_scheduler

    by_lower = {s.lower(): s for s in LR_SCHEDULERS}
    canonical = by_lower.get(name.lower())
    if canonical is None:
        raise ValueError(f"lr_scheduler = {name!r} is not supported; choose one of: {', '.join(LR_SCHEDULERS)}")
    if canonical == "constant" and warmup_steps:
        raise ValueError("lr_warmup_steps is set but lr_scheduler = \"constant\" has no warmup; use \"constant_with_warmup\"")
    return get_scheduler(canonical, optimizer, num_warmup_steps=warmup_steps, num_training_steps=total_steps,
                         num_cycles=num_cycles, power=power)


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
