"""Loading a diffusers-format base (a local folder with ``model_index.json``, or a Hub repo id).

Components are loaded one by one with their own ``from_pretrained`` (no pipeline class), so a
folder from any SD pipeline works and nothing we don't need (safety checker, feature extractor) is
read. ``source`` is a local folder (``local_files_only=True``) or a repo id (the Hub is asked).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from textboost_ext.models.detect import check_flags, detect_folder_family
from textboost_ext.models.errors import BaseModelError
from textboost_ext.models.types import LoadedModel


def read_model_index(source: str, local_files_only: bool) -> dict[str, Any]:
    if local_files_only:
        index = Path(source) / "model_index.json"
        if not index.is_file():
            raise BaseModelError(
                f"{source}: a folder without model_index.json is not a diffusers model. Point at the diffusers folder "
                "itself (the one holding model_index.json, unet/, vae/, text_encoder/), or at a .safetensors/.ckpt file"
            )
        path = str(index)
    else:
        from huggingface_hub import hf_hub_download

        path = hf_hub_download(source, "model_index.json")
    try:
        return json.loads(Path(path).read_text("utf-8"))
    except json.JSONDecodeError as e:
        raise BaseModelError(f"{path}: not valid JSON ({e})") from e


def load_diffusers_model(
    source: str,
    *,
    local_files_only: bool,
    v2: bool,
    v_parameterization: bool,
    sdxl: bool,
    torch_dtype: torch.dtype,
) -> LoadedModel:
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    index = read_model_index(source, local_files_only)
    for needed in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        if needed not in index:
            raise BaseModelError(f"{source}: model_index.json names no {needed!r}; not a Stable Diffusion pipeline")
    opts: dict[str, Any] = {"local_files_only": local_files_only}

    tokenizer = CLIPTokenizer.from_pretrained(source, subfolder="tokenizer", **opts)
    te_config = CLIPTextConfig.from_pretrained(source, subfolder="text_encoder", **opts)
    family = detect_folder_family(index, te_config, tokenizer.pad_token)
    family = check_flags(family, v2=v2, sdxl=sdxl, source=source, forced_v2_ok=True)

    tokenizers = [tokenizer]
    # Load in the stored dtype, then cast: works for transformers 4.x (torch_dtype=) and 5.x (dtype=) alike.
    text_encoders = [CLIPTextModel.from_pretrained(source, subfolder="text_encoder", **opts)]
    if family == "sdxl":
        tokenizers.append(CLIPTokenizer.from_pretrained(source, subfolder="tokenizer_2", **opts))
        text_encoders.append(CLIPTextModelWithProjection.from_pretrained(source, subfolder="text_encoder_2", **opts))
    text_encoders = [te.to(torch_dtype).eval() for te in text_encoders]

    unet = UNet2DConditionModel.from_pretrained(source, subfolder="unet", torch_dtype=torch_dtype, **opts).eval()
    vae = AutoencoderKL.from_pretrained(source, subfolder="vae", torch_dtype=torch_dtype, **opts).eval()

    scheduler_config = DDPMScheduler.load_config(source, subfolder="scheduler", **opts)
    prediction_type = "v_prediction" if v_parameterization else scheduler_config.get("prediction_type", "epsilon")
    scheduler = DDPMScheduler.from_config(scheduler_config, prediction_type=prediction_type)
    return LoadedModel(
        family=family,
        tokenizers=tokenizers,
        text_encoders=text_encoders,
        unet=unet,
        vae=vae,
        noise_scheduler=scheduler,
        source=source,
        extra={"format": "diffusers"},
    )
