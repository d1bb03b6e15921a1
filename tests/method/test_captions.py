from __future__ import annotations

import itertools
import random
import re

import pytest
import torch

from textboost_ext.method.augment import AUGMENT_PHRASES, AUGMENT_TOKENS
from textboost_ext.method.captions import (
    DEFAULT_TEMPLATES,
    TEXTUAL_INVERSION_TEMPLATES,
    augmentation_tokens,
    build_caption,
    choose_template,
    placeholder_text,
    named_augmentation,
    resolve_templates,
)
from textboost_ext.method.caption_templates import AUGMENTATION_WORDS
from textboost_ext.method.tokens import placeholder_vector_tokens

SUBJECT = placeholder_text(placeholder_vector_tokens("tbmug", 2))  # "tbmug tbmug_1"
ALL_TAGS = ["zoom-in", "collage", "grayscale"], ["left", "grayscale"], ["zoom-out", "collage"], ["hflip"], ["crop", "collage", "grayscale"], ["right"], []


def test_template_sets() -> None:
    assert DEFAULT_TEMPLATES == ("{}", "a {}", "one {}", "the {}", "photo of a {}")
    assert len(TEXTUAL_INVERSION_TEMPLATES) == 27 == len(set(TEXTUAL_INVERSION_TEMPLATES))
    assert all(t.count("{}") == 1 for t in TEXTUAL_INVERSION_TEMPLATES)
    usable = [t for t in TEXTUAL_INVERSION_TEMPLATES if "cropped" not in t and "close-up" not in t]
    assert len(usable) == 23
    assert resolve_templates("textual_inversion") == usable  # without the 4 that name a crop or a zoom
    assert resolve_templates(["textual_inversion"]) == usable
    assert resolve_templates("default") == list(DEFAULT_TEMPLATES)
    assert resolve_templates(["a sketch of {}"]) == ["a sketch of {}"]
    for bad in ("imagenet", [], ["no placeholder"], ["{} and {}"], ["{0} photo"]):
        with pytest.raises(ValueError):
            resolve_templates(bad)


@pytest.mark.parametrize("template", ["a cropped photo of a {}", "a close-up photo of the {}", "{}, in black and white"])
def test_a_template_naming_an_augmentation_is_refused(template: str) -> None:
    with pytest.raises(ValueError, match="only the augmentations applied to a view may be named"):
        build_caption(template, "tbmug", None, [], "text", random.Random(0))


def test_every_phrase_and_token_init_is_recognised_as_naming_its_augmentation() -> None:
    for tag, phrase in AUGMENT_PHRASES.items():
        assert named_augmentation(phrase) == (tag, named_augmentation(phrase)[1]), phrase
        assert named_augmentation(AUGMENT_TOKENS[tag][1] + " {}")[0] == tag


@pytest.mark.parametrize("template_set", ["default", "textual_inversion"])
def test_text_mode_captions_name_no_augmentation_that_was_not_applied(template_set: str) -> None:
    rng = random.Random(7)
    for template in resolve_templates(template_set):
        for tags in ALL_TAGS:
            caption = build_caption(template, SUBJECT, "mug", tags, "text", rng)
            said = {tag for tag, words in AUGMENTATION_WORDS.items()
                    if any(re.search(rf"(?<![\w-]){re.escape(w)}(?![\w-])", caption, re.IGNORECASE) for w in words)}
            assert said == set(tags), (template, tags, caption)


def test_placeholder_text_joins_vectors() -> None:
    assert placeholder_text(placeholder_vector_tokens("tbmug", 3)) == "tbmug tbmug_1 tbmug_2"
    assert placeholder_text(["tbmug"]) == "tbmug"


def test_no_augmentation_is_the_filled_template() -> None:
    for mode in ("token", "text"):
        assert build_caption("a photo of a {}", SUBJECT, "mug", [], mode, random.Random(0)) == "a photo of a tbmug tbmug_1 mug"
        assert build_caption("{}", "tbmug", None, [], mode, random.Random(0)) == "tbmug"


@pytest.mark.parametrize("template", DEFAULT_TEMPLATES)
@pytest.mark.parametrize("tags", ALL_TAGS)
def test_token_mode_names_exactly_the_applied_tokens(template: str, tags: list[str]) -> None:
    rng = random.Random(1)
    for _ in range(10):
        caption = build_caption(template, SUBJECT, "mug", tags, "token", rng)
        words = caption.split()
        for tag, (token, _) in AUGMENT_TOKENS.items():
            assert words.count(token) == (1 if tag in tags else 0)
        assert "[" not in caption and "'" not in caption and "," not in caption
        # the tokens sit right before or after the subject part; removing them gives the template
        core = [w for w in words if w not in augmentation_tokens(tags)]
        assert " ".join(core) == template.replace("{}", f"{SUBJECT} mug").strip()
        subject_span = " ".join(w for w in words if w in augmentation_tokens(tags) or w in SUBJECT.split() + ["mug"])
        assert subject_span in caption


