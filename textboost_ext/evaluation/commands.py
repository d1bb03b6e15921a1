"""The bodies of ``textboost-hub generate`` and ``textboost-hub eval`` (argument parsing: ``cli.py``)."""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from textboost_ext.console import quiet_third_party
from textboost_ext.evaluation.adapters import Adapter, builtin_base_of, open_adapter
from textboost_ext.hub.store import EVAL_SUBDIR, GENERATED_SUBDIR, adapters_root

DEFAULT_METRICS = {"builtin:toyworld": ("oracle",)}
REAL_BASE_METRICS = ("clip", "dino")
METRIC_CHOICES = ("clip", "dino", "oracle")


class CommandError(ValueError):
    """A command line that cannot run; the message says what to pass instead."""


def _base(args: argparse.Namespace, adapters: list[Adapter]) -> str:
    if args.base:
        return args.base
    base = builtin_base_of(adapters)
    if base is None:
        trained = sorted({a.trained_base or "an unrecorded base" for a in adapters})
        raise CommandError(f"--base is required: the adapter(s) were trained on {', '.join(trained)}; pass that model "
                           "(a diffusers folder, an A1111 .safetensors/.ckpt file or a Hub id) with --base")
    print(f"base: {base} (from the adapter's metadata ss_sd_model_name)")
    return base


def _sampling(args: argparse.Namespace, base: str) -> dict[str, Any]:
    from textboost_ext.evaluation.pipeline import sampling_defaults
    from textboost_ext.host.sampling import SAMPLERS

    values = sampling_defaults(base)
    for key in ("steps", "cfg", "sampler"):
        if getattr(args, key) is not None:
            values[key] = getattr(args, key)
    if values["sampler"] not in SAMPLERS:  # checked before minutes of model loading
        raise CommandError(f"--sampler {values['sampler']!r} is not supported; choose one of: {', '.join(SAMPLERS)}")
    for key in ("width", "height"):
        size = getattr(args, key)
        if size is not None and (size < 8 or size % 8):
            raise CommandError(f"--{key} {size}: must be a positive multiple of 8")
    if args.steps is not None and args.steps < 1:
        raise CommandError(f"--steps {args.steps}: must be >= 1")
    if args.n < 1:
        raise CommandError(f"--n {args.n}: must be >= 1")
    return values


def _batch_size(args: argparse.Namespace, device: str) -> int:
    if args.batch_size is not None:
        if args.batch_size < 1:
            raise CommandError(f"--batch_size {args.batch_size}: must be >= 1")
        return args.batch_size
    return 1 if device == "cpu" else 4  # a CPU gains nothing from batching; a GPU does


def _next_counter(folder: Path) -> int:
    """A1111-style numbering: continue after the highest ``NNNNN-`` file already in ``folder``."""
    numbers = [int(m.group(1)) for p in folder.glob("*.png") if (m := re.match(r"(\d{5})-", p.name))]
    return max(numbers, default=-1) + 1


def run_generate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from textboost_ext.evaluation.adapters import load_adapter
    from textboost_ext.evaluation.generate import ImageRequest, adapter_record, generate_images, image_record, save_png
    from textboost_ext.evaluation.grid import save_labelled_grid
    from textboost_ext.evaluation.pipeline import load_base
    from textboost_ext.host.sampling import parse_prompt_line, parse_prompts_file

    adapter = open_adapter(args.adapter, adapters_root(args.adapters_dir))
    prompts = [parse_prompt_line(text.strip(), f"--prompt {text!r}") for text in args.prompt]
    if args.prompts:
        prompts += parse_prompts_file(args.prompts)
    if not prompts:
        hint = f' e.g. --prompt "a photo of {adapter.subject_words}"' if adapter.subject_words else ""
        raise CommandError(f"nothing to generate: give --prompt TEXT (repeatable) or --prompts FILE{hint}")
    base_name = _base(args, [adapter])
    sampling = _sampling(args, base_name)
    quiet_third_party(import_now=True)  # our own progress bar and messages only
    base = load_base(base_name, args.device, args.precision)
    width, height = base.default_size
    requests, rows = [], []
    for sp in prompts:
        first_seed = sp.seed if sp.seed is not None else args.seed
        given = set(sp.given)
        row = []
        for seed in range(first_seed, first_seed + args.n):
            row.append(len(requests))
            requests.append(ImageRequest(
                prompt=sp.prompt, negative_prompt=sp.negative_prompt if "negative_prompt" in given else args.negative,
                seed=seed, steps=sp.steps if "steps" in given else sampling["steps"],
                cfg=sp.scale if "scale" in given else sampling["cfg"], sampler=sampling["sampler"],
                width=sp.width or args.width or width, height=sp.height or args.height or height))
        rows.append((sp.prompt, row))
    out_dir = Path(args.output_dir) if args.output_dir else adapter.info.folder / GENERATED_SUBDIR
    out_dir.mkdir(parents=True, exist_ok=True)
    counter = _next_counter(out_dir)
    record = adapter_record(adapter, args.weight)
    load_adapter(base.pipe, adapter, args.weight)
    files: dict[int, Path] = {}
    images: dict[int, Any] = {}
    with tqdm(total=len(requests), desc=f"generate {adapter.name}", unit="img", file=sys.stderr) as bar:
        for i, image in generate_images(base, requests, _batch_size(args, base.device), on_batch=bar.update):
            files[i] = save_png(out_dir / f"{counter + i:05d}-{requests[i].seed}.png", image, image_record(requests[i], base, record))
            images[i] = image
    for i in sorted(files):
        print(files[i])
    grid = save_labelled_grid(out_dir / f"grid-{counter:05d}.png",
                              [(text, [(images[i], f"seed {requests[i].seed}") for i in row]) for text, row in rows])
    print(f"grid: {grid}")
    return 0


