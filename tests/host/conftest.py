"""Host-trainer fixtures: a one-image dataset, a plain config factory on the tiny SD models, and a clean
accelerate state per test (accelerate keeps process-wide singletons)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from textboost_ext.config import TrainConfig

FAMILY_FLAGS = {
    "sd1": {},
    "sd2": {"v2": True},
    "sd2v": {"v2": True, "v_parameterization": True},
    "sdxl": {"sdxl": True},
}


@pytest.fixture(autouse=True)
def _fresh_accelerate_state() -> Iterator[None]:
    yield
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


@pytest.fixture
def one_image_dataset(tmp_path: Path) -> Path:
    """kohya folder layout ``train/1_sks dog/subject.png``: one non-square 80x64 image, no caption file."""
    folder = tmp_path / "train" / "1_sks dog"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 80, 3), dtype=np.uint8)).save(folder / "subject.png")
    return folder.parent


@pytest.fixture
def make_config(tmp_path: Path, tiny_model_dir: Callable[[str], Path], one_image_dataset: Path) -> Callable[..., TrainConfig]:
    """``make_config(family="sd1", **overrides)``: a small, fast, plain-LoRA TrainConfig writing under tmp_path."""

    def make(family: str = "sd1", **overrides: Any) -> TrainConfig:
        values: dict[str, Any] = dict(
            pretrained_model_name_or_path=str(tiny_model_dir(family)),
            extension="none",
            train_data_dir=str(one_image_dataset),
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
