"""Every PIL mode a training photo can come in becomes the right 8-bit RGB, upright, size-bounded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from textboost_ext.images import ImageTooLargeError, load_rgb, to_rgb


def _rgb(img: Image.Image) -> np.ndarray:
    return np.asarray(to_rgb(img)).astype(int)


def test_16_bit_gray_is_scaled_not_clipped(tmp_path: Path) -> None:
    values = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "g16.png")
    with Image.open(tmp_path / "g16.png") as img:
        assert img.mode.startswith("I") and np.asarray(img.convert("RGB"))[0, 1:, 0].tolist() == [255, 255, 255]  # PIL clips
        got = _rgb(img)
    assert got[0, :, 0].tolist() == [0, 1, 128, 255] and (got[..., 0] == got[..., 2]).all()


@pytest.mark.parametrize(("mode", "values", "expected"), [
    ("I", [0, 100, 255], [0, 100, 255]),  # 8-bit range in a 32-bit image: as is
    ("I", [0, 32896, 65535], [0, 128, 255]),  # 16-bit range: scaled like 16 bits
    ("I", [-1000, 0, 1000], [0, 128, 255]),  # anything else: by its range
    ("F", [0.0, 0.5, 1.0], [0, 128, 255]),  # floats in [0, 1]
    ("F", [0.0, 127.0, 255.0], [0, 127, 255]),
])
def test_32_bit_integer_and_float(mode: str, values: list[float], expected: list[int]) -> None:
    dtype = np.int32 if mode == "I" else np.float32
    img = Image.fromarray(np.array([values], dtype=dtype), mode)
    assert _rgb(img)[0, :, 1].tolist() == expected


def test_transparency_is_composited_on_white() -> None:
    rgba = Image.new("RGBA", (2, 1))
    rgba.putpixel((0, 0), (0, 0, 0, 0))  # fully transparent black: shows as the page
    rgba.putpixel((1, 0), (200, 0, 0, 255))
    assert _rgb(rgba).tolist() == [[[255, 255, 255], [200, 0, 0]]]
    la = Image.new("LA", (2, 1))
    la.putpixel((0, 0), (0, 0))
    la.putpixel((1, 0), (50, 255))
    assert _rgb(la).tolist() == [[[255, 255, 255], [50, 50, 50]]]
    palette = Image.new("P", (2, 1))
    palette.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    palette.putpixel((0, 0), 0)
    palette.putpixel((1, 0), 1)
    palette.info["transparency"] = 0
    assert _rgb(palette).tolist() == [[[255, 255, 255], [10, 20, 30]]]


def test_cmyk_gray_and_bilevel() -> None:
    assert _rgb(Image.new("CMYK", (1, 1), (0, 255, 255, 0))).tolist() == [[[255, 0, 0]]]
    assert _rgb(Image.new("L", (1, 1), 77)).tolist() == [[[77, 77, 77]]]
    assert _rgb(Image.new("1", (1, 1), 1)).tolist() == [[[255, 255, 255]]]


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    img = Image.new("RGB", (64, 32), (0, 0, 0))
    img.paste((255, 0, 0), (0, 0, 16, 16))  # top left as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: rotate 90° clockwise to view
    img.save(tmp_path / "phone.jpg", exif=exif, quality=100)
    upright = load_rgb(tmp_path / "phone.jpg")
    assert upright.size == (32, 64)
    pixels = np.asarray(upright)
    assert pixels[4, -5, 0] > 200 and pixels[4, 4, 0] < 50  # the stored top-left corner is now top right
    from textboost_ext.host.dataset import _check_image, load_image

    assert _check_image(tmp_path / "phone.jpg", (16, 16)) == (32, 64)  # sizes as the photo is viewed
    tensor, _ = load_image(tmp_path / "phone.jpg", (32, 64))
    assert tensor[0, 4, -5] > 0.6 and tensor[0, 4, 4] < -0.6


def test_over_the_decompression_limit_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Image.new("L", (200, 100)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5000)  # stands in for a 400-megapixel photo
    with pytest.raises(ImageTooLargeError, match=r"big\.png: the image is too large.*limit is 0 megapixels.*downscale"):
        load_rgb(tmp_path / "big.png")
    from textboost_ext.host.dataset import DatasetError, _check_image

    with pytest.raises(DatasetError, match=r"too large.*downscale"):
        _check_image(tmp_path / "big.png", (64, 64))
