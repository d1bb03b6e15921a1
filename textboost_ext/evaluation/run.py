"""``textboost-hub eval``, top to bottom: plan the images, generate the missing ones, score, report.

Every model in the comparison (the base first, then each adapter) gets the same prompts and seeds.
The adapter fills each prompt's subject slot with its trigger ("tbmug mug"), the base with the class
noun ("mug"): the paper's reference point. Images go to ``OUT/images/<model>/p<prompt>-s<seed>.png``
with their settings inside; an image already there with the same settings is reused, so an
interrupted or extended run (more seeds, another adapter) only generates what is missing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textboost_ext.evaluation.adapters import Adapter, load_adapter, unload_adapter
from textboost_ext.evaluation.generate import (
    ImageRequest,
    adapter_record,
    generate_images,
    image_record,
    same_pixels_expected,
    save_png,
)
from textboost_ext.evaluation.pipeline import BasePipeline
from textboost_ext.evaluation.pnginfo import read_record
from textboost_ext.evaluation.prompts import EvalPrompt
from textboost_ext.evaluation.scorers import Scorer

IMAGES_SUBDIR = "images"
BASE_LABEL = "base"
SCORE_CHUNK = 32  # images held in memory at once while scoring


@dataclass(frozen=True)
class Contender:
    """One column of the comparison: the base, or the base with an adapter."""

    label: str
    adapter: Adapter | None
    subject_words: str

    @property
    def folder(self) -> str:
        return re.sub(r"[^\w.-]+", "_", self.label)


@dataclass(frozen=True)
class Sampling:
    """Defaults for every prompt (a prompts-file line may override steps, cfg, size, negative, seed)."""

    n: int
    seed: int
    steps: int
    cfg: float
    sampler: str
    width: int
    height: int
    negative: str = ""
    weight: float = 1.0


@dataclass
class Job:
    contender: Contender
    prompt_index: int
    seed: int
    request: ImageRequest
    file: str  # relative to the output folder
    record: dict[str, Any]


def contenders(adapters: Sequence[Adapter], class_noun: str) -> list[Contender]:
    out = [Contender(BASE_LABEL, None, class_noun)]
    for adapter in adapters:
        label = adapter.name
        while label in {c.label for c in out}:
            label += "+"
        out.append(Contender(label, adapter, adapter.subject_words or class_noun))  # a LoRA without an embedding: the class noun
    return out


def plan(models: list[Contender], prompts: list[EvalPrompt], sampling: Sampling, base: BasePipeline) -> list[Job]:
    jobs = []
    for contender in models:
        adapter = adapter_record(contender.adapter, sampling.weight)
        for index, prompt in enumerate(prompts):
            first_seed = prompt.seed if prompt.seed is not None else sampling.seed
            for seed in range(first_seed, first_seed + sampling.n):
                request = ImageRequest(
                    prompt=prompt.text(contender.subject_words),
                    negative_prompt=prompt.negative or sampling.negative,
                    seed=seed,
                    steps=prompt.steps or sampling.steps,
                    cfg=prompt.scale if prompt.scale is not None else sampling.cfg,
                    sampler=sampling.sampler,
                    width=prompt.width or sampling.width,
                    height=prompt.height or sampling.height,
                )
                file = f"{IMAGES_SUBDIR}/{contender.folder}/p{index:02d}-s{seed}.png"
                jobs.append(Job(contender, index, seed, request, file, image_record(request, base, adapter)))
    return jobs


def missing(jobs: list[Job], out_dir: Path) -> list[Job]:
    """Jobs without a reusable image on disk (absent, unreadable, or made with other settings)."""
    return [job for job in jobs if not same_pixels_expected(read_record(out_dir / job.file), job.record)]


def generate_missing(base: BasePipeline, jobs: list[Job], out_dir: Path, sampling: Sampling, batch_size: int,
                     progress: Callable[[int, str], None]) -> None:
    """Generate the images of ``jobs`` (already filtered by ``missing``), one adapter loaded at a time."""
    by_contender: dict[str, list[Job]] = {}
    for job in jobs:
        by_contender.setdefault(job.contender.label, []).append(job)
    for group in by_contender.values():
        contender = group[0].contender
        tokens = load_adapter(base.pipe, contender.adapter, sampling.weight) if contender.adapter else []
        try:
            requests = [job.request for job in group]
            for i, image in generate_images(base, requests, batch_size, on_batch=lambda n: progress(n, contender.label)):
                save_png(out_dir / group[i].file, image, group[i].record)
        finally:
            if contender.adapter:
                unload_adapter(base.pipe, tokens)


def score(jobs: list[Job], out_dir: Path, prompts: list[EvalPrompt], class_noun: str, scorers: list[Scorer],
          progress: Callable[[int], None]) -> list[dict[str, Any]]:
    """Per image: every scorer's numbers. CLIP-T reads each prompt with the class noun as the subject."""
    from PIL import Image

    results: list[dict[str, Any]] = [{} for _ in jobs]
    for start in range(0, len(jobs), SCORE_CHUNK):
        chunk = jobs[start:start + SCORE_CHUNK]
        images = []
        for job in chunk:
            with Image.open(out_dir / job.file) as image:
                images.append(image.convert("RGB"))
        texts = [prompts[job.prompt_index].text(class_noun) for job in chunk]
        cases = [prompts[job.prompt_index] for job in chunk]
        for scorer in scorers:
            for offset, values in enumerate(scorer.score(images, texts, cases)):
                results[start + offset].update(values)
        progress(len(chunk))
    return results
