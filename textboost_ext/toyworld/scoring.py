"""Scores of generated images, read by the oracle (pure bookkeeping; the oracle does the seeing).

- **subject fidelity**: the image shows the subject (the oracle reads its shape AND its colour);
- **prompt fidelity**: of the background / position / size / style the prompt asks for, the share obeyed,
  pooled over every request of every image;
- **copy rate**: of the images whose prompt asks for a background other than the reference's, the share
  showing the reference's background anyway (the one-shot failure TextBoost's augmentations target).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from statistics import mean
from typing import Any

import numpy as np

from textboost_ext.toyworld.captions import Request

OBEYED = ("background", "position", "size", "style")


@dataclass
class ImageScore:
    prompt: str
    seed: int
    read: dict[str, str] = field(default_factory=dict)
    subject: bool | None = None
    obeyed: dict[str, bool] = field(default_factory=dict)
    copied: bool | None = None


def read_images(oracle: Any, images: np.ndarray) -> list[dict[str, str]]:
    """The oracle's reading of uint8 images (N, 32, 32, 3)."""
    from textboost_ext.toyworld.oracle import images_to_tensor, read_tensor

    return read_tensor(oracle, images_to_tensor(images))


def score_image(read: dict[str, str], prompt: str, seed: int, request: Request,
                subject: tuple[str, str] | None = None, reference_background: str | None = None) -> ImageScore:
    """``subject``: (shape, colour) the image should show; ``reference_background``: the training photo's."""
    asked = request.asked()
    obeyed = {name: read[name] == asked[name] for name in OBEYED if name in asked}
    copied = None
    if reference_background is not None and request.background not in (None, reference_background):
        copied = read["background"] == reference_background
    shows = None if subject is None else (read["shape"], read["colour"]) == subject
    return ImageScore(prompt, seed, dict(read), shows, obeyed, copied)


def summarize(scores: Sequence[ImageScore]) -> dict[str, float | None]:
    def share(values: list[bool]) -> float | None:
        return float(mean(values)) if values else None

    return {
        "subject_fidelity": share([s.subject for s in scores if s.subject is not None]),
        "prompt_fidelity": share([v for s in scores for v in s.obeyed.values()]),
        "copy_rate": share([s.copied for s in scores if s.copied is not None]),
        "n": len(scores),
    }


def background_obedience(scores: Sequence[ImageScore]) -> float | None:
    """Of the images whose prompt asks for a background, the share showing it."""
    asked = [s.obeyed["background"] for s in scores if "background" in s.obeyed]
    return float(mean(asked)) if asked else None
