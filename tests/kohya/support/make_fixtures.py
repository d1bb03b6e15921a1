"""Fixtures for the sd-scripts integration test. Run with the sd-scripts environment's Python
(``$SD_SCRIPTS_PYTHON make_fixtures.py ROOT``) so the tiny text encoder is saved in the transformers 4
key layout (``text_model.*``) that sd-scripts' transformers reads; a transformers 5 save would load
as a randomly initialised encoder there.

ROOT/model/                                   tiny SD 1.x diffusers folder
ROOT/tokenizers/openai_clip-vit-large-patch14 the real CLIP tokenizer (for --tokenizer_cache_dir)
ROOT/data/1_sks dog/img{i}.png + .txt         five 64x64 images with captions
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

from textboost_ext.models.tiny import save_tiny_model
from textboost_ext.models.tokenizer import build_clip_tokenizer

N_IMAGES = 5  # 4 train + 1 validation image with --validation_split 0.2


def main(root: Path) -> None:
    save_tiny_model("sd1", root / "model")
    build_clip_tokenizer(root / "tokenizers" / "openai_clip-vit-large-patch14")
    subject = root / "data" / "1_sks dog"
    subject.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(N_IMAGES):
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(subject / f"img{i}.png")
        (subject / f"img{i}.txt").write_text(f"a photo of sks dog, view {i}", encoding="utf-8")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
