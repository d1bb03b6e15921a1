#!/usr/bin/env python
"""How much sharper are crop and zoom-in views rendered from the source photo (a measurement, not a test).

    .venv/bin/python benchmarks/view_sharpness.py                       # 1024 and 2048 px photos, 512 px training
    .venv/bin/python benchmarks/view_sharpness.py --photo 3072 --train 1024 --views 100

For each crop / zoom-in view, PSNR against the ground truth: the view's window cut from the FULL photo
and resized to the training size with Lanczos. "before": the old pipeline (photo resized and centre
cropped to the training size, then the op applied to that image, i.e. upscaling a shrunk image);
"after": ``render_view`` from the source kept at most 2x the training size (``source_images``). The
photo is a square "dead leaves" image (disc sizes from a power law: edges at every scale, like a
photo), so both pipelines see the same window. Views are drawn as in training (``augment_p`` = 1).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.helpers.dead_leaves import dead_leaves  # noqa: E402
from textboost_ext.method.augment import apply_augmentations, plan_augmentations  # noqa: E402
from textboost_ext.method.augment_ops import Crop, Zoom  # noqa: E402
from textboost_ext.method.views import geometric_window, render_view  # noqa: E402
from textboost_ext.source_images import bounded_size  # noqa: E402


def as_tensor(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(img, dtype=np.float32)).permute(2, 0, 1) / 127.5 - 1.0


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return 10 * math.log10(1.0 / max(float(((a - b) / 2).pow(2).mean()), 1e-6))


def measure(photo_px: int, train: int, views: int, seed: int) -> dict[str, list[float]]:
    photo = dead_leaves((photo_px, photo_px), seed=seed, discs=12000)
    bounded = photo.resize(bounded_size(photo.size, (train, train)), Image.Resampling.LANCZOS)
    source = torch.from_numpy(np.array(bounded)).permute(2, 0, 1).contiguous()
    resized = as_tensor(photo.resize((train, train), Image.Resampling.LANCZOS))
    generator = torch.Generator().manual_seed(seed)
    results: dict[str, list[float]] = {"crop": [], "zoom-in": []}
    while min(len(v) for v in results.values()) < views:
        ops = plan_augmentations(generator, "object", p=1.0, color_p=0.0)
        op = ops[0]
        kind = "crop" if isinstance(op, Crop) else "zoom-in" if isinstance(op, Zoom) and op.scale > 1.2 else None
        if kind is None or len(results[kind]) >= views:
            continue
        window, _ = geometric_window(op, (photo_px, photo_px), (train, train))
        box = (window.left, window.top, window.left + window.width, window.top + window.height)
        truth = as_tensor(photo.resize((train, train), Image.Resampling.LANCZOS, box=box))
        after = render_view(source, [op], (train, train)).image
        before = apply_augmentations(resized, [op]).image
        results[kind].append((psnr(before, truth), psnr(after, truth)))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", type=int, nargs="+", default=[1024, 2048], help="photo side(s) in pixels")
    parser.add_argument("--train", type=int, default=512, help="training resolution")
    parser.add_argument("--views", type=int, default=60, help="views per kind")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"{'photo':>6} {'train':>6} {'view':>8} {'n':>4} {'before dB':>10} {'after dB':>9} {'gain dB':>8} {'gain range':>14}")
    for photo_px in args.photo:
        for kind, pairs in measure(photo_px, args.train, args.views, args.seed).items():
            before, after = np.array(pairs).T
            gain = after - before
            print(f"{photo_px:>6} {args.train:>6} {kind:>8} {len(pairs):>4} {before.mean():>10.2f} {after.mean():>9.2f} "
                  f"{gain.mean():>8.2f} {gain.min():>6.2f}..{gain.max():<6.2f}")


if __name__ == "__main__":
    main()
