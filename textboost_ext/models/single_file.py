"""Loading an A1111/LDM single file (``.safetensors`` / ``.ckpt``) offline.

UNet and VAE: diffusers' ``from_single_file(state_dict, config=<folder>)``, where the folder is built
from the released family's shipped configs with the sizes read from the checkpoint's tensors (see
``ldm_layout``); passing ``config=`` is what keeps diffusers from downloading configs.
Text encoders: our own key conversion (``ldm_text_encoders``). Tokenizers: the real CLIP BPE
tokenizer shipped in this package, padded as the family's released tokenizer pads.
"""

from __future__ import annotations

import copy
import json
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from textboost_ext.models.checkpoint_file import Checkpoint, read_checkpoint, sidecar_says_v_prediction
from textboost_ext.models.detect import check_flags, detect_single_file_family
from textboost_ext.models.errors import BaseModelError
from textboost_ext.models.family_configs import base_config, base_config_name
from textboost_ext.models.ldm_layout import (
    SD1_TEXT_PREFIX,
    SD2_TEXT_PREFIX,
    SDXL_TEXT1_PREFIX,
    SDXL_TEXT2_PREFIX,
    VAE_PREFIX,
    infer_clip_config,
    infer_open_clip_config,
    infer_unet_config,
    infer_vae_config,
    set_sdxl_time_embedding,
)
from textboost_ext.models.ldm_text_encoders import build_text_encoder, clip_state_dict, open_clip_state_dict
from textboost_ext.models.tokenizer import build_clip_tokenizer
from textboost_ext.models.types import LoadedModel

# ComfyUI's marker for v-prediction SDXL/SD files (an empty tensor named "v_pred").
V_PRED_MARKER_KEY = "v_pred"


def load_single_file_model(
    path: Path, *, v2: bool, v_parameterization: bool, sdxl: bool, torch_dtype: torch.dtype
) -> LoadedModel:
    ckpt = read_checkpoint(path)
    source = str(path)
    family = detect_single_file_family(ckpt.state_dict.keys(), source)
    family = check_flags(family, v2=v2, sdxl=sdxl, source=source, forced_v2_ok=False)
    # A single file doesn't record its prediction type: the user's flag (kohya's --v_parameterization),
    # an A1111 sidecar yaml, or ComfyUI's marker key say it is v-prediction.
    v_pred = v_parameterization or sidecar_says_v_prediction(path) or V_PRED_MARKER_KEY in ckpt.state_dict
    base = base_config(base_config_name(family, v_pred))
    shapes = ckpt.shapes()
    hints = ckpt.architecture_hints

    text_configs = _text_encoder_configs(family, shapes, base, hints, source)
    unet_cfg = infer_unet_config(shapes, base["unet"], hints.get("unet"), source)
    if family == "sdxl":
        set_sdxl_time_embedding(unet_cfg, text_configs[1]["projection_dim"], source)
    vae_cfg = infer_vae_config(shapes, VAE_PREFIX, base["vae"], hints.get("vae"), source)

    with tempfile.TemporaryDirectory(prefix="textboost_single_file_") as tmp:
        unet = load_component_from_single_file("unet", unet_cfg, ckpt, tmp, torch_dtype)
        vae = load_component_from_single_file("vae", vae_cfg, ckpt, tmp, torch_dtype)
    tokenizers = [
        clip_tokenizer(base[name]["pad_token"]) for name in (["tokenizer", "tokenizer_2"] if family == "sdxl" else ["tokenizer"])
    ]
    text_encoders = _text_encoders(family, ckpt, text_configs, torch_dtype, source)

    from diffusers import DDPMScheduler

    prediction_type = "v_prediction" if v_pred else "epsilon"
    scheduler = DDPMScheduler.from_config(_scheduler_config(base["scheduler"]), prediction_type=prediction_type)
    return LoadedModel(
        family=family,
        tokenizers=tokenizers,
        text_encoders=text_encoders,
        unet=unet,
        vae=vae,
        noise_scheduler=scheduler,
        source=source,
        extra={"format": "single_file", "base_config": base_config_name(family, v_pred)},
    )


@lru_cache(maxsize=None)
def _tokenizer_prototype(pad_token: str) -> Any:
    with tempfile.TemporaryDirectory(prefix="textboost_clip_tokenizer_") as tmp:
        return build_clip_tokenizer(tmp, pad_token=pad_token)


def clip_tokenizer(pad_token: str) -> Any:
    """A fresh real CLIP tokenizer (callers add placeholder tokens to theirs), copied from a per-process
    prototype: building one from the BPE files takes about a second."""
    return copy.deepcopy(_tokenizer_prototype(pad_token))


def _scheduler_config(config: dict[str, Any]) -> dict[str, Any]:
    # Training needs the betas and the prediction type only; DDPMScheduler ignores inference-only keys.
    return {k: v for k, v in config.items() if not k.startswith("_")}


