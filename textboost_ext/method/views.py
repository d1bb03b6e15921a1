"""Training views rendered from the source image (method.md: augmentations apply to the full-resolution
image before resize/crop).

A host hands the extension each training image at its source resolution (bounded by the host, e.g. at
most 2x the training resolution) as well as at the training size. ``render_view`` turns the source and
the ops of ``augment.plan_augmentations`` into one training view, resampling the source ONCE:

1. the geometric op picks a window of the source with the training aspect ratio:
   - no op, a flip or a mild zoom: the largest centred window (what a centre crop shows);
   - zoom in (s > 1): that window shrunk by 1/s about its centre;
   - crop (area fraction a): a window of a times that window's area, placed anywhere in the source, so
     a non-square photo's crops also show what lies outside its centre square;
   - shift (fraction f, left/right): the centred window moved sideways by f of its width; what lies
     beyond the source's edge is edge-replicated (a wide photo shows its real surroundings instead);
2. the window is resized to the training size (zoom out, s < 1: to s times it, centred, and the canvas
   filled by edge replication), then flipped for a flip;
3. collage and grayscale act on that training-size canvas (they need no more resolution).

On a source that already has the training size and aspect, this equals ``augment.apply_augmentations``
(up to the rounding of window edges); on a larger source a crop or zoom-in view keeps the source's
detail instead of upscaling a shrunk image. Sources may be uint8 (0..255) or float in [-1, 1].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from textboost_ext.method.augment_ops import AugmentOp, Crop, HFlip, Shift, Zoom, pad_replicate, check_image, resize

GEOMETRIC_OPS = (Zoom, Crop, Shift, HFlip)


@dataclass(frozen=True)
class Window:
    """A box in source pixels (floats; may reach beyond the source, which is then edge-replicated)."""

    top: float
    left: float
    height: float
    width: float


@dataclass
class RenderedView:
    """``image`` [3, H, W] float32 in [-1, 1]; ``tags`` of the applied ops in stage order;
    ``crop_top_left`` (top, left): the window's offset in the source resized so that the window has the
    training size (SDXL's crop conditioning; the centre-crop offset for an unaugmented view)."""

    image: torch.Tensor
    tags: list[str]
    crop_top_left: tuple[int, int]


def source_as_float(source: torch.Tensor) -> torch.Tensor:
    """A uint8 [3, h, w] image (0..255) as float32 in [-1, 1]; a float image is returned as float32."""
    if source.dtype == torch.uint8:
        return source.float() / 127.5 - 1.0
    return check_image(source).float()


def centred_window(source_hw: tuple[int, int], size_hw: tuple[int, int]) -> Window:
    """The largest window with the training aspect ratio, centred in the source."""
    (sh, sw), (th, tw) = source_hw, size_hw
    height, width = (sh, sh * tw / th) if sw * th >= sh * tw else (sw * th / tw, sw)
    return Window((sh - height) / 2, (sw - width) / 2, height, width)


def geometric_window(op: AugmentOp | None, source_hw: tuple[int, int], size_hw: tuple[int, int]) -> tuple[Window, float]:
    """``(window, placement scale)`` of the stage-1 op; the scale is < 1 only for a zoom out."""
    base = centred_window(source_hw, size_hw)
    if isinstance(op, Zoom):
        if op.scale <= 0:
            raise ValueError(f"zoom scale must be > 0, got {op.scale}")
        if op.scale < 1:
            return base, op.scale
        height, width = base.height / op.scale, base.width / op.scale
        return Window(base.top + (base.height - height) / 2, base.left + (base.width - width) / 2, height, width), 1.0
    if isinstance(op, Crop):
        if not 0 < op.area_fraction <= 1:
            raise ValueError(f"crop area_fraction must be in (0, 1], got {op.area_fraction}")
        side = math.sqrt(op.area_fraction)
        height, width = base.height * side, base.width * side
        return Window(op.top * (source_hw[0] - height), op.left * (source_hw[1] - width), height, width), 1.0
    if isinstance(op, Shift):
        if op.direction not in ("left", "right"):
            raise ValueError(f"shift direction must be 'left' or 'right', got {op.direction!r}")
        # "left": the subject ends up on the left, so the window moves right over the source
        offset = op.fraction * base.width * (1 if op.direction == "left" else -1)
        return Window(base.top, base.left + offset, base.height, base.width), 1.0
    return base, 1.0


def crop_window(source: torch.Tensor, window: Window) -> torch.Tensor:
    """The window's pixels (edges rounded to whole source pixels; outside the source edge-replicated)."""
    _, sh, sw = source.shape
    top, left = round(window.top), round(window.left)
    bottom, right = max(top + 1, round(window.top + window.height)), max(left + 1, round(window.left + window.width))
    pad_top, pad_left = max(0, -top), max(0, -left)
    pad_bottom, pad_right = max(0, bottom - sh), max(0, right - sw)
    if pad_top or pad_left or pad_bottom or pad_right:
        source = pad_replicate(source, pad_left, pad_right, pad_top, pad_bottom)
    return source[:, top + pad_top : bottom + pad_top, left + pad_left : right + pad_left]


def render_view(source: torch.Tensor, ops: list[AugmentOp], size_hw: tuple[int, int]) -> RenderedView:
    """One training view of ``size_hw`` (height, width) from ``source`` [3, h, w] and the planned ``ops``."""
    image = source_as_float(source)
    _, sh, sw = image.shape
    th, tw = int(size_hw[0]), int(size_hw[1])
    geometric = [op for op in ops if isinstance(op, GEOMETRIC_OPS)]
    if len(geometric) > 1 or (geometric and ops[0] is not geometric[0]):
        raise ValueError(f"at most one geometric op, first in the list (stage 1); got {ops}")
    stage1 = geometric[0] if geometric else None
    window, placement = geometric_window(stage1, (sh, sw), (th, tw))
    pixels = crop_window(image, window)
    if placement < 1:  # zoom out: the whole centred window, smaller, on an edge-replicated canvas
        ph, pw = max(1, round(th * placement)), max(1, round(tw * placement))
        top, left = (th - ph) // 2, (tw - pw) // 2
        canvas = pad_replicate(resize(pixels, ph, pw), left, tw - pw - left, top, th - ph - top)
    else:
        canvas = resize(pixels, th, tw)
    scale = th / window.height
    crop_top = max(0, round(window.top * scale))
    crop_left = max(0, round((sw - window.left - window.width if isinstance(stage1, HFlip) else window.left) * scale))
    if isinstance(stage1, HFlip):
        canvas = torch.flip(canvas, dims=[-1])
    for op in ops[1 if stage1 is not None else 0 :]:
        canvas = op(canvas)  # collage, grayscale: on the training-size canvas
    tags = [op.tag for op in ops if op.tag is not None]
    return RenderedView(image=canvas.contiguous(), tags=tags, crop_top_left=(crop_top, crop_left))