def test_token_mode_places_before_or_after_half_the_time() -> None:
    rng = random.Random(3)
    before = sum(build_caption("a {}", "tbmug", None, ["hflip"], "token", rng) == "a <hflip> tbmug" for _ in range(4000))
    assert abs(before / 4000 - 0.5) < 0.03
    captions = {build_caption("a {}", "tbmug", None, ["hflip"], "token", rng) for _ in range(50)}
    assert captions == {"a <hflip> tbmug", "a tbmug <hflip>"}


def test_text_mode_grammar() -> None:
    r = random.Random(0)
    assert build_caption("a {}", "tbmug", "mug", ["collage", "grayscale"], "text", r) == "photo collage of a tbmug mug, grayscale"
    assert build_caption("photo of a {}", "tbmug", "mug", ["zoom-out"], "text", r) == "a far away photo of a tbmug mug"
    assert build_caption("the {}", "tbmug", "mug", ["zoom-out"], "text", r) == "a far away tbmug mug"
    assert build_caption("{}", "tbmug", None, ["zoom-out"], "text", r) == "a far away tbmug"
    assert build_caption("{}", "tbmug", "mug", ["left"], "text", r) == "tbmug mug, on the left"
    assert build_caption("a {}", "tbmug", "mug", ["zoom-in", "collage", "grayscale"], "text", r) == "photo collage of a tbmug mug, zoomed in, grayscale"
    assert build_caption("one {}", "tbmug", None, ["zoom-out", "collage", "grayscale"], "text", r) == "photo collage of a far away tbmug, grayscale"
    assert build_caption("a {}", "tbmug", None, ["hflip"], "text", r) == "a tbmug, horizontally flipped"
    assert build_caption("a {}", "tbmug", None, ["crop"], "text", r) == "a tbmug, cropped"


@pytest.mark.parametrize("template", DEFAULT_TEMPLATES)
@pytest.mark.parametrize("tags", ALL_TAGS)
def test_text_mode_names_exactly_the_applied_phrases(template: str, tags: list[str]) -> None:
    caption = build_caption(template, SUBJECT, "mug", tags, "text", random.Random(0))
    for tag, phrase in AUGMENT_PHRASES.items():
        occurrences = caption.count(phrase)
        if tag in ("left", "right"):
            occurrences = caption.count(f", {phrase}")
        assert occurrences == (1 if tag in tags else 0), (tag, caption)
    assert "<" not in caption and "[" not in caption and "  " not in caption


def test_tags_in_both_modes_with_torch_generator_are_reproducible() -> None:
    for tags in itertools.islice(ALL_TAGS, 3):
        a = [build_caption("a {}", SUBJECT, None, tags, "token", torch.Generator().manual_seed(4)) for _ in range(3)]
        b = [build_caption("a {}", SUBJECT, None, tags, "token", torch.Generator().manual_seed(4)) for _ in range(3)]
        assert a == b


def test_choose_template_is_uniform_and_reproducible() -> None:
    rng = random.Random(5)
    picks = [choose_template(DEFAULT_TEMPLATES, rng) for _ in range(5000)]
    assert all(abs(picks.count(t) / 5000 - 0.2) < 0.03 for t in DEFAULT_TEMPLATES)
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    assert [choose_template(DEFAULT_TEMPLATES, g1) for _ in range(20)] == [choose_template(DEFAULT_TEMPLATES, g2) for _ in range(20)]


@pytest.mark.parametrize(
    "kwargs",
    [dict(tags=["blur"]), dict(tags=["hflip", "hflip"]), dict(mode="words"), dict(template="a photo"), dict(subject=" ")],
)
def test_bad_input_raises(kwargs) -> None:
    args = dict(template="a {}", subject="tbmug", class_noun=None, tags=[], mode="token") | kwargs
    with pytest.raises(ValueError):
        build_caption(args["template"], args["subject"], args["class_noun"], args["tags"], args["mode"], random.Random(0))
    with pytest.raises(TypeError):
        build_caption("a {}", "tbmug", None, ["hflip"], "token", rng=0)  # type: ignore[arg-type]


def test_token_mode_captions_tokenize_to_the_registered_ids(fresh_clip_tokenizer) -> None:
    tok = fresh_clip_tokenizer
    vectors = placeholder_vector_tokens("tbmug", 2)
    aug_tokens = [t for t, _ in AUGMENT_TOKENS.values()]
    tok.add_tokens(vectors + aug_tokens)
    ids = dict(zip(vectors + aug_tokens, tok.convert_tokens_to_ids(vectors + aug_tokens)))
    rng = random.Random(0)
    for tags in ALL_TAGS:
        caption = build_caption("photo of a {}", placeholder_text(vectors), "mug", tags, "token", rng)
        got = tok(caption).input_ids
        new_ids = [i for i in got if i >= 49408]
        expected = {ids[v] for v in vectors} | {ids[AUGMENT_TOKENS[t][0]] for t in tags}
        assert sorted(new_ids) == sorted(expected), caption


def test_untagged_mode_names_no_augmentation() -> None:
    """The ablation mode: views are augmented but the caption is the plain template, for every tag set."""
    rng = random.Random(0)
    for tags in ([], ["hflip"], ["zoom-in", "grayscale"]):
        assert build_caption("a photo of a {}", "tbmug", "mug", tags, "untagged", rng) == "a photo of a tbmug mug"
