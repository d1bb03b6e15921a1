"""``textboost-toyworld pretrain``: build the toy base from a seed, in stages that each skip when done.

oracle -> ``oracle.safetensors``; VAE -> ``vae/``; its decoder fine-tuned alone -> ``vae_decoder/``; text
encoder + UNet -> ``t2i_checkpoint.pt`` (resumable), then the EMA weights are assembled into ``pipeline/`` (a
standard diffusers StableDiffusionPipeline folder) and measured on all held-out caption combinations.
``record.json`` keeps the command, seed, settings, minutes per stage and the measured quality; ``ship``
copies the result into the package.
"""

from __future__ import annotations

import filecmp
import json
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from textboost_ext.toyworld import models
from textboost_ext.toyworld.world import all_scenes, held_out_scenes, pretraining_scenes

ORACLE_STEPS = 1200
DECODER_DIR = "vae_decoder"
QUICK_QUALITY_EVERY = 2000


class Record:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}

    def update(self, **items: Any) -> None:
        # re-read first: stages may run as separate processes sharing one record
        self.data = json.loads(self.path.read_text()) if self.path.is_file() else {}
        self.data.update(items)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.data, indent=2) + "\n")
        tmp.replace(self.path)


def _logger(out: Path) -> Callable[[str], None]:
    log_file = out / "pretrain.log"

    def log(message: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {message}"
        print(line, flush=True)
        with log_file.open("a") as f:
            f.write(line + "\n")

    return log


def stage_oracle(out: Path, seed: int, record: Record, log: Callable[[str], None], steps: int = ORACLE_STEPS,
                 device: str = "cpu") -> None:
    from textboost_ext.toyworld.oracle import oracle_accuracy, save_oracle, train_oracle

    path = out / "oracle.safetensors"
    if path.is_file():
        return
    start = time.time()
    oracle = train_oracle(all_scenes(), steps, seed, log=log, device=device)
    accuracy = oracle_accuracy(oracle, held_out_scenes() + [s for s in all_scenes() if (s.shape, s.colour) == ("star", "green")], seed + 1)
    log(f"oracle accuracy on fresh renders: {accuracy}")
    save_oracle(oracle, path)
    record.update(oracle={"steps": steps, "minutes": round((time.time() - start) / 60, 1), "accuracy": accuracy})


def stage_vae(out: Path, seed: int, record: Record, log: Callable[[str], None], steps: int | None = None,
              device: str = "cpu") -> None:
    from textboost_ext.toyworld.pretrain_vae import VaeSettings, train_vae, vae_psnr

    if (out / "vae" / "config.json").is_file():
        return
    settings = VaeSettings() if steps is None else VaeSettings(steps=steps)
    start = time.time()
    torch.manual_seed(seed)
    vae = train_vae(models.build_vae(), pretraining_scenes(), settings, seed, log=log, device=device)
    db = vae_psnr(vae, held_out_scenes(), seed + 1)
    log(f"vae held-out PSNR {db:.2f} dB, scaling factor {vae.config.scaling_factor:.4f}")
    vae.save_pretrained(str(out / "vae"), safe_serialization=True)
    record.update(vae={"settings": asdict(settings), "minutes": round((time.time() - start) / 60, 1),
                       "psnr_db": round(db, 2), "scaling_factor": vae.config.scaling_factor})


def stage_decoder(out: Path, seed: int, record: Record, log: Callable[[str], None], steps: int | None = None,
                  device: str = "cpu", final_quality_n: int | None = None) -> None:
    """Fine-tune the VAE's decoder alone into ``vae_decoder/``. The encoder, so the latent space the UNet
    learns in, is unchanged: the stage may run before the text encoder + UNet (which then assemble their
    pipeline with it) or after them, on a finished run, whose pipeline's VAE it replaces and re-measures."""
    from diffusers import AutoencoderKL

    from textboost_ext.toyworld.pretrain_vae import DecoderSettings, finetune_decoder, vae_psnr

    target = out / DECODER_DIR
    if not (target / "config.json").is_file():
        settings = DecoderSettings() if steps is None else DecoderSettings(steps=steps)
        start = time.time()
        vae = AutoencoderKL.from_pretrained(str(out / "vae"))
        before = vae_psnr(vae, held_out_scenes(), seed + 1)
        vae = finetune_decoder(vae, pretraining_scenes(), settings, seed, log=log, device=device)
        db = vae_psnr(vae, held_out_scenes(), seed + 1)
        log(f"vae decoder fine-tuned: held-out PSNR {before:.2f} -> {db:.2f} dB")
        tmp = out / (DECODER_DIR + ".tmp")
        vae.save_pretrained(str(tmp), safe_serialization=True)
        tmp.replace(target)
        record.update(vae_decoder={"settings": asdict(settings), "minutes": round((time.time() - start) / 60, 1),
                                   "psnr_db_before": round(before, 2), "psnr_db": round(db, 2)})
    pipeline = out / "pipeline"
    if (pipeline / "model_index.json").is_file() and _weights_differ(target, pipeline / "vae"):
        copy_into_place(target, pipeline / "vae")
        _measure_final(out, pipeline, record, log, final_quality_n)


def copy_into_place(source: Path, target: Path) -> None:
    """Copy a file or folder to ``target`` under a temporary name, then swap it in (replacing what is there):
    a copy killed half-way never looks like a finished one."""
    staged = target.with_name(target.name + ".tmp")
    if staged.is_dir():
        shutil.rmtree(staged)  # a killed earlier copy
    if source.is_dir():
        shutil.copytree(source, staged)
        if target.is_dir():
            shutil.rmtree(target)  # a folder cannot be renamed over a non-empty one
    else:
        shutil.copyfile(source, staged)
    staged.replace(target)


def _weights_differ(a: Path, b: Path) -> bool:
    name = "diffusion_pytorch_model.safetensors"
    return not (b / name).is_file() or not filecmp.cmp(a / name, b / name, shallow=False)


def _measure_final(out: Path, pipeline: Path, record: Record, log: Callable[[str], None],
                   final_quality_n: int | None) -> None:
    from diffusers import StableDiffusionPipeline

    from textboost_ext.toyworld.generate import GUIDANCE, STEPS
    from textboost_ext.toyworld.oracle import load_oracle
    from textboost_ext.toyworld.quality import measure_quality

    if not (out / "oracle.safetensors").is_file():
        return
    pipe = StableDiffusionPipeline.from_pretrained(str(pipeline), local_files_only=True)
    q = measure_quality(pipe, load_oracle(out / "oracle.safetensors"), n=final_quality_n, seed=0)
    log(f"quality on {q['n']} held-out combinations (DDIM {STEPS}, guidance {GUIDANCE:g}): {q}")
    record.update(quality=q, quality_sampling={"sampler": "ddim", "steps": STEPS, "guidance": GUIDANCE})


def stage_t2i(out: Path, seed: int, record: Record, log: Callable[[str], None], steps: int | None = None,
              quick_every: int = QUICK_QUALITY_EVERY, final_quality_n: int | None = None, device: str = "cpu",
              recipe: dict[str, Any] | None = None, init_from: Path | None = None) -> None:
    """``init_from``: a pipeline folder whose text encoder + UNet weights replace the fresh init (how SD 2's
    v-prediction model was made from its epsilon model: the same weights, trained on the new target)."""
    from diffusers import AutoencoderKL

    from textboost_ext.toyworld.oracle import load_oracle
    from textboost_ext.toyworld.pretrain_t2i import T2iSettings, train_t2i
    from textboost_ext.toyworld.quality import measure_quality

    if (out / "pipeline" / "model_index.json").is_file():
        return
    settings = T2iSettings(**(recipe or {}))
    if steps is not None:
        settings.steps, settings.checkpoint_every = steps, min(1000, steps)
    # the encoder is the same in both; the fine-tuned decoder, when there is one, is what the pipeline ships
    fine_tuned = (out / DECODER_DIR / "config.json").is_file()
    vae = AutoencoderKL.from_pretrained(str(out / (DECODER_DIR if fine_tuned else "vae")))
    torch.manual_seed(seed)
    if init_from is None:
        text_encoder, unet = models.build_text_encoder(), models.build_unet()
    else:
        text_encoder, unet = _pretrained_t2i(init_from)
        source = init_from.parent / "record.json"
        record.update(t2i_init_from={"pipeline": str(init_from),
                                     "record": json.loads(source.read_text()) if source.is_file() else None})
    tokenizer = models.build_tokenizer(out / ".tokenizer")
    oracle = load_oracle(out / "oracle.safetensors") if (out / "oracle.safetensors").is_file() else None
    quick: dict[str, Any] = dict(record.data.get("t2i_quick_quality", {}))

    def on_step(step: int, ema: Any) -> None:
        if oracle is None or not quick_every or step % quick_every or step == settings.steps:
            return
        pipe = models.assemble_pipeline(vae, ema.shadow[0], ema.shadow[1], tokenizer, settings.prediction_type)
        q = measure_quality(pipe, oracle, n=96, seed=step)
        log(f"quick quality at step {step}: " + ", ".join(f"{k} {v:.2f}" for k, v in q.items() if k != "n"))
        quick[str(step)] = q
        record.update(t2i_quick_quality=quick)

    start = time.time()
    ema = train_t2i(vae, text_encoder, unet, tokenizer, pretraining_scenes(), settings, seed,
                    out / "t2i_checkpoint.pt", log=log, on_step=on_step, device=device)
    minutes = record.data.get("t2i", {}).get("minutes", 0.0) + (time.time() - start) / 60
    pipe = models.assemble_pipeline(vae, ema.shadow[0], ema.shadow[1], tokenizer, settings.prediction_type)
    pipe.save_pretrained(str(out / "pipeline"), safe_serialization=True)
    record.update(t2i={"settings": asdict(settings), "minutes": round(minutes, 1)})
    _measure_final(out, out / "pipeline", record, log, final_quality_n)


def _pretrained_t2i(pipeline: Path) -> tuple[Any, Any]:
    """The text encoder and UNet of a pipeline folder a pretraining run wrote, loaded as the VAE is."""
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel

    if not (pipeline / "model_index.json").is_file():
        raise FileNotFoundError(f"--init_from: {pipeline} is not a pipeline folder (no model_index.json); give the "
                                "<run>/pipeline folder a finished pretraining run wrote")
    return (CLIPTextModel.from_pretrained(str(pipeline / "text_encoder")),
            UNet2DConditionModel.from_pretrained(str(pipeline / "unet")))


STAGES = ("oracle", "vae", "decoder", "t2i")


def pretrain(out: Path, seed: int, stages: tuple[str, ...] = STAGES, t2i_steps: int | None = None,
             vae_steps: int | None = None, decoder_steps: int | None = None, oracle_steps: int = ORACLE_STEPS,
             quick_every: int = QUICK_QUALITY_EVERY,
             final_quality_n: int | None = None, device: str | None = None, t2i_recipe: dict[str, Any] | None = None,
             init_from: Path | None = None) -> Path:
    """``final_quality_n``: held-out combinations measured at the end (default: all of them);
    ``device``: where to train (default: CUDA when present, else the CPU)."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    out.mkdir(parents=True, exist_ok=True)
    log = _logger(out)
    record = Record(out / "record.json")
    command = " ".join(["textboost-toyworld"] + sys.argv[1:]) if sys.argv else ""
    # every invocation on this folder, in order (a finished run may be given a later stage, e.g. the decoder)
    earlier = record.data.get("commands", [record.data["command"]] if "command" in record.data else [])
    record.update(command=command, commands=earlier + [command], seed=seed,
                  torch=torch.__version__, threads=torch.get_num_threads(), device=device)
    if "oracle" in stages:
        stage_oracle(out, seed, record, log, steps=oracle_steps, device=device)
    if "vae" in stages:
        stage_vae(out, seed, record, log, steps=vae_steps, device=device)
    if "decoder" in stages:
        stage_decoder(out, seed, record, log, steps=decoder_steps, device=device, final_quality_n=final_quality_n)
    if "t2i" in stages:
        stage_t2i(out, seed, record, log, steps=t2i_steps, quick_every=quick_every, final_quality_n=final_quality_n,
                  device=device, recipe=t2i_recipe, init_from=init_from)
    return out
