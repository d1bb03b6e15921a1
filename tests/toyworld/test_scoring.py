"""Score bookkeeping: subject fidelity, prompt fidelity, copy rate (the oracle's reading is given)."""

from __future__ import annotations

from textboost_ext.toyworld.captions import Request
from textboost_ext.toyworld.scoring import background_obedience, score_image, summarize

READ = {"background": "white", "colour": "green", "shape": "star", "size": "large", "position": "center", "style": "photo"}


def test_an_image_copying_the_reference_background() -> None:
    s = score_image(READ, "p", 0, Request(style="photo", background="red"), subject=("star", "green"), reference_background="white")
    assert s.subject is True and s.obeyed == {"background": False, "style": True} and s.copied is True


def test_copy_rate_counts_only_new_background_prompts() -> None:
    scores = [
        score_image(READ, "p", 0, Request(style="sketch"), subject=("star", "green"), reference_background="white"),
        score_image(dict(READ, background="red", colour="blue"), "p", 1, Request(background="red"), subject=("star", "green"),
                    reference_background="white"),
    ]
    assert scores[0].copied is None and scores[1].copied is False
    summary = summarize(scores)
    assert summary == {"subject_fidelity": 0.5, "prompt_fidelity": 0.5, "copy_rate": 0.0, "n": 2}
    assert background_obedience(scores) == 1.0  # only the second asks for a background, and shows it
