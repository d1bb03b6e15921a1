"""Opening a training photo the way it looks in an image viewer: upright, 8-bit RGB, bounded in size.

- **Orientation**: the EXIF orientation tag is applied (a phone portrait is stored sideways with a tag).
- **Modes**: every PIL mode becomes correct 8-bit RGB. PIL's own ``convert("RGB")`` clips 16-bit and
  32-bit values at 255 (a 16-bit PNG turns almost white) and ignores transparency (hidden colours under
  transparent pixels show). Here 16-bit values are scaled (x / 257), 32-bit integers and floats by their
  range (floats in [0, 1] are x 255), and transparent parts are composited onto white, as a viewer shows
  them on a white page.
- **Size**: a file whose pixel count exceeds PIL's decompression limit (``Image.MAX_IMAGE_PIXELS``,
  about 89 megapixels) is refused with a message saying how to downscale it, before it is decoded.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

EXIF_ORIENTATION = 0x0112
SWAPS_SIDES = {5, 6, 7, 8}  # EXIF orientations that swap width and height
_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}


class ImageTooLargeError(ValueError):
    """The image has more pixels than the decompression limit."""


def open_checked(path: str | Path) -> Image.Image:
    """``Image.open`` that turns PIL's decompression-bomb guard into a clear error (call ``.close()``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            return Image.open(path)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageTooLargeError(too_large_message(path, exc)) from None


def too_large_message(path: str | Path, exc: BaseException) -> str:
    limit = Image.MAX_IMAGE_PIXELS or 0
    return (f"{path}: the image is too large to decode safely ({exc}; the limit is {limit / 1e6:.0f} megapixels); "
            f"downscale it to at most about 4096 px on its long side (e.g. `magick in.png -resize 4096x4096 out.png`, "
            f"or PIL's Image.thumbnail) and use that file")


def upright_size(img: Image.Image) -> tuple[int, int]:
    """Width and height once the EXIF orientation is applied."""
    swapped = img.getexif().get(EXIF_ORIENTATION, 1) in SWAPS_SIDES
    return (img.height, img.width) if swapped else img.size


def to_rgb(img: Image.Image) -> Image.Image:
    """``img`` upright and as 8-bit RGB (see the module docstring for what each mode becomes)."""
    img = ImageOps.exif_transpose(img)
    mode = img.mode
    if mode.startswith("I;16") or mode == "I" or mode == "F":
        return Image.fromarray(_scaled_to_uint8(np.asarray(img), mode), "L").convert("RGB")
    if mode == "P" and "transparency" in img.info:
        img, mode = img.convert("RGBA"), "RGBA"
    if mode in _ALPHA_MODES:
        rgba = img.convert("RGBA")
        page = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(page, rgba).convert("RGB")
    return img.convert("RGB")  # RGB, L, 1, P, CMYK, YCbCr, LAB, HSV: PIL's conversions are right for 8 bits


def _scaled_to_uint8(array: Any, mode: str) -> np.ndarray:
    values = np.asarray(array, dtype=np.float64)
    if mode.startswith("I;16"):
        scaled = values / 257.0  # 65535 -> 255 exactly
    else:
        low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
        if not np.isfinite(values).all():
            values = np.nan_to_num(values, nan=0.0, posinf=high if np.isfinite(high) else 0.0, neginf=0.0)
            low, high = float(values.min()), float(values.max())
        if mode == "F" and low >= 0.0 and high <= 1.0:
            scaled = values * 255.0
        elif low >= 0.0 and high <= 255.0:
            scaled = values
        elif low >= 0.0 and high <= 65535.0:
            scaled = values / 257.0  # 16-bit data in a 32-bit image (how PIL opens some 16-bit files)
        else:
            scaled = (values - low) * (255.0 / (high - low)) if high > low else np.zeros_like(values)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def load_rgb(path: str | Path, cover_wh: tuple[int, int] | None = None) -> Image.Image:
    """The photo at ``path`` upright as 8-bit RGB. With ``cover_wh``, a JPEG is decoded at a reduced scale
    that still covers it (the full-resolution decode is never held)."""
    img = open_checked(path)
    try:
        if cover_wh is not None and img.format == "JPEG":
            swapped = img.getexif().get(EXIF_ORIENTATION, 1) in SWAPS_SIDES
            up_w, up_h = upright_size(img)
            scale = max(cover_wh[0] / up_w, cover_wh[1] / up_h)
            if scale < 1.0:
                want = (max(1, round(up_w * scale)), max(1, round(up_h * scale)))
                img.draft("RGB", want[::-1] if swapped else want)
        try:
            return to_rgb(img)
        except Image.DecompressionBombError as exc:
            raise ImageTooLargeError(too_large_message(path, exc)) from None
    finally:
        img.close()
