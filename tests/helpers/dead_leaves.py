"""A "dead leaves" image: overlapping discs of random colour with sizes from a power law.

Its statistics are close to a natural photo's (edges at every scale, a 1/f spectrum), so sharpness
measurements on it mean something, and it is built offline from a seed.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw


def dead_leaves(size_wh: tuple[int, int], seed: int = 0, discs: int = 6000) -> Image.Image:
    width, height = size_wh
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", size_wh, (128, 128, 128))
    draw = ImageDraw.Draw(image)
    r_min, r_max = 0.002 * max(size_wh), 0.12 * max(size_wh)
    # radius density ~ r^-3 (scale invariance), by inverse transform sampling
    u = rng.random(discs)
    radii = 1.0 / np.sqrt(u / r_min**2 + (1 - u) / r_max**2)
    for r, x, y, colour in zip(radii, rng.random(discs) * width, rng.random(discs) * height, rng.integers(0, 256, (discs, 3))):
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(int(c) for c in colour))
    return image
