"""Helpers for the config tests: write small TOML files and folders of images into tmp_path."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

@pytest.fixture
def write_toml(tmp_path: Path) -> Callable[..., Path]:
    """``write_toml(text, name="train.toml")`` -> path; the text is dedented."""

    def write(text: str, name: str = "train.toml") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


@pytest.fixture
def image_folder(tmp_path: Path) -> Callable[[str], Path]:
    """``image_folder("data/1_dog")`` -> that folder under tmp_path, holding one small PNG."""

    def make(relative: str, count: int = 1) -> Path:
        folder = tmp_path / relative
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            Image.new("RGB", (8, 8), (200, 30, 30)).save(folder / f"img{i}.png")
        return folder

    return make
