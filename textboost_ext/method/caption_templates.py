"""Caption template sets and the words that name an augmentation (stdlib only: the config layer uses them).

A template is a caption with one ``{}`` where the subject goes. TextBoost's captions must name exactly
the augmentations applied to the view (method.md), and the augmentations name themselves
(``captions.build_caption``). A template whose own wording names one ("a cropped photo of a {}", "a
close-up photo of the {}") would claim a crop or zoom the view may not have, so:

- the named sets are used without such templates (``textual_inversion``: 23 of its 27);
- a template list written by the user may not contain one while augmentation is on (a config error).
"""

from __future__ import annotations

import re

DEFAULT_TEMPLATES: tuple[str, ...] = ("{}", "a {}", "one {}", "the {}", "photo of a {}")
# The 27 generic object templates popularised by textual inversion.
TEXTUAL_INVERSION_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}",
    "a rendering of a {}",
    "a cropped photo of the {}",
    "the photo of a {}",
    "a photo of a clean {}",
    "a photo of a dirty {}",
    "a dark photo of the {}",
    "a photo of my {}",
    "a photo of the cool {}",
    "a close-up photo of a {}",
    "a bright photo of the {}",
    "a cropped photo of a {}",
    "a photo of the {}",
    "a good photo of the {}",
    "a photo of one {}",
    "a close-up photo of the {}",
    "a rendition of the {}",
    "a photo of the clean {}",
    "a rendition of a {}",
    "a photo of a nice {}",
    "a good photo of a {}",
    "a photo of the nice {}",
    "a photo of the small {}",
    "a photo of the weird {}",
    "a photo of the large {}",
    "a photo of a cool {}",
    "a photo of a small {}",
)
TEMPLATE_SETS: dict[str, tuple[str, ...]] = {"default": DEFAULT_TEMPLATES, "textual_inversion": TEXTUAL_INVERSION_TEMPLATES}

# augmentation tag -> words that say it (the caption phrases of text mode, the token init phrases, and
# the synonyms the official code's text mode used: "close up", "very small")
AUGMENTATION_WORDS: dict[str, tuple[str, ...]] = {
    "zoom-in": ("zoomed in", "zoom in", "close-up", "close up", "closeup"),
    "zoom-out": ("far away", "zoomed out", "zoom out", "very small"),
    "crop": ("cropped", "crop"),
    "left": ("on the left",),
    "right": ("on the right",),
    "hflip": ("flipped", "mirrored"),
    "collage": ("collage",),
    "grayscale": ("grayscale", "greyscale", "black and white", "monochrome"),
}
_WORD_PATTERNS = {tag: re.compile(r"(?<![\w-])(?:" + "|".join(map(re.escape, words)) + r")(?![\w-])", re.IGNORECASE)
                  for tag, words in AUGMENTATION_WORDS.items()}


def named_augmentation(template: str) -> tuple[str, str] | None:
    """``(tag, word)`` if the template's own text names an augmentation, else None."""
    text = template.replace("{}", " ")
    for tag, pattern in _WORD_PATTERNS.items():
        match = pattern.search(text)
        if match:
            return tag, match.group(0)
    return None


def template_set(name: str) -> list[str]:
    """A named set without its augmentation-naming templates; ``KeyError`` for an unknown name."""
    return [t for t in TEMPLATE_SETS[name] if named_augmentation(t) is None]


def is_template_set_name(templates: object) -> str | None:
    """The set name when ``templates`` selects a named set (``"textual_inversion"`` or ``["textual_inversion"]``)."""
    if isinstance(templates, str):
        return templates if templates in TEMPLATE_SETS else None
    if isinstance(templates, (list, tuple)) and len(templates) == 1 and templates[0] in TEMPLATE_SETS:
        return str(templates[0])
    return None
