#!/usr/bin/env python
"""Step time, projected run time, peak memory and where the step goes, for TextBoost training (a benchmark, not a test).

    .venv/bin/python benchmarks/step_benchmark.py                   # CPU models, all cases, 1 thread, fp32
    .venv/bin/python benchmarks/step_benchmark.py --mixed_precision bf16 --kpl_mask_padding
    .venv/bin/python benchmarks/step_benchmark.py --models mid --cases textboost_warmcache --steps 6
    .venv/bin/python benchmarks/step_benchmark.py --models sd15 sdxl --mixed_precision bf16   # CUDA only

Models: ``demo`` (the tiny SD 1.x of the demo, 64 px, batch 4), ``mid`` (SD-layout UNet with block
channels (64, 128, 256, 256) + a real-size CLIP-L text encoder, 12 layers x 768, 128 px, batch 8), and
on a CUDA machine ``sd15`` (the SD 1.5 layout: UNet 860M, CLIP-L, SD VAE; 512 px, batch 8) and ``sdxl``
(SDXL base layout, 1024 px, batch 8), all with random weights built once under the cache folder.
Cases: ``textboost`` (augmentation + KP with the original-output cache, the shipped 1,358 prompts:
a short run is mostly cache misses), ``textboost_warmcache`` (the same with a 4-prompt set, so after
the warm-up every frozen output is a cache hit: the steady state of the cache),
``textboost_nocache`` (KP recomputes the frozen outputs every step), ``plain`` (text-encoder LoRA, no
TextBoost piece).

Reported per case: s/step after the warm-up (median, min), start-up (model load to first step), the
projected 250-step time (start-up + 250 x median), peak RSS, peak VRAM, and the mean time per part of the
step (``step_parts.py``: data, augmentation, the three text-encoder passes, VAE encode, UNet forward and
backward, text-encoder backward, optimizer, other). On CPU the clock is the process's CPU time, which with
one torch thread is the work done and stays comparable on a shared machine (wall time there swings
several-fold; it is reported beside); on CUDA it is synchronised wall time. Each case runs in its own
process so peak RSS (ru_maxrss) belongs to it alone.
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
from typing import Any

CASES = ("textboost", "textboost_warmcache", "textboost_nocache", "plain")
# CPU models (random weights, built once under the cache folder) and the GPU ones at the real sizes
MODELS = {
    "demo": {"resolution": 64, "batch": 4, "gpu": False},
    "mid": {"resolution": 128, "batch": 8, "gpu": False},
    "sd15": {"resolution": 512, "batch": 8, "gpu": True},   # UNet 860M + CLIP-L + the SD VAE
    "sdxl": {"resolution": 1024, "batch": 8, "gpu": True},  # UNet 2.6B + CLIP-L + OpenCLIP-bigG + the SDXL VAE
}
CPU_MODELS = [m for m, spec in MODELS.items() if not spec["gpu"]]
PROJECTED_STEPS = 250  # the method's recipe
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


def build_real_size_model(name: str, folder: Path) -> Path:
    """A diffusers folder of the released layout (``sd15``: SD 1.5; ``sdxl``: SDXL base 1.0) with random
    weights, from the configs shipped in ``textboost_ext/models/configs`` (no download), once."""
    if (folder / "model_index.json").is_file():
        return folder
    import torch
    from diffusers import (AutoencoderKL, DDPMScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline,
                           UNet2DConditionModel)
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from textboost_ext.models.family_configs import base_config
    from textboost_ext.models.tokenizer import build_clip_tokenizer

    spec = base_config("sd15" if name == "sd15" else "sdxl-base")
    torch.manual_seed(0)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}_", dir=folder.parent))

    def encoder(key: str) -> Any:
        cfg = {k: v for k, v in spec[key].items() if k not in ("architectures", "model_type")}
        cls = CLIPTextModelWithProjection if spec[key].get("architectures") == ["CLIPTextModelWithProjection"] else CLIPTextModel
        return cls(CLIPTextConfig(**cfg))

    def config(key: str) -> dict[str, Any]:
        return {k: v for k, v in spec[key].items() if not k.startswith("_")}

    parts: dict[str, Any] = dict(
        vae=AutoencoderKL.from_config(config("vae")), unet=UNet2DConditionModel.from_config(config("unet")),
        scheduler=DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
                                clip_sample=False),
        text_encoder=encoder("text_encoder"), tokenizer=build_clip_tokenizer(tmp / "tok", spec["tokenizer"]["pad_token"]),
    )
    if name == "sdxl":
        parts.update(text_encoder_2=encoder("text_encoder_2"),
                     tokenizer_2=build_clip_tokenizer(tmp / "tok2", spec["tokenizer_2"]["pad_token"]))
        pipe = StableDiffusionXLPipeline(**parts)
    else:
        pipe = StableDiffusionPipeline(**parts, safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(str(tmp / "model"), safe_serialization=True)
    os.replace(tmp / "model", folder)
    return folder


def run_case(model: str, case: str, steps: int, warmup: int, mixed_precision: str, checkpointing: bool = False,
             mask_padding: bool = False) -> dict[str, Any]:
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    from PIL import Image

    from step_parts import StepParts
    from textboost_ext.config import TextBoostConfig, TrainConfig
    from textboost_ext.host.trainer import HostTrainer
    from textboost_ext.registry import create_extension

    spec = MODELS[model]
    cuda = torch.cuda.is_available()
    if spec["gpu"] and not cuda:
        raise SystemExit(f"model {model!r} is a GPU case and this machine has no CUDA device")
    work = Path(tempfile.mkdtemp(prefix="tb_bench_"))
    (work / "data" / "1_mug").mkdir(parents=True)
    Image.open(Path(__file__).resolve().parents[1] / "examples/demo_subject/1_mug/mug.png").save(work / "data/1_mug/mug.png")
    if model == "demo":
        base = "builtin:tiny-sd1"
    elif model == "mid":
        base = str(build_mid_model(CACHE / "bench-mid"))
    else:
        base = str(build_real_size_model(model, CACHE / f"bench-{model}"))
    prompts = None
    if case == "textboost_warmcache":
        prompts = work / "prompts.txt"
        prompts.write_text("\n".join(f"a photo of object number {i}" for i in range(4)) + "\n")
    textboost = TextBoostConfig(placeholder_token="tbmug", initializer="coffee mug", class_noun="mug",
                                kpl_cache=case != "textboost_nocache", kpl_mask_padding=mask_padding,
                                preservation_prompts=str(prompts) if prompts else None)
    config = TrainConfig(
        pretrained_model_name_or_path=base, extension="none" if case == "plain" else "textboost", sdxl=model == "sdxl",
        train_data_dir=str(work / "data"), resolution=[spec["resolution"]] * 2, train_batch_size=spec["batch"],
        max_train_steps=warmup + steps, output_dir=str(work / "out"), output_name="bench", log_with="none",
        mixed_precision=mixed_precision, gradient_checkpointing=checkpointing, optimizer_type="AdamW8bit", optimizer_args=["weight_decay=0.01"],
        textboost=textboost if case != "plain" else TextBoostConfig(),
    )
    extension = create_extension(config.extension)
    parts = StepParts(cuda=cuda)
    started = parts.clock()
    trainer = HostTrainer(config, extension)
    trainer.setup()
    setup_s = parts.clock() - started
    parts.install(trainer)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    walls: list[float] = []
    clocks: list[float] = []  # CPU time on CPU (robust on a shared machine), synchronised wall time on CUDA
    try:
        for step in range(warmup + steps):
            if step == warmup:
                parts.reset()
            wall, clock = time.perf_counter(), parts.clock()
            trainer.train_step(step)
            clocks.append(parts.clock() - clock)
            walls.append(time.perf_counter() - wall)
            if step >= warmup:
                parts.record_step(clocks[-1])
    finally:
        trainer.cleanup()
        parts.uninstall()
    measured, measured_wall = sorted(clocks[warmup:]), sorted(walls[warmup:])
    median = measured[len(measured) // 2]
    cache = getattr(extension, "kp_cache", None)
    return {
        "model": model, "case": case,
        "mixed_precision": mixed_precision + (" +ckpt" if checkpointing else "") + (" +mask" if mask_padding else ""),
        "device": torch.cuda.get_device_name() if cuda else cpu_description(),
        "clock": "wall" if cuda else "cpu", "s_per_step_median": median, "s_per_step_min": measured[0],
        "wall_s_per_step_median": measured_wall[len(measured_wall) // 2], "setup_s": setup_s,
        "projected_250_steps_s": setup_s + PROJECTED_STEPS * median,
        "kp_cache_hit_rate": cache.hit_rate if cache is not None else float("nan"),
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
        "peak_vram_gb": torch.cuda.max_memory_allocated() / 1024**3 if cuda else float("nan"),
        "parts": parts.per_step(),
    }


def cpu_description() -> str:
    """The CPU's model name and its bf16 capability: native (AVX-512-bf16 / AMX) or emulated (AVX2 only)."""
    name, flags = "cpu", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and name == "cpu":
                name = line.split(":", 1)[1].strip()
            elif line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        return "cpu (features unknown)"
    native = [f for f in ("amx_bf16", "avx512_bf16") if f in flags]
    simd = "native bf16: " + ", ".join(native) if native else ("AVX2 only: bf16 emulated, slower than fp32" if "avx2" in flags else "no AVX2")
    return f"{name} ({simd})"


