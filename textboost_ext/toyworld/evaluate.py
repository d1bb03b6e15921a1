"""What an adapter does on the toy base, measured by the oracle: base vs adapter on the subject's prompts.

The base gets each prompt with the class noun ("a photo of a star on a red background"), the adapter with its
trigger ("... tbstar star ..."): the paper's reference point. Ordinary prompts (no subject) measure language
drift twice: in the encoder (cosine distance of its outputs) and in the images (the oracle's accuracy on
what those prompts ask for).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from textboost_ext.toyworld.captions import full_caption
from textboost_ext.toyworld.generate import generate
from textboost_ext.toyworld.scoring import ImageScore, read_images, score_image, summarize
from textboost_ext.toyworld.subjects import PromptCase, Subject, personalization_prompts
from textboost_ext.toyworld.world import ATTRIBUTES, Scene, held_out_scenes

ORDINARY_PROMPTS = 24


def load_toy_pipeline() -> Any:
    """``builtin:toyworld`` as a diffusers user loads a local folder (fp32, CPU)."""
    from diffusers import StableDiffusionPipeline

    from textboost_ext.console import quiet_third_party
    from textboost_ext.models.builtin import builtin_model_dir

    quiet_third_party(import_now=True)
    pipe = StableDiffusionPipeline.from_pretrained(str(builtin_model_dir("builtin:toyworld")), local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def ordinary_scenes(n: int = ORDINARY_PROMPTS) -> list[Scene]:
    """A fixed sample of held-out scenes: the ordinary prompts drift is measured on."""
    return random.Random(7).sample(held_out_scenes(), n)


def ordinary_prompts(n: int = ORDINARY_PROMPTS) -> list[str]:
    return [full_caption(s) for s in ordinary_scenes(n)]


@dataclass
class Outcome:
    """One model's images and scores on one subject."""

    label: str
    words: str
    scores: list[ImageScore]
    images: np.ndarray
    ordinary_accuracy: float | None = None
    summary: dict[str, float | None] = field(default_factory=dict)


def run_subject(pipe: Any, oracle: Any, subject: Subject, words: str, seeds: Sequence[int], label: str,
                cases: Sequence[PromptCase] | None = None, ordinary: bool = False) -> Outcome:
    cases = list(cases or personalization_prompts(subject))
    jobs = [(case, seed) for case in cases for seed in seeds]
    prompts = [case.text(words) for case, _ in jobs]
    images = generate(pipe, prompts, [seed for _, seed in jobs])
    reads = read_images(oracle, images)
    scores = [score_image(read, prompt, seed, case.request, subject=(subject.shape, subject.colour),
                          reference_background=subject.reference.background)
              for read, prompt, (case, seed) in zip(reads, prompts, jobs)]
    outcome = Outcome(label, words, scores, images)
    outcome.summary = summarize(scores)
    if ordinary:
        outcome.ordinary_accuracy = ordinary_accuracy(pipe, oracle, seeds[:2])
        outcome.summary["ordinary_accuracy"] = outcome.ordinary_accuracy
    return outcome


def ordinary_accuracy(pipe: Any, oracle: Any, seeds: Sequence[int]) -> float:
    """The oracle's mean attribute accuracy on ordinary prompts (no subject): falls when the language drifts."""
    jobs = [(s, seed) for s in ordinary_scenes() for seed in seeds]
    images = generate(pipe, [full_caption(s) for s, _ in jobs], [1000 + seed for _, seed in jobs])
    reads = read_images(oracle, images)
    return float(np.mean([r[a] == getattr(s, a) for r, (s, _) in zip(reads, jobs) for a in ATTRIBUTES]))


@torch.no_grad()
def encoder_outputs(pipe: Any, prompts: Sequence[str]) -> torch.Tensor:
    ids = pipe.tokenizer(list(prompts), padding="max_length", max_length=pipe.tokenizer.model_max_length,
                         truncation=True, return_tensors="pt").input_ids
    return pipe.text_encoder(ids)[0]


def encoder_drift(before: torch.Tensor, after: torch.Tensor) -> float:
    """Mean cosine distance between the encoder's per-token outputs before and after the adapter."""
    return float(1 - torch.nn.functional.cosine_similarity(before, after, dim=-1).mean())


@dataclass
class Comparison:
    subject: Subject
    base: Outcome | None  # None when the caller scored the base once for many adapters
    adapter: Outcome
    drift: float


def compare(adapter_ref: str | Path, subject: Subject | None = None, seeds: Sequence[int] = (0, 1, 2),
            pipe: Any = None, oracle: Any = None, ordinary: bool = True, adapters_dir: Path | None = None,
            with_base: bool = True) -> Comparison:
    """Base vs adapter on the subject's personalization prompts (and ordinary prompts when ``ordinary``)."""
    from textboost_ext.evaluation.adapters import load_adapter, open_adapter, unload_adapter
    from textboost_ext.toyworld.shipped import load_shipped_oracle
    from textboost_ext.toyworld.subjects import subject_by_placeholder

    adapter = open_adapter(str(adapter_ref), adapters_dir)
    if subject is None:
        subject = subject_by_placeholder(adapter.placeholder or "")
        if subject is None:
            raise ValueError(f"{adapter.name}: placeholder {adapter.placeholder!r} is not a toy-world subject's "
                             "(tbstar, tbcircle, tbtriangle, tbsquare, tbcross, tbring)")
    pipe = pipe or load_toy_pipeline()
    oracle = oracle or load_shipped_oracle()
    probe = ordinary_prompts()
    before = encoder_outputs(pipe, probe)
    base = None
    if with_base:
        base = run_subject(pipe, oracle, subject, subject.class_noun, seeds, f"base ({subject.class_noun})", ordinary=ordinary)
        base.summary["encoder_drift"] = 0.0
    tokens = load_adapter(pipe, adapter)
    try:
        drift = encoder_drift(before, encoder_outputs(pipe, probe))
        tuned = run_subject(pipe, oracle, subject, subject.trigger, seeds, f"{adapter.name} ({subject.trigger})", ordinary=ordinary)
    finally:
        unload_adapter(pipe, tokens)
    tuned.summary["encoder_drift"] = drift
    return Comparison(subject, base, tuned, drift)
