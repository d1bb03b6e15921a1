"""Views rendered from the source image: the same ops as on a training-size image, but from the photo
itself (a crop of a wide photo can leave its centre square; crops and zooms keep the photo's detail)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from tests.helpers.dead_leaves import dead_leaves
from textboost_ext.method.augment import apply_augmentations, plan_augmentations
from textboost_ext.method.augment_ops import Collage, Crop, Grayscale, HFlip, Shift, Zoom
from textboost_ext.method.views import centred_window, geometric_window, render_view
from textboost_ext.source_images import bounded_size


def smooth_image(height: int, width: int) -> torch.Tensor:
    y, x = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    return torch.stack([torch.sin(3 * x + 1), torch.cos(2 * y), torch.sin(2 * (x + y))]) * 0.9


@pytest.mark.parametrize("ops", [[], [Zoom(1.3)], [Zoom(0.5)], [Zoom(0.9)], [Crop(0.3, 0.2, 0.7)], [Shift(0.2, "left")],
                                 [Shift(0.25, "right")], [HFlip()], [HFlip(), Collage(2)], [Zoom(1.3), Grayscale()],
                                 [Collage(3), Grayscale()]], ids=str)
def test_on_a_training_size_source_it_equals_augmenting_the_image(ops: list) -> None:
    source = smooth_image(64, 64)
    ours, theirs = render_view(source, ops, (64, 64)), apply_augmentations(source, ops)
    assert ours.tags == theirs.tags and ours.image.shape == (3, 64, 64)
    assert float((ours.image - theirs.image).abs().max()) < 0.06  # window edges round at most one pixel apart


def test_uint8_sources_and_the_crop_offset_of_an_unaugmented_view() -> None:
    source = (torch.arange(3 * 40 * 100) % 256).reshape(3, 40, 100).to(torch.uint8)
    view = render_view(source, [], (32, 32))
    assert view.image.dtype == torch.float32 and -1.0 <= float(view.image.min()) <= float(view.image.max()) <= 1.0
    assert view.crop_top_left == (0, 24)  # resized to 80x32, the centre 32 columns start at 24
    assert render_view(source, [HFlip()], (32, 32)).crop_top_left == (0, 24)
    assert centred_window((40, 100), (32, 32)) == geometric_window(Zoom(0.5), (40, 100), (32, 32))[0]


def _has_red(image: torch.Tensor) -> bool:
    red = (image[0] > 0.8) & (image[1] < -0.8) & (image[2] < -0.8)
    return bool(red.any())


def test_crop_views_of_a_wide_photo_show_content_outside_the_centre_square() -> None:
    rng = np.random.default_rng(0)
    photo = rng.integers(60, 200, (192, 384, 3), dtype=np.uint8)  # no pure red anywhere ...
    photo[:, :80] = (255, 0, 0)  # ... except left of the centre square (columns 96..287)
    source = torch.from_numpy(photo).permute(2, 0, 1).contiguous()
    old_style = render_view(source, [], (64, 64)).image  # what the host used to hand over: the centre crop
    assert not _has_red(old_style)
    generator = torch.Generator().manual_seed(0)
    crops = red_crops = old_red = 0
    for _ in range(400):
        ops = plan_augmentations(generator, "object", p=1.0, color_p=0.0)
        if not isinstance(ops[0], Crop):
            continue
        crops += 1
        red_crops += _has_red(render_view(source, ops, (64, 64)).image)
        old_red += _has_red(apply_augmentations(old_style, ops).image)
    assert crops > 50 and old_red == 0
    assert red_crops / crops > 0.1  # a crop can come from anywhere in the photo


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a - b) / 2).pow(2).mean())  # images in [-1, 1]: peak-to-peak 1 after halving
    return 10 * math.log10(1.0 / max(mse, 1e-6))  # capped at 60 dB (an exact copy)


def _tensor(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(img, dtype=np.float32)).permute(2, 0, 1) / 127.5 - 1.0


# windows on whole pixels of both the 128 px image and the 256 px source, so only resampling differs
ALIGNED_OPS = (Zoom(128 / 96), Zoom(128 / 112), Crop(0.25, 0.5, 0.5), Crop((32 / 128) ** 2, 0.0, 0.25), Crop((80 / 128) ** 2, 0.25, 0.75))


def test_crop_and_zoom_views_are_sharper_than_augmenting_the_resized_image() -> None:
    photo, train = dead_leaves((512, 512), seed=1), 128
    bounded = photo.resize(bounded_size(photo.size, (train, train)), Image.Resampling.LANCZOS)  # 256: 2x the canvas
    source = torch.from_numpy(np.array(bounded)).permute(2, 0, 1).contiguous()
    resized = _tensor(photo.resize((train, train), Image.Resampling.LANCZOS))  # the host's training image
    gains = []
    for op in ALIGNED_OPS:
        window, _ = geometric_window(op, (512, 512), (train, train))  # the same window in both pipelines
        box = (window.left, window.top, window.left + window.width, window.top + window.height)
        truth = _tensor(photo.resize((train, train), Image.Resampling.LANCZOS, box=box))  # from the full photo
        new = render_view(source, [op], (train, train)).image
        old = apply_augmentations(resized, [op]).image
        gains.append(_psnr(new, truth) - _psnr(old, truth))
    assert min(gains) > 1.5 and sum(gains) / len(gains) > 3.0, gains
