#!/usr/bin/env python
"""Train and verify TextBoost adapters on text encoders of the REAL sizes (a check to run by hand, not a test).

    .venv/bin/python scripts/real_size_check.py                    # sd1, sd2, sdxl; ~15 min, ~9 GB RAM on 2 CPUs
    .venv/bin/python scripts/real_size_check.py --families sdxl --work /tmp/rs

For each family a base is built locally with random weights: the text encoders from the released
configs shipped in ``textboost_ext/models/configs`` (SD 1.x CLIP-L 12 x 768; SD 2.x OpenCLIP-H 23 x 1024;
SDXL CLIP-L 12 x 768 + OpenCLIP-bigG 32 x 1280, ``eos_token_id = 2`` as released), the real CLIP
tokenizer, and a small UNet/VAE (only the text encoders matter here). TextBoost trains 2 steps on one
picture (each step in its own process), then ``textboost-hub verify --base`` checks the files: the
checklist, no all-zero module, and the diffusers oracle with the embedding and the trigger phrase
(hidden states and, for SDXL, the pooled output, with and without the documented pooling line).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIGS = {"sd1": "sd15.json", "sd2": "sd21-base.json", "sdxl": "sdxl-base.json"}
# family -> (save_precision, network_alpha): bf16 with alpha 0.3 shows the exact float32 alpha
SAVING = {"sd1": ("bf16", 0.3), "sd2": ("fp16", 4.0), "sdxl": ("fp16", 4.0)}


def build_base(family: str, folder: Path) -> Path:
    """A diffusers folder: real-size random text encoders, real tokenizer(s), small UNet and VAE."""
    import torch
    from diffusers import AutoencoderKL, DDPMScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from textboost_ext.models.tokenizer import build_clip_tokenizer

    spec = json.loads((REPO / "textboost_ext" / "models" / "configs" / CONFIGS[family]).read_text())
    torch.manual_seed(0)

    def encoder(key: str) -> object:
        cfg = {k: v for k, v in spec[key].items() if k not in ("architectures", "model_type")}
        cls = CLIPTextModelWithProjection if spec[key]["architectures"] == ["CLIPTextModelWithProjection"] else CLIPTextModel
        return cls(CLIPTextConfig(**cfg)).eval()

    def tokenizer(key: str) -> object:
        return build_clip_tokenizer(folder.parent / f".{folder.name}_{key}", pad_token=spec[key]["pad_token"])

    vae = AutoencoderKL(block_out_channels=(32, 32), down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=16)
    scheduler = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
                              clip_sample=False)
    unet_common = dict(block_out_channels=(32, 64), layers_per_block=1, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), attention_head_dim=8, sample_size=8, norm_num_groups=16)
    if family == "sdxl":
        te1, te2 = encoder("text_encoder"), encoder("text_encoder_2")
        unet = UNet2DConditionModel(**unet_common, cross_attention_dim=768 + 1280, addition_embed_type="text_time",
                                    addition_time_embed_dim=8, projection_class_embeddings_input_dim=6 * 8 + 1280)
        pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=te1, text_encoder_2=te2, tokenizer=tokenizer("tokenizer"),
                                         tokenizer_2=tokenizer("tokenizer_2"), unet=unet, scheduler=scheduler)
    else:
        te = encoder("text_encoder")
        unet = UNet2DConditionModel(**unet_common, cross_attention_dim=te.config.hidden_size,
                                    use_linear_projection=family == "sd2")
        pipe = StableDiffusionPipeline(vae=vae, text_encoder=te, tokenizer=tokenizer("tokenizer"), unet=unet, scheduler=scheduler,
                                       safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(str(folder), safe_serialization=True)
    return folder


def train(family: str, base: Path, work: Path) -> None:
    """Two TextBoost steps through the built-in host (run in a subprocess: the memory goes back after)."""
    from PIL import Image

    from textboost_ext.config import TextBoostConfig, TrainConfig
    from textboost_ext.extension import TextBoostExtension
    from textboost_ext.host.trainer import HostTrainer

    data = work / "data" / "1_dog"
    data.mkdir(parents=True, exist_ok=True)
    Image.radial_gradient("L").convert("RGB").resize((96, 64)).save(data / "dog.png")
    precision, alpha = SAVING[family]
    config = TrainConfig(
        pretrained_model_name_or_path=str(base), v2=family == "sd2", sdxl=family == "sdxl", train_data_dir=str(data.parent),
        resolution=[64, 64], train_batch_size=1, max_train_steps=2, optimizer_type="AdamW", learning_rate=1e-3,
        network_alpha=alpha, save_precision=precision, output_name=f"rs_{family}",
        adapters_dir=str(work / "adapters"), log_with="none", seed=7, overwrite=True,
        textboost=TextBoostConfig(placeholder_token=f"tbrs{family}", initializer="shiba inu dog", class_noun="dog"),
    )
    result = HostTrainer(config, TextBoostExtension()).train()
    print(json.dumps({"lora": str(result.lora_path)}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", default=["sd1", "sd2", "sdxl"], choices=sorted(CONFIGS))
    parser.add_argument("--work", type=Path, default=Path("/tmp/textboost_real_size"))
    parser.add_argument("--stage", choices=("all", "train"), default="all", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage == "train":
        family = args.families[0]
        train(family, args.work / family / "base", args.work / family)
        return 0
    failures = 0
    for family in args.families:
        work = args.work / family
        started = time.time()
        base = work / "base"
        if not (base / "model_index.json").is_file():
            build_base(family, base)
        out = subprocess.run([sys.executable, __file__, "--stage", "train", "--families", family, "--work", str(args.work)],
                             capture_output=True, text=True)
        if out.returncode != 0:
            print(out.stdout[-3000:], out.stderr[-6000:])
            return 1
        lora = json.loads(out.stdout.strip().splitlines()[-1])["lora"]
        verify = subprocess.run([str(Path(sys.executable).parent / "textboost-hub"), "verify", lora, "--base", str(base)],
                                capture_output=True, text=True)
        print(f"== {family}: trained + verified in {time.time() - started:.0f} s, exit {verify.returncode}")
        print(verify.stdout.strip())
        failures += verify.returncode != 0 or "WARN" in verify.stdout
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
