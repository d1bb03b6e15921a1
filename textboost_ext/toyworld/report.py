"""``textboost-toyworld evaluate ADAPTER``: the base vs adapter table, a grid image and ``toyworld_eval.json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PIL import Image

from textboost_ext.toyworld.captions import Request
from textboost_ext.toyworld.evaluate import Comparison
from textboost_ext.toyworld.references import REFERENCE_SEED
from textboost_ext.toyworld.subjects import GRID_PROMPTS, personalization_prompts

ROWS = (("subject_fidelity", "subject fidelity (shows the subject)"),
        ("prompt_fidelity", "prompt fidelity (background/position/size/style obeyed)"),
        ("copy_rate", "copy rate (reference background on a new-background prompt)"),
        ("ordinary_accuracy", "ordinary prompts: attributes obeyed"),
        ("encoder_drift", "encoder drift on ordinary prompts (cosine distance)"))


def _cell(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}"


def format_comparison(c: Comparison) -> str:
    assert c.base is not None, "the report compares against the base: compare(..., with_base=True)"
    width = max(len(text) for _, text in ROWS)
    head = f"{'':<{width}}  {c.base.label:>22}  {c.adapter.label:>30}"
    n_prompts = len(personalization_prompts(c.subject))
    lines = [f"subject {c.subject.name}: {len(c.adapter.scores)} images per model "
             f"({n_prompts} prompts x {len(c.adapter.scores) // n_prompts} seeds), read by the oracle", head]
    for key, text in ROWS:
        lines.append(f"{text:<{width}}  {_cell(c.base.summary.get(key)):>22}  {_cell(c.adapter.summary.get(key)):>30}")
    return "\n".join(lines)


def context_label(request: Request) -> str:
    """What a prompt asks besides the subject, short enough for a grid tile: "sketch, small, top left"."""
    asked = request.asked()
    parts = [asked["style"]] if asked.get("style") == "sketch" else []
    parts += [asked[k] for k in ("size", "position") if k in asked]
    if "background" in asked:
        parts.append(f"{asked['background']} bg")
    return ", ".join(parts) or "photo"


def save_grid(c: Comparison, path: Path, reference: Path | None = None) -> Path:
    """Row 1: the one training photo; then base and adapter on the same new contexts (first seed)."""
    assert c.base is not None, "the grid compares against the base: compare(..., with_base=True)"
    import random

    from textboost_ext.evaluation.grid import save_labelled_grid
    from textboost_ext.toyworld.render import render

    cases = personalization_prompts(c.subject)
    seeds = len(c.adapter.scores) // len(cases)
    ref = Image.open(reference).convert("RGB") if reference else render(c.subject.reference, random.Random(REFERENCE_SEED), 128)
    rows: list[tuple[str, list[tuple[Image.Image, str]]]] = [("the one training photo", [(ref, "reference")])]
    for outcome in (c.base, c.adapter):
        tiles = [(Image.fromarray(outcome.images[i * seeds]), context_label(cases[i].request)) for i in GRID_PROMPTS]
        rows.append((outcome.label, tiles))
    return save_labelled_grid(path, rows, tile=128)


def write_json(c: Comparison, path: Path) -> Path:
    assert c.base is not None, "the report compares against the base: compare(..., with_base=True)"
    data = {"subject": c.subject.name, "base": c.base.summary, "adapter": c.adapter.summary,
            "labels": {"base": c.base.label, "adapter": c.adapter.label}}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)
    return path
