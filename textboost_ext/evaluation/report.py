"""``eval.json``: every score of every image, the summaries, and the settings that produced them.

    {"version": 1,
     "settings": {...},                       base, seeds, steps, cfg, sampler, size, metrics, models used
     "models":  [{"label", "kind", "subject", "adapter"}],
     "prompts": [{"index", "category", "template", "scoring_text"}],
     "metrics": ["clip_t", ...],
     "images":  [{"model", "prompt", "seed", "file", "text", "scores": {...}}],
     "summary": {model: {metric: mean}},      pooled over every image (the scorer's own pooling)
     "spread":  {model: {metric: std}},       standard deviation of the per-seed summaries
     "per_prompt": {model: [{metric: mean}, ...]},   one entry per prompt, in prompt order
     "delta_vs_base": {model: {metric: summary - base summary}}}

The HTML page (``html_report``) is rendered from this document alone.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from statistics import pstdev
from typing import Any

from textboost_ext.atomic_write import atomic_write_text
from textboost_ext.evaluation.prompts import EvalPrompt
from textboost_ext.evaluation.run import BASE_LABEL, Contender, Job
from textboost_ext.evaluation.scorers import Scorer

REPORT_VERSION = 1
JSON_NAME = "eval.json"


def _summaries(scorers: Sequence[Scorer], rows: Sequence[dict[str, Any]]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for scorer in scorers:
        out.update(scorer.summarize(rows))
    return out


def build_report(models: list[Contender], prompts: list[EvalPrompt], jobs: list[Job], scores: list[dict[str, Any]],
                 scorers: Sequence[Scorer], class_noun: str, settings: dict[str, Any]) -> dict[str, Any]:
    metrics = [m for scorer in scorers for m in scorer.metrics]
    report: dict[str, Any] = {
        "version": REPORT_VERSION,
        "settings": settings,
        "models": [{"label": c.label, "kind": "adapter" if c.adapter else "base", "subject": c.subject_words,
                    "adapter": jobs_record(jobs, c)} for c in models],
        "prompts": [{"index": i, "category": p.category, "template": p.template, "scoring_text": p.text(class_noun)}
                    for i, p in enumerate(prompts)],
        "metrics": metrics,
        "images": [{"model": job.contender.label, "prompt": job.prompt_index, "seed": job.seed, "file": job.file,
                    "text": job.request.prompt, "scores": s} for job, s in zip(jobs, scores)],
        "summary": {}, "spread": {}, "per_prompt": {}, "delta_vs_base": {},
    }
    for contender in models:
        rows = [s for job, s in zip(jobs, scores) if job.contender.label == contender.label]
        seeds = sorted({job.seed for job in jobs if job.contender.label == contender.label})
        report["summary"][contender.label] = _summaries(scorers, rows)
        per_seed = [_summaries(scorers, [s for job, s in zip(jobs, scores)
                                         if job.contender.label == contender.label and job.seed == seed]) for seed in seeds]
        report["spread"][contender.label] = {
            m: (pstdev(values) if len(values) > 1 else None)
            for m in metrics for values in [[p[m] for p in per_seed if p.get(m) is not None]]
        }
        report["per_prompt"][contender.label] = [
            _summaries(scorers, [s for job, s in zip(jobs, scores) if job.contender.label == contender.label and job.prompt_index == i])
            for i in range(len(prompts))
        ]
    base = report["summary"].get(BASE_LABEL, {})
    for label, summary in report["summary"].items():
        if label != BASE_LABEL:
            report["delta_vs_base"][label] = {
                m: (summary[m] - base[m]) if summary.get(m) is not None and base.get(m) is not None else None for m in metrics
            }
    return report


def jobs_record(jobs: list[Job], contender: Contender) -> dict[str, Any] | None:
    """The adapter part of the image records (name, file, hashes, weight) of ``contender``."""
    for job in jobs:
        if job.contender.label == contender.label:
            return job.record.get("adapter")
    return None


def write_report(out_dir: Path, report: dict[str, Any]) -> Path:
    return atomic_write_text(Path(out_dir) / JSON_NAME, json.dumps(report, indent=2, sort_keys=False) + "\n")


def format_summary(report: dict[str, Any]) -> str:
    """The summary as a plain-text table (printed at the end of ``eval``)."""
    from textboost_ext.evaluation.metrics import metric_label

    metrics = report["metrics"]
    labels = list(report["summary"])
    width = max(len(label) for label in labels + ["model"])
    lines = [f"{'model':<{width}}  " + "  ".join(f"{metric_label(m):>16}" for m in metrics)]
    for label in labels:
        cells = []
        for m in metrics:
            value, spread = report["summary"][label].get(m), report["spread"][label].get(m)
            text = "-" if value is None else f"{value:.3f}" + (f" ±{spread:.3f}" if spread is not None else "")
            cells.append(f"{text:>16}")
        lines.append(f"{label:<{width}}  " + "  ".join(cells))
    return "\n".join(lines)
