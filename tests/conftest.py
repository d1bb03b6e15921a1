"""Shared fixtures: tiny offline models of every family, the real CLIP tokenizer, one-image datasets,
a small training-config factory and the accelerate-state reset used by every area that trains.

Area-specific fixtures live in ``tests/<area>/conftest.py``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

# Tests never touch the network or a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_DISABLE_XET", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``tiny_model_dir("sd1"|"sd2"|"sd2v"|"sdxl")`` -> a saved diffusers folder (built once per session)."""
    from textboost_ext.models.tiny import save_tiny_model

    cache: dict[str, Path] = {}

    def get(family: str) -> Path:
        if family not in cache:
            root = tmp_path_factory.mktemp(f"tiny_{family}")
            cache[family] = save_tiny_model(family, root / "model")
        return cache[family]

    return get


@pytest.fixture(scope="session")
def clip_tokenizer(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    from textboost_ext.models.tokenizer import build_clip_tokenizer

    return build_clip_tokenizer(tmp_path_factory.mktemp("clip_tokenizer"))


# kohya's model flags of each tiny family, as TrainConfig keyword arguments.
FAMILY_FLAGS: dict[str, dict[str, bool]] = {
    "sd1": {},
    "sd2": {"v2": True},
    "sd2v": {"v2": True, "v_parameterization": True},
    "sdxl": {"sdxl": True},
}


@pytest.fixture
def fresh_accelerate_state() -> Iterator[None]:
    """Reset accelerate's process-wide singletons after the test (an area opts in with an autouse wrapper)."""
    yield
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


@pytest.fixture
def image_dataset(tmp_path: Path) -> Callable[..., Path]:
    """``image_dataset("1_sks dog", size_wh=(80, 64), name="subject.png")`` -> ``tmp_path/train``: kohya's folder
    layout with one random RGB image (seeded, so every test sees the same pixels) and no caption file."""

    def make(subfolder: str, size_wh: tuple[int, int], name: str) -> Path:
        import numpy as np
        from PIL import Image

        folder = tmp_path / "train" / subfolder
        folder.mkdir(parents=True)
        rng = np.random.default_rng(0)
        Image.fromarray(rng.integers(0, 255, (size_wh[1], size_wh[0], 3), dtype=np.uint8)).save(folder / name)
        return folder.parent

    return make


@pytest.fixture
def one_image_dataset(image_dataset: Callable[..., Path]) -> Path:
    """``train/1_sks dog/subject.png``: one non-square 80x64 image."""
    return image_dataset("1_sks dog", (80, 64), "subject.png")


@pytest.fixture
def make_config(request: pytest.FixtureRequest, tmp_path: Path, tiny_model_dir: Callable[[str], Path]) -> Callable[..., Any]:
    """``make_config(family="sd1", **overrides)``: a small, fast, plain-LoRA TrainConfig writing under tmp_path.

    Trains on ``one_image_dataset`` unless ``train_data_dir`` is given (then that dataset is not created).
    """
    from textboost_ext.config import TrainConfig

    def make(family: str = "sd1", **overrides: Any) -> TrainConfig:
        if "train_data_dir" not in overrides:
            overrides["train_data_dir"] = str(request.getfixturevalue("one_image_dataset"))
        values: dict[str, Any] = dict(
            pretrained_model_name_or_path=str(tiny_model_dir(family)),
            extension="none",
            resolution=[64, 64],
            train_batch_size=2,
            max_train_steps=2,
            optimizer_type="AdamW",
            learning_rate=1e-3,
            output_dir=str(tmp_path / "out"),
            output_name="adapter",
            log_with="none",
            save_precision="float",
            seed=1234,
        )
        values.update(FAMILY_FLAGS[family])
        values.update(overrides)
        return TrainConfig(**values)

    return make
