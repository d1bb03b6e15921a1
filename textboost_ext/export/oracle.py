"""Checklist item 8: does diffusers, loading the file, compute what the file means?

``diffusers_oracle(pipe, lora_path)`` takes an already-built diffusers pipeline (SD or SDXL), and:
1. encodes a fixed prompt with the base encoder(s);
2. builds the expected adapted encoder(s) by hand: a deep copy with W += alpha/r * up @ down in fp32
   for every module in the file (and again at half weight);
3. ``pipe.load_lora_weights(folder, weight_name=file)`` and checks that every file module got a LoRA
   layer and that the outputs equal the hand merge (<= 1e-5 for fp32 files, <= 1e-3 for fp16/bf16);
4. ``set_adapters(..., 0.5)`` equals the half merge;
5. ``unload_lora_weights()`` restores the base outputs exactly.
The pipeline is left as it was found (the adapter is unloaded even when a step fails).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from textboost_ext.export.checklist import CheckResult, group_modules
from textboost_ext.export.safetensors_io import load_tensors

# Not "v": an adapter named like a module ("v" vs "v_proj") breaks peft/transformers key matching.
ORACLE_ADAPTER = "textboost_verify"
PROMPT = "a photo of a small dog sitting on a red sofa, highly detailed"


def pipeline_text_encoders(pipe: Any) -> list[tuple[str, Any, Any]]:
    """``[(kohya prefix, text encoder, tokenizer)]``: one entry for SD 1.x/2.x, two for SDXL."""
    te2 = getattr(pipe, "text_encoder_2", None)
    if te2 is not None:
        return [("lora_te1", pipe.text_encoder, pipe.tokenizer), ("lora_te2", te2, getattr(pipe, "tokenizer_2", None))]
    return [("lora_te", pipe.text_encoder, pipe.tokenizer)]


def target_linear(encoder: Any, layer: int, module: str) -> torch.nn.Linear:
    """The Linear a kohya module name points at, with or without the ``text_model`` level (transformers 4/5)."""
    root = getattr(encoder, "text_model", encoder)
    block = root.encoder.layers[layer]
    parent, child = module.split("_", 1) if module.startswith("mlp_") else ("self_attn", module.removeprefix("self_attn_"))
    linear = getattr(getattr(block, parent), child)
    return getattr(linear, "base_layer", linear)


def prompt_ids(tokenizer: Any, encoder: Any) -> torch.Tensor:
    if tokenizer is None:
        generator = torch.Generator().manual_seed(0)
        return torch.randint(0, int(encoder.config.vocab_size) - 2, (1, 77), generator=generator)
    return tokenizer(PROMPT, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                     return_tensors="pt").input_ids


@torch.no_grad()
def encode(encoder: Any, ids: torch.Tensor) -> list[torch.Tensor]:
    """last_hidden_state, plus the pooled projection when the encoder has one (SDXL encoder 2)."""
    out = encoder(input_ids=ids.to(encoder.device))
    tensors = [out.last_hidden_state.float()]
    if getattr(out, "text_embeds", None) is not None:
        tensors.append(out.text_embeds.float())
    return tensors


def _max_diff(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> float:
    return max(float((x - y).abs().max()) for x, y in zip(a, b))


@torch.no_grad()
def merged_outputs(encoder: Any, prefix: str, groups: dict, ids: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Outputs of a hand-merged copy at weight 1.0 and 0.5 (fp32 math)."""
    merged = copy.deepcopy(encoder)
    deltas = []
    for (p, layer, module), parts in groups.items():
        if p != prefix:
            continue
        down, up = parts["lora_down.weight"].float(), parts["lora_up.weight"].float()
        scale = float(parts["alpha"].float()) / down.shape[0]
        linear = target_linear(merged, layer, module)
        delta = (up @ down) * scale
        deltas.append((linear, delta))
        linear.weight.data = (linear.weight.data.float() + delta).to(linear.weight.dtype)
    full = encode(merged, ids)
    for linear, delta in deltas:
        linear.weight.data = (linear.weight.data.float() - 0.5 * delta).to(linear.weight.dtype)
    half = encode(merged, ids)
    del merged
    return full, half


def _count_adapted(encoder: Any) -> int:
    return sum(1 for m in encoder.modules() if ORACLE_ADAPTER in getattr(m, "lora_A", {}))


def diffusers_oracle(pipe: Any, lora_path: str | os.PathLike[str], tolerance: float | None = None) -> list[CheckResult]:
    """Run checklist item 8 against ``pipe``; returns one CheckResult per step."""
    lora_path = Path(lora_path)
    tensors = load_tensors(lora_path)
    groups = group_modules(tensors)
    incomplete = [k for k, parts in groups.items() if set(parts) != {"lora_down.weight", "lora_up.weight", "alpha"}]
    if not groups or incomplete:
        return [CheckResult("diffusers: runnable", False, "no complete LoRA modules" if not groups
                            else f"{len(incomplete)} module(s) lack down/up/alpha, e.g. {incomplete[0]}")]
    if tolerance is None:
        fp32 = all(v.dtype == torch.float32 for k, v in tensors.items() if k.endswith(".weight"))
        tolerance = 1e-5 if fp32 else 1e-3
    encoders = pipeline_text_encoders(pipe)
    known = {prefix for prefix, _, _ in encoders}
    stray = sorted({p for p, _, _ in groups if p not in known})
    if stray:
        return [CheckResult("diffusers: prefixes", False, f"{stray} do not belong to this pipeline (expects {sorted(known)})")]
    ids = [prompt_ids(tok, enc) for _, enc, tok in encoders]
    base = [encode(enc, i) for (_, enc, _), i in zip(encoders, ids)]
    expected = [merged_outputs(enc, prefix, groups, i) for (prefix, enc, _), i in zip(encoders, ids)]
    results: list[CheckResult] = []
    loaded = False
    try:
        try:
            pipe.load_lora_weights(str(lora_path.parent), weight_name=lora_path.name, adapter_name=ORACLE_ADAPTER)
            loaded = True
        except Exception as exc:  # diffusers raises many types; the message is the diagnosis
            results.append(CheckResult("diffusers: load_lora_weights", False, f"{type(exc).__name__}: {exc}"))
            return results
        want = {prefix: sum(1 for p, _, _ in groups if p == prefix) for prefix in known}
        got = {prefix: _count_adapted(enc) for prefix, enc, _ in encoders}
        results.append(CheckResult("diffusers: every module loaded", got == want,
                                   f"LoRA layers per encoder {got}, file modules {want}"))
        diff = max(_max_diff(encode(enc, i), exp[0]) for (_, enc, _), i, exp in zip(encoders, ids, expected))
        results.append(CheckResult("diffusers: output = merged weights", diff <= tolerance,
                                   f"max |diff| {diff:.2e} (tolerance {tolerance:.0e})"))
        pipe.set_adapters([ORACLE_ADAPTER], [0.5])
        diff = max(_max_diff(encode(enc, i), exp[1]) for (_, enc, _), i, exp in zip(encoders, ids, expected))
        results.append(CheckResult("diffusers: set_adapters(0.5) = half merge", diff <= tolerance,
                                   f"max |diff| {diff:.2e} (tolerance {tolerance:.0e})"))
    finally:
        if loaded:
            pipe.unload_lora_weights()
    diff = max(_max_diff(encode(enc, i), b) for (_, enc, _), i, b in zip(encoders, ids, base))
    results.append(CheckResult("diffusers: unload restores base", diff == 0.0, f"max |diff| {diff:.2e}"))
    return results
