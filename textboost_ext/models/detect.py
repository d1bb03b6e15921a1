"""Which Stable Diffusion family a checkpoint or folder holds, and conflicts with the user's flags.

Single files (A1111/LDM layout), by key prefix:
- SDXL: ``conditioner.embedders.0.transformer.*`` (CLIP ViT-L) + ``conditioner.embedders.1.model.*`` (OpenCLIP bigG)
- SD 2.x: ``cond_stage_model.model.*`` (OpenCLIP ViT-H)
- SD 1.x: ``cond_stage_model.transformer.*`` (CLIP ViT-L)
and always ``model.diffusion_model.*`` (UNet) + ``first_stage_model.*`` (VAE).

Diffusers folders:
- SDXL: ``model_index.json`` names a ``text_encoder_2`` (and it has ``tokenizer_2``).
- SD 2.x: the text encoder is OpenCLIP-like, told by either of two signals that hold for every
  released model and our tiny ones: ``hidden_act == "gelu"`` in ``text_encoder/config.json``
  (CLIP ViT-L, i.e. SD 1.x, uses ``quick_gelu``), or the tokenizer pads with ``"!"`` (CLIP ViT-L
  pads with ``<|endoftext|>``). Sizes (1024 wide, 23 layers) are deliberately not used: fine-tunes
  and tiny test models change them. ``v2=True`` forces SD 2.x for a non-SDXL folder.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from textboost_ext.models.errors import BaseModelError
from textboost_ext.models.ldm_layout import (
    SD1_TEXT_PREFIX,
    SD2_TEXT_PREFIX,
    SDXL_TEXT1_PREFIX,
    SDXL_TEXT2_PREFIX,
    UNET_PREFIX,
    VAE_PREFIX,
)
from textboost_ext.models.types import Family

EXPECTED_KEYS_HELP = (
    f"expected an A1111/LDM Stable Diffusion checkpoint: UNet under {UNET_PREFIX!r}, VAE under {VAE_PREFIX!r} and "
    f"a text encoder under {SD1_TEXT_PREFIX!r} (SD 1.x), {SD2_TEXT_PREFIX!r} (SD 2.x) or "
    f"{SDXL_TEXT1_PREFIX!r} + {SDXL_TEXT2_PREFIX!r} (SDXL)"
)


def _has(keys: Collection[str], prefix: str) -> bool:
    return any(k.startswith(prefix) for k in keys)


def _what_else(keys: Collection[str]) -> str:
    """A guess at what a non-checkpoint file is, to make the error actionable."""
    if _has(keys, "lora_") or any(".lora_down." in k or "lora_A" in k for k in keys):
        return " It looks like a LoRA/network file, not a base model."
    if _has(keys, "encoder.down.") or _has(keys, "decoder.up."):
        return " It looks like a VAE on its own: pass it as vae=... next to a base model."
    if _has(keys, "down_blocks.") or _has(keys, "text_model."):
        return " It looks like one diffusers component; point at the whole diffusers folder instead."
    if any(k.startswith("emb_params") or k in ("clip_l", "clip_g", "string_to_param") for k in keys):
        return " It looks like a textual-inversion embedding, not a base model."
    return ""


def detect_single_file_family(keys: Collection[str], source: str) -> Family:
    if not keys:
        raise BaseModelError(f"{source}: holds no tensors; {EXPECTED_KEYS_HELP}")
    if _has(keys, "conditioner.embedders."):
        if not (_has(keys, SDXL_TEXT1_PREFIX) and _has(keys, SDXL_TEXT2_PREFIX)):
            raise BaseModelError(
                f"{source}: an SDXL-style checkpoint without both text encoders ({SDXL_TEXT1_PREFIX!r} and "
                f"{SDXL_TEXT2_PREFIX!r}); the SDXL refiner is not a base for text-encoder training"
            )
        family: Family = "sdxl"
    elif _has(keys, SD2_TEXT_PREFIX):
        family = "sd2"
    elif _has(keys, SD1_TEXT_PREFIX):
        family = "sd1"
    else:
        raise BaseModelError(f"{source}: not a Stable Diffusion checkpoint; {EXPECTED_KEYS_HELP}.{_what_else(keys)}")
    missing = [p for p in (UNET_PREFIX, VAE_PREFIX) if not _has(keys, p)]
    if missing:
        raise BaseModelError(f"{source}: has a text encoder but no weights under {missing}; {EXPECTED_KEYS_HELP}")
    return family


def check_flags(family: Family, *, v2: bool, sdxl: bool, source: str, forced_v2_ok: bool) -> Family:
    """Reconcile the detected family with the user's ``v2``/``sdxl`` flags (kohya's --v2 / SDXL scripts)."""
    if sdxl and family != "sdxl":
        raise BaseModelError(f"{source}: sdxl=True but this is an SD {'1.x' if family == 'sd1' else '2.x'} model; drop sdxl")
    if v2 and family == "sdxl":
        raise BaseModelError(f"{source}: v2=True but this is an SDXL model; drop v2")
    if v2 and family == "sd1":
        if not forced_v2_ok:
            raise BaseModelError(
                f"{source}: v2=True but the checkpoint holds an SD 1.x text encoder ({SD1_TEXT_PREFIX}*); drop v2"
            )
        return "sd2"
    return family


def detect_folder_family(model_index: Mapping[str, Any], text_encoder_config: Any, pad_token: str | None) -> Family:
    if _component_present(model_index, "text_encoder_2"):
        if not _component_present(model_index, "text_encoder"):
            raise BaseModelError("the folder has text_encoder_2 but no text_encoder: the SDXL refiner is not supported")
        return "sdxl"
    if getattr(text_encoder_config, "hidden_act", None) == "gelu" or pad_token == "!":
        return "sd2"
    return "sd1"


def _component_present(model_index: Mapping[str, Any], name: str) -> bool:
    entry = model_index.get(name)
    return isinstance(entry, (list, tuple)) and len(entry) == 2 and entry[0] is not None and entry[1] is not None
