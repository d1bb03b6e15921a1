"""The toy world's scene space: every visible scene, novel subjects never pretrained, ~10% held out."""

from __future__ import annotations

import pytest

from textboost_ext.toyworld.world import (
    NOVEL_SUBJECTS, Scene, all_scenes, held_out_scenes, is_held_out, is_novel, pretraining_scenes,
)


def test_scene_counts_and_splits_are_disjoint() -> None:
    scenes = all_scenes()
    assert len(scenes) == 8 * 7 * 6 * 2 * 5 * 2  # object colour never equals the background's
    pre, held = set(pretraining_scenes()), set(held_out_scenes())
    assert not pre & held
    assert 0.08 < len(held) / (len(pre) + len(held)) < 0.12
    assert len(pre) + len(held) + sum(is_novel(s) for s in scenes) == len(scenes)


def test_novel_subjects_never_appear_in_pretraining_but_their_parts_do() -> None:
    pre = pretraining_scenes()
    for shape, colour in NOVEL_SUBJECTS:
        assert not any((s.shape, s.colour) == (shape, colour) for s in pre)
        assert any(s.shape == shape for s in pre) and any(s.colour == colour for s in pre)  # drawable by composition


def test_held_out_is_a_fixed_hash_not_a_random_draw() -> None:
    scene = Scene("star", "red", "blue", "small", "top left", "sketch")
    assert is_held_out(scene) == is_held_out(Scene("star", "red", "blue", "small", "top left", "sketch"))
    assert held_out_scenes() == held_out_scenes()


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(shape="hexagon", colour="red", background="blue"), "unknown shape"),
    (dict(shape="star", colour="red", background="red"), "invisible"),
    (dict(shape="star", colour="red", background="blue", position="middle"), "unknown position"),
])
def test_bad_scenes_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Scene(**kwargs)
