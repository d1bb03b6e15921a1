"""The built-in generic host trainer (kohya-compatible options; the default host).

    from textboost_ext.host import train
    result = train(config, extension)   # -> TrainResult(lora_path, adapter_dir, steps, ...)

The host knows nothing about TextBoost: it trains a text-encoder LoRA and calls the extension's hooks
(:class:`textboost_ext.hooks.TrainerExtension`) at fixed points. Heavy imports happen on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from textboost_ext.hooks import TrainerExtension
    from textboost_ext.host.trainer import TrainResult


def train(config: Any, extension: TrainerExtension | None = None, *, checked: bool = False) -> TrainResult:
    """Train a text-encoder LoRA for ``config`` (a TrainConfig) with ``extension``'s hooks.

    ``extension`` None builds the one ``config.extension`` names (``"none"``: a plain LoRA).
    """
    from textboost_ext.host.trainer import HostTrainer

    return HostTrainer(config, extension, checked=checked).train()


__all__ = ["train"]
