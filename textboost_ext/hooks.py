"""The hook API a host trainer calls and an extension implements.

Method names follow kohya sd-scripts' ``NetworkTrainer`` where one exists (``assert_extra_args``,
``post_process_network``, ``on_step_start``, ``process_batch``, ``post_process_loss``,
``update_metadata``); the rest are narrower hooks our built-in host calls at fixed points of its step:

    assert_extra_args -> (models load) -> post_process_network -> prepare_optimizer_params
    per step: on_step_start -> [host tokenises captions] -> sample_timesteps -> diffusion loss
              -> post_process_loss -> process_batch (extra loss terms) -> backward
              -> on_after_backward -> [clip, optimizer step] -> on_step_end -> step_logs
    on every save: update_metadata (into the file's metadata) + on_save (files beside the LoRA)
    on every sample image: prepare_sample_prompt (prompt and negative prompt, before encoding)

The base class is a no-op, so an extension overrides only what it needs. Hosts never import an
extension's internals; an extension never imports a host.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch


@dataclass
class StepBatch:
    """One training batch as hooks see it. ``images``: [B, 3, H, W] in [-1, 1], float32, at the
    training resolution. ``captions``: one string per image; the host tokenises AFTER on_step_start.
    ``sources``: when the extension asked for them (``wants_source_images``), each image's photo at source
    resolution (uint8 [3, h, w], bounded: ``textboost_ext.source_images``), to render views from.
    ``extra["crop_top_lefts"]`` (SDXL's crop conditioning) may be rewritten with the views."""

    images: torch.Tensor
    captions: list[str]
    extra: dict[str, Any] = field(default_factory=dict)
    sources: list[torch.Tensor] | None = None


@dataclass
class HostContext:
    """What a host hands to the hooks.

    ``encode_prompts(captions)`` returns the conditioning the UNet consumes, as a list of tensors:
    SD 1.x/2.x ``[hidden]`` ([B, 77, D]); SDXL ``[hidden_te1, hidden_te2, pooled_te2]``. It runs with
    grad enabled when the caller has grad enabled, through the network's current multiplier.
    ``encode_prompt_prefix(captions, length)``, where a host offers it: the same conditioning for the first
    ``length`` token positions only (sequence tensors ``[B, length, D]``; pooled tensors unchanged), computed
    on the first ``length`` tokens. CLIP's attention is causal, so those positions equal the full pass's
    while it costs ``length / 77`` of it (an extension that reads only the positions up to each prompt's
    end-of-text token needs no more). None: the extension encodes all 77 positions and slices.
    ``network`` exposes ``set_multiplier(float)`` and ``trainable_parameters()``. ``process_index``: this
    process's rank (an extension seeds its own random streams from the run seed and it).
    """

    config: Any
    model: Any  # textboost_ext.models.types.LoadedModel (or an sd-scripts equivalent)
    network: Any
    device: torch.device
    encode_prompts: Callable[[list[str]], list[torch.Tensor]]
    weight_dtype: torch.dtype = torch.float32
    process_index: int = 0
    encode_prompt_prefix: Callable[[list[str], int], list[torch.Tensor]] | None = None


class TrainerExtension:
    """No-op base: a host works with this and trains a plain text-encoder LoRA."""

    name: str = "none"

    # ---- before training -------------------------------------------------------------------
    def assert_extra_args(self, config: Any) -> None:
        """Validate/force settings before any model loads. Raise ``ValueError`` naming the key."""

    def check_captions(self, config: Any, items: Sequence[Any]) -> list[str]:
        """The dataset's images before any model loads (each with ``path``, ``caption``, ``caption_file``,
        ``caption_options``, ``class_tokens``). Raise ``ValueError`` for captions that cannot train; return
        notices (e.g. what the extension's own captions leave unused), which the host logs once."""
        return []

    def check_sample_prompts(self, config: Any, prompts: Sequence[str]) -> list[str]:
        """The sample prompts before any model loads: raise ``ValueError`` for prompts that would waste the
        run's samples, return notices for doubtful ones."""
        return []

    def example_captions(self, items: Sequence[Any], count: int, seed: int) -> list[str]:
        """``count`` captions as training would use them (``--dry_run``, ``--show_captions``); the base
        trains on the dataset's own captions."""
        return [items[i % len(items)].caption for i in range(count)] if items else []

    def wants_source_images(self) -> bool:
        """True: put each photo at source resolution into ``StepBatch.sources`` (after assert_extra_args)."""
        return False

    def post_process_network(self, ctx: HostContext) -> None:
        """Models loaded and LoRA injected: add tokens, resize embeddings, build caches."""

    def prepare_optimizer_params(
        self, ctx: HostContext, lora_params: list[torch.nn.Parameter], learning_rate: float, weight_decay: float
    ) -> list[dict[str, Any]]:
        """Optimizer param groups. Each group has ``params``, ``lr``, ``weight_decay`` and a ``name``."""
        return [{"name": "lora", "params": lora_params, "lr": learning_rate, "weight_decay": weight_decay}]

    # ---- every step ------------------------------------------------------------------------
    def on_step_start(self, ctx: HostContext, batch: StepBatch, step: int, generator: torch.Generator) -> None:
        """May rewrite ``batch.images`` and ``batch.captions`` in place (augmentation)."""

    def sample_timesteps(
        self, ctx: HostContext, batch_size: int, min_timestep: int, max_timestep: int, generator: torch.Generator
    ) -> torch.Tensor | None:
        """Timesteps in ``[min_timestep, max_timestep)`` (int64, CPU), or None for the host's uniform draw."""
        return None

    def post_process_loss(self, ctx: HostContext, loss: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """Per-sample diffusion loss [B] -> per-sample loss [B]."""
        return loss

    def process_batch(self, ctx: HostContext, batch: StepBatch, step: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Extra loss terms, already weighted, added to the diffusion loss: ``{"kp": λ·L_kp}``."""
        return {}

    def on_after_backward(self, ctx: HostContext) -> None:
        """Gradients exist; e.g. zero the original vocabulary rows."""

    def on_step_end(self, ctx: HostContext, step: int) -> None:
        """After the optimizer step; e.g. clamp embedding norms."""

    def step_logs(self, ctx: HostContext) -> dict[str, float]:
        """Scalars to log for the step just taken."""
        return {}

    def prepare_sample_prompt(self, ctx: HostContext, prompt: str) -> str:
        """A user's sample prompt as the trained tokenizer needs it (e.g. a multi-vector placeholder
        name expanded to all its vector tokens, as the WebUIs do with an embedding's name)."""
        return prompt

    # ---- saving and resuming -----------------------------------------------------------------
    def update_metadata(self, ctx: HostContext, metadata: dict[str, str]) -> None:
        """Add ``ss_textboost_*`` (string values) to the LoRA file's metadata."""

    def on_save(self, ctx: HostContext, lora_path: Path, save_dtype: torch.dtype) -> list[Path]:
        """Write files that belong beside the LoRA (embeddings, ...); return their paths."""
        return []

    def trigger_phrase(self) -> str | None:
        """What a user types to get the subject (A1111 'activation text')."""
        return None

    def generators(self) -> dict[str, torch.Generator]:
        """The extension's own random streams (this process's), saved and restored with the host's RNG
        state, so that a resumed run draws what an uninterrupted one would."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """Extension state for ``save_state`` / ``resume`` (trained embedding rows etc.)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass
