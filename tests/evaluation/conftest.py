"""Fixtures of the generate/eval tests: tiny random-config CLIP and DINOv2 saved locally (stand-ins for
the real scorers: the tests check plumbing and score definitions, not model quality), and one real
TextBoost adapter trained on ``builtin:tiny-sd1`` with a sample image taken at its last step."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

SAMPLE_PROMPT = "a photo of tbmug mug on a table --n blurry --w 64 --h 48 --s 4 --l 6.5 --d 11"
SAMPLE_SAMPLER = "euler_a"  # ancestral: per-step noise comes from the seed's generator too


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight ``CLIPModel`` (text 32 wide, vision 32 px patches of 8) + real tokenizer + image processor."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    from textboost_ext.models.tokenizer import build_clip_tokenizer

    folder = tmp_path_factory.mktemp("tiny_clip")
    torch.manual_seed(0)
    text = dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2, vocab_size=49408,
                max_position_embeddings=77, bos_token_id=49406, eos_token_id=49407, pad_token_id=49407)
    vision = dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2, image_size=32, patch_size=8)
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).save_pretrained(folder)
    build_clip_tokenizer(folder)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_dino_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight DINOv2 ``AutoModel`` (``Dinov2Model``) with its image processor."""
    import torch
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    folder = tmp_path_factory.mktemp("tiny_dino")
    torch.manual_seed(1)
    Dinov2Model(Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, mlp_ratio=1, image_size=32,
                             patch_size=8)).save_pretrained(folder)
    BitImageProcessor(size={"shortest_edge": 36}, crop_size={"height": 32, "width": 32},
                      image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def trained_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """``<store>/mug``: TextBoost on ``builtin:tiny-sd1`` (two vectors for "coffee mug"), fp32 files, one
    sample at the last step from ``SAMPLE_PROMPT`` with ``SAMPLE_SAMPLER``; plus the training image."""
    import numpy as np
    from accelerate.state import AcceleratorState, GradientState
    from PIL import Image

    from textboost_ext.config import TextBoostConfig, TrainConfig
    from textboost_ext.extension import TextBoostExtension
    from textboost_ext.host.trainer import HostTrainer

    root = tmp_path_factory.mktemp("eval_store")
    data = root / "train" / "1_mug"
    data.mkdir(parents=True)
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(data / "mug.png")
    prompts = root / "prompts.txt"
    prompts.write_text(SAMPLE_PROMPT + "\n", encoding="utf-8")
    config = TrainConfig(
        pretrained_model_name_or_path="builtin:tiny-sd1", train_data_dir=str(root / "train"), resolution=[64, 64],
        train_batch_size=2, max_train_steps=2, optimizer_type="AdamW", learning_rate=1e-2, output_dir=str(root / "store"),
        output_name="mug", log_with="none", save_precision="float", seed=7, sample_prompts=str(prompts),
        sample_every_n_steps=2, sample_sampler=SAMPLE_SAMPLER,
        textboost=TextBoostConfig(placeholder_token="tbmug", initializer="coffee mug", class_noun="mug", emb_learning_rate=0.5),
    )
    try:
        HostTrainer(config, TextBoostExtension()).train()
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
    index = json.loads((root / "store" / "mug" / "samples" / "index.json").read_text())
    assert [r["step"] for r in index] == [2], index
    yield root / "store"


@pytest.fixture
def store_copy(trained_store: Path, tmp_path: Path) -> Path:
    """A private copy of the trained store (tests write generated/ and eval/ into adapter folders)."""
    import shutil

    return Path(shutil.copytree(trained_store, tmp_path / "store"))


@pytest.fixture
def reference_image(trained_store: Path) -> Path:
    return trained_store.parent / "train" / "1_mug" / "mug.png"
