"""Training images at source resolution, for augmentations that work on the source (both hosts).

TextBoost augments the photo before it is resized and cropped to the training size (method.md), so a
crop or zoom-in view keeps the photo's detail and a crop of a non-square photo can show what lies
outside its centre square (``method.views.render_view``). The source is kept at most
:data:`SOURCE_LIMIT` times the training resolution (measured where the photo just covers the training
canvas): more detail than that would only be averaged away again, and a 6000 px photo would cost
~100 MB per view.

Sources are uint8 ``[3, h, w]`` tensors (a quarter of float32's memory); :class:`SourceCache` keeps
the last few, since a one-shot batch holds the same photo several times.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from PIL import Image

SOURCE_LIMIT = 2.0


def bounded_size(size_wh: tuple[int, int], resolution_wh: tuple[int, int], limit: float = SOURCE_LIMIT) -> tuple[int, int]:
    """The source size kept for a photo of ``size_wh``: unchanged if it covers the training canvas at most
    ``limit`` times, else scaled down (aspect kept) until it covers it ``limit`` times."""
    (width, height), (train_w, train_h) = size_wh, resolution_wh
    cover = max(train_w / width, train_h / height)  # the scale at which the photo just covers the canvas
    if cover * limit >= 1.0:
        return width, height
    factor = cover * limit
    return max(train_w, round(width * factor)), max(train_h, round(height * factor))


def load_source(path: str | Path, resolution_wh: tuple[int, int], limit: float = SOURCE_LIMIT) -> torch.Tensor:
    """The photo at ``path`` upright (EXIF orientation applied), RGB, at :func:`bounded_size`, as uint8 [3, h, w]."""
    from textboost_ext.images import load_rgb, open_checked, upright_size

    with open_checked(path) as img:
        upright_wh = upright_size(img)
    target = bounded_size(upright_wh, resolution_wh, limit)
    img = load_rgb(path, cover_wh=target)  # upright 8-bit RGB; a JPEG decoded at a reduced scale, still >= target
    if img.size != target:
        img = img.resize(target, Image.Resampling.LANCZOS, reducing_gap=3.0)
    array = np.asarray(img, dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


class SourceCache:
    """``get(path, resolution_wh)``: :func:`load_source`, remembering the last ``size`` results."""

    def __init__(self, size: int = 4) -> None:
        self.size = size
        self._items: OrderedDict[tuple[str, tuple[int, int]], torch.Tensor] = OrderedDict()

    def get(self, path: str | Path, resolution_wh: tuple[int, int]) -> torch.Tensor:
        key = (str(path), (int(resolution_wh[0]), int(resolution_wh[1])))
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        source = load_source(path, key[1])
        self._items[key] = source
        while len(self._items) > self.size:
            self._items.popitem(last=False)
        return source
