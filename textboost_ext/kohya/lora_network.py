"""sd-scripts' ``networks.lora.LoRANetwork``, extended on the instance for TextBoost.

The placeholder rows (``ExtendedTokenEmbedding.new_rows``) live in the text encoder, which sd-scripts
freezes with ``requires_grad_(False)`` after building the optimizer. Registered on the network too
(as ``textboost_embedding.rows_<i>``, the SAME Parameter objects), they are handled like the LoRA:
``prepare_optimizer_params``/``prepare_grad_etc`` make them trainable again, ``all_reduce_network``
averages their gradients across processes, ``accelerator.save_state`` saves them for ``--resume``.

Three instance attributes replace the class methods (sd-scripts looks them up on the instance):
``prepare_optimizer_params`` appends the embedding group (its own lr, weight decay 0, which overrides
the global ``weight_decay`` of ``--optimizer_args``); ``get_trainable_params`` leaves the rows out of
gradient clipping (as the built-in host clips only the LoRA); ``save_weights`` detaches the holder
while sd-scripts writes the LoRA file (so that file holds only ``lora_te*`` keys and its ``sshs_*``
hashes describe exactly what is written; ``ss_output_name`` is set to the file's stem, which checkpoints
otherwise lack), rewrites the file's alphas in float32 (:func:`restore_float32_alphas`), then calls back
to write the embedding files beside it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

EMBEDDING_MODULE = "textboost_embedding"
EMBEDDING_DESCRIPTION = "textboost_embedding"  # becomes the lr/<description> tracker tag


def keep_lora_targets(network: Any, targets: list[str]) -> int:
    """Keep only text-encoder LoRA modules of the ``[textboost] lora_targets`` kinds (before ``apply_to``).

    sd-scripts names them ``lora_te_..._self_attn_q_proj``, ``lora_te_..._mlp_fc1`` etc. Returns the
    number of modules dropped.
    """
    suffixes = tuple(f"_{target}" for target in targets)
    before = list(network.text_encoder_loras)
    network.text_encoder_loras = [lora for lora in before if lora.lora_name.endswith(suffixes)]
    if not network.text_encoder_loras:
        raise ValueError(f"[textboost] lora_targets {targets} matched none of the network's {len(before)} "
                         "text-encoder modules")
    return len(before) - len(network.text_encoder_loras)


def keep_conditioning_layers(network: Any, layer_counts: list[int]) -> int:
    """Drop text-encoder LoRA modules of layers whose output never reaches the conditioning (before
    ``apply_to``): they cannot train and would be exported all-zero (SDXL encoder 1's last layer, the
    layers after a clip_skip read). ``layer_counts`` per encoder, from ``conditioning_layer_counts``.
    Returns the number of modules dropped."""
    from textboost_ext.export.metadata import module_layer
    from textboost_ext.network import te_prefixes

    limits = dict(zip(te_prefixes(len(layer_counts)), layer_counts))
    before = list(network.text_encoder_loras)
    kept = []
    for lora in before:
        prefix, layer = module_layer(lora.lora_name)
        if prefix not in limits:
            raise ValueError(f"LoRA module {lora.lora_name} has prefix {prefix}_, expected one of {sorted(limits)}")
        if layer < limits[prefix]:
            kept.append(lora)
    network.text_encoder_loras = kept
    return len(before) - len(kept)


def attach_embedding_rows(network: nn.Module, groups: list[dict[str, Any]]) -> list[nn.Parameter]:
    """Register the extension's extra optimizer groups' parameters on ``network`` and append the groups
    to the network's ``prepare_optimizer_params`` result. Returns the attached parameters."""
    rows = [p for group in groups for p in group["params"]]
    if not rows:
        return []
    holder = nn.Module()
    for index, param in enumerate(rows):
        holder.register_parameter(f"rows_{index}", param)
    network.add_module(EMBEDDING_MODULE, holder)
    extra_groups = [{k: v for k, v in group.items() if k != "name"} for group in groups]
    for group in extra_groups:
        group["params"] = list(group["params"])
        group.setdefault("weight_decay", 0.0)

    lora_prepare = network.prepare_optimizer_params

    def prepare_optimizer_params(*args: Any, **kwargs: Any) -> Any:
        result = lora_prepare(*args, **kwargs)
        params, descriptions = result if isinstance(result, tuple) else (result, None)
        params = list(params) + [dict(group) for group in extra_groups]
        for param in rows:
            param.requires_grad_(True)
        if descriptions is None:
            return params
        return params, list(descriptions) + [EMBEDDING_DESCRIPTION] * len(extra_groups)

    lora_trainable = network.get_trainable_params

    def get_trainable_params() -> list[nn.Parameter]:
        attached = {id(p) for p in rows}
        return [p for p in lora_trainable() if id(p) not in attached]

    network.prepare_optimizer_params = prepare_optimizer_params
    network.get_trainable_params = get_trainable_params
    return rows


