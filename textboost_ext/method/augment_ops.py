"""Augmentation ops on image tensors ``[3, H, W]`` in [-1, 1]: deterministic given their parameters.

Each op is a small frozen dataclass: ``op(image) -> image`` of the same shape and dtype, and
``op.tag`` (the augmentation's name for the caption, or None for a mild zoom). All randomness lives in
``augment.plan_augmentations``. Resizing is bilinear (antialiased when shrinking) in float32;
padding replicates edge pixels (``F.pad(mode="replicate")``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F

ZOOM_OUT_BELOW = 0.6
ZOOM_IN_ABOVE = 1.2
SEPARATOR_VALUE = -1.0  # black in [-1, 1]
GRAY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601 luma, as PIL's "L" mode


# ---- ops: deterministic given their parameters -------------------------------------------------
@dataclass(frozen=True)
class Zoom:
    """s < 1: shrink the image by s and pad with its edge pixels (zoom out); s > 1: centre crop of
    1/s of each side, resized back (zoom in)."""

    scale: float

    @property
    def tag(self) -> str | None:
        if self.scale < ZOOM_OUT_BELOW:
            return "zoom-out"
        if self.scale > ZOOM_IN_ABOVE:
            return "zoom-in"
        return None

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        _, h, w = check_image(image).shape
        if self.scale <= 0:
            raise ValueError(f"zoom scale must be > 0, got {self.scale}")
        if self.scale < 1:
            sh, sw = max(1, round(h * self.scale)), max(1, round(w * self.scale))
            small = resize(image, sh, sw)
            top, left = (h - sh) // 2, (w - sw) // 2
            return pad_replicate(small, left, w - sw - left, top, h - sh - top)
        ch, cw = max(1, round(h / self.scale)), max(1, round(w / self.scale))
        top, left = (h - ch) // 2, (w - cw) // 2
        return resize(image[:, top : top + ch, left : left + cw], h, w)


@dataclass(frozen=True)
class Crop:
    """Crop ``area_fraction`` of the image, resized back. The crop keeps the image's aspect ratio
    (a square crop of a square training image; no distortion on non-square ones). ``top``/``left``
    place it within the free range, as fractions in [0, 1]."""

    area_fraction: float
    top: float
    left: float
    tag: ClassVar[str] = "crop"

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        _, h, w = check_image(image).shape
        if not 0 < self.area_fraction <= 1:
            raise ValueError(f"crop area_fraction must be in (0, 1], got {self.area_fraction}")
        side = math.sqrt(self.area_fraction)
        ch, cw = max(1, round(h * side)), max(1, round(w * side))
        y, x = round(self.top * (h - ch)), round(self.left * (w - cw))
        return resize(image[:, y : y + ch, x : x + cw], h, w)


@dataclass(frozen=True)
class Shift:
    """Move the content horizontally by ``fraction``·W and fill the vacated side with the nearest
    column. ``direction="left"``: content moves left, so the subject sits on the left of the frame
    (tag ``left`` = "on the left"); ``"right"`` the mirror image."""

    fraction: float
    direction: Literal["left", "right"]

    @property
    def tag(self) -> str:
        return self.direction

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        _, _, w = check_image(image).shape
        if self.direction not in ("left", "right"):
            raise ValueError(f"shift direction must be 'left' or 'right', got {self.direction!r}")
        d = min(w - 1, max(0, round(self.fraction * w)))
        if d == 0:
            return image.clone()
        if self.direction == "left":
            return pad_replicate(image[:, :, d:], 0, d, 0, 0)
        return pad_replicate(image[:, :, : w - d], d, 0, 0, 0)


@dataclass(frozen=True)
class HFlip:
    tag: ClassVar[str] = "hflip"

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        return torch.flip(check_image(image), dims=[-1])


@dataclass(frozen=True)
class Collage:
    """k×k grid of the image, each tile the whole image resized, tiles separated by 1-px dark lines
    (``collage_layout`` gives the exact tile positions)."""

    k: int
    tag: ClassVar[str] = "collage"

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        _, h, w = check_image(image).shape
        rows, cols = collage_layout(h, self.k), collage_layout(w, self.k)
        out = torch.full_like(image, SEPARATOR_VALUE)
        for y, th in rows:
            for x, tw in cols:
                out[:, y : y + th, x : x + tw] = resize(image, th, tw)
        return out


@dataclass(frozen=True)
class Grayscale:
    tag: ClassVar[str] = "grayscale"

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        image = check_image(image)
        weights = torch.tensor(GRAY_WEIGHTS, dtype=torch.float32, device=image.device).view(3, 1, 1)
        luma = (image.float() * weights).sum(dim=0, keepdim=True)
        return luma.expand(3, -1, -1).to(image.dtype).contiguous()


AugmentOp = Zoom | Crop | Shift | HFlip | Collage | Grayscale


# ---- pixel helpers ---------------------------------------------------------------------------
def resize(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bilinear resize of [3, h, w] (antialiased when shrinking), computed in float32."""
    if image.shape[-2:] == (height, width):
        return image.clone()
    x = image.unsqueeze(0).float()
    shrinking = height < image.shape[-2] or width < image.shape[-1]
    y = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=shrinking)
    return y.squeeze(0).to(image.dtype)


def collage_layout(size: int, k: int) -> list[tuple[int, int]]:
    """(start, length) of the k tiles along one axis of ``size`` pixels with 1-px separators between
    them; the separator after tile i is at ``start + length``. Extra pixels go to the first tiles."""
    if k < 1:
        raise ValueError(f"collage k must be >= 1, got {k}")
    usable = size - (k - 1)
    if usable < k:
        raise ValueError(f"image side {size} is too small for a {k}x{k} collage")
    base, extra = divmod(usable, k)
    spans, start = [], 0
    for i in range(k):
        length = base + (1 if i < extra else 0)
        spans.append((start, length))
        start += length + 1
    return spans


def pad_replicate(image: torch.Tensor, left: int, right: int, top: int, bottom: int) -> torch.Tensor:
    # F.pad's replicate mode needs a batch dim and (on CPU) float32/64 for some versions
    padded = F.pad(image.unsqueeze(0).float(), (left, right, top, bottom), mode="replicate")
    return padded.squeeze(0).to(image.dtype)


def check_image(image: torch.Tensor) -> torch.Tensor:
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"expected an image tensor [3, H, W], got shape {tuple(image.shape)}")
    if not image.is_floating_point():
        raise ValueError(f"expected a float image in [-1, 1], got dtype {image.dtype}")
    return image
