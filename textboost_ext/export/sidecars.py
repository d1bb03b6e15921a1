"""Files that sit next to the LoRA for A1111/Forge: ``<stem>.json`` user metadata and ``<stem>.preview.png``.

The JSON keys are A1111's user-metadata keys, spelled exactly as the WebUI's "edit metadata" dialog
saves them ("sd version", "activation text", ...). The preview is a PNG sidecar, not
``modelspec.thumbnail`` (which the WebUIs do not use for LoRA).
"""

from __future__ import annotations

import io
import json
import math
import os
from pathlib import Path
from typing import Any

from textboost_ext.atomic_write import atomic_write_bytes

SD_VERSIONS = ("SD1", "SD2", "SDXL")
FAMILY_TO_SD_VERSION = {"sd1": "SD1", "sd2": "SD2", "sdxl": "SDXL"}


def user_metadata_path(lora_path: str | os.PathLike[str]) -> Path:
    lora_path = Path(lora_path)
    return lora_path.with_name(f"{lora_path.stem}.json")


def preview_path(lora_path: str | os.PathLike[str]) -> Path:
    lora_path = Path(lora_path)
    return lora_path.with_name(f"{lora_path.stem}.preview.png")


def write_user_metadata_json(
    lora_path: str | os.PathLike[str],
    activation_text: str,
    sd_version: str,
    description: str = "",
    preferred_weight: float = 1.0,
    negative_text: str = "",
    notes: str = "",
) -> Path:
    """Write A1111's ``<stem>.json`` next to ``lora_path``; ``sd_version`` is "SD1", "SD2" or "SDXL"."""
    if sd_version not in SD_VERSIONS:
        raise ValueError(f"sd_version {sd_version!r} must be one of {SD_VERSIONS} (A1111's spelling)")
    weight = float(preferred_weight)
    if not math.isfinite(weight):
        raise ValueError(f"preferred_weight must be a finite number, got {preferred_weight!r}")
    data: dict[str, Any] = {
        "description": str(description),
        "sd version": sd_version,
        "activation text": str(activation_text),
        "preferred weight": weight,
        "negative text": str(negative_text),
        "notes": str(notes),
    }
    out = user_metadata_path(lora_path)
    atomic_write_bytes(out, (json.dumps(data, indent=4, ensure_ascii=False) + "\n").encode("utf-8"))
    return out


def write_preview(lora_path: str | os.PathLike[str], image: Any) -> Path:
    """Write ``<stem>.preview.png`` from a PIL image or an image file (re-encoded as PNG)."""
    from PIL import Image

    if isinstance(image, (str, os.PathLike)):
        source = Path(image)
        if not source.is_file():
            raise FileNotFoundError(f"preview image {source} does not exist")
        with Image.open(source) as opened:
            opened.load()
            image = opened.copy()
    if not isinstance(image, Image.Image):
        raise TypeError(f"preview must be a PIL.Image or an image path, got {type(image).__name__}")
    if image.mode not in ("RGB", "RGBA", "L", "LA"):
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    out = preview_path(lora_path)
    atomic_write_bytes(out, buffer.getvalue())
    return out
