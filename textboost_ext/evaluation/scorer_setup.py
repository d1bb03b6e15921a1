"""Which prompts and which scorers an ``eval`` run uses, from its command line.

Real bases: the shipped prompt set (or ``--prompts``), scored by CLIP (CLIP-T, CLIP-I) and DINO.
The toy world (``--metrics oracle``, the default on ``builtin:toyworld``): its own prompts, written in
the grammar the toy base understands, scored by the toy world's oracle.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from textboost_ext.evaluation.adapters import Adapter
from textboost_ext.evaluation.prompts import EvalPrompt, prompts_from_file, shipped_prompts
from textboost_ext.evaluation.scorers import Scorer


def eval_prompts(path: str | None, adapters: Sequence[Adapter], metrics: Sequence[str], references: Sequence[Any]) -> tuple[list[EvalPrompt], str]:
    """``(prompts, where they came from)``."""
    if path:
        phrases = [p for a in adapters for p in (a.subject_words, a.placeholder) if p]
        return prompts_from_file(path, phrases), str(path)
    if "oracle" in metrics:
        _require_toyworld()
        from textboost_ext.evaluation.toyworld_scorer import toyworld_prompts

        prompts = toyworld_prompts(adapters, references)
        return prompts, f"toy-world personalization prompts ({len(prompts)})"
    prompts = shipped_prompts()
    return prompts, f"shipped set ({len(prompts)} prompts: recontextualization, accessorization, property, style)"


def _require_toyworld() -> None:
    import importlib.util

    if importlib.util.find_spec("textboost_ext.toyworld") is None:
        raise ValueError("--metrics oracle needs the toy world (textboost_ext.toyworld), which this install lacks; "
                         "use --metrics clip,dino")


def make_scorers(metrics: Sequence[str], references: Sequence[Any], adapters: Sequence[Adapter], args: argparse.Namespace,
                 device: str) -> list[Scorer]:
    scorers: list[Scorer] = []
    if "clip" in metrics:
        from textboost_ext.evaluation.scorers import ClipScorer

        scorers.append(ClipScorer(args.clip_model, references, device, args.score_batch_size))
    if "dino" in metrics:
        from textboost_ext.evaluation.scorers import DinoScorer

        scorers.append(DinoScorer(args.dino_model, references, device, args.score_batch_size))
    if "oracle" in metrics:
        from textboost_ext.evaluation.toyworld_scorer import OracleScorer, toy_subject

        scorers.append(OracleScorer(toy_subject(adapters)))
    return scorers
