"""The renderer draws what the scene says: background, object colour, size, position, style (pixel checks)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from textboost_ext.toyworld.render import CENTRES, render
from textboost_ext.toyworld.world import COLOURS, POSITIONS, Scene


def _object_mask(image: np.ndarray, colour: str) -> np.ndarray:
    return np.abs(image.astype(int) - np.array(COLOURS[colour])).sum(axis=-1) < 60


def test_render_is_deterministic_per_seed_and_jittered_across_seeds() -> None:
    scene = Scene("star", "red", "blue")
    a, b = np.asarray(render(scene, random.Random(1))), np.asarray(render(scene, random.Random(1)))
    assert a.shape == (32, 32, 3) and a.dtype == np.uint8 and np.array_equal(a, b)
    assert not np.array_equal(a, np.asarray(render(scene, random.Random(2))))


def test_background_and_object_colour() -> None:
    image = np.asarray(render(Scene("square", "yellow", "purple"), random.Random(0)))
    assert tuple(image[0, 0]) == COLOURS["purple"]
    assert tuple(image[16, 16]) == COLOURS["yellow"]


@pytest.mark.parametrize("position", POSITIONS)
def test_position_puts_the_object_near_its_centre(position: str) -> None:
    image = np.asarray(render(Scene("circle", "white", "black", "small", position), random.Random(3)))
    ys, xs = np.nonzero(_object_mask(image, "white"))
    cx, cy = CENTRES[position]
    assert abs(xs.mean() - cx) < 2.5 and abs(ys.mean() - cy) < 2.5


def test_size_and_style_change_the_painted_area() -> None:
    def area(**kw: str) -> int:
        return int(_object_mask(np.asarray(render(Scene("circle", "red", "white", **kw), random.Random(5))), "red").sum())

    assert area(size="small") < 0.6 * area(size="large")
    assert area(style="sketch") < 0.6 * area(style="photo")


def test_large_renders_for_references() -> None:
    assert render(Scene("star", "green", "white"), random.Random(0), size=128).size == (128, 128)
