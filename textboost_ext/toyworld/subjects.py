"""The novel subjects (shape-colour pairs the base never saw) and the prompts that test them.

Each subject has a placeholder ("tbstar"), a class noun (its shape) and one reference scene: large, centred,
a photo, on a background of its own. Its twelve personalization prompts ask for what the reference does
not show — another background, a sketch, a small size, a corner — so following the prompt and copying the
reference are told apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from textboost_ext.toyworld.captions import Request
from textboost_ext.toyworld.world import NOVEL_SUBJECTS, Scene

REFERENCE_BACKGROUNDS = {"green_star": "white", "purple_circle": "yellow", "orange_triangle": "blue",
                         "yellow_square": "purple", "blue_cross": "white", "red_ring": "green"}
# new backgrounds, in order of preference (the subject's own colour and its reference background are skipped)
NEW_BACKGROUNDS = ("red", "blue", "black", "yellow", "orange", "purple", "white", "green")


@dataclass(frozen=True)
class Subject:
    name: str
    shape: str
    colour: str
    reference: Scene

    @property
    def placeholder(self) -> str:
        return f"tb{self.shape}"

    @property
    def class_noun(self) -> str:
        return self.shape

    @property
    def trigger(self) -> str:
        """What a prompt writes for the subject: "tbstar star"."""
        return f"{self.placeholder} {self.class_noun}"


@dataclass(frozen=True)
class PromptCase:
    """One personalization prompt: what it asks of the image besides the subject."""

    request: Request

    def text(self, subject_words: str) -> str:
        return self.request.text(subject_words)


def _subject(shape: str, colour: str) -> Subject:
    name = f"{colour}_{shape}"
    return Subject(name, shape, colour, Scene(shape, colour, REFERENCE_BACKGROUNDS[name], "large", "center", "photo"))


SUBJECTS: dict[str, Subject] = {s.name: s for s in (_subject(shape, colour) for shape, colour in NOVEL_SUBJECTS)}


def new_backgrounds(subject: Subject) -> list[str]:
    return [c for c in NEW_BACKGROUNDS if c not in (subject.colour, subject.reference.background)]


def personalization_prompts(subject: Subject) -> list[PromptCase]:
    b = new_backgrounds(subject)
    requests = [
        Request(style="photo"),
        Request(style="photo", background=b[0]),
        Request(style="photo", background=b[1]),
        Request(background=b[2]),
        Request(style="sketch"),
        Request(style="sketch", background=b[3]),
        Request(style="photo", size="small", position="top left"),
        Request(style="photo", position="bottom right"),
        Request(style="photo", size="small", position="top right", background=b[4]),
        Request(style="sketch", size="small", position="bottom left"),
        Request(style="photo", position="center", background=b[5]),
        Request(style="photo", size="large", position="top left", background=b[0]),
    ]
    return [PromptCase(r) for r in requests]


# the grid's columns: personalization prompts showing the subject in new contexts (indices into the list above)
GRID_PROMPTS = (1, 4, 6, 8, 9, 11)


def subject_by_placeholder(placeholder: str) -> Subject | None:
    return next((s for s in SUBJECTS.values() if s.placeholder == placeholder), None)
