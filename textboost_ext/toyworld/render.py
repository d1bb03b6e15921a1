"""Scene -> pixels: PIL drawing at 4x, downsampled to a 32x32 RGB image (antialiased edges).

Coordinates are in canvas units (32 per side). Each render jitters the object's place (±1.5 units), scale
(0.9-1.1) and rotation (±15°) from the given ``random.Random``, so one scene is many images and the oracle
and the base learn attributes, not pixel templates. A "photo" is the filled shape, a "sketch" its outline.
"""

from __future__ import annotations

import math
import random

import numpy as np
from PIL import Image, ImageDraw

from textboost_ext.toyworld.world import COLOURS, Scene

CANVAS = 32
SUPERSAMPLE = 4
RADIUS = {"small": 5.5, "large": 9.0}
CENTRES = {
    "top left": (10.0, 10.0), "top right": (22.0, 10.0), "center": (16.0, 16.0),
    "bottom left": (10.0, 22.0), "bottom right": (22.0, 22.0),
}
OUTLINE = 1.6  # sketch line width, canvas units


def _polygon(points: list[tuple[float, float]], angle: float, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    c, s = math.cos(angle), math.sin(angle)
    return [(cx + r * (x * c - y * s), cy + r * (x * s + y * c)) for x, y in points]


def _unit_outline(shape: str) -> list[tuple[float, float]]:
    """The shape as a polygon on the unit circle's scale (circle and ring are drawn as ellipses)."""
    if shape == "square":
        return [(-0.8, -0.8), (0.8, -0.8), (0.8, 0.8), (-0.8, 0.8)]
    if shape == "triangle":
        return [(math.cos(a), math.sin(a)) for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]
    if shape == "star":
        return [((1.0 if i % 2 == 0 else 0.45) * math.cos(-math.pi / 2 + i * math.pi / 5),
                 (1.0 if i % 2 == 0 else 0.45) * math.sin(-math.pi / 2 + i * math.pi / 5)) for i in range(10)]
    if shape == "cross":
        a, b = 0.32, 0.95
        return [(-a, -b), (a, -b), (a, -a), (b, -a), (b, a), (a, a), (a, b), (-a, b), (-a, a), (-b, a), (-b, -a), (-a, -a)]
    raise ValueError(f"no polygon for {shape!r}")


def render(scene: Scene, rng: random.Random, size: int = CANVAS) -> Image.Image:
    """One ``size`` x ``size`` RGB render of ``scene`` (32 = what the base was trained on), jitter from ``rng``."""
    k = SUPERSAMPLE * size / CANVAS
    image = Image.new("RGB", (round(CANVAS * k), round(CANVAS * k)), COLOURS[scene.background])
    draw = ImageDraw.Draw(image)
    cx, cy = CENTRES[scene.position]
    cx, cy = (cx + rng.uniform(-1.5, 1.5)) * k, (cy + rng.uniform(-1.5, 1.5)) * k
    r = RADIUS[scene.size] * rng.uniform(0.9, 1.1) * k
    angle = math.radians(rng.uniform(-15.0, 15.0))
    colour = COLOURS[scene.colour]
    filled = scene.style == "photo"
    width = max(1, round(OUTLINE * k))
    if scene.shape in ("circle", "ring"):
        box = [cx - r, cy - r, cx + r, cy + r]
        if filled:
            draw.ellipse(box, fill=colour)
            if scene.shape == "ring":
                h = r * 0.55
                draw.ellipse([cx - h, cy - h, cx + h, cy + h], fill=COLOURS[scene.background])
        else:
            draw.ellipse(box, outline=colour, width=width)
            if scene.shape == "ring":
                h = r * 0.55
                draw.ellipse([cx - h, cy - h, cx + h, cy + h], outline=colour, width=width)
    else:
        points = _polygon(_unit_outline(scene.shape), angle, cx, cy, r)
        if filled:
            draw.polygon(points, fill=colour)
        else:
            draw.line(points + points[:1], fill=colour, width=width, joint="curve")
    return image.resize((size, size), Image.Resampling.BOX)


def render_array(scenes: list[Scene], rng: random.Random) -> np.ndarray:
    """Renders as one uint8 array, (N, 32, 32, 3)."""
    return np.stack([np.asarray(render(s, rng)) for s in scenes])
