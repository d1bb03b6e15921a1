"""A1111 user-metadata JSON and preview sidecars."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from textboost_ext.export.sidecars import write_preview, write_user_metadata_json


def test_user_metadata_json(tmp_path: Path) -> None:
    out = write_user_metadata_json(tmp_path / "mylora.safetensors", "mytok", "SDXL", description="my dog", preferred_weight=0.8,
                                   negative_text="blurry", notes="trained with TextBoost")
    assert out == tmp_path / "mylora.json"
    data = json.loads(out.read_text(encoding="utf-8"))
    assert list(data) == ["description", "sd version", "activation text", "preferred weight", "negative text", "notes"]
    assert data == {"description": "my dog", "sd version": "SDXL", "activation text": "mytok", "preferred weight": 0.8,
                    "negative text": "blurry", "notes": "trained with TextBoost"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mylora.json"]


@pytest.mark.parametrize("version, weight", [("sdxl", 1.0), ("SD3", 1.0), ("SD1", float("nan"))])
def test_user_metadata_rejects_bad_values(tmp_path: Path, version: str, weight: float) -> None:
    with pytest.raises(ValueError):
        write_user_metadata_json(tmp_path / "x.safetensors", "tok", version, preferred_weight=weight)
    assert list(tmp_path.iterdir()) == []


def test_preview_from_pil_and_from_file(tmp_path: Path) -> None:
    image = Image.new("RGB", (8, 6), (255, 0, 0))
    out = write_preview(tmp_path / "mylora.safetensors", image)
    assert out == tmp_path / "mylora.preview.png"
    with Image.open(out) as img:
        assert img.format == "PNG" and img.size == (8, 6) and img.getpixel((0, 0)) == (255, 0, 0)
    jpg = tmp_path / "src.jpg"
    Image.new("RGB", (4, 4), (0, 0, 255)).save(jpg)
    out2 = write_preview(tmp_path / "other.safetensors", jpg)
    with Image.open(out2) as img:
        assert img.format == "PNG" and img.size == (4, 4)
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())


def test_preview_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_preview(tmp_path / "x.safetensors", tmp_path / "missing.png")
    with pytest.raises(TypeError):
        write_preview(tmp_path / "x.safetensors", 42)
