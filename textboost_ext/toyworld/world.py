"""What a toy-world scene is: one object on a flat background, every attribute a small closed set.

Pure Python (no torch): the renderer draws a ``Scene``, the caption grammar describes one, the oracle reads one
back from pixels. Which scenes pretraining may show is decided here too:

- ``NOVEL_SUBJECTS``: (shape, colour) pairs the base never sees at all. The UNet has drawn every shape and every
  colour, just never together, so a text-encoder-only method can reach them (a texture it never drew it cannot).
- ``is_held_out``: about 10% of the remaining scenes, chosen by a hash of their description, are kept out of
  pretraining so the quality bar is measured on caption combinations the base never saw.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "orange": (245, 140, 20),
    "yellow": (240, 220, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "purple": (140, 50, 190),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
}
SHAPES = ("circle", "square", "triangle", "star", "cross", "ring")
SIZES = ("small", "large")
POSITIONS = ("top left", "top right", "center", "bottom left", "bottom right")
STYLES = ("photo", "sketch")
ATTRIBUTES = ("background", "colour", "shape", "size", "position", "style")
VALUES: dict[str, tuple[str, ...]] = {
    "background": tuple(COLOURS), "colour": tuple(COLOURS), "shape": SHAPES,
    "size": SIZES, "position": POSITIONS, "style": STYLES,
}

NOVEL_SUBJECTS: tuple[tuple[str, str], ...] = (
    ("star", "green"), ("circle", "purple"), ("triangle", "orange"),
    ("square", "yellow"), ("cross", "blue"), ("ring", "red"),
)
HELD_OUT_PERCENT = 10


@dataclass(frozen=True)
class Scene:
    shape: str
    colour: str
    background: str
    size: str = "large"
    position: str = "center"
    style: str = "photo"

    def __post_init__(self) -> None:
        for name in ATTRIBUTES:
            value = getattr(self, name)
            if value not in VALUES[name]:
                raise ValueError(f"unknown {name} {value!r}; choose one of {', '.join(VALUES[name])}")
        if self.colour == self.background:
            raise ValueError(f"a {self.colour} object on a {self.background} background is invisible")

    def key(self) -> str:
        return "|".join(getattr(self, name) for name in ATTRIBUTES)


def all_scenes() -> list[Scene]:
    """Every visible scene, in a fixed order."""
    out = []
    for bg, col, shape, size, pos, style in itertools.product(COLOURS, COLOURS, SHAPES, SIZES, POSITIONS, STYLES):
        if bg != col:
            out.append(Scene(shape, col, bg, size, pos, style))
    return out


def is_novel(scene: Scene) -> bool:
    return (scene.shape, scene.colour) in NOVEL_SUBJECTS


def is_held_out(scene: Scene) -> bool:
    """About 10% of scene descriptions, fixed by a hash (stable across machines and Python versions)."""
    digest = hashlib.sha256(scene.key().encode()).digest()
    return int.from_bytes(digest[:4], "big") % 100 < HELD_OUT_PERCENT


def pretraining_scenes() -> list[Scene]:
    return [s for s in all_scenes() if not is_novel(s) and not is_held_out(s)]


def held_out_scenes() -> list[Scene]:
    return [s for s in all_scenes() if not is_novel(s) and is_held_out(s)]
