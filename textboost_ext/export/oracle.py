"""Checklist item 8: does diffusers, loading the files the way our docs tell users to, compute what training did?

``diffusers_oracle(pipe, lora_path, embedding=..., trigger=...)`` takes a diffusers pipeline (SD or SDXL)
whose text encoders are as ``from_pretrained`` loads them (released configs, e.g. SDXL's legacy
``eos_token_id = 2``), and:

1. encodes the base prompt with the base encoder(s) (for the restore check);
2. builds the reference, i.e. what training computed, by hand on deep copies: the placeholder's rows
   added to a copy of the tokenizer and the embedding table, pooling at the end-of-text token (as the
   trainer's encoders do), W += alpha/r * up @ down in fp32 for every module of the file (and at half
   weight); the prompt holds the trigger when there is an embedding;
3. does what a user does: ``load_textual_inversion`` (SDXL: ``clip_l`` and ``clip_g`` into their encoders,
   then the documented pooling line, :mod:`~textboost_ext.diffusers_lines`), ``load_lora_weights``,
   and encodes the prompt as the pipeline does (``maybe_convert_prompt`` expands a multi-vector name);
4. checks: same token ids, every file module got a LoRA layer, hidden states AND the pooled output equal
   the reference (<= 1e-5 for fp32 files, <= 1e-3 for fp16/bf16), ``set_adapters(0.5)`` = the half merge;
5. unloads LoRA and embedding, restores what the documented line changed, and checks the base outputs.
The pipeline is left as it was found, even when a step fails.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from textboost_ext.export.checklist import CheckResult, group_modules
from textboost_ext.diffusers_lines import SDXL_POOLING_LINE, apply_sdxl_pooling_line
from textboost_ext.export.safetensors_io import load_tensors
from textboost_ext.method.tokens import fix_legacy_eos_pooling, placeholder_vector_tokens

# Not "v": an adapter named like a module ("v" vs "v_proj") breaks peft/transformers key matching.
ORACLE_ADAPTER = "textboost_verify"
PROMPT = "a photo of a small dog sitting on a red sofa, highly detailed"
TRIGGER_PROMPT = "a photo of {} sitting on a red sofa, highly detailed"
EMBEDDING_KEYS = {1: ("emb_params",), 2: ("clip_l", "clip_g")}


@dataclass
class Embedding:
    """A placeholder embedding file: its name (the file stem) and its rows for each text encoder."""

    token: str
    rows: list[torch.Tensor]

    @classmethod
    def load(cls, path: str | os.PathLike[str], n_encoders: int) -> Embedding:
        tensors, keys = load_tensors(path), EMBEDDING_KEYS[n_encoders]
        if set(tensors) != set(keys):
            raise ValueError(f"{path}: embedding keys {sorted(tensors)}, expected {list(keys)} for this base")
        return cls(Path(path).stem, [tensors[k].float() for k in keys])


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


def prompt_ids(tokenizer: Any, encoder: Any, prompt: str = PROMPT) -> torch.Tensor:
    if tokenizer is None:
        generator = torch.Generator().manual_seed(0)
        return torch.randint(0, int(encoder.config.vocab_size) - 2, (1, 77), generator=generator)
    return tokenizer(prompt, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
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
def reference_outputs(encoder: Any, tokenizer: Any, prefix: str, groups: dict, prompt: str,
                      embedding: Embedding | None, index: int) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """``(ids, outputs at weight 1.0, at 0.5)`` of a hand-built copy: what training computed."""
    merged, tok, text = copy.deepcopy(encoder), copy.deepcopy(tokenizer), prompt
    if embedding is not None and tok is not None:
        rows = embedding.rows[index]
        tokens = placeholder_vector_tokens(embedding.token, rows.shape[0])
        if tok.add_tokens(tokens) != len(tokens):
            raise ValueError(f"the base tokenizer already knows {embedding.token!r}; the embedding cannot be checked")
        table = merged.get_input_embeddings().weight
        new_table = torch.cat([table.detach(), rows.to(table.dtype)])  # the trained rows after the vocabulary
        merged.get_input_embeddings().weight = torch.nn.Parameter(new_table, requires_grad=False)
        merged.get_input_embeddings().num_embeddings = new_table.shape[0]
        pattern = re.compile(rf"(?<![\w<-]){re.escape(embedding.token)}(?![\w>-])")
        text = pattern.sub(" ".join(tokens), prompt)
    if tok is not None:
        fix_legacy_eos_pooling(merged, tok.eos_token_id)  # training pools at end-of-text
    ids = prompt_ids(tok, merged, text)
    deltas = []
    for (p, layer, module), parts in groups.items():
        if p != prefix:
            continue
        down, up = parts["lora_down.weight"].float(), parts["lora_up.weight"].float()
        linear = target_linear(merged, layer, module)
        delta = (up @ down) * (float(parts["alpha"].float()) / down.shape[0])
        deltas.append((linear, delta))
        linear.weight.data = (linear.weight.data.float() + delta).to(linear.weight.dtype)
    full = encode(merged, ids)
    for linear, delta in deltas:
        linear.weight.data = (linear.weight.data.float() - 0.5 * delta).to(linear.weight.dtype)
    half = encode(merged, ids)
    del merged
    return ids, full, half


def _count_adapted(encoder: Any) -> int:
    return sum(1 for m in encoder.modules() if ORACLE_ADAPTER in getattr(m, "lora_A", {}))


def _pooling_module(pipe: Any) -> Any:
    te2 = getattr(pipe, "text_encoder_2", None)
    return getattr(te2, "text_model", None) if te2 is not None else None


def diffusers_oracle(pipe: Any, lora_path: str | os.PathLike[str], tolerance: float | None = None,
                     embedding: str | os.PathLike[str] | None = None, trigger: str | None = None) -> list[CheckResult]:
    """Run checklist item 8 against ``pipe``; returns one CheckResult per step. ``embedding``: the
    placeholder's embedding file; ``trigger``: what users type (default: the embedding's name)."""
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
    try:
        emb = Embedding.load(embedding, len(encoders)) if embedding is not None else None
    except (ValueError, OSError) as exc:
        return [CheckResult("diffusers: embedding file", False, str(exc))]
    prompt = TRIGGER_PROMPT.format(trigger or emb.token) if emb is not None else PROMPT
    base_ids = [prompt_ids(tok, enc) for _, enc, tok in encoders]
    base = [encode(enc, i) for (_, enc, _), i in zip(encoders, base_ids)]
    try:
        reference = [reference_outputs(enc, tok, prefix, groups, prompt, emb, n) for n, (prefix, enc, tok) in enumerate(encoders)]
    except ValueError as exc:
        return [CheckResult("diffusers: embedding file", False, str(exc))]
    results = _as_a_user(pipe, lora_path, encoders, groups, prompt, emb, reference, tolerance)
    diff = max(_max_diff(encode(enc, i), b) for (_, enc, _), i, b in zip(encoders, base_ids, base))
    results.append(CheckResult("diffusers: unload restores base", diff == 0.0, f"max |diff| {diff:.2e}"))
    return results


def _as_a_user(pipe: Any, lora_path: Path, encoders: list[tuple[str, Any, Any]], groups: dict, prompt: str,
               emb: Embedding | None, reference: list, tolerance: float) -> list[CheckResult]:
    """Steps 3 and 4 on ``pipe`` itself; everything it loads is unloaded again (step 5)."""
    results: list[CheckResult] = []
    pooling, released_eos = _pooling_module(pipe), getattr(_pooling_module(pipe), "eos_token_id", None)
    loaded_embeddings: list[tuple[Any, Any, list[str]]] = []
    lora_loaded = False
    try:
        try:
            if emb is not None:
                for (_, enc, tok), rows in zip(encoders, emb.rows):
                    pipe.load_textual_inversion(rows.to(enc.dtype), token=emb.token, text_encoder=enc, tokenizer=tok)
                    loaded_embeddings.append((enc, tok, placeholder_vector_tokens(emb.token, rows.shape[0])))
                if pooling is not None:
                    apply_sdxl_pooling_line(pipe)
            pipe.load_lora_weights(str(lora_path.parent), weight_name=lora_path.name, adapter_name=ORACLE_ADAPTER)
            lora_loaded = True
        except Exception as exc:  # diffusers raises many types; the message is the diagnosis
            results.append(CheckResult("diffusers: load", False, f"{type(exc).__name__}: {exc}"))
            return results
        ids = [prompt_ids(tok, enc, pipe.maybe_convert_prompt(prompt, tok) if tok is not None else prompt)
               for _, enc, tok in encoders]
        same_ids = all(torch.equal(a, r[0]) for a, r in zip(ids, reference))
        if emb is not None:
            results.append(CheckResult("diffusers: trigger tokenizes as in training", same_ids,
                                       f"prompt {prompt!r}" + ("" if same_ids else ": token ids differ")))
        want = {prefix: sum(1 for p, _, _ in groups if p == prefix) for prefix, _, _ in encoders}
        got = {prefix: _count_adapted(enc) for prefix, enc, _ in encoders}
        results.append(CheckResult("diffusers: every module loaded", got == want,
                                   f"LoRA layers per encoder {got}, file modules {want}"))
        outputs = [encode(enc, i) for (_, enc, _), i in zip(encoders, ids)]
        hidden = max(float((o[0] - r[1][0]).abs().max()) for o, r in zip(outputs, reference))
        results.append(CheckResult("diffusers: hidden states = training", hidden <= tolerance,
                                   f"max |diff| {hidden:.2e} (tolerance {tolerance:.0e})"))
        if pooling is not None:
            results.append(_pooled_check(pipe, encoders, ids, outputs, reference, released_eos, tolerance, emb is not None))
        pipe.set_adapters([ORACLE_ADAPTER], [0.5])
        diff = max(_max_diff(encode(enc, i), r[2]) for (_, enc, _), i, r in zip(encoders, ids, reference))
        results.append(CheckResult("diffusers: set_adapters(0.5) = half merge", diff <= tolerance,
                                   f"max |diff| {diff:.2e} (tolerance {tolerance:.0e})"))
    finally:
        if lora_loaded:
            pipe.unload_lora_weights()
        for enc, tok, tokens in loaded_embeddings:
            pipe.unload_textual_inversion(tokens=tokens, tokenizer=tok, text_encoder=enc)
        if pooling is not None:
            pooling.eos_token_id = released_eos
    return results


def _pooled_check(pipe: Any, encoders: list, ids: list[torch.Tensor], outputs: list, reference: list,
                  released_eos: Any, tolerance: float, with_embedding: bool) -> CheckResult:
    """SDXL's pooled output (its UNet conditions on it), and for the record what it would be without the line."""
    pooled = float((outputs[1][1] - reference[1][1][1]).abs().max())
    detail = f"max |diff| {pooled:.2e} (tolerance {tolerance:.0e}) with `{SDXL_POOLING_LINE}`"
    if with_embedding:
        module = _pooling_module(pipe)
        fixed_eos, module.eos_token_id = module.eos_token_id, released_eos
        try:
            without = float((encode(encoders[1][1], ids[1])[1] - reference[1][1][1]).abs().max())
        finally:
            module.eos_token_id = fixed_eos
        detail += f"; {without:.2e} without it"
    return CheckResult("diffusers: pooled output = training", pooled <= tolerance, detail)
