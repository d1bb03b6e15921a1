"""``generate`` and ``eval`` subcommands, mounted into ``textboost-hub`` (importing this module is cheap:
the commands import torch, diffusers and transformers only when they run).

    textboost-hub generate NAME|FILE [--base MODEL] --prompt TEXT [--prompt TEXT ...] | --prompts FILE
                           [--n 4] [--seed 0] [--steps S] [--cfg C] [--sampler ddim] [--weight 1.0]
                           [--width W --height H] [--negative TEXT] [--device auto] [--precision auto]
    textboost-hub eval NAME [NAME ...] --reference IMG [IMG ...] [--base MODEL] [--prompts FILE] [--n 4]
                       [--metrics clip,dino|oracle] [--clip_model ID|DIR] [--dino_model ID|DIR] [--output_dir DIR]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from textboost_ext.evaluation.scorers import DEFAULT_CLIP_MODEL, DEFAULT_DINO_MODEL
from textboost_ext.toyworld import sampling as toyworld_sampling


def _sampling_options(p: argparse.ArgumentParser, images_help: str) -> None:
    p.add_argument("--base", default=None,
                   help="base model: builtin:NAME, diffusers folder, A1111 .safetensors/.ckpt or Hub id "
                        "(default: the builtin: base named in the adapter's metadata)")
    p.add_argument("--n", type=int, default=4, help=images_help)
    p.add_argument("--seed", type=int, default=0, help="seed of each prompt's first image; the next ones count up (default 0)")
    p.add_argument("--steps", type=int, default=None, help=f"sampling steps (default 30; {toyworld_sampling.STEPS} on builtin:toyworld)")
    p.add_argument("--cfg", type=float, default=None, help=f"classifier-free guidance scale (default 7.5; {toyworld_sampling.GUIDANCE:g} on builtin:toyworld)")
    p.add_argument("--sampler", default=None, help="kohya sampler name: ddim (default), euler, euler_a, dpmsolver++, ...")
    p.add_argument("--weight", type=float, default=1.0, help="LoRA multiplier (A1111's <lora:NAME:weight>; default 1.0)")
    p.add_argument("--width", type=int, default=None, help="image width, multiple of 8 (default: the base's native size)")
    p.add_argument("--height", type=int, default=None, help="image height, multiple of 8 (default: the base's native size)")
    p.add_argument("--negative", default="", help="negative prompt (a prompts-file line's --n wins)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N or mps")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "fp16", "bf16"),
                   help="weights and activations (auto: fp32 on the CPU, fp16 on a GPU)")
    p.add_argument("--batch_size", type=int, default=None, help="images per pipeline call (default 1 on the CPU, 4 on a GPU)")
    p.add_argument("--output_dir", default=None, help="where the images go (default: inside the adapter's folder)")


def register_subcommands(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("generate", parents=[common], help="generate images with an adapter (PNG + parameters, and a grid)",
                       description="Generate images with an adapter loaded the way diffusers users load it. Each PNG "
                                   "carries its settings in a 'parameters' text chunk (A1111 PNG Info format).")
    p.add_argument("adapter", help="store name, adapter folder, or .safetensors LoRA file")
    p.add_argument("--prompt", action="append", default=[],
                   help="a prompt, repeatable; kohya per-prompt options allowed inside (--n negative --w --h --s --l --d)")
    p.add_argument("--prompts", default=None, help="a kohya prompts .txt file, the format of training's sample_prompts")
    _sampling_options(p, "images per prompt (default 4); in prompt files --n is the negative prompt, as in kohya")
    p.set_defaults(func=_guarded("run_generate"))

    p = sub.add_parser("eval", parents=[common], help="score adapters against their base: CLIP-T, CLIP-I, DINO (toy world: oracle)",
                       description="Generate a prompt set x seeds with each adapter and with the base (class noun in "
                                   "place of the trigger), score them, and write eval.json and eval.html.")
    p.add_argument("adapters", nargs="+", metavar="NAME", help="one or more adapters (store names, folders or files), compared side by side")
    p.add_argument("--reference", nargs="+", required=True, metavar="IMG", help="the subject's reference image(s): the training photo(s)")
    p.add_argument("--prompts", default=None, help="a kohya prompts file instead of the shipped set; write {} or the "
                                                   "placeholder where the subject goes")
    p.add_argument("--class_noun", default=None, help="the subject's class noun (default: from the adapters' metadata)")
    p.add_argument("--metrics", default=None, help="comma list of clip, dino, oracle (default: clip,dino; oracle on builtin:toyworld)")
    p.add_argument("--clip_model", default=DEFAULT_CLIP_MODEL, help=f"CLIPModel folder or Hub id (default {DEFAULT_CLIP_MODEL})")
    p.add_argument("--dino_model", default=DEFAULT_DINO_MODEL, help=f"DINOv2 AutoModel folder or Hub id (default {DEFAULT_DINO_MODEL})")
    p.add_argument("--score_batch_size", type=int, default=16, help="images per scoring-model call (default 16)")
    _sampling_options(p, "seeds per prompt (default 4)")
    p.set_defaults(func=_guarded("run_eval"))


def _guarded(name: str) -> Callable[[argparse.Namespace], int]:
    """The command ``name`` of ``commands``; a model or adapter that fails to load exits 1 with its message."""

    def run(args: argparse.Namespace) -> int:
        from textboost_ext.evaluation import commands
        from textboost_ext.evaluation.adapters import AdapterLoadError
        from textboost_ext.evaluation.scorers import ScorerModelError
        from textboost_ext.models.errors import BaseModelError

        try:
            return int(getattr(commands, name)(args))
        except (AdapterLoadError, ScorerModelError, BaseModelError) as err:
            print(f"textboost-hub: error: {err}", file=sys.stderr)
            return 1

    return run