def _class_noun(args: argparse.Namespace, adapters: list[Adapter]) -> str:
    if args.class_noun:
        return args.class_noun
    nouns = {a.class_noun for a in adapters}
    if len(nouns) == 1 and None not in nouns:
        return next(iter(nouns))  # type: ignore[return-value]
    said = ", ".join(f"{a.name}: {a.class_noun or 'none recorded'}" for a in adapters)
    raise CommandError(f"cannot tell the subject's class noun from the adapters' metadata ({said}); pass --class_noun")


def _copy_references(paths: list[str], out_dir: Path) -> tuple[list[Any], list[str]]:
    from PIL import Image, UnidentifiedImageError

    images, copies = [], []
    for index, name in enumerate(paths):
        path = Path(name).expanduser()
        try:
            with Image.open(path) as image:
                images.append(image.convert("RGB"))
        except (OSError, UnidentifiedImageError) as exc:
            raise CommandError(f"--reference {name}: not a readable image ({exc}); pass the training photo(s)") from exc
        copy = Path("references") / f"{index:02d}-{path.name}"
        (out_dir / copy).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, out_dir / copy)
        copies.append(copy.as_posix())
    return images, copies


def _output_dir(args: argparse.Namespace, adapters: list[Adapter]) -> Path:
    if args.output_dir:
        return Path(args.output_dir)
    folder = adapters[0].info.folder / EVAL_SUBDIR
    others = [a.name for a in adapters[1:]]
    return folder / ("vs-" + "-".join(others)) if others else folder


def run_eval(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from textboost_ext.evaluation import run
    from textboost_ext.evaluation.html_report import write_html
    from textboost_ext.evaluation.pipeline import load_base, resolve_device
    from textboost_ext.evaluation.report import build_report, format_summary, write_report
    from textboost_ext.evaluation.scorer_setup import eval_prompts, make_scorers

    root = adapters_root(args.adapters_dir)
    adapters = [open_adapter(name, root) for name in args.adapters]
    base_name = _base(args, adapters)
    sampling = _sampling(args, base_name)
    class_noun = _class_noun(args, adapters)
    metrics = args.metrics.split(",") if args.metrics else list(DEFAULT_METRICS.get(base_name, REAL_BASE_METRICS))
    unknown = [m for m in metrics if m not in METRIC_CHOICES]
    if unknown:
        raise CommandError(f"--metrics {args.metrics}: unknown {unknown}; choose from {', '.join(METRIC_CHOICES)}")
    out_dir = _output_dir(args, adapters)
    out_dir.mkdir(parents=True, exist_ok=True)
    references, reference_files = _copy_references(args.reference, out_dir)
    prompts, prompts_source = eval_prompts(args.prompts, adapters, metrics, references)
    quiet_third_party(import_now=True)  # our own progress bar and messages only
    device = resolve_device(args.device)
    scorers = make_scorers(metrics, references, adapters, args, device)  # before any generation: a missing model fails fast
    base = load_base(base_name, device, args.precision)
    width, height = base.default_size
    plan = run.Sampling(n=args.n, seed=args.seed, steps=sampling["steps"], cfg=sampling["cfg"], sampler=sampling["sampler"],
                        width=args.width or width, height=args.height or height, negative=args.negative, weight=args.weight)
    models = run.contenders(adapters, class_noun)
    jobs = run.plan(models, prompts, plan, base)
    todo = run.missing(jobs, out_dir)
    print(f"{len(jobs)} images ({len(models)} models x {len(prompts)} prompts x {args.n} seeds): "
          f"{len(jobs) - len(todo)} reused, {len(todo)} to generate; output {out_dir}")
    with tqdm(total=len(todo), desc="generate", unit="img", file=sys.stderr) as bar:
        def progress(n: int, label: str) -> None:
            bar.set_postfix_str(label)
            bar.update(n)

        run.generate_missing(base, todo, out_dir, plan, _batch_size(args, base.device), progress)
    with tqdm(total=len(jobs), desc="score", unit="img", file=sys.stderr) as bar:
        scores = run.score(jobs, out_dir, prompts, class_noun, scorers, bar.update)
    settings = {
        "base": base_name, "device": base.device, "precision": base.precision, "prompts": prompts_source,
        "seeds": f"{args.seed}..{args.seed + args.n - 1} per prompt (a prompts-file --d sets its own first seed)",
        "steps": plan.steps, "cfg": plan.cfg, "sampler": plan.sampler, "size": f"{plan.width}x{plan.height}",
        "negative": plan.negative, "weight": plan.weight, "class_noun": class_noun, "metrics": ",".join(metrics),
        "clip_model": args.clip_model if "clip" in metrics else None, "dino_model": args.dino_model if "dino" in metrics else None,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "references": reference_files,
    }
    report = build_report(models, prompts, jobs, scores, scorers, class_noun, settings)
    print(format_summary(report))
    print(f"scores: {write_report(out_dir, report)}\npage:   {write_html(out_dir, report)}")
    return 0
