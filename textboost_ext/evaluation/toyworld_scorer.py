"""The toy world's oracle as an ``eval`` scorer (``--metrics oracle``, the default on ``builtin:toyworld``).

Everything toy-world specific comes from ``textboost_ext.toyworld``: the subject (found by the adapter's
placeholder), its twelve personalization prompts (written in the grammar the toy base understands),
the shipped oracle, and the scores (``score_image``, pooled by ``summarize``):

- **subject fidelity**: the oracle reads the subject's shape AND colour;
- **prompt fidelity**: of the background/position/size/style the prompt asks for, the share obeyed;
- **copy rate**: of the prompts asking for a new background, the share showing the reference's anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from statistics import mean
from typing import Any

from textboost_ext.evaluation.adapters import Adapter
from textboost_ext.evaluation.prompts import SUBJECT, EvalPrompt
from textboost_ext.evaluation.scorers import Scorer


class ToyWorldError(ValueError):
    """The toy-world scorer cannot be used for this run; the message says why and what to do."""


def toy_subject(adapters: Sequence[Adapter]) -> Any:
    """The toy-world ``Subject`` all ``adapters`` were trained on, found by their placeholder token."""
    from textboost_ext.toyworld.subjects import SUBJECTS

    by_placeholder = {s.placeholder: s for s in SUBJECTS.values()}
    found = {a.placeholder: by_placeholder.get(a.placeholder or "") for a in adapters}
    subjects = {s.name for s in found.values() if s is not None}
    if None in found.values() or len(subjects) != 1:
        said = ", ".join(f"{a.name}: {a.placeholder or 'no placeholder'}" for a in adapters)
        known = ", ".join(f"{s.placeholder} ({s.name})" for s in SUBJECTS.values())
        raise ToyWorldError(f"the oracle scores the toy world's subjects, found by the adapters' placeholder ({said}); "
                            f"known placeholders: {known}. Use --metrics clip,dino for other subjects")
    return next(s for s in found.values() if s is not None)


def _category(request: Any) -> str:
    return "+".join(name for name in ("background", "style", "size", "position") if getattr(request, name) is not None) or "plain"


def toyworld_prompts(adapters: Sequence[Adapter], references: Sequence[Any] = ()) -> list[EvalPrompt]:
    """The subject's personalization prompts as eval templates (each keeps its toy ``PromptCase``)."""
    from textboost_ext.toyworld.subjects import personalization_prompts

    return [EvalPrompt(template=case.text(SUBJECT), category=_category(case.request), case=case)
            for case in personalization_prompts(toy_subject(adapters))]


class OracleScorer(Scorer):
    name = "oracle"
    metrics = ("subject_fidelity", "prompt_fidelity", "copy_rate")

    def __init__(self, subject: Any) -> None:
        from textboost_ext.toyworld.shipped import load_shipped_oracle

        self.subject = subject
        self.oracle = load_shipped_oracle()

    def score(self, images: Sequence[Any], texts: Sequence[str], prompts: Sequence[EvalPrompt]) -> list[dict[str, Any]]:
        import numpy as np

        from textboost_ext.toyworld.scoring import read_images, score_image

        if any(p.case is None for p in prompts):
            raise ToyWorldError("the oracle scores the toy world's own prompts only (it must know what each prompt asks "
                                "for); drop --prompts, or score a prompts file with --metrics clip,dino")
        out = []
        for image, text, prompt in zip(images, texts, prompts):
            read = read_images(self.oracle, np.asarray(image.convert("RGB"))[None])[0]
            s = score_image(read, text, -1, prompt.case.request, subject=(self.subject.shape, self.subject.colour),
                            reference_background=self.subject.reference.background)
            out.append({
                "subject_fidelity": None if s.subject is None else float(s.subject),
                "prompt_fidelity": mean(s.obeyed.values()) if s.obeyed else None,
                "copy_rate": None if s.copied is None else float(s.copied),
                "oracle": {"read": s.read, "subject": s.subject, "obeyed": s.obeyed, "copied": s.copied},
            })
        return out

    def summarize(self, per_image: Sequence[dict[str, Any]]) -> dict[str, float | None]:
        """The toy world's own pooling (prompt fidelity pools every request, not per-image shares)."""
        from textboost_ext.toyworld.scoring import ImageScore, summarize

        names = {f.name for f in fields(ImageScore)}
        scores = [ImageScore(**{"prompt": "", "seed": -1, **{k: v for k, v in row["oracle"].items() if k in names}}) for row in per_image]
        summary = summarize(scores)
        return {m: summary[m] for m in self.metrics}
