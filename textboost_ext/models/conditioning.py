"""The text conditioning the UNet consumes, computed exactly as the diffusers pipelines do.

- SD 1.x / SD 2.x: the encoder's ``last_hidden_state`` (its final layer norm included). For SD 2.x
  the loaded encoder is already cut to the penultimate OpenCLIP layer (23 of 24 for the released
  models, as in diffusers' folders and kohya), so this equals ``StableDiffusionPipeline``'s
  ``prompt_embeds`` and LDM/A1111's ``ln_final(penultimate block output)``.
  ``clip_skip=k`` (kohya/A1111 numbering: 1 = last layer, 2 = penultimate) gives
  ``final_layer_norm(hidden_states[-k])``, i.e. the pipeline's ``clip_skip=k-1``.
- SDXL: ``[hidden_states[-2] of encoder 1, hidden_states[-2] of encoder 2, text_embeds of encoder 2]``
  (no final layer norm on the hidden states), i.e. ``StableDiffusionXLPipeline.encode_prompt``'s
  ``prompt_embeds`` split along the last dimension, and its ``pooled_prompt_embeds``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from textboost_ext.models.types import LoadedModel


def tokenize(model: LoadedModel, captions: Sequence[str]) -> list[torch.Tensor]:
    """One ``[B, 77]`` tensor of input ids per tokenizer (padded to max length, truncated)."""
    captions = [captions] if isinstance(captions, str) else list(captions)
    return [
        tok(captions, padding="max_length", max_length=tok.model_max_length, truncation=True, return_tensors="pt").input_ids
        for tok in model.tokenizers
    ]


def _text_transformer(text_encoder: Any) -> Any:
    # transformers < 5.6 wraps the transformer in ``text_model``; later CLIPTextModel is flat.
    return getattr(text_encoder, "text_model", text_encoder)


def encode_prompt_conditioning(
    model: LoadedModel, input_ids: Sequence[torch.Tensor], clip_skip: int | None = None
) -> list[torch.Tensor]:
    """SD 1.x/2.x: ``[hidden]`` ([B, 77, width]); SDXL: ``[hidden1, hidden2, pooled2]``.

    Gradients flow (no ``no_grad`` here): training the text encoder goes through this function.
    """
    if len(input_ids) != len(model.text_encoders):
        raise ValueError(f"expected {len(model.text_encoders)} input-id tensors (one per tokenizer), got {len(input_ids)}")
    if model.family == "sdxl":
        if clip_skip is not None:
            raise ValueError(
                "clip_skip is not used with SDXL: its conditioning is already the penultimate layer of both encoders "
                "(as in diffusers and kohya); unset clip_skip"
            )
        te1, te2 = model.text_encoders
        out1 = te1(input_ids[0].to(te1.device), output_hidden_states=True)
        out2 = te2(input_ids[1].to(te2.device), output_hidden_states=True)
        return [out1.hidden_states[-2], out2.hidden_states[-2], out2.text_embeds]

    te = model.text_encoders[0]
    ids = input_ids[0].to(te.device)
    if clip_skip is None or clip_skip == 1:
        return [te(ids).last_hidden_state]
    layers = te.config.num_hidden_layers
    if not 1 <= clip_skip <= layers:
        raise ValueError(f"clip_skip must be between 1 and the encoder's {layers} layers, got {clip_skip}")
    hidden = te(ids, output_hidden_states=True).hidden_states[-clip_skip]
    return [_text_transformer(te).final_layer_norm(hidden)]


def conditioning_layer_counts(family: str, text_encoders: Sequence[Any], clip_skip: int | None = None) -> list[int]:
    """Per encoder, how many leading layers have an output that reaches the conditioning above.

    A LoRA on a later layer can never train (no gradient reaches it) and would be exported all-zero:
    SD 1.x/2.x with ``clip_skip=k`` read the output of layer ``n - k`` (layers ``0..n-k``); SDXL reads
    encoder 1 at its penultimate layer (its last layer is never used) and encoder 2 both at its
    penultimate layer and through the pooled output of its last layer (every layer is used).
    ``clip_skip`` is not used with SDXL (sd-scripts ignores it there; the built-in host refuses it).
    """
    layers = [int(te.config.num_hidden_layers) for te in text_encoders]
    if family == "sdxl":
        if len(layers) != 2:
            raise ValueError(f"SDXL has two text encoders, got {len(layers)}")
        return [layers[0] - 1, layers[1]]
    if len(layers) != 1:
        raise ValueError(f"{family} has one text encoder, got {len(layers)}")
    skip = clip_skip or 1
    if not 1 <= skip <= layers[0]:
        raise ValueError(f"clip_skip must be between 1 and the encoder's {layers[0]} layers, got {clip_skip}")
    return [layers[0] - skip + 1]
