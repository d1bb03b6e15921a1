"""The shipped base's quality: generate from held-out caption combinations, read them with the oracle."""

from __future__ import annotations

import random
from typing import Any

from textboost_ext.toyworld.captions import full_caption
from textboost_ext.toyworld.generate import GUIDANCE, STEPS, generate
from textboost_ext.toyworld.oracle import Oracle, attribute_accuracy
from textboost_ext.toyworld.scoring import read_images
from textboost_ext.toyworld.world import Scene, held_out_scenes

QUALITY_BAR = {"background": 0.95, "colour": 0.90, "shape": 0.80, "position": 0.80, "size": 0.90, "style": 0.85}


def sample_held_out(pipe: Any, oracle: Oracle, n: int | None = None, seed: int = 0, guidance: float = GUIDANCE,
                    steps: int = STEPS) -> tuple[list[Scene], list[dict[str, str]]]:
    """Held-out scenes (all, or ``n`` drawn with ``seed``), one image each from its full caption at fixed
    image seeds, and the oracle's reading of each image."""
    scenes = held_out_scenes()
    if n is not None and n < len(scenes):
        scenes = random.Random(seed).sample(scenes, n)
    images = generate(pipe, [full_caption(s) for s in scenes], [seed * 100_000 + i for i in range(len(scenes))],
                      steps=steps, guidance=guidance)
    return scenes, read_images(oracle, images)


def measure_quality(pipe: Any, oracle: Oracle, n: int | None = None, seed: int = 0,
                    by_shape: dict[str, float] | None = None) -> dict[str, float]:
    """Per-attribute share of samples the oracle reads as the caption asked (held-out scenes, full captions).
    ``by_shape``, when given, is filled with the shape accuracy per requested shape (which shapes hold it back)."""
    scenes, reads = sample_held_out(pipe, oracle, n, seed)
    result = attribute_accuracy(reads, scenes)
    result["n"] = len(scenes)
    if by_shape is not None:
        for shape in sorted({s.shape for s in scenes}):
            matching = [r["shape"] == s.shape for r, s in zip(reads, scenes) if s.shape == shape]
            by_shape[shape] = sum(matching) / len(matching)
    return result


def meets_bar(quality: dict[str, float]) -> dict[str, bool]:
    return {a: quality[a] >= bar for a, bar in QUALITY_BAR.items()}
