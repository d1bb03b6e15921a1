"""Paired image + caption augmentation (TextBoost "augmentation tokens", method.md).

Each training view of the one reference image is augmented, and the caption names every applied
augmentation (``captions.build_caption``), so the augmentation's look is attributed to its own token
instead of leaking into the subject token.

Images are tensors ``[3, H, W]`` in [-1, 1] (any float dtype, any device). Randomness and pixels are
separated: ``plan_augmentations`` makes every random draw from the given generator and returns a list
of small op objects; ``apply_augmentations`` applies them deterministically. ``augment_view`` does both.

Object set, three independent stages per view, in this order:
  1. geometric, probability ``p``: one of four kinds, chosen uniformly —
     zoom (scale s ~ U(0.34, 1.4); tag ``zoom-out`` if s < 0.6, ``zoom-in`` if s > 1.2, no tag between),
     crop (area fraction ~ U(0.08, 1.0), tag ``crop``),
     shift (U(0.15, 0.3)·W, direction 50/50, tag ``left``/``right``),
     horizontal flip (tag ``hflip``);
  2. other, probability ``p``: k×k collage, k ∈ {2, 3} 50/50 (tag ``collage``);
  3. colour, probability ``color_p``: grayscale (tag ``grayscale``).
Style set: stage 1 is always a flip, no stage 2. ``"none"``: no augmentation.
The ops themselves (pixels only) are in ``augment_ops``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from textboost_ext.method.augment_ops import (  # noqa: F401  (re-exported: the ops are part of this API)
    SEPARATOR_VALUE,
    AugmentOp,
    Collage,
    Crop,
    Grayscale,
    HFlip,
    Shift,
    Zoom,
    check_image,
    collage_layout,
    resize,
)

AugmentSet = Literal["object", "style", "none"]
AUGMENT_SETS: tuple[str, ...] = ("object", "style", "none")

# tag -> (token registered in the tokenizer in token mode, phrase its embedding is initialised from).
# Angle brackets keep the tokens distinct from real words; HF tokenizers match added tokens verbatim
# (after lower-casing), so "<zoom-in>" is one id. They are training-only: users never type them.
AUGMENT_TOKENS: dict[str, tuple[str, str]] = {
    "zoom-in": ("<zoom-in>", "zoom in"),
    "zoom-out": ("<zoom-out>", "far away"),
    "crop": ("<crop>", "crop"),
    "left": ("<left>", "on the left"),
    "right": ("<right>", "on the right"),
    "hflip": ("<hflip>", "flipped"),
    "collage": ("<collage>", "photo collage"),
    "grayscale": ("<grayscale>", "grayscale"),
}
# tag -> natural phrase written into the caption in text mode (no new token).
AUGMENT_PHRASES: dict[str, str] = {
    "zoom-in": "zoomed in",
    "zoom-out": "a far away",
    "crop": "cropped",
    "left": "on the left",
    "right": "on the right",
    "hflip": "horizontally flipped",
    "collage": "photo collage of",
    "grayscale": "grayscale",
}
# the tags each set can produce: register only these tokens.
AUGMENT_SET_TAGS: dict[str, tuple[str, ...]] = {
    "object": ("zoom-in", "zoom-out", "crop", "left", "right", "hflip", "collage", "grayscale"),
    "style": ("hflip", "grayscale"),
    "none": (),
}

# sampling ranges (method.md); the zoom tag thresholds 0.6 / 1.2 live with Zoom in augment_ops
ZOOM_RANGE = (0.34, 1.4)
CROP_AREA_RANGE = (0.08, 1.0)
SHIFT_RANGE = (0.15, 0.3)
COLLAGE_SIZES = (2, 3)


@dataclass
class AugmentedView:
    """One augmented view: ``image`` [3, H, W] and the applied augmentations' tags, in stage order."""

    image: torch.Tensor
    tags: list[str]


# ---- planning (all randomness) and applying ----------------------------------------------------
def plan_augmentations(
    generator: torch.Generator | None,
    augment_set: AugmentSet = "object",
    p: float = 0.5,
    color_p: float = 0.2,
) -> list[AugmentOp]:
    """Draw the ops for one view (every draw from ``generator``)."""
    if augment_set not in AUGMENT_SETS:
        raise ValueError(f"augment: unknown set {augment_set!r}; use one of {AUGMENT_SETS}")
    for name, value in (("augment_p", p), ("augment_color_p", color_p)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be within [0, 1], got {value}")
    if augment_set == "none":
        return []

    def uniform(lo: float = 0.0, hi: float = 1.0) -> float:
        u = torch.rand((), generator=generator, device=_device(generator)).item()
        return lo + (hi - lo) * u

    ops: list[AugmentOp] = []
    if uniform() < p:  # stage 1: geometric
        if augment_set == "style":
            ops.append(HFlip())
        else:
            kind = min(3, int(uniform() * 4))
            if kind == 0:
                ops.append(Zoom(uniform(*ZOOM_RANGE)))
            elif kind == 1:
                ops.append(Crop(uniform(*CROP_AREA_RANGE), uniform(), uniform()))
            elif kind == 2:
                fraction = uniform(*SHIFT_RANGE)
                ops.append(Shift(fraction, "left" if uniform() < 0.5 else "right"))
            else:
                ops.append(HFlip())
    if augment_set == "object" and uniform() < p:  # stage 2: other
        ops.append(Collage(COLLAGE_SIZES[0] if uniform() < 0.5 else COLLAGE_SIZES[1]))
    if uniform() < color_p:  # stage 3: colour
        ops.append(Grayscale())
    return ops


def apply_augmentations(image: torch.Tensor, ops: list[AugmentOp]) -> AugmentedView:
    """Apply ``ops`` in order; tags are the ops' tags (a mild zoom has none)."""
    out = check_image(image)
    tags: list[str] = []
    for op in ops:
        out = op(out)
        if op.tag is not None:
            tags.append(op.tag)
    return AugmentedView(image=out if ops else out.clone(), tags=tags)


def augment_view(
    image: torch.Tensor,
    generator: torch.Generator | None,
    augment_set: AugmentSet = "object",
    p: float = 0.5,
    color_p: float = 0.2,
) -> AugmentedView:
    """Plan and apply one augmented view of ``image`` [3, H, W]."""
    return apply_augmentations(image, plan_augmentations(generator, augment_set, p, color_p))


def augment_batch(
    images: torch.Tensor,
    generator: torch.Generator | None,
    augment_set: AugmentSet = "object",
    p: float = 0.5,
    color_p: float = 0.2,
) -> tuple[torch.Tensor, list[list[str]]]:
    """Independently augment each image of ``[B, 3, H, W]``: (augmented batch, tags per view)."""
    if images.dim() != 4:
        raise ValueError(f"augment_batch expects [B, 3, H, W], got shape {tuple(images.shape)}")
    views = [augment_view(img, generator, augment_set, p, color_p) for img in images]
    return torch.stack([v.image for v in views]), [v.tags for v in views]


def _device(generator: torch.Generator | None) -> torch.device:
    return generator.device if generator is not None else torch.device("cpu")
