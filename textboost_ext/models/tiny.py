"""Tiny Stable Diffusion models with random weights, built offline (for the demo and the tests).

Same layouts as the real families (SD 1.x, SD 2.x epsilon / v-prediction, SDXL), so every code path a
real checkpoint takes is exercised, with the real 49,408-token CLIP tokenizer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from textboost_ext.models.tokenizer import build_clip_tokenizer

TINY_FAMILIES = ("sd1", "sd2", "sd2v", "sdxl")


def _clip_config(hidden: int, layers: int, pad_token_id: int, projection_dim: int | None = None, act: str = "quick_gelu") -> Any:
    from transformers import CLIPTextConfig

    kwargs: dict[str, Any] = dict(
        hidden_size=hidden,
        intermediate_size=hidden + 5,  # deliberately != 4*hidden so shape bugs show
        num_attention_heads=4,
        num_hidden_layers=layers,
        vocab_size=49408,
        bos_token_id=49406,
        # the released SD 1.x / 2.x / SDXL text-encoder configs say 2 (legacy: pool at the highest token id),
        # so the tiny models exercise the pooling fix an added token needs (tokens.fix_legacy_eos_pooling)
        eos_token_id=2,
        pad_token_id=pad_token_id,
        max_position_embeddings=77,
        hidden_act=act,
    )
    if projection_dim is not None:
        kwargs["projection_dim"] = projection_dim
    return CLIPTextConfig(**kwargs)


def _vae() -> Any:
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=(32, 32, 32, 32),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        norm_num_groups=16,
        sample_size=64,
    )


def _scheduler(prediction_type: str) -> Any:
    from diffusers import DDPMScheduler

    return DDPMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        clip_sample=False,
        prediction_type=prediction_type,
    )


def build_tiny_pipeline(family: str, seed: int = 0, tokenizer_dir: str | Path | None = None) -> Any:
    """A diffusers pipeline of the given tiny family: "sd1", "sd2" (epsilon), "sd2v" (v-pred), "sdxl"."""
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection
    import tempfile

    if family not in TINY_FAMILIES:
        raise ValueError(f"unknown tiny family {family!r}; choose one of {TINY_FAMILIES}")
    torch.manual_seed(seed)
    tok_root = Path(tokenizer_dir or tempfile.mkdtemp(prefix="tb_tok_"))
    unet_common: dict[str, Any] = dict(
        block_out_channels=(32, 64),
        layers_per_block=2,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        attention_head_dim=8,
        sample_size=8,
        norm_num_groups=16,
    )
    if family == "sdxl":
        te1 = CLIPTextModel(_clip_config(32, 2, 49407))
        te2 = CLIPTextModelWithProjection(_clip_config(48, 2, 0, projection_dim=48, act="gelu"))
        unet = UNet2DConditionModel(
            **unet_common,
            cross_attention_dim=32 + 48,
            addition_embed_type="text_time",
            addition_time_embed_dim=8,
            projection_class_embeddings_input_dim=6 * 8 + 48,
            transformer_layers_per_block=1,
        )
        return StableDiffusionXLPipeline(
            vae=_vae(),
            text_encoder=te1,
            text_encoder_2=te2,
            tokenizer=build_clip_tokenizer(tok_root / "tokenizer"),
            tokenizer_2=build_clip_tokenizer(tok_root / "tokenizer_2", pad_token="!"),
            unet=unet,
            scheduler=_scheduler("epsilon"),
        )
    if family == "sd1":
        te = CLIPTextModel(_clip_config(32, 2, 49407))
        tok = build_clip_tokenizer(tok_root / "tokenizer")
        unet = UNet2DConditionModel(**unet_common, cross_attention_dim=32)
        prediction = "epsilon"
    else:  # SD 2.x: OpenCLIP-H layout (gelu, pad "!"), 64-wide heads in real models
        te = CLIPTextModel(_clip_config(40, 3, 0, act="gelu"))
        tok = build_clip_tokenizer(tok_root / "tokenizer", pad_token="!")
        unet = UNet2DConditionModel(**unet_common, cross_attention_dim=40, use_linear_projection=True)
        prediction = "v_prediction" if family == "sd2v" else "epsilon"
    return StableDiffusionPipeline(
        vae=_vae(),
        text_encoder=te,
        tokenizer=tok,
        unet=unet,
        scheduler=_scheduler(prediction),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def save_tiny_model(family: str, directory: str | Path, seed: int = 0) -> Path:
    """Build a tiny model and save it as a diffusers folder; returns the folder."""
    directory = Path(directory)
    pipe = build_tiny_pipeline(family, seed=seed, tokenizer_dir=directory.parent / f".{directory.name}_tok")
    pipe.save_pretrained(str(directory), safe_serialization=True)
    return directory
