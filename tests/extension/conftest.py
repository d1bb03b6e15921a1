"""TextBoost-extension fixtures: a TextBoost config factory on the tiny models and a one-image subject.

Built on ``make_config`` / ``image_dataset`` from ``tests/conftest.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from textboost_ext.config import TextBoostConfig, TrainConfig


@pytest.fixture(autouse=True)
def _fresh_accelerate_state(fresh_accelerate_state: None) -> None:
    """Every test here builds an Accelerator (accelerate keeps process-wide singletons)."""


@pytest.fixture
def subject_dir(image_dataset: Callable[..., Path]) -> Path:
    """``train/1_mug/mug.png``: one square 64x64 image of the subject."""
    return image_dataset("1_mug", (64, 64), "mug.png")


@pytest.fixture
def textboost_config(make_config: Callable[..., TrainConfig], subject_dir: Path) -> Callable[..., TrainConfig]:
    """``textboost_config(family="sd1", textboost={...}, **overrides)``: a small, fast TextBoost run."""

    def make(family: str = "sd1", textboost: dict[str, Any] | None = None, **overrides: Any) -> TrainConfig:
        tb = dict(placeholder_token="tbmug", initializer="coffee mug", class_noun="mug")
        tb.update(textboost or {})
        values: dict[str, Any] = dict(
            extension="textboost",
            train_data_dir=str(subject_dir),
            optimizer_type="AdamW8bit",
            optimizer_args=["weight_decay=0.01", "min_8bit_size=0"],
            textboost=TextBoostConfig(**tb),
        )
        values.update(overrides)
        return make_config(family, **values)

    return make
