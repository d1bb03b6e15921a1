"""Diffusers configs inferred from the tensor shapes of an A1111/LDM single-file checkpoint.

Everything a tensor shape reveals is read from the checkpoint (channel widths, block counts, which
blocks attend, cross-attention width, text-encoder widths/depths, projection sizes), so a real 2 GB
file and a tiny test file go through the same code. What no shape reveals comes from the released
family's config, from a rule that holds for every released model, or from architecture hints:

- attention heads: every released CLIP text encoder uses 64-wide heads (768/12, 1024/16, 1280/20);
  SD 1.x UNets use 8 heads everywhere (diffusers' ``attention_head_dim: 8``), SD 2.x and SDXL UNets
  use 64-wide heads (``attention_head_dim`` = channels / 64 per block).
- GroupNorm groups (32), sample size, VAE scaling factor: the family's values.

Hints are a JSON object stored in the file (safetensors metadata or a top-level ``.ckpt`` entry,
key ``textboost.architecture``), e.g. ``{"text_encoder": {"num_attention_heads": 4}}``; only the
non-inferable keys in ``HINT_KEYS`` are accepted. A width that breaks the rules and has no hint
is an error, never a guess.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from textboost_ext.models.errors import BaseModelError

Shapes = Mapping[str, tuple[int, ...]]

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
SD1_TEXT_PREFIX = "cond_stage_model.transformer."
SD2_TEXT_PREFIX = "cond_stage_model.model."
SDXL_TEXT1_PREFIX = "conditioner.embedders.0.transformer."
SDXL_TEXT2_PREFIX = "conditioner.embedders.1.model."

ARCHITECTURE_HINT_KEY = "textboost.architecture"
HINT_KEYS: dict[str, frozenset[str]] = {
    "unet": frozenset({"attention_head_dim", "norm_num_groups", "sample_size", "upcast_attention"}),
    "vae": frozenset({"norm_num_groups", "sample_size", "scaling_factor", "force_upcast"}),
    "text_encoder": frozenset({"num_attention_heads"}),
    "text_encoder_2": frozenset({"num_attention_heads"}),
}
CLIP_HEAD_WIDTH = 64  # every released CLIP/OpenCLIP text encoder and SD2/SDXL UNet attention head


def check_hints(hints: Mapping[str, Any], source: str) -> dict[str, dict[str, Any]]:
    """Validate architecture hints: known components, non-inferable keys only."""
    checked: dict[str, dict[str, Any]] = {}
    for component, values in hints.items():
        allowed = HINT_KEYS.get(component)
        if allowed is None or not isinstance(values, Mapping):
            raise BaseModelError(
                f"{source}: {ARCHITECTURE_HINT_KEY!r} has an unknown entry {component!r}; "
                f"expected an object for one of {sorted(HINT_KEYS)}"
            )
        bad = sorted(set(values) - allowed)
        if bad:
            raise BaseModelError(
                f"{source}: {ARCHITECTURE_HINT_KEY!r}[{component!r}] sets {bad}, which are read from the tensor "
                f"shapes or not supported; allowed keys: {sorted(allowed)}"
            )
        checked[component] = dict(values)
    return checked


def _under(shapes: Shapes, prefix: str) -> dict[str, tuple[int, ...]]:
    return {k[len(prefix) :]: v for k, v in shapes.items() if k.startswith(prefix)}


def _indices(keys: Any, pattern: str) -> list[int]:
    rx = re.compile(pattern)
    return sorted({int(m.group(1)) for k in keys if (m := rx.match(k))})


def _require(shapes: Mapping[str, tuple[int, ...]], key: str, what: str, source: str) -> tuple[int, ...]:
    if key not in shapes:
        raise BaseModelError(f"{source}: the {what} is incomplete: key {key!r} is missing (truncated or not an SD checkpoint?)")
    return shapes[key]


def text_heads(hidden: int, hint: Mapping[str, Any] | None, what: str, source: str) -> int:
    if hint and "num_attention_heads" in hint:
        return int(hint["num_attention_heads"])
    if hidden % CLIP_HEAD_WIDTH:
        raise BaseModelError(
            f"{source}: the {what} is {hidden} wide, which matches no released encoder (64-wide heads), and the file "
            f"has no {ARCHITECTURE_HINT_KEY!r} metadata giving its num_attention_heads"
        )
    return hidden // CLIP_HEAD_WIDTH


def infer_clip_config(shapes: Shapes, prefix: str, base: Mapping[str, Any], hint: Mapping[str, Any] | None, source: str) -> dict[str, Any]:
    """HF ``CLIPTextConfig`` kwargs for a CLIP ViT-L style encoder stored in HF layout under ``prefix``."""
    sub = _under(shapes, prefix)
    sub = {k.removeprefix("text_model."): v for k, v in sub.items()}
    what = f"text encoder under {prefix!r}"
    vocab, hidden = _require(sub, "embeddings.token_embedding.weight", what, source)
    layers = _indices(sub, r"encoder\.layers\.(\d+)\.")
    cfg = dict(base)
    cfg.update(
        vocab_size=vocab,
        hidden_size=hidden,
        max_position_embeddings=_require(sub, "embeddings.position_embedding.weight", what, source)[0],
        num_hidden_layers=len(layers),
        intermediate_size=_require(sub, "encoder.layers.0.mlp.fc1.weight", what, source)[0],
        num_attention_heads=text_heads(hidden, hint, what, source),
    )
    return cfg


def infer_open_clip_config(
    shapes: Shapes, prefix: str, base: Mapping[str, Any], hint: Mapping[str, Any] | None, source: str, *, drop_last_layer: bool
) -> dict[str, Any]:
    """HF ``CLIPTextConfig`` kwargs for an OpenCLIP text tower under ``prefix``.

    ``drop_last_layer``: SD 2.x conditions on the penultimate layer, so (as diffusers and kohya do)
    the HF encoder keeps all layers but the last, and its final layer norm then gives exactly the
    conditioning LDM/A1111 compute (penultimate block output -> ``ln_final``).
    """
    sub = _under(shapes, prefix)
    what = f"OpenCLIP text encoder under {prefix!r}"
    vocab, hidden = _require(sub, "token_embedding.weight", what, source)
    layers = _indices(sub, r"transformer\.resblocks\.(\d+)\.")
    if len(layers) < (2 if drop_last_layer else 1):
        raise BaseModelError(f"{source}: the {what} has {len(layers)} layers; expected at least 2")
    cfg = dict(base)
    cfg.update(
        vocab_size=vocab,
        hidden_size=hidden,
        max_position_embeddings=_require(sub, "positional_embedding", what, source)[0],
        num_hidden_layers=len(layers) - (1 if drop_last_layer else 0),
        intermediate_size=_require(sub, "transformer.resblocks.0.mlp.c_fc.weight", what, source)[0],
        num_attention_heads=text_heads(hidden, hint, what, source),
    )
    if "text_projection" in sub and not drop_last_layer:
        cfg["projection_dim"] = sub["text_projection"][1]  # OpenCLIP stores [width, embed_dim]
    return cfg


def infer_unet_config(shapes: Shapes, base: Mapping[str, Any], hint: Mapping[str, Any] | None, source: str) -> dict[str, Any]:
    """``UNet2DConditionModel`` config for the LDM UNet under ``model.diffusion_model.``."""
    sub = _under(shapes, UNET_PREFIX)
    what = "UNet (model.diffusion_model.*)"
    model_channels, in_channels = _require(sub, "input_blocks.0.0.weight", what, source)[:2]
    n_inputs = len(_indices(sub, r"input_blocks\.(\d+)\."))
    n_down = len(_indices(sub, r"input_blocks\.(\d+)\.0\.op\.weight"))
    levels = n_down + 1
    if (n_inputs - 1 - n_down) % levels:
        raise BaseModelError(f"{source}: the {what} has an irregular input-block layout ({n_inputs} blocks, {n_down} downsamplers)")
    per_level = (n_inputs - 1 - n_down) // levels

    def attends(block: str) -> bool:
        return any(k.startswith(block + ".1.transformer_blocks.") for k in sub)

    channels, down_types, depths, linear = [], [], [], False
    for level in range(levels):
        first = f"input_blocks.{1 + level * (per_level + 1)}"
        channels.append(_require(sub, first + ".0.out_layers.3.weight", what, source)[0])
        if attends(first):
            down_types.append("CrossAttnDownBlock2D")
            depths.append(len(_indices(sub, re.escape(first) + r"\.1\.transformer_blocks\.(\d+)\.")))
            linear = len(sub[first + ".1.proj_in.weight"]) == 2
        else:
            down_types.append("DownBlock2D")
            depths.append(1)
    up_types = []
    for level in range(levels):
        block = f"output_blocks.{level * (per_level + 1)}"
        up_types.append("CrossAttnUpBlock2D" if attends(block) else "UpBlock2D")
    to_k = next((v for k, v in sub.items() if k.endswith("attn2.to_k.weight")), None)
    if to_k is None:
        raise BaseModelError(f"{source}: the {what} has no cross-attention (attn2.to_k) weights; not a text-to-image UNet")

    cfg = dict(base)
    cfg.update(
        in_channels=in_channels,
        out_channels=_require(sub, "out.2.weight", what, source)[0],
        block_out_channels=channels,
        layers_per_block=per_level,
        down_block_types=down_types,
        up_block_types=up_types,
        cross_attention_dim=to_k[1],
        use_linear_projection=linear,
        transformer_layers_per_block=depths[0] if len(set(depths)) == 1 else depths,
    )
    if model_channels != channels[0]:
        raise BaseModelError(f"{source}: the {what} has conv_in width {model_channels} but first block width {channels[0]}")
    if "label_emb.0.0.weight" in sub:  # SDXL: pooled text embeds + 6 size/crop numbers, each time-embedded
        cfg["addition_embed_type"] = "text_time"
        cfg["projection_class_embeddings_input_dim"] = sub["label_emb.0.0.weight"][1]
    else:
        cfg.update(addition_embed_type=None, addition_time_embed_dim=None, projection_class_embeddings_input_dim=None)
    cfg.update(_unet_hints(cfg, base, hint, source))
    return cfg


def _unet_hints(cfg: Mapping[str, Any], base: Mapping[str, Any], hint: Mapping[str, Any] | None, source: str) -> dict[str, Any]:
    out = dict(hint or {})
    if "attention_head_dim" in out:
        return out
    if isinstance(base["attention_head_dim"], int):  # SD 1.x: a fixed head count in every block
        out["attention_head_dim"] = base["attention_head_dim"]
        return out
    widths = cfg["block_out_channels"]
    if any(w % CLIP_HEAD_WIDTH for w in widths):
        raise BaseModelError(
            f"{source}: UNet block widths {widths} are not multiples of the 64-wide heads of every released SD 2.x/SDXL "
            f"UNet, and the file has no {ARCHITECTURE_HINT_KEY!r} metadata giving attention_head_dim"
        )
    out["attention_head_dim"] = [w // CLIP_HEAD_WIDTH for w in widths]
    return out


def set_sdxl_time_embedding(unet_cfg: dict[str, Any], pooled_dim: int, source: str) -> None:
    """SDXL's added-condition input = pooled text embeds + 6 time-embedded numbers (sizes, crop)."""
    total = unet_cfg["projection_class_embeddings_input_dim"]
    if (total - pooled_dim) <= 0 or (total - pooled_dim) % 6:
        raise BaseModelError(
            f"{source}: the UNet's added-condition input ({total}) does not fit the second text encoder's projection "
            f"({pooled_dim}) plus 6 time embeddings"
        )
    unet_cfg["addition_time_embed_dim"] = (total - pooled_dim) // 6


