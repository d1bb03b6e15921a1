#!/usr/bin/env python
"""Ablation of TextBoost's components on the toy world (a benchmark, not a test; ~30 min on 2 CPU cores).

    .venv/bin/python benchmarks/toyworld_ablation.py [--subjects all] [--seeds 2] [--workers 2] [--out runs/ablation]

The default is three of the six novel subjects x 2 training seeds x 14 variants (84 trainings of 250 steps);
``--subjects all`` doubles it.

Each variant trains one adapter per (novel subject, seed) from the subject's ONE reference photo with the demo's
settings changed as named, then the oracle scores it on the subject's 12 personalization prompts x 2 image
seeds, plus 24 ordinary prompts (language drift). Runs are resumable (results.jsonl); the table (mean, and
± the standard deviation over training seeds of the per-seed means) goes to table.md and stdout.
Workers run one torch thread each (two 2-thread processes on 2 cores spin against each other).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TINY_LR = 1e-12  # "switched off" for a learning rate the config requires to be positive

# name -> (what changes, top-level overrides, [textboost] overrides)
VARIANTS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "textboost": ("the demo's settings: KP λ=1, object augmentation with tokens, SNR timesteps, LoRA + embedding", {}, {}),
    "kp_0": ("no knowledge preservation (λ=0)", {}, {"kpl_weight": 0.0}),
    "kp_0.1": ("λ=0.1 (the paper's)", {}, {"kpl_weight": 0.1}),
    "aug_untagged": ("augmented views, captions do not name the augmentation", {}, {"augment_mode": "untagged"}),
    "aug_text": ("augmentations named in words instead of tokens", {}, {"augment_mode": "text"}),
    "aug_none": ("no augmentation (the one photo as is)", {}, {"augment": "none"}),
    "uniform_t": ("uniform timesteps instead of SNR-weighted", {}, {"timestep_sampling": "uniform"}),
    "emb_only": ("embedding only (textual inversion): LoRA lr 1e-12", {"learning_rate": TINY_LR}, {}),
    "lora_only": ("LoRA only: embedding lr 1e-12", {}, {"emb_learning_rate": TINY_LR}),
    "norm_clamp": ("embedding norm clamp on", {}, {"norm_clamp": True}),
    "kp_mask": ("KP loss over real tokens only (padding masked)", {}, {"kpl_mask_padding": True}),
    "augment_p_0.8": ("augment each view with p 0.8 instead of 0.5", {}, {"augment_p": 0.8}),
    "no_safeguards": ("λ=0 and no augmentation: plain one-shot fine-tuning", {}, {"kpl_weight": 0.0, "augment": "none"}),
    "paper_lr": ("the paper's rates (LoRA 5e-5, embedding 1e-3, λ=0.1)", {"learning_rate": 5e-5}, {"emb_learning_rate": 1e-3, "kpl_weight": 0.1}),
}
METRICS = ("subject_fidelity", "prompt_fidelity", "background_obedience", "copy_rate", "ordinary_accuracy", "encoder_drift")
EVAL_SEEDS = (0, 1)
DEFAULT_SUBJECTS = ("green_star", "orange_triangle", "red_ring")


def _worker_init() -> None:
    os.environ.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TQDM_DISABLE="1")
    import torch

    torch.set_num_threads(1)


@functools.cache
def _load() -> tuple[Any, Any]:
    """The base pipeline and the oracle, loaded once per worker (adapters are loaded into it and unloaded)."""
    from textboost_ext.toyworld.evaluate import load_toy_pipeline
    from textboost_ext.toyworld.shipped import load_shipped_oracle

    return load_toy_pipeline(), load_shipped_oracle()


def run_base(subject_name: str) -> dict[str, Any]:
    from textboost_ext.toyworld.evaluate import run_subject
    from textboost_ext.toyworld.scoring import background_obedience
    from textboost_ext.toyworld.subjects import SUBJECTS

    pipe, oracle = _load()
    subject = SUBJECTS[subject_name]
    outcome = run_subject(pipe, oracle, subject, subject.class_noun, EVAL_SEEDS, "base", ordinary=True)
    return {"variant": "base", "subject": subject_name, "seed": None, **outcome.summary, "encoder_drift": 0.0,
            "background_obedience": background_obedience(outcome.scores)}


def run_variant(variant: str, subject_name: str, seed: int, out: Path) -> dict[str, Any]:
    import contextlib

    from textboost_ext.toyworld.evaluate import compare
    from textboost_ext.toyworld.experiment import train_subject, write_config
    from textboost_ext.toyworld.scoring import background_obedience
    from textboost_ext.toyworld.subjects import SUBJECTS

    subject = SUBJECTS[subject_name]
    _, top, textboost = VARIANTS[variant]
    run_dir = out / "runs" / variant / f"{subject_name}-s{seed}"
    config = write_config(subject, REPO / "examples" / "toyworld", REPO / "config_templates" / "toyworld_preservation_prompts.txt",
                          run_dir, seed, dict(top, overwrite=True), textboost)
    started = time.time()
    with open(run_dir / "train.log", "w") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        adapter = train_subject(config)
    trained = time.time() - started
    pipe, oracle = _load()
    c = compare(adapter, subject, seeds=EVAL_SEEDS, pipe=pipe, oracle=oracle, with_base=False)
    return {"variant": variant, "subject": subject_name, "seed": seed, **c.adapter.summary,
            "background_obedience": background_obedience(c.adapter.scores),
            "train_s": round(trained, 1), "total_s": round(time.time() - started, 1)}


def aggregate(rows: list[dict[str, Any]]) -> dict[str, dict[str, tuple[float | None, float | None]]]:
    """variant -> metric -> (mean over all runs, std over training seeds of the per-seed means)."""
    table: dict[str, dict[str, tuple[float | None, float | None]]] = {}
    for variant in ["base", *VARIANTS]:
        mine = [r for r in rows if r["variant"] == variant]
        if not mine:
            continue
        table[variant] = {}
        for m in METRICS:
            values = [r[m] for r in mine if r.get(m) is not None]
            by_seed: dict[Any, list[float]] = {}
            for r in mine:
                if r.get(m) is not None:
                    by_seed.setdefault(r["seed"], []).append(r[m])
            seed_means = [statistics.mean(v) for v in by_seed.values()]
            spread = statistics.stdev(seed_means) if len(seed_means) > 1 else None
            table[variant][m] = (statistics.mean(values) if values else None, spread)
    return table


def format_table(table: dict[str, dict[str, tuple[float | None, float | None]]], n_subjects: int, n_seeds: int) -> str:
    head = ("| variant | what changes | subject fidelity ↑ | prompt fidelity ↑ | new background obeyed ↑ | copy rate ↓ "
            "| ordinary prompts ↑ | encoder drift ↓ |\n|---|---|---|---|---|---|---|---|")
    lines = [f"{n_subjects} subjects x {n_seeds} training seeds per variant; 12 prompts x {len(EVAL_SEEDS)} image seeds each", "", head]
    for variant, cells in table.items():
        what = "the frozen base, class noun instead of the trigger" if variant == "base" else VARIANTS[variant][0]
        out = []
        for m in METRICS:
            mean, spread = cells[m]
            out.append("-" if mean is None else f"{mean:.3f}" + (f" ± {spread:.3f}" if spread is not None else ""))
        lines.append(f"| {variant} | {what} | " + " | ".join(out) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from textboost_ext.toyworld.subjects import SUBJECTS

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--subjects", default=",".join(DEFAULT_SUBJECTS),
                   help=f"comma list of subject names, or all (default {','.join(DEFAULT_SUBJECTS)}: ~30 min on 2 cores)")
    p.add_argument("--seeds", type=int, default=2, help="training seeds per subject and variant (default 2)")
    p.add_argument("--variants", default="all", help=f"comma list of {', '.join(VARIANTS)}, or all")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", type=Path, default=REPO / "runs" / "ablation")
    args = p.parse_args(argv)
    subjects = list(SUBJECTS) if args.subjects == "all" else args.subjects.split(",")
    variants = list(VARIANTS) if args.variants == "all" else args.variants.split(",")
    unknown = [v for v in variants if v not in VARIANTS] + [s for s in subjects if s not in SUBJECTS]
    if unknown:
        p.error(f"unknown variant(s)/subject(s): {', '.join(unknown)}")
    args.out.mkdir(parents=True, exist_ok=True)
    results = args.out / "results.jsonl"
    rows = [json.loads(line) for line in results.read_text().splitlines()] if results.is_file() else []
    done = {(r["variant"], r["subject"], r["seed"]) for r in rows}
    jobs: list[tuple[Any, ...]] = [("base", s, None) for s in subjects if ("base", s, None) not in done]
    jobs += [(v, s, seed) for seed in range(args.seeds) for v in variants for s in subjects if (v, s, seed) not in done]
    print(f"{len(jobs)} runs to do, {len(done)} done; results in {results}", flush=True)
    started = time.time()
    with ProcessPoolExecutor(args.workers, initializer=_worker_init) as pool:
        futures = {(pool.submit(run_base, s) if v == "base" else pool.submit(run_variant, v, s, seed, args.out)): (v, s, seed)
                   for v, s, seed in jobs}
        for n, future in enumerate(as_completed(futures), 1):
            row = future.result()
            rows.append(row)
            with results.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(f"[{n}/{len(jobs)} {time.time() - started:.0f} s] {row['variant']} {row['subject']} seed {row['seed']}: "
                  + ", ".join(f"{m} {row[m]:.3f}" for m in METRICS if row.get(m) is not None), flush=True)
    rows = [r for r in rows if r["subject"] in subjects and (r["variant"] == "base" or (r["variant"] in variants and r["seed"] < args.seeds))]
    table = format_table(aggregate(rows), len(subjects), args.seeds)
    (args.out / "table.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    import multiprocessing

    multiprocessing.set_start_method("spawn")
    sys.exit(main())
