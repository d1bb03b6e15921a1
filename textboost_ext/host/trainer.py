"""The built-in host: a text-encoder LoRA trainer with kohya option names, driven by extension hooks.

Read it top to bottom like a recipe: ``setup`` (checks, data, models, network, optimizer, resume),
``loop`` (one optimizer step = ``gradient_accumulation_steps`` micro-batches), ``finish`` (final
files), ``cleanup``. The hook order is the one documented in :mod:`textboost_ext.hooks`.

Choices worth knowing:
- Every frozen weight lives in the mixed-precision dtype (UNet, VAE, the text encoders' base weights),
  cast once at setup, so no step re-casts them; what trains (the LoRA, any embedding rows an extension
  adds) stays fp32 for the optimizer and fp16 loss scaling, and runs under autocast. The SDXL VAE stays
  fp32 under fp16, where it overflows. fp16 on a CPU is refused before anything loads (host.precision).
- Multi-process (``accelerate launch``): nothing is DDP-wrapped; gradients of every optimized
  parameter are averaged after backward (:func:`~textboost_ext.host.optim.average_gradients`). Only
  the main process saves, samples and logs.
- All step randomness (VAE sampling, noise, timesteps, caption shuffling, the extension's
  augmentations) comes from one ``torch.Generator`` per process, saved with the training state (with
  the extension's own streams, ``ext.generators()``), and the data order is a function of the step
  count: a resumed run reproduces an uninterrupted one.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from textboost_ext.atomic_write import atomic_write_text
from textboost_ext.hooks import HostContext, StepBatch, TrainerExtension
from textboost_ext.host import dataset as data
from textboost_ext.host import diffusion, output, saving
from textboost_ext.host.checkpoint import capture_rng_state, load_state, restore_rng_state, save_state
from textboost_ext.host.optim import average_gradients, build_lr_scheduler, build_optimizer, split_optimizer_args
from textboost_ext.host.precision import cast_frozen_weights_, check_mixed_precision
from textboost_ext.host.sampling import SamplePrompt, generate_samples, log_samples, parse_prompts_file
from textboost_ext.models.conditioning import conditioning_layer_counts
from textboost_ext.network import TextEncoderLoRA

logger = logging.getLogger(__name__)
WEIGHT_DTYPES = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
TRACKER_PROJECT = "textboost"


@dataclass
class TrainResult:
    lora_path: Path
    adapter_dir: Path
    steps: int
    final_loss: float | None
    sample_files: list[Path] = field(default_factory=list)
    checkpoint_files: list[Path] = field(default_factory=list)
    state_dir: Path | None = None
    extra_files: list[Path] = field(default_factory=list)  # the extension's files and the sidecars
    logs: list[dict[str, float]] = field(default_factory=list)  # what was sent to the trackers, per step


def resolution_wh(resolution: Any) -> tuple[int, int]:
    """kohya ``resolution``: one number (square) or ``[width, height]``."""
    values = list(resolution) if isinstance(resolution, (list, tuple)) else [int(resolution)]
    width, height = (values[0], values[0]) if len(values) == 1 else (values[0], values[1])
    if width % 8 or height % 8 or width < 8 or height < 8:
        raise ValueError(f"resolution = {values}: width and height must be positive multiples of 8 (e.g. 512)")
    return int(width), int(height)


def check_text_encoder_only(config: Any) -> None:
    """This host trains a text-encoder LoRA only; say so instead of ignoring UNet options."""
    if config.network_train_unet_only or not config.network_train_text_encoder_only or config.unet_lr is not None:
        raise ValueError(
            "UNet LoRA was requested (network_train_unet_only = true, network_train_text_encoder_only = false or "
            "unet_lr set), but this trainer trains the text encoder only: remove those keys"
        )


class HostTrainer:
    def __init__(self, config: Any, extension: TrainerExtension | None = None, *, checked: bool = False) -> None:
        """``extension`` None: the one the config names (``extension = "textboost"`` / ``"none"``).
        ``checked``: the entry script's preflight already showed the notes and warnings (not repeated)."""
        from textboost_ext.registry import create_extension

        self.config = config
        self.checked = checked
        self.ext = extension if extension is not None else create_extension(config.extension)
        self.history: list[dict[str, float]] = []
        self.sample_files: list[Path] = []
        self.checkpoint_extras: dict[Path, list[Path]] = {}  # checkpoint file -> the extension's files beside it
        self.last_state_dir: Path | None = None
        self.last_sample_step: int | None = None
        self.trained_words: dict[str, dict[str, int]] = {}  # folder -> word -> captions (ss_tag_frequency)
        self.step = 0
        self.batches: Iterator[dict[str, Any]] | None = None

    def train(self) -> TrainResult:
        try:
            self.setup()
            self.loop()
            return self.finish()
        finally:
            self.cleanup()  # also after a failed setup: releases the adapter lock

    # ===================================================================================== setup
    def setup(self) -> None:
        from accelerate import Accelerator
        from accelerate.utils import set_seed

        from textboost_ext.config import check_paths, config_to_toml, resolve_dataset, validate_config

        cfg = self.config
        validate_config(cfg)  # a config built in code gets the checks a TOML gets
        check_text_encoder_only(cfg)
        self.ext.assert_extra_args(cfg)  # may force settings; nothing has loaded yet
        validate_config(cfg)  # whatever it forced must still be valid
        check_paths(cfg)
        for warning in check_mixed_precision(cfg.mixed_precision):  # fp16 on a CPU fails here, before any load
            self._announce(logging.WARNING, warning)

        # everything that needs no model fails first: output folder, images, sample prompts
        final = output.adapter_paths(cfg)
        self.accelerator = acc = Accelerator(
            mixed_precision=cfg.mixed_precision,
            gradient_accumulation_steps=cfg.gradient_accumulation_steps,
            log_with=None if cfg.log_with in (None, "none") else cfg.log_with,
            project_dir=str(Path(cfg.logging_dir) if cfg.logging_dir else final.logs_dir),  # set below, once planned
        )
        self.plan = self._claim_output(final)
        self.paths = self.plan.paths  # the staging folder until the run has finished
        if not cfg.logging_dir:
            acc.project_configuration.project_dir = acc.project_configuration.logging_dir = str(self.paths.logs_dir)
        spec = resolve_dataset(cfg)  # a dataset TOML may set its own batch_size and resolution
        from textboost_ext.config.resolve import finalize_config

        for notice in finalize_config(cfg, spec):  # (a no-op when the entry script did it)
            self._announce(logging.INFO, "note: " + notice)
        validate_config(cfg)  # steps converted from epochs still obey the rules
        self.resolution, self.batch_size = resolution_wh(spec.resolution), spec.batch_size
        self.items = data.collect_images(spec, self.resolution)
        for notice in self.ext.check_captions(cfg, self.items):  # captions that cannot train fail here
            self._announce(logging.INFO, "note: " + notice)
        self.sample_prompts: list[SamplePrompt] = parse_prompts_file(cfg.sample_prompts) if cfg.sample_prompts else []
        for notice in self.ext.check_sample_prompts(cfg, [p.prompt for p in self.sample_prompts]):
            self._announce(logging.WARNING, notice)

        set_seed(cfg.seed)
        self.device, self.weight_dtype = acc.device, WEIGHT_DTYPES[cfg.mixed_precision]
        self.generator = torch.Generator().manual_seed(cfg.seed + acc.process_index)
        self.model = self._load_frozen_model()
        # LoRA only where it can train: layers whose output reaches the conditioning (clip_skip, SDXL's reads)
        layer_counts = conditioning_layer_counts(self.model.family, self.model.text_encoders, cfg.clip_skip)
        self.network = TextEncoderLoRA(self.model.text_encoders, cfg.network_dim, cfg.network_alpha,
                                       cfg.textboost.lora_targets, layer_counts)
        for te in self.model.text_encoders:
            te.to(self.device)  # fp32: the LoRA (and any embedding rows an extension trains) must stay fp32
        if cfg.network_weights:  # warm start from a LoRA file: weights only, step 0, fresh optimizer
            from safetensors.torch import load_file

            self.network.load_kohya_state_dict(load_file(cfg.network_weights), source=cfg.network_weights)
        self.ctx = HostContext(cfg, self.model, self.network, self.device, self.encode_prompts, self.weight_dtype,
                               process_index=acc.process_index, encode_prompt_prefix=self.encode_prompt_prefix)
        self.ext.post_process_network(self.ctx)
        self._prepare_text_encoders_for_training()  # after post_process_network: it may resize embeddings
        for te in self.model.text_encoders:  # after the LoRA and new rows exist: they stay fp32
            cast_frozen_weights_(te, self.weight_dtype)

        self.lora_params = self.network.trainable_parameters()
        _, weight_decay = split_optimizer_args(cfg.optimizer_type, cfg.optimizer_args)
        groups = self.ext.prepare_optimizer_params(self.ctx, self.lora_params, cfg.text_encoder_lr or cfg.learning_rate, weight_decay)
        self.trainable = [p for g in groups for p in g["params"]]
        optimizer = build_optimizer(groups, cfg.optimizer_type, cfg.optimizer_args)
        self.lr_scheduler = build_lr_scheduler(cfg.lr_scheduler, optimizer, cfg.lr_warmup_steps, cfg.max_train_steps,
                                               num_cycles=cfg.lr_scheduler_num_cycles, power=cfg.lr_scheduler_power)
        self.optimizer = acc.prepare(optimizer)  # fp16 loss scaling; the scheduler we step ourselves, once per step

        self.start_step = self.step = self._resume() if cfg.resume else 0
        self.batches = self._batches(self.start_step)
        if acc.is_main_process:
            atomic_write_text(self.paths.config_file, config_to_toml(cfg))
            acc.init_trackers(cfg.log_prefix or TRACKER_PROJECT)  # log_prefix names the run's log folder
            logger.info("%s", self.start_summary())
        self.started_at = time.time()

    def start_summary(self) -> str:
        """kohya-style: what is about to train, on what, how (one block, before the first step)."""
        cfg, acc = self.config, self.accelerator
        unique = {item.path for item in self.items}
        folders = {path.parent.name for path in unique}
        views = cfg.max_train_steps * self.batch_size * cfg.gradient_accumulation_steps
        groups = ", ".join(f"{g['name']} {sum(p.numel() for p in g['params']):,} (lr {g['lr']:g})"
                           for g in self.optimizer.param_groups)
        trainable = sum(p.numel() for p in self.trainable)
        device = str(self.device)
        if self.device.type == "cuda":
            device += f" ({torch.cuda.get_device_name(self.device)})"
        frozen = {"no": "fp32", "fp16": "fp16", "bf16": "bf16"}[cfg.mixed_precision]
        lines = [
            f"images     : {len(unique)} in {len(folders)} folder(s), {len(self.items)} with repeats",
            f"steps      : {cfg.max_train_steps} x batch {self.batch_size} x accumulation {cfg.gradient_accumulation_steps}"
            f" = {views} views at {self.resolution[0]}x{self.resolution[1]}"
            + (f" (resuming at step {self.start_step})" if self.start_step else ""),
            f"model      : {self.model.family} from {cfg.pretrained_model_name_or_path}",
            f"trainable  : {trainable:,} parameters: {groups}; optimizer {cfg.optimizer_type}, {cfg.lr_scheduler} schedule",
            f"precision  : mixed_precision = {cfg.mixed_precision!r} (frozen weights {frozen}, trainable fp32)",
            f"device     : {device}" + (f", {acc.num_processes} processes" if acc.num_processes > 1 else ""),
            f"output     : {self.plan.final.lora_file}",
        ]
        return "TextBoost training run\n" + "\n".join(f"  {line}" for line in lines)

    def end_summary(self, wall_s: float) -> str:
        """Final loss, time, where the samples and logs are, and how to look at the logs."""
        cfg = self.config
        steps_run = self.step - self.start_step
        losses = [h["loss/total"] for h in self.history[-10:]]
        lines = [f"trained {steps_run} step(s) in {wall_s / 60:.1f} min ({wall_s / max(steps_run, 1):.2f} s/step)"
                 + (f"; final loss {losses[-1]:.4f} (mean of the last {len(losses)}: {sum(losses) / len(losses):.4f})"
                    if losses else "")]
        if self.sample_files:
            lines.append(f"samples    : {self.plan.final.samples_dir}")
        if cfg.log_with not in (None, "none"):
            logs = Path(cfg.logging_dir) if cfg.logging_dir else self.plan.final.logs_dir
            lines.append(f"logs       : {logs}" + (f"  (view: tensorboard --logdir {logs})"
                                                  if cfg.log_with in ("tensorboard", "all") else ""))
        return "\n".join(lines)

    def _announce(self, level: int, message: str) -> None:
        """Setup's notes and warnings; at DEBUG when the preflight showed them already."""
        logger.log(logging.DEBUG if self.checked else level, message)

    def _claim_output(self, final: output.AdapterPaths) -> output.OutputPlan:
        """Lock the adapter name (main process), repair a swap a killed run left half done, plan where
        this run writes (every process, read-only), then clean leftovers and set up staging (main)."""
        from textboost_ext.hub.lock import AdapterLock
        from textboost_ext.hub.staging import recover_swap

        cfg, acc = self.config, self.accelerator
        if acc.is_main_process:
            output.check_writable(final.root)  # the lock file lives there; a clear message if it cannot
            self.lock = AdapterLock(final.root, final.name, f"training {final.name}").acquire()
            repaired = recover_swap(final.root, final.name)
            if repaired:
                logger.warning("%s", repaired)
        acc.wait_for_everyone()
        plan = output.plan_output(final, overwrite=cfg.overwrite, resume=cfg.resume)
        acc.wait_for_everyone()  # every process has planned before the main one changes the folders
        if acc.is_main_process:
            output.prepare_output(plan)
        acc.wait_for_everyone()
        return plan

    def _load_frozen_model(self) -> Any:
        from textboost_ext.models.load import load_base_model

        cfg = self.config
        model = load_base_model(
            cfg.pretrained_model_name_or_path, v2=cfg.v2, v_parameterization=cfg.v_parameterization, sdxl=cfg.sdxl, vae=cfg.vae
        )
        for module in (model.unet, model.vae, *model.text_encoders):
            module.requires_grad_(False)
        # the SDXL VAE overflows in fp16 (kohya's --no_half_vae); keep it in fp32 there
        vae_dtype = torch.float32 if model.family == "sdxl" and self.weight_dtype == torch.float16 else self.weight_dtype
        for module, dtype in ((model.unet, self.weight_dtype), (model.vae, vae_dtype)):
            module.to(self.device).eval()
            if dtype != torch.float32:  # (a same-dtype cast only earns a diffusers warning)
                module.to(dtype)
        return model

    def _prepare_text_encoders_for_training(self) -> None:
        for te in self.model.text_encoders:
            te.train()  # transformers checkpoints only in train mode; CLIP has no active dropout
            if self.config.gradient_checkpointing:
                # The kohya trap: with reentrant checkpointing and a frozen base, the checkpointed blocks
                # get inputs without grad and the LoRA silently never trains. Non-reentrant + input grads.
                enable = getattr(te, "activation_checkpointing_enable", None)  # transformers >= 5.x
                if enable is not None:
                    enable(activation_checkpointing_kwargs={"use_reentrant": False})
                else:
                    te.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
                te.enable_input_require_grads()
        if self.config.gradient_checkpointing:
            self.model.unet.enable_gradient_checkpointing()  # grads flow through the frozen UNet to the encoder

    def _resume(self) -> int:
        state, acc = load_state(self.plan.resume or self.config.resume), self.accelerator
        if len(state.rng_states) != acc.num_processes:
            raise ValueError(f"resume: {state.path} was saved by {len(state.rng_states)} process(es), this run has "
                             f"{acc.num_processes}; resume with the same number of processes")
        if state.step >= self.config.max_train_steps:
            raise ValueError(f"resume: {state.path} is at step {state.step} and max_train_steps = "
                             f"{self.config.max_train_steps}; raise max_train_steps to train further")
        self.network.load_kohya_state_dict({k: v.float() for k, v in state.network.items()}, source=str(state.path))
        self.optimizer.load_state_dict(state.optimizer["optimizer"])
        if acc.scaler is not None and state.optimizer.get("scaler"):
            acc.scaler.load_state_dict(state.optimizer["scaler"])
        self.lr_scheduler.load_state_dict(state.lr_scheduler)
        self.ext.load_state_dict(state.extension)
        restore_rng_state(state.rng_states[acc.process_index], self._generators())
        changed = {k: (state.data_state.get(k), v) for k, v in self._data_settings().items() if state.data_state.get(k) != v}
        if changed:  # allowed (kohya allows it), but the run can no longer match an uninterrupted one
            logger.warning("resume: data settings changed since the state was saved %s; the image order and "
                           "noise will differ from an uninterrupted run", changed)
        logger.info("resumed from %s at step %d", state.path, state.step)
        return state.step

    def _generators(self) -> dict[str, torch.Generator]:
        """Every random stream of this process that a resume must continue: the host's and the extension's."""
        return {"train": self.generator} | {f"extension.{k}": g for k, g in self.ext.generators().items()}

    def _data_settings(self) -> dict[str, int]:
        """What the data order depends on besides the step count."""
        return {"seed": self.config.seed, "batch_size": self.batch_size, "num_items": len(self.items),
                "gradient_accumulation_steps": self.config.gradient_accumulation_steps}

    def _batches(self, start_step: int) -> Iterator[dict[str, Any]]:
        cfg, acc = self.config, self.accelerator
        return data.make_batches(
            self.items, self.resolution, self.batch_size, cfg.seed, start_micro_batch=start_step * cfg.gradient_accumulation_steps,
            num_workers=cfg.max_data_loader_n_workers, rank=acc.process_index, world_size=acc.num_processes,
            with_sources=self.ext.wants_source_images(),
        )

    def encode_prompts(self, captions: list[str]) -> list[torch.Tensor]:
        """Tokenise and encode through the LoRA-adapted text encoder(s): the UNet's conditioning."""
        from textboost_ext.models.conditioning import encode_prompt_conditioning, tokenize

        input_ids = [ids.to(self.device) for ids in tokenize(self.model, captions)]
        return encode_prompt_conditioning(self.model, input_ids, self.config.clip_skip)

    def encode_prompt_prefix(self, captions: list[str], length: int) -> list[torch.Tensor]:
        """``encode_prompts`` over the first ``length`` tokens only (``HostContext.encode_prompt_prefix``)."""
        from textboost_ext.models.conditioning import encode_prompt_conditioning, tokenize

        input_ids = [ids[:, :length].to(self.device) for ids in tokenize(self.model, captions)]
        return encode_prompt_conditioning(self.model, input_ids, self.config.clip_skip)

    # ====================================================================================== loop
    def loop(self) -> None:
        from tqdm.auto import tqdm

        cfg, acc = self.config, self.accelerator
        if self.start_step == 0 and cfg.sample_at_first:
            self._sample(0)
        # tqdm shows it/s and the ETA; the postfix adds loss and learning rate
        progress = tqdm(total=cfg.max_train_steps, initial=self.start_step, desc="training", unit="step",
                        disable=not acc.is_local_main_process)
        try:
            for step in range(self.start_step, cfg.max_train_steps):
                logs = self.train_step(step)
                self.step = step + 1
                self.history.append(logs)
                acc.log(logs, step=self.step)
                progress.update(1)
                progress.set_postfix(loss=f"{logs['loss/total']:.4f}", lr=f"{self.lr_scheduler.get_last_lr()[0]:.2e}")
                if cfg.sample_every_n_steps and self.step % cfg.sample_every_n_steps == 0:
                    self._sample(self.step)
                if output.should_save(self.step, cfg.save_every_n_steps, cfg.max_train_steps):
                    self._save_checkpoint(self.step)
                    if cfg.save_state:
                        self._save_state(self.step)
        finally:
            progress.close()

    def train_step(self, step: int) -> dict[str, float]:
        """One optimizer step over ``gradient_accumulation_steps`` micro-batches; returns its logs."""
        cfg, acc, ext, ctx = self.config, self.accelerator, self.ext, self.ctx
        sums: dict[str, float] = defaultdict(float)
        for _ in range(cfg.gradient_accumulation_steps):
            batch = self._next_batch()
            ext.on_step_start(ctx, batch, step, self.generator)
            self._count_trained_words(batch)
            terms = self.compute_loss(batch, step, backward=True)  # accelerate divides by gradient_accumulation_steps
            for key, value in terms.items():
                sums[key] += float(value.detach()) / cfg.gradient_accumulation_steps
        average_gradients(self.trainable, acc.num_processes)
        ext.on_after_backward(ctx)
        if cfg.max_grad_norm > 0:
            acc.clip_grad_norm_(self.lora_params, cfg.max_grad_norm)
        self.optimizer.step()
        self.lr_scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        ext.on_step_end(ctx, step)

        logs = dict(sums)
        for group, lr in zip(self.optimizer.param_groups, self.lr_scheduler.get_last_lr()):
            logs[f"lr/{group['name']}"] = float(lr)
        logs.update({k: float(v) for k, v in ext.step_logs(ctx).items()})
        return logs

    def _count_trained_words(self, batch: StepBatch) -> None:
        """``ss_tag_frequency`` from the captions actually trained (after the extension wrote them): per
        folder, each word counted once per caption, so A1111's tag list shows the trigger that trained."""
        for caption, path in zip(batch.captions, batch.extra.get("paths") or []):
            counts = self.trained_words.setdefault(Path(path).parent.name, {})
            for word in set(caption.replace(",", " ").split()):
                counts[word] = counts.get(word, 0) + 1

    def _next_batch(self) -> StepBatch:
        assert self.batches is not None, "setup() first"
        raw = next(self.batches)
        captions = [c if keep is None else data.shuffle_caption(c, keep, self.generator)
                    for c, keep in zip(raw["captions"], raw["shuffle_keep_tokens"])]
        extra = {k: list(raw[k]) for k in ("original_sizes_hw", "crop_top_lefts", "paths")}
        return StepBatch(images=raw["images"].to(self.device), captions=captions, extra=extra, sources=raw["sources"])

    def compute_loss(self, batch: StepBatch, step: int, backward: bool = False) -> dict[str, torch.Tensor]:
        """Diffusion loss plus the extension's extra terms for one micro-batch, in hook order.

        ``backward``: also accumulate the gradients, each term's as soon as its graph is complete: the
        diffusion loss's before the extension computes its terms, so the activations of the instance
        text-encoder pass and the UNet are freed before the extension's own passes (TextBoost's KP) allocate
        theirs. The gradients are the same sum as one backward of the total; peak memory is the larger graph,
        not both (mid model: -0.5 GB).
        """
        model, ext, ctx, gen, cfg = self.model, self.ext, self.ctx, self.generator, self.config
        with self.accelerator.autocast():
            conditioning = self.encode_prompts(batch.captions)  # tokenised AFTER on_step_start
            latents = diffusion.encode_latents(model.vae, batch.images, gen).to(self.weight_dtype)
            noise = torch.randn(latents.shape, generator=gen).to(self.device, latents.dtype)
            low, high = cfg.min_timestep, cfg.max_timestep
            timesteps = ext.sample_timesteps(ctx, len(latents), low, high, gen)
            if timesteps is None:
                timesteps = diffusion.uniform_timesteps(len(latents), low, high, gen)
            else:
                timesteps = diffusion.checked_timesteps(timesteps, len(latents), low, high, f"extension {ext.name!r}")
            t = timesteps.to(self.device)
            noisy = model.noise_scheduler.add_noise(latents, noise, t)
            target = diffusion.diffusion_target(model.noise_scheduler, latents, noise, t)
            time_ids = None
            if model.family == "sdxl":
                time_ids = diffusion.sdxl_time_ids(batch.extra["original_sizes_hw"], batch.extra["crop_top_lefts"],
                                                   tuple(batch.images.shape[-2:]), self.device, model.unet.dtype)
            prediction = diffusion.predict(model.unet, noisy, t, conditioning, time_ids)
            per_sample = ext.post_process_loss(ctx, diffusion.per_sample_mse(prediction, target), timesteps)
            terms = {"loss/diffusion": per_sample.mean()}
            if backward:
                self.accelerator.backward(terms["loss/diffusion"])
            extra = ext.process_batch(ctx, batch, step, gen)
        total = terms["loss/diffusion"].detach() if backward else terms["loss/diffusion"]
        extra_total: torch.Tensor | None = None
        for name, value in extra.items():
            terms[f"loss/{name}"] = value.float()
            total = total + value.float()
            extra_total = value.float() if extra_total is None else extra_total + value.float()
        if backward and extra_total is not None and extra_total.requires_grad:
            self.accelerator.backward(extra_total)
        terms["loss/total"] = total
        terms["timestep/mean"] = timesteps.float().mean()
        return terms

    # ============================================================================ periodic work
    def _sample(self, step: int) -> None:
        acc = self.accelerator
        if self.sample_prompts and acc.is_main_process:
            records = generate_samples(
                self.model, self.encode_prompts, self.sample_prompts, step, self.paths.samples_dir, self.config.output_name,
                self.config.sample_sampler, self.resolution, self.config.seed, autocast=acc.autocast,
                prepare_prompt=lambda prompt: self.ext.prepare_sample_prompt(self.ctx, prompt),
            )
            self.sample_files += [self.paths.samples_dir / r["file"] for r in records]
            log_samples(acc, self.paths.samples_dir, records, step)
        self.last_sample_step = step
        acc.wait_for_everyone()

    def _write_lora(self, path: Path) -> list[Path]:
        info = saving.training_info(
            self.config, self.model, self.resolution, self.items, file_stem=path.stem, steps=self.step,
            started_at=self.started_at, optimizer=saving.optimizer_description(self.optimizer, self.config.optimizer_args),
            trigger_phrase=self.ext.trigger_phrase(), tag_frequency=self.trained_words or None,
        )
        return saving.write_lora(path, self.network, info, self.ext, self.ctx, self.config.save_precision)

    def _save_checkpoint(self, step: int) -> None:
        if self.accelerator.is_main_process:
            file = self.paths.checkpoint_file(step)
            self.checkpoint_extras[file] = self._write_lora(file)
            for removed in output.prune_checkpoints(self.paths, step, self.config.save_last_n_steps):
                still_used = {p for f, extras in self.checkpoint_extras.items() if f != removed for p in extras}
                for extra in self.checkpoint_extras.pop(removed, []):
                    if extra not in still_used and extra.exists():
                        extra.unlink()  # e.g. the embedding saved with that checkpoint
        self.accelerator.wait_for_everyone()

    def _save_state(self, step: int) -> None:
        from accelerate.utils import gather_object

        acc = self.accelerator
        rng = capture_rng_state(self._generators())
        rng_states = gather_object([rng]) if acc.num_processes > 1 else [rng]
        if acc.is_main_process:
            optimizer_state = {"optimizer": self.optimizer.state_dict(), "scaler": acc.scaler.state_dict() if acc.scaler else None}
            data_state = self._data_settings() | {"micro_batches_seen": step * self.config.gradient_accumulation_steps}
            self.last_state_dir = save_state(
                self.paths.state_dir, step, self.network.kohya_state_dict(torch.float32), optimizer_state,
                self.lr_scheduler.state_dict(), self.ext.state_dict(), rng_states, data_state,
            )
        acc.wait_for_everyone()

    # ============================================================================ finish, cleanup
    def finish(self) -> TrainResult:
        acc = self.accelerator
        if self.sample_prompts and self.last_sample_step != self.step:
            self._sample(self.step)  # the finished adapter always has samples; its preview is one of them
        lora_path = self.paths.lora_file
        extra: list[Path] = []
        if acc.is_main_process:
            extra = self._write_lora(lora_path)
            last = [p for p in self.sample_files if p.name.startswith(f"{self.config.output_name}_{self.step:06d}_")]
            description = f"Text-encoder LoRA trained with textboost-ext ({self.ext.name}), {self.step} steps"
            extra += saving.write_sidecars(lora_path, self.model.family, self.ext.trigger_phrase(), last[0] if last else None, description)
        if self.config.save_state:
            self._save_state(self.step)
        acc.wait_for_everyone()
        if acc.is_main_process:
            output.finish_output(self.plan)  # manifest last: from here the adapter counts; then swap it in
            logger.info("%s", self.end_summary(time.time() - self.started_at))
        acc.wait_for_everyone()
        final = self.plan.final_path
        return TrainResult(
            lora_path=self.plan.final.lora_file, adapter_dir=self.plan.final.adapter_dir, steps=self.step,
            final_loss=self.history[-1]["loss/total"] if self.history else None,
            sample_files=[final(p) for p in self.sample_files],
            checkpoint_files=[p for _, p in output.list_checkpoints(self.plan.final)],
            state_dir=final(self.last_state_dir) if self.last_state_dir else None,
            extra_files=[final(p) for p in extra], logs=list(self.history),
        )

    def cleanup(self) -> None:
        self.batches = None  # stops DataLoader workers (max_data_loader_n_workers > 0)
        accelerator = getattr(self, "accelerator", None)
        if accelerator is not None:
            accelerator.end_training()  # flush and close the trackers
        lock = getattr(self, "lock", None)
        if lock is not None:
            lock.release()
