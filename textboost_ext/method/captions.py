"""Training captions for augmented views (method.md "Training captions" / "Augmentation tokens").

A caption is a template ("a photo of a {}") filled with the subject part: the placeholder's vector
tokens joined by spaces, then the class noun if one is given ("tbmug tbmug_1 mug"). The applied
augmentations are then named, exactly once each and nothing else:

* token mode: each augmentation's registered token is put immediately before or after the subject
  part (a fair coin per token, in stage order): "a photo of a <zoom-in> tbmug mug <grayscale>".
* text mode: natural phrases, placed where they read as English:
    - "photo collage of" starts the caption: "photo collage of a tbmug mug";
    - "a far away" replaces the caption's leading article ("a", "an", "one", "the"), or starts it
      when there is none: "a photo of a tbmug mug" -> "a far away photo of a tbmug mug";
    - every other phrase follows the caption after a comma, in stage order:
      "a tbmug mug, on the left, grayscale".
  Order: [collage] [far away] caption[, phrase]*.
* untagged mode: the views are augmented but the caption does not say so (an ablation: it shows what
  the augmentation tokens are for — the encoder then has to explain a flipped, cropped, recoloured
  subject with the placeholder alone).
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from typing import Literal

import torch

from textboost_ext.method.augment import AUGMENT_PHRASES, AUGMENT_TOKENS
from textboost_ext.method.caption_templates import (  # noqa: F401  (re-exported: part of this API)
    DEFAULT_TEMPLATES,
    TEMPLATE_SETS,
    TEXTUAL_INVERSION_TEMPLATES,
    is_template_set_name,
    named_augmentation,
    template_set,
)

CaptionMode = Literal["token", "text", "untagged"]
CAPTION_MODES: tuple[str, ...] = ("token", "text", "untagged")

_PREFIX_TAGS = ("collage", "zoom-out")  # text mode: phrases that go before the caption
_ARTICLES = ("a", "an", "one", "the")
Rng = random.Random | torch.Generator


def resolve_templates(templates: str | Sequence[str]) -> list[str]:
    """A named set (``"default"``, ``"textual_inversion"``) or a list of templates, validated.

    A one-element list holding a set name (``["textual_inversion"]``, as TOML configs write it) is
    resolved too. A named set comes without its templates that name an augmentation ("a cropped photo
    of a {}"): a caption may name only the augmentations applied (``caption_templates``).
    """
    name = is_template_set_name(templates)
    if name is not None:
        return template_set(name)
    if isinstance(templates, str):
        raise ValueError(f"caption_templates: unknown template set {templates!r}; use one of {sorted(TEMPLATE_SETS)} or a list of templates containing '{{}}'")
    templates = list(templates)
    if not templates:
        raise ValueError("caption_templates: empty list; give at least one template such as 'a photo of a {}'")
    for template in templates:
        _check_template(template)
    return templates


def choose_template(templates: Sequence[str], rng: Rng) -> str:
    if not templates:
        raise ValueError("no caption templates to choose from")
    return templates[_randint(rng, len(templates))]


def placeholder_text(vector_tokens: Sequence[str]) -> str:
    """How a (multi-vector) placeholder is written in a caption: its vector tokens joined by spaces."""
    if not vector_tokens:
        raise ValueError("placeholder_text: the placeholder has no vector tokens")
    return " ".join(vector_tokens)


def build_caption(
    template: str,
    subject_text: str,
    class_noun: str | None,
    tags: Sequence[str],
    mode: CaptionMode,
    rng: Rng,
    *,
    check_named: bool = True,
) -> str:
    """Caption for one augmented view.

    ``subject_text``: the placeholder's vector tokens joined by spaces (``"tbmug tbmug_1"``);
    ``class_noun`` is appended to it when given; ``tags``: ``AugmentedView.tags``. ``rng`` (a
    ``random.Random`` or ``torch.Generator``) is drawn once per tag in token mode, never in text mode.
    """
    _check_template(template)
    named = named_augmentation(template) if check_named else None
    if named is not None:  # the caption would name an augmentation whether or not the view has it
        raise ValueError(f"caption template {template!r} says {named[1]!r} (the {named[0]} augmentation); only the "
                         "augmentations applied to a view may be named, and they name themselves")
    if mode not in CAPTION_MODES:
        raise ValueError(f"augment_mode: unknown mode {mode!r}; use one of {CAPTION_MODES}")
    unknown = [t for t in tags if t not in AUGMENT_TOKENS]
    if unknown:
        raise ValueError(f"unknown augmentation tag(s) {unknown}; known: {sorted(AUGMENT_TOKENS)}")
    if len(set(tags)) != len(tags):
        raise ValueError(f"augmentation tags repeat: {list(tags)}")
    subject = subject_text.strip()
    if not subject:
        raise ValueError("build_caption: empty subject text")
    if class_noun and class_noun.strip():
        subject = f"{subject} {class_noun.strip()}"

    if mode == "untagged":
        return _fill(template, subject)
    if mode == "token":
        for tag in tags:
            token = AUGMENT_TOKENS[tag][0]
            subject = f"{token} {subject}" if _coin(rng) else f"{subject} {token}"
        return _fill(template, subject)

    caption = _fill(template, subject)
    suffixes = [AUGMENT_PHRASES[t] for t in tags if t not in _PREFIX_TAGS]
    if suffixes:
        caption = ", ".join([caption, *suffixes])
    if "zoom-out" in tags:
        first, _, rest = caption.partition(" ")
        body = rest if first.lower() in _ARTICLES and rest else caption
        caption = f"{AUGMENT_PHRASES['zoom-out']} {body}"
    if "collage" in tags:
        caption = f"{AUGMENT_PHRASES['collage']} {caption}"
    return caption


def caption_file_template(caption: str, placeholder: str) -> str:
    """``caption_mode = "files"``: the dataset caption as a template, its first whole-word ``placeholder``
    replaced by ``{}`` (where the vector tokens, and the augmentation tokens around them, go).

    "tbmug mug, on a table" -> "{} mug, on a table". Raises ValueError when the placeholder is missing
    (the caption would train nothing into the embedding) or the caption holds braces.
    """
    if "{" in caption or "}" in caption:
        raise ValueError(f"caption {caption!r} holds a brace; remove it (braces are reserved for templates)")
    match = re.search(rf"(?<![\w<>-]){re.escape(placeholder)}(?![\w<>-])", caption)
    if match is None:
        raise ValueError(f"caption {caption!r} does not contain the placeholder {placeholder!r}")
    return caption[: match.start()] + "{}" + caption[match.end():]


def augmentation_tokens(tags: Sequence[str]) -> list[str]:
    """The tokens token mode writes for ``tags`` (what must be registered in the tokenizer)."""
    return [AUGMENT_TOKENS[t][0] for t in tags]


def _fill(template: str, subject: str) -> str:
    before, after = template.split("{}")
    return " ".join(f"{before}{subject}{after}".split())


def _check_template(template: str) -> None:
    if not isinstance(template, str) or template.count("{}") != 1 or template.replace("{}", "").count("{") or template.replace("{}", "").count("}"):
        raise ValueError(f"caption template {template!r} must contain exactly one '{{}}' and no other braces")


def _coin(rng: Rng) -> bool:
    return _randint(rng, 2) == 0


def _randint(rng: Rng, n: int) -> int:
    if isinstance(rng, random.Random):
        return rng.randrange(n)
    if isinstance(rng, torch.Generator):
        return int(torch.randint(n, (), generator=rng, device=rng.device).item())
    raise TypeError(f"rng must be random.Random or torch.Generator, got {type(rng).__name__}")
