#!/usr/bin/env python
"""The toy base's quality per guidance scale: which classifier-free guidance its held-out table is measured at.

    .venv/bin/python benchmarks/toyworld_guidance_sweep.py [--guidance 1.5,1.75,2,2.5,3,4] [--base DIR] [--vae DIR]

For each scale, all 551 held-out caption combinations are sampled (DDIM, the shipped step count, seeds as
``textboost-toyworld quality`` draws them) and read by the shipped oracle; prints the per-attribute table and
the most frequent colour and style confusions (asked -> drawn). ``--base`` measures a pipeline folder instead
of ``builtin:toyworld``; ``--vae`` swaps in another VAE folder (a fine-tuned decoder) before sampling.
About 1 minute per scale on one CPU thread.
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

import torch

from textboost_ext.toyworld.generate import STEPS
from textboost_ext.toyworld.oracle import attribute_accuracy
from textboost_ext.toyworld.quality import QUALITY_BAR, sample_held_out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--guidance", default="1.5,1.75,2,2.5,3,4", help="comma list of guidance scales")
    p.add_argument("--steps", type=int, default=STEPS)
    p.add_argument("--base", type=Path, default=None, help="a pipeline folder (default: builtin:toyworld)")
    p.add_argument("--vae", type=Path, default=None, help="a VAE folder to decode with instead of the base's")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from diffusers import AutoencoderKL, StableDiffusionPipeline

    from textboost_ext.toyworld.evaluate import load_toy_pipeline
    from textboost_ext.toyworld.shipped import load_shipped_oracle

    pipe = (StableDiffusionPipeline.from_pretrained(str(args.base), local_files_only=True) if args.base
            else load_toy_pipeline())
    if args.vae:
        pipe.vae = AutoencoderKL.from_pretrained(str(args.vae))
    oracle = load_shipped_oracle()
    print("| guidance | " + " | ".join(QUALITY_BAR) + " | colour errors (asked -> drawn) | style errors |")
    print("|---" * (len(QUALITY_BAR) + 3) + "|")
    for guidance in (float(g) for g in args.guidance.split(",")):
        scenes, reads = sample_held_out(pipe, oracle, seed=0, guidance=guidance, steps=args.steps)  # as `quality` draws
        accuracy = attribute_accuracy(reads, scenes)
        colours = collections.Counter(f"{s.colour}->{r['colour']}" for r, s in zip(reads, scenes) if r["colour"] != s.colour)
        styles = collections.Counter(f"{s.style} {s.shape}->{r['style']}" for r, s in zip(reads, scenes) if r["style"] != s.style)
        cells = [f"{accuracy[a]:.1%}" + ("" if accuracy[a] >= bar else " (below)") for a, bar in QUALITY_BAR.items()]
        top = lambda c: ", ".join(f"{k} {v}" for k, v in c.most_common(3))  # noqa: E731
        print(f"| {guidance:g} | " + " | ".join(cells) + f" | {top(colours)} | {top(styles)} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
