"""The caption grammar: what a scene is called, and what a prompt asks for.

"a photo of a small red star in the top left on a blue background" — every part but the shape is optional.
A ``Request`` is the parsed form (``None`` = not asked for); the oracle scores an image against it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, fields

from textboost_ext.toyworld.world import Scene

KEEP = 0.7  # pretraining captions keep each optional attribute with this probability


def article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


@dataclass(frozen=True)
class Request:
    shape: str | None = None
    colour: str | None = None
    background: str | None = None
    size: str | None = None
    position: str | None = None
    style: str | None = None

    def asked(self) -> dict[str, str]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    def text(self, subject_words: str | None = None) -> str:
        """The prompt. With ``subject_words`` (e.g. "tbstar star", or the eval template "{}"), they stand for
        the object's colour and shape; the article before them is left to the caller when it is a template."""
        if subject_words is None:
            if self.shape is None:
                raise ValueError("a request names a shape or a subject")
            noun = " ".join(w for w in (self.size, self.colour, self.shape) if w)
        else:
            noun = " ".join(w for w in (self.size, subject_words) if w)
        words = [] if self.style is None else [f"a {self.style} of"]
        words.append(f"{article(noun)} {noun}")
        if self.position is not None:
            words.append(f"in the {self.position}")
        if self.background is not None:
            words.append(f"on {article(self.background)} {self.background} background")
        return " ".join(words)


def describe(scene: Scene, keep: set[str] | None = None) -> Request:
    """The request a caption of ``scene`` makes when it names the attributes in ``keep`` (all by default)."""
    names = [f.name for f in fields(Request)]
    return Request(**{n: getattr(scene, n) if (keep is None or n in keep or n == "shape") else None for n in names})


def full_caption(scene: Scene) -> str:
    return describe(scene).text()


def random_caption(scene: Scene, rng: random.Random, keep: float = KEEP) -> str:
    kept = {n for n in ("colour", "background", "size", "position", "style") if rng.random() < keep}
    return describe(scene, kept).text()


def preservation_prompts(n: int = 200, seed: int = 0) -> list[str]:
    """Ordinary toy-world captions (the demo's knowledge-preservation set: the language the base speaks)."""
    from textboost_ext.toyworld.world import pretraining_scenes

    rng = random.Random(seed)
    return [random_caption(scene, rng) for scene in rng.sample(pretraining_scenes(), n)]