def format_rows(rows: list[dict[str, Any]]) -> str:
    from step_parts import PARTS

    lines = ["| model | case | precision | s/step (median) | s/step (min) | wall s/step | start-up s | "
             "250 steps (projected) | KP cache hits | peak RSS GB | peak VRAM GB |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['case']} | {r['mixed_precision']} | {r['s_per_step_median']:.3f} | "
                     f"{r['s_per_step_min']:.3f} | {r['wall_s_per_step_median']:.3f} | {r['setup_s']:.1f} | "
                     f"{r['projected_250_steps_s'] / 60:.1f} min | "
                     f"{r['kp_cache_hit_rate']:.0%} | {r['peak_rss_gb']:.2f} | {r['peak_vram_gb']:.2f} |")
    lines += ["", "Where a step goes (s/step, mean over the measured steps):", "",
              "| model | case | " + " | ".join(PARTS) + " |", "|---|---|" + "---|" * len(PARTS)]
    for r in rows:
        lines.append(f"| {r['model']} | {r['case']} | " + " | ".join(f"{r['parts'][k]:.3f}" for k in PARTS) + " |")
    lines.append("")
    lines.append("device: " + "; ".join(sorted({r["device"] for r in rows})) + ". s/step and start-up: "
                 + ("CPU time of the process (1 thread: the work done; wall time on a shared machine swings)"
                    if rows and rows[0]["clock"] == "cpu" else "wall time, CUDA synchronised"))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=None, choices=list(MODELS),
                        help="default: the CPU models, plus sd15/sdxl where CUDA exists")
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=CASES)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--mixed_precision", default="no", choices=["no", "fp16", "bf16"])
    parser.add_argument("--gradient_checkpointing", action="store_true")
    parser.add_argument("--kpl_mask_padding", action="store_true", help="KP loss on real tokens only (KP passes truncated)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per case (1: stable timings on shared CPUs)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--one", nargs=2, metavar=("MODEL", "CASE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        row = run_case(args.one[0], args.one[1], args.steps, args.warmup, args.mixed_precision,
                       args.gradient_checkpointing, args.kpl_mask_padding)
        print(json.dumps(row))
        return 0
    models = args.models
    if models is None:
        models = CPU_MODELS + (["sd15", "sdxl"] if has_cuda() else [])
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads), HF_HUB_OFFLINE="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).parent), env.get("PYTHONPATH")]))
    rows = []
    for model in models:
        for case in args.cases:
            cmd = [sys.executable, __file__, "--one", model, case, "--steps", str(args.steps), "--warmup",
                   str(args.warmup), "--mixed_precision", args.mixed_precision]
            cmd += ["--gradient_checkpointing"] if args.gradient_checkpointing else []
            cmd += ["--kpl_mask_padding"] if args.kpl_mask_padding else []
            done = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                print(done.stderr[-3000:], file=sys.stderr)
                return 1
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(format_rows(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


def has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    sys.exit(main())
