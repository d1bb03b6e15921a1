"""The toy base's components, in the SD 1.x layout a user's model has (so every loader and host takes it as is).

- VAE: diffusers ``AutoencoderKL``, 3 blocks (32, 64, 64) = 4x downsampling: 32x32 RGB <-> 4x8x8 latents.
- Text encoder: transformers ``CLIPTextModel``, hidden 64, 2 layers, with the real 49,408-token CLIP tokenizer.
- UNet: diffusers ``UNet2DConditionModel`` (32, 64, 64), cross-attention at 8x8 and 4x4 (the feasibility
  study found a wider UNet stays at chance on position within the CPU budget).
- Scheduler: DDPM, scaled-linear betas 0.00085-0.012, epsilon prediction (the SD 1.5 schedule).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

TEXT_HIDDEN = 64
LATENT_SIZE = 8
IMAGE_SIZE = 32


def build_vae() -> Any:
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4,
        block_out_channels=(32, 64, 64),
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        layers_per_block=1, norm_num_groups=16, sample_size=IMAGE_SIZE,
        mid_block_add_attention=False,
    )


def build_text_encoder() -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        hidden_size=TEXT_HIDDEN, intermediate_size=4 * TEXT_HIDDEN, num_attention_heads=4, num_hidden_layers=2,
        vocab_size=49408, max_position_embeddings=77, hidden_act="quick_gelu",
        # the released SD 1.x text-encoder config's ids (pooling at the highest id; see tokens.fix_legacy_eos_pooling)
        bos_token_id=0, eos_token_id=2, pad_token_id=1,
    )
    return CLIPTextModel(config)


def build_unet() -> Any:
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=LATENT_SIZE, in_channels=4, out_channels=4,
        block_out_channels=(32, 64, 64), layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        attention_head_dim=8, cross_attention_dim=TEXT_HIDDEN, norm_num_groups=16,
    )


def build_scheduler(prediction_type: str = "epsilon") -> Any:
    from diffusers import DDPMScheduler

    scheduler = DDPMScheduler(
        num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
        prediction_type=prediction_type, clip_sample=False, steps_offset=1,
    )
    # as in SD 1.5's scheduler_config.json: DDIM/PNDM built from this config do not force the final alpha to 1
    scheduler.register_to_config(set_alpha_to_one=False)
    return scheduler


def build_tokenizer(directory: Path) -> Any:
    from textboost_ext.models.tokenizer import build_clip_tokenizer

    return build_clip_tokenizer(directory)


def assemble_pipeline(vae: Any, text_encoder: Any, unet: Any, tokenizer: Any, prediction_type: str = "epsilon") -> Any:
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=build_scheduler(prediction_type),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
