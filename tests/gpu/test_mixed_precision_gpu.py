"""fp16 and bf16 training on a CUDA GPU with REAL-size random-weight models (skipped without CUDA).

A session with a GPU runs: `.venv/bin/python -m pytest -q -m gpu tests/gpu` (about 2-4 min on one
H100, most of it building and saving the random SDXL base). Each case trains three TextBoost steps at
512 px (SDXL: 1024 px) with the released component configs shipped in textboost_ext/models/configs,
then checks finite losses, that the LoRA moved away from its zero init, frozen weights stored in the
compute dtype, the LoRA in fp32, the SDXL VAE in fp32 under fp16, and that the file passes verify.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
CONFIGS = Path(__file__).resolve().parents[2] / "textboost_ext" / "models" / "configs"
FILES = {"sd1": "sd15.json", "sdxl": "sdxl-base.json"}


def _component_config(spec: dict) -> dict:
    return {k: v for k, v in spec.items() if not k.startswith("_") and k not in ("architectures", "model_type")}


def build_real_size_base(family: str, folder: Path) -> Path:
    """A diffusers folder with the released architecture and random weights (saved in fp16 to save disk)."""
    from diffusers import AutoencoderKL, DDPMScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from textboost_ext.models.tokenizer import build_clip_tokenizer

    if (folder / "model_index.json").is_file():
        return folder
    spec = json.loads((CONFIGS / FILES[family]).read_text())
    torch.manual_seed(0)
    with torch.device("cuda"):  # random init of 2.6 G parameters is minutes on a CPU, seconds here
        unet = UNet2DConditionModel(**_component_config(spec["unet"]))
        vae = AutoencoderKL(**_component_config(spec["vae"]))

        def encoder(key: str):  # noqa: ANN202
            cls = CLIPTextModelWithProjection if spec[key]["architectures"] == ["CLIPTextModelWithProjection"] else CLIPTextModel
            return cls(CLIPTextConfig(**_component_config(spec[key])))

        encoders = [encoder("text_encoder")] + ([encoder("text_encoder_2")] if family == "sdxl" else [])
    scheduler_cfg = {k: v for k, v in _component_config(spec["scheduler"]).items() if k not in ("skip_prk_steps",)}
    scheduler = DDPMScheduler(**scheduler_cfg)
    tok_key = [k for k in spec if k.startswith("tokenizer")]
    tokenizers = [build_clip_tokenizer(folder.parent / f".tok_{k}", pad_token=spec[k]["pad_token"]) for k in tok_key]
    parts = dict(vae=vae.half(), unet=unet.half(), scheduler=scheduler)
    if family == "sdxl":
        pipe = StableDiffusionXLPipeline(text_encoder=encoders[0].half(), text_encoder_2=encoders[1].half(),
                                         tokenizer=tokenizers[0], tokenizer_2=tokenizers[1], **parts)
    else:
        pipe = StableDiffusionPipeline(text_encoder=encoders[0].half(), tokenizer=tokenizers[0], safety_checker=None,
                                       feature_extractor=None, requires_safety_checker=False, **parts)
    pipe.save_pretrained(str(folder), safe_serialization=True)
    del pipe
    torch.cuda.empty_cache()
    return folder


@pytest.fixture(scope="module")
def real_size_base(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    root = tmp_path_factory.mktemp("real_size")
    return lambda family: build_real_size_base(family, root / family)


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_textboost_trains_in_mixed_precision_on_gpu(real_size_base, image_dataset, tmp_path, family, precision,
                                                    fresh_accelerate_state) -> None:
    from textboost_ext.config import TextBoostConfig, TrainConfig
    from textboost_ext.export.verify import verify_file
    from textboost_ext.host.trainer import HostTrainer

    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    size = 1024 if family == "sdxl" else 512
    data = image_dataset("1_dog", (size, size), "dog.png")
    config = TrainConfig(
        pretrained_model_name_or_path=str(real_size_base(family)), sdxl=family == "sdxl", train_data_dir=str(data),
        resolution=[size, size], train_batch_size=2, max_train_steps=3, optimizer_type="AdamW8bit", learning_rate=1e-3,
        mixed_precision=precision, output_dir=str(tmp_path / "out"), output_name=f"gpu_{family}_{precision}",
        log_with="none", seed=3,
        textboost=TextBoostConfig(placeholder_token=f"tbgpu{family}", initializer="shiba inu dog", class_noun="dog"),
    )
    trainer = HostTrainer(config)
    result = trainer.train()
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[precision]
    assert trainer.model.unet.dtype == dtype
    assert trainer.model.vae.dtype == (torch.float32 if family == "sdxl" and precision == "fp16" else dtype)
    trainable = {id(p) for p in trainer.trainable}
    for te in trainer.model.text_encoders:
        assert all(p.dtype == dtype for p in te.parameters() if id(p) not in trainable and p.is_floating_point())
    assert all(p.dtype == torch.float32 for p in trainer.trainable)
    losses = [h["loss/total"] for h in result.logs]
    assert len(losses) == 3 and all(torch.isfinite(torch.tensor(x)) for x in losses), losses
    ups = [p for n, p in trainer.network.kohya_state_dict().items() if n.endswith("lora_up.weight")]
    assert any(bool(u.abs().sum() > 0) for u in ups)  # B starts at zero: it moved
    report = verify_file(result.lora_path)
    assert report.ok, report
