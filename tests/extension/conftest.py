"""TextBoost-extension fixtures: a TextBoost config factory on the tiny models and one-image data."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from textboost_ext.config import TextBoostConfig, TrainConfig

FAMILY_FLAGS = {"sd1": {}, "sd2": {"v2": True}, "sd2v": {"v2": True, "v_parameterization": True}, "sdxl": {"sdxl": True}}


@pytest.fixture(autouse=True)
def _fresh_accelerate_state() -> Iterator[None]:
    yield
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


@pytest.fixture
def subject_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "train" / "1_mug"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(folder / "mug.png")
    return folder.parent


@pytest.fixture
def textboost_config(tmp_path: Path, tiny_model_dir: Callable[[str], Path], subject_dir: Path) -> Callable[..., TrainConfig]:
    """``textboost_config(family="sd1", textboost={...}, **overrides)``: a small, fast TextBoost run."""

    def make(family: str = "sd1", textboost: dict[str, Any] | None = None, **overrides: Any) -> TrainConfig:
        tb = dict(placeholder_token="tbmug", initializer="coffee mug", class_noun="mug")
        tb.update(textboost or {})
        values: dict[str, Any] = dict(
            pretrained_model_name_or_path=str(tiny_model_dir(family)),
            extension="textboost",
            train_data_dir=str(subject_dir),
            resolution=[64, 64],
            train_batch_size=2,
            max_train_steps=2,
            optimizer_type="AdamW8bit",
            optimizer_args=["weight_decay=0.01", "min_8bit_size=0"],
            learning_rate=1e-3,
            output_dir=str(tmp_path / "out"),
            output_name="adapter",
            log_with="none",
            save_precision="float",
            seed=1234,
            textboost=TextBoostConfig(**tb),
        )
        values.update(FAMILY_FLAGS[family])
        values.update(overrides)
        return TrainConfig(**values)

    return make