def _text_encoder_configs(family: str, shapes: dict, base: dict, hints: dict, source: str) -> list[dict[str, Any]]:
    if family == "sd1":
        return [infer_clip_config(shapes, SD1_TEXT_PREFIX, base["text_encoder"], hints.get("text_encoder"), source)]
    if family == "sd2":
        return [
            infer_open_clip_config(
                shapes, SD2_TEXT_PREFIX, base["text_encoder"], hints.get("text_encoder"), source, drop_last_layer=True
            )
        ]
    return [
        infer_clip_config(shapes, SDXL_TEXT1_PREFIX, base["text_encoder"], hints.get("text_encoder"), source),
        infer_open_clip_config(
            shapes, SDXL_TEXT2_PREFIX, base["text_encoder_2"], hints.get("text_encoder_2"), source, drop_last_layer=False
        ),
    ]


def _text_encoders(family: str, ckpt: Checkpoint, configs: list[dict[str, Any]], dtype: torch.dtype, source: str) -> list[Any]:
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    def config(cfg: dict[str, Any]) -> Any:
        return CLIPTextConfig(**{k: v for k, v in cfg.items() if k not in ("architectures", "model_type")})

    sd = ckpt.state_dict
    if family == "sd1":
        return [build_text_encoder(CLIPTextModel, config(configs[0]), clip_state_dict(sd, SD1_TEXT_PREFIX), dtype, source)]
    if family == "sd2":
        layers = configs[0]["num_hidden_layers"]
        weights = open_clip_state_dict(sd, SD2_TEXT_PREFIX, layers, with_projection=False)
        return [build_text_encoder(CLIPTextModel, config(configs[0]), weights, dtype, source)]
    te1 = build_text_encoder(CLIPTextModel, config(configs[0]), clip_state_dict(sd, SDXL_TEXT1_PREFIX), dtype, source)
    weights2 = open_clip_state_dict(sd, SDXL_TEXT2_PREFIX, configs[1]["num_hidden_layers"], with_projection=True)
    te2 = build_text_encoder(CLIPTextModelWithProjection, config(configs[1]), weights2, dtype, source)
    return [te1, te2]


def load_component_from_single_file(
    name: str, config: dict[str, Any], ckpt: Checkpoint, config_root: str, torch_dtype: torch.dtype
) -> Any:
    """``UNet2DConditionModel``/``AutoencoderKL`` via diffusers' single-file converter, offline."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    cls = UNet2DConditionModel if name == "unet" else AutoencoderKL
    folder = Path(config_root) / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(dict(config, _class_name=cls.__name__), indent=2), "utf-8")
    try:
        # No torch_dtype here: diffusers would cast before we can see weights it left on the meta device.
        model = cls.from_single_file(ckpt.state_dict, config=config_root, subfolder=name, local_files_only=True)
    except NotImplementedError as e:  # "Cannot copy out of meta tensor": weights absent from the file
        missing = _absent_weights(cls, config, ckpt)
        raise BaseModelError(
            f"the {name} of {ckpt.path} lacks {len(missing) or 'some'} weights{f', e.g. {missing[:3]}' if missing else ''} "
            "(truncated file, or a layout this loader does not know)"
        ) from e
    except (ValueError, RuntimeError, KeyError) as e:
        raise BaseModelError(f"{ckpt.path}: could not load its {name} ({type(e).__name__}: {e})") from e
    require_all_weights(model, f"{name} of {ckpt.path}")
    if next(model.parameters()).dtype != torch_dtype:
        model = model.to(torch_dtype)
    return model.eval()


def _absent_weights(cls: Any, config: dict[str, Any], ckpt: Checkpoint) -> list[str]:
    """Diagnostics only: the model's weights that diffusers' LDM conversion of ``ckpt`` does not provide."""
    from diffusers.loaders import single_file_utils as sfu

    try:
        with torch.device("meta"):
            expected = set(cls.from_config(config).state_dict())
        if cls.__name__ == "UNet2DConditionModel":
            converted = sfu.convert_ldm_unet_checkpoint(ckpt.state_dict, config)
        else:
            converted = sfu.convert_ldm_vae_checkpoint(ckpt.state_dict, config)
        return sorted(expected - {k for k, v in converted.items() if v is not None})
    except Exception:  # noqa: BLE001 - best effort: the caller still raises a clear error
        return []


def require_all_weights(model: torch.nn.Module, what: str) -> None:
    """diffusers leaves weights that a checkpoint lacks on the meta device instead of failing: refuse them."""
    missing = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if missing:
        raise BaseModelError(
            f"the {what} lacks {len(missing)} weights, e.g. {missing[:3]} (truncated file, or a layout this loader "
            "does not know)"
        )
