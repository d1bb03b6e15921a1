"""The caption grammar and the prompt requests the oracle scores against."""

from __future__ import annotations

import random
from pathlib import Path

from textboost_ext.toyworld.captions import Request, describe, full_caption, preservation_prompts, random_caption
from textboost_ext.toyworld.world import Scene

REPO = Path(__file__).resolve().parents[2]


def test_full_caption_names_every_attribute_with_english_articles() -> None:
    assert full_caption(Scene("star", "red", "blue", "small", "top left", "sketch")) == \
        "a sketch of a small red star in the top left on a blue background"
    assert full_caption(Scene("ring", "orange", "white", "large", "center", "photo")) == \
        "a photo of a large orange ring in the center on a white background"
    assert Request(shape="star", colour="orange", background="orange").text() == "an orange star on an orange background"


def test_subject_words_stand_for_colour_and_shape() -> None:
    assert Request(style="photo", size="small", background="red").text("tbstar star") == "a photo of a small tbstar star on a red background"
    assert Request(style="sketch").text("{}") == "a sketch of a {}"  # an eval template; the article is the caller's


def test_random_captions_always_name_the_shape_and_drop_attributes() -> None:
    scene = Scene("cross", "green", "black", "small", "bottom right", "sketch")
    captions = [random_caption(scene, random.Random(i)) for i in range(200)]
    assert all("cross" in c for c in captions)
    assert len(set(captions)) > 10
    for word in ("green", "small", "bottom right", "black", "sketch"):  # each optional part is sometimes dropped
        assert 0.5 < sum(word in c for c in captions) / len(captions) < 0.9
    assert describe(scene, {"colour"}).asked() == {"shape": "cross", "colour": "green"}


def test_shipped_preservation_prompts_are_the_grammar_s() -> None:
    lines = (REPO / "config_templates" / "toyworld_preservation_prompts.txt").read_text().splitlines()
    assert [line for line in lines if not line.startswith("#")] == preservation_prompts()