def wrap_save_weights(
    network: nn.Module,
    before_save: Callable[[], None],
    after_save: Callable[[Path, torch.dtype | None], None],
) -> None:
    """Every ``network.save_weights(file, dtype, metadata)``: ``before_save()``, sd-scripts' own save of the
    LoRA alone, then ``after_save(file, dtype)`` (embedding file, sidecars)."""
    lora_save = network.save_weights

    def save_weights(file: str, dtype: torch.dtype | None, metadata: dict[str, str] | None) -> None:
        before_save()
        if metadata and "ss_output_name" in metadata:
            # A1111 shows ss_output_name as the <lora:NAME:w> alias; sd-scripts writes --output_name into every
            # step/epoch checkpoint too, so they would all share the final file's alias
            metadata = {**metadata, "ss_output_name": Path(file).stem}
        holder = getattr(network, EMBEDDING_MODULE, None)
        if holder is not None:
            delattr(network, EMBEDDING_MODULE)
        try:
            lora_save(file, dtype, metadata)
        finally:
            if holder is not None:
                network.add_module(EMBEDDING_MODULE, holder)
        restore_float32_alphas(Path(file))
        after_save(Path(file), dtype)

    network.save_weights = save_weights


def restore_rows(rows: list[nn.Parameter], dtype: torch.dtype) -> None:
    """Undo sd-scripts' later changes to the rows it sees as text-encoder weights: ``requires_grad_(False)``
    and, on a GPU with mixed precision, the cast of the whole encoder to fp16/bf16 (the rows train in fp32).
    ``.data`` is replaced in place, so the optimizer keeps the same Parameter objects."""
    for param in rows:
        if param.dtype != dtype:
            param.data = param.data.to(dtype)
        if not param.requires_grad:
            param.requires_grad_(True)


def restore_float32_alphas(file: Path) -> bool:
    """Store every ``.alpha`` of sd-scripts' LoRA file in float32, equal to ``ss_network_alpha``.

    sd-scripts casts alpha with the weights (``--save_precision bf16`` turns 0.3 into 0.30078125, a scale
    0.26 % off what the metadata and the training used). Each alpha is replaced only when it is
    ``ss_network_alpha`` rounded to its stored dtype (a precision loss, never a different value); the
    ``sshs_*`` hashes are recomputed for the new tensors, and the file is replaced atomically. Returns
    True if the file was rewritten.
    """
    from textboost_ext.export.hashes import kohya_hashes
    from textboost_ext.export.lora_file import ALPHA_DTYPE
    from textboost_ext.export.safetensors_io import atomic_save_safetensors, load_tensors, read_header

    metadata, _ = read_header(file)
    stated = metadata.get("ss_network_alpha")
    tensors = load_tensors(file)
    alpha_keys = [k for k, v in tensors.items() if k.endswith(".alpha") and v.dtype != ALPHA_DTYPE]
    if stated is None or not alpha_keys:
        return False
    try:
        exact = torch.tensor(float(stated), dtype=ALPHA_DTYPE)
    except ValueError:
        return False  # not a number: verify reports it
    if any(not torch.equal(tensors[k], exact.to(tensors[k].dtype)) for k in alpha_keys):
        return False  # a per-module alpha that is not the stated one: leave it for verify to report
    for key in alpha_keys:
        tensors[key] = exact.clone()
    text = {k: v for k, v in metadata.items() if isinstance(v, str)}
    if "sshs_model_hash" in text or "sshs_legacy_hash" in text:
        text["sshs_model_hash"], text["sshs_legacy_hash"] = kohya_hashes(tensors, text)
    atomic_save_safetensors(file, tensors, text)
    return True