def infer_vae_config(shapes: Shapes, prefix: str, base: Mapping[str, Any], hint: Mapping[str, Any] | None, source: str) -> dict[str, Any]:
    """``AutoencoderKL`` config for the LDM VAE under ``prefix`` (``first_stage_model.`` or "" for VAE files)."""
    sub = _under(shapes, prefix)
    what = f"VAE ({prefix or 'top level'}encoder/decoder.*)"
    levels = _indices(sub, r"encoder\.down\.(\d+)\.")
    if not levels:
        raise BaseModelError(f"{source}: no VAE weights ({prefix}encoder.down.*) found")
    channels = [_require(sub, f"encoder.down.{i}.block.0.conv2.weight", what, source)[0] for i in levels]
    cfg = dict(base)
    cfg.update(
        in_channels=_require(sub, "encoder.conv_in.weight", what, source)[1],
        out_channels=_require(sub, "decoder.conv_out.weight", what, source)[0],
        block_out_channels=channels,
        layers_per_block=len(_indices(sub, r"encoder\.down\.0\.block\.(\d+)\.")),
        latent_channels=_require(sub, "post_quant_conv.weight", what, source)[0],
        down_block_types=["DownEncoderBlock2D"] * len(channels),
        up_block_types=["UpDecoderBlock2D"] * len(channels),
    )
    cfg.update(hint or {})
    return cfg
