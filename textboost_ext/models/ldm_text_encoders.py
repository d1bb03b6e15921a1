"""Text encoders of A1111/LDM single files -> transformers ``CLIPTextModel``/``...WithProjection``.

Layouts in the files:
- CLIP ViT-L (SD 1.x under ``cond_stage_model.transformer.``, SDXL encoder 1 under
  ``conditioner.embedders.0.transformer.``): already the HF layout (``text_model.*``; some old files
  lack the ``text_model.`` level).
- OpenCLIP (SD 2.x under ``cond_stage_model.model.``, SDXL encoder 2 under
  ``conditioner.embedders.1.model.``): ``token_embedding.weight``, ``positional_embedding``,
  ``transformer.resblocks.N.{ln_1, attn.in_proj_weight/bias (q,k,v stacked), attn.out_proj, ln_2,
  mlp.c_fc, mlp.c_proj}``, ``ln_final``, ``text_projection`` ([width, embed], applied as x @ P) and
  ``logit_scale`` (unused by text conditioning).

We convert these ourselves rather than through diffusers' private single-file helpers: those hard-code
SD 2.x's layer count (they drop ``resblocks.23`` by name), which a non-standard-size file would get wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from textboost_ext.models.errors import BaseModelError

_OPEN_CLIP_BLOCK = {
    "ln_1.": "layer_norm1.",
    "ln_2.": "layer_norm2.",
    "attn.out_proj.": "self_attn.out_proj.",
    "mlp.c_fc.": "mlp.fc1.",
    "mlp.c_proj.": "mlp.fc2.",
}


def clip_state_dict(state_dict: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """HF-layout CLIP weights under ``prefix`` with keys ``text_model.*`` (position ids dropped)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if not key.startswith(prefix) or key.endswith("position_ids"):
            continue
        rest = key[len(prefix) :]
        out[rest if rest.startswith("text_model.") else "text_model." + rest] = value
    return out


def open_clip_state_dict(
    state_dict: Mapping[str, torch.Tensor], prefix: str, num_layers: int, with_projection: bool
) -> dict[str, torch.Tensor]:
    """OpenCLIP weights under ``prefix`` renamed to the HF CLIP layout, keeping the first ``num_layers`` blocks."""
    out: dict[str, torch.Tensor] = {}
    top = {
        "token_embedding.weight": "text_model.embeddings.token_embedding.weight",
        "positional_embedding": "text_model.embeddings.position_embedding.weight",
        "ln_final.weight": "text_model.final_layer_norm.weight",
        "ln_final.bias": "text_model.final_layer_norm.bias",
    }
    for key, value in state_dict.items():
        if not key.startswith(prefix):
            continue
        rest = key[len(prefix) :]
        if rest in top:
            out[top[rest]] = value
        elif rest == "text_projection" and with_projection:
            out["text_projection.weight"] = value.t().contiguous()  # nn.Linear stores [out, in]
        elif rest.startswith("transformer.resblocks."):
            index, _, leaf = rest.removeprefix("transformer.resblocks.").partition(".")
            if int(index) >= num_layers:
                continue
            layer = f"text_model.encoder.layers.{index}."
            if leaf in ("attn.in_proj_weight", "attn.in_proj_bias"):
                kind = leaf.rsplit("_", 1)[1]
                for name, chunk in zip(("q_proj", "k_proj", "v_proj"), value.chunk(3, dim=0)):
                    out[f"{layer}self_attn.{name}.{kind}"] = chunk.clone()
                continue
            for old, new in _OPEN_CLIP_BLOCK.items():
                if leaf.startswith(old):
                    out[layer + new + leaf[len(old) :]] = value
                    break
            else:
                raise BaseModelError(f"unexpected OpenCLIP text-encoder key {key!r}")
    return out


def build_text_encoder(cls: Any, config: Any, hf_state_dict: dict[str, torch.Tensor], dtype: torch.dtype, source: str) -> Any:
    """Instantiate ``cls(config)`` without random init and load ``hf_state_dict`` (keys ``text_model.*``)
    into it, checking that every weight is present and nothing is left over."""
    with torch.device("meta"):
        model = cls(config)
    expected = {k for k in model.state_dict() if not k.endswith("position_ids")}
    if not any(k.startswith("text_model.") for k in expected):
        # transformers >= 5.6 flattened CLIPTextModel: no ``text_model.`` level
        hf_state_dict = {k.removeprefix("text_model."): v for k, v in hf_state_dict.items()}
    missing = sorted(expected - set(hf_state_dict))
    unexpected = sorted(set(hf_state_dict) - expected)
    if missing or unexpected:
        raise BaseModelError(
            f"{source}: the {cls.__name__} weights do not match the inferred architecture "
            f"(missing: {missing[:5]}{'...' if len(missing) > 5 else ''}; unexpected: {unexpected[:5]}"
            f"{'...' if len(unexpected) > 5 else ''})"
        )
    model.load_state_dict(hf_state_dict, strict=False, assign=True)
    _materialize_position_ids(model)
    return model.to(dtype).eval()


def _materialize_position_ids(model: torch.nn.Module) -> None:
    # ``position_ids`` is a non-persistent buffer: not in any checkpoint, still on meta after loading.
    for module in model.modules():
        ids = module._buffers.get("position_ids")
        if ids is not None and ids.is_meta:
            module.register_buffer("position_ids", torch.arange(ids.shape[-1]).expand((1, -1)), persistent=False)
    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:
        raise RuntimeError(f"text encoder tensors left uninitialized after loading: {left[:5]}")
