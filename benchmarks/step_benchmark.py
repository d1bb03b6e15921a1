#!/usr/bin/env python
"""Step time and peak memory of TextBoost training on CPU (a benchmark script, not a test).

    .venv/bin/python benchmarks/step_benchmark.py                   # all cases, 1 thread, fp32
    .venv/bin/python benchmarks/step_benchmark.py --mixed_precision bf16
    .venv/bin/python benchmarks/step_benchmark.py --models mid --steps 6

Models: ``demo`` (the tiny SD 1.x of the demo, 64 px, batch 4) and ``mid`` (SD-layout UNet with
block channels (64, 128, 256, 256) + a real-size CLIP-L text encoder, 12 layers x 768, 128 px,
batch 8). Cases: ``textboost`` (augmentation + KP with the original-output cache, the shipped 1,358 prompts:
a short run is mostly cache misses), ``textboost_warmcache`` (the same with a 4-prompt set, so after
the warm-up every frozen output is a cache hit: the steady state of the cache),
``textboost_nocache`` (KP recomputes the frozen outputs every step), ``plain`` (text-encoder LoRA, no
TextBoost piece).
Each case runs in its own process so peak RSS (ru_maxrss) belongs to it alone. torch is pinned to one
thread: 2-thread timings swing 10x on shared machines.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CASES = ("textboost", "textboost_warmcache", "textboost_nocache", "plain")
MODELS = {"demo": {"resolution": 64, "batch": 4}, "mid": {"resolution": 128, "batch": 8}}
CACHE = Path(os.environ.get("TEXTBOOST_CACHE_DIR", Path.home() / ".cache" / "textboost_ext"))


def build_mid_model(folder: Path) -> Path:
    """Save the mid-size benchmark model (random weights) as a diffusers folder, once."""
    if (folder / "model_index.json").is_file():
        return folder
    import torch
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from textboost_ext.models.tiny import _scheduler, _vae
    from textboost_ext.models.tokenizer import build_clip_tokenizer

    torch.manual_seed(0)
    text_config = CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12,
                                 vocab_size=49408, bos_token_id=49406, eos_token_id=49407, pad_token_id=49407,
                                 max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768)
    unet = UNet2DConditionModel(
        block_out_channels=(64, 128, 256, 256), layers_per_block=2, cross_attention_dim=768, attention_head_dim=8,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3, sample_size=16, norm_num_groups=32,
    )
    tmp = Path(tempfile.mkdtemp(prefix=".mid_", dir=folder.parent))
    pipe = StableDiffusionPipeline(vae=_vae(), text_encoder=CLIPTextModel(text_config),
                                   tokenizer=build_clip_tokenizer(tmp / "tok"), unet=unet, scheduler=_scheduler("epsilon"),
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(str(tmp / "model"))
    os.replace(tmp / "model", folder)
    return folder


def run_case(model: str, case: str, steps: int, warmup: int, mixed_precision: str, checkpointing: bool = False) -> dict[str, float | str]:
    import torch

    torch.set_num_threads(1)
    from PIL import Image

    from textboost_ext.config import TextBoostConfig, TrainConfig
    from textboost_ext.host.trainer import HostTrainer
    from textboost_ext.registry import create_extension

    work = Path(tempfile.mkdtemp(prefix="tb_bench_"))
    (work / "data" / "1_mug").mkdir(parents=True)
    Image.open(Path(__file__).resolve().parents[1] / "examples/demo_subject/1_mug/mug.png").save(work / "data/1_mug/mug.png")
    base = "builtin:tiny-sd1" if model == "demo" else str(build_mid_model(CACHE / "bench-mid"))
    spec = MODELS[model]
    prompts = None
    if case == "textboost_warmcache":
        prompts = work / "prompts.txt"
        prompts.write_text("\n".join(f"a photo of object number {i}" for i in range(4)) + "\n")
    textboost = TextBoostConfig(placeholder_token="tbmug", initializer="coffee mug", class_noun="mug",
                                kpl_cache=case != "textboost_nocache",
                                preservation_prompts=str(prompts) if prompts else None)
    config = TrainConfig(
        pretrained_model_name_or_path=base, extension="none" if case == "plain" else "textboost",
        train_data_dir=str(work / "data"), resolution=[spec["resolution"]] * 2, train_batch_size=spec["batch"],
        max_train_steps=warmup + steps, output_dir=str(work / "out"), output_name="bench", log_with="none",
        mixed_precision=mixed_precision, gradient_checkpointing=checkpointing, optimizer_type="AdamW8bit", optimizer_args=["weight_decay=0.01"],
        textboost=textboost if case != "plain" else TextBoostConfig(),
    )
    extension = create_extension(config.extension)
    trainer = HostTrainer(config, extension)
    trainer.setup()
    times: list[float] = []
    try:
        for step in range(warmup + steps):
            start = time.perf_counter()
            trainer.train_step(step)
            times.append(time.perf_counter() - start)
    finally:
        trainer.cleanup()
    measured = sorted(times[warmup:])
    cache = getattr(extension, "kp_cache", None)
    return {
        "model": model, "case": case, "mixed_precision": mixed_precision + (" +ckpt" if checkpointing else ""),
        "ms_per_step_median": 1000 * measured[len(measured) // 2], "ms_per_step_min": 1000 * measured[0],
        "kp_cache_hit_rate": cache.hit_rate if cache is not None else float("nan"),
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--mixed_precision", default="no", choices=["no", "bf16"])
    parser.add_argument("--gradient_checkpointing", action="store_true")
    parser.add_argument("--one", nargs=2, metavar=("MODEL", "CASE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_case(args.one[0], args.one[1], args.steps, args.warmup, args.mixed_precision, args.gradient_checkpointing)))
        return 0
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    rows = []
    for model in args.models:
        for case in args.cases:
            cmd = [sys.executable, __file__, "--one", model, case, "--steps", str(args.steps), "--warmup",
                   str(args.warmup), "--mixed_precision", args.mixed_precision] + (["--gradient_checkpointing"] if args.gradient_checkpointing else [])
            done = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                print(done.stderr[-3000:], file=sys.stderr)
                return 1
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print("| model | case | precision | ms/step (median) | ms/step (min) | KP cache hits | peak RSS GB |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['case']} | {r['mixed_precision']} | {r['ms_per_step_median']:.0f} | "
              f"{r['ms_per_step_min']:.0f} | {r['kp_cache_hit_rate']:.0%} | {r['peak_rss_gb']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
