"""The TextBoost hooks of sd-scripts' ``NetworkTrainer``, as a mixin over any of its trainer classes.

``class T(TextBoostTrainerMixin, SdScriptsAccess, train_network.NetworkTrainer)`` (``kohya.trainer``) plugs
one :class:`~textboost_ext.hooks.TrainerExtension` (the same ``TextBoostExtension`` the built-in host
runs) into sd-scripts' own loop. Nothing here imports sd-scripts: a class behind the mixin provides
``current_tokenize_strategy()``, ``current_text_encoding_strategy()`` and ``sd_train_util()``
(``kohya.trainer.SdScriptsAccess``; the unit tests put the mixin over a fake base).

Where each extension hook runs in sd-scripts' loop:

- ``assert_extra_args``: TextBoost options parsed and checked, text-encoder-only forced, AdamW8bit default.
- ``post_process_network`` (before ``apply_to``): tokens + embedding rows added to sd-scripts' own
  tokenizers/encoders, rows registered on the network (``lora_network``), ``save_weights`` wrapped.
- ``on_step_start`` (training): augmented images, captions naming the augmentations, ``input_ids_list``
  re-tokenised by sd-scripts' tokenize strategy. Also the end of the previous optimizer step, see below.
- ``get_noise_pred_and_target``: only the timestep draw is the extension's (a scoped swap of
  ``library.train_util.get_timesteps``, restored in ``finally``); noise, noise offset, ip-noise and the
  target stay sd-scripts'.
- ``all_reduce_network`` (after backward, before clipping and the optimizer step): ``on_after_backward``.
- ``process_batch``: sd-scripts' loss plus the extension's terms (the KP loss).
- ``on_step_end`` has no hook in sd-scripts; it runs at the first of ``sample_images`` (called right
  after every optimizer step), the next ``on_step_start`` or a save, once per optimizer step.
- ``generate_step_logs``: ``loss/diffusion``, ``loss/kp``, ``timestep/mean`` and the extension's logs.
- ``update_metadata``: ``ss_textboost_*``; every save also writes the embedding file, ``<stem>.json``
  and, once ``sample_images`` has drawn any, ``<stem>.preview.png`` from the newest sample.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from textboost_ext.config.schema import TextBoostConfig
from textboost_ext.export.metadata import LORA_LAYERS_KEY, lora_layers_value
from textboost_ext.hooks import HostContext, StepBatch, TrainerExtension
from textboost_ext.kohya import args as tb_args
from textboost_ext.kohya import context, lora_network, saving, tiny_unet
from textboost_ext.kohya.args import TextBoostArgumentError
from textboost_ext.kohya.record import StepRecorder
from textboost_ext.kohya.sources import BatchSources
from textboost_ext.models.conditioning import conditioning_layer_counts


class TextBoostTrainerMixin:
    def __init__(self, extension: TrainerExtension | None = None) -> None:
        super().__init__()
        self.extension = extension  # None: created from --extension in assert_extra_args
        self.textboost: TextBoostConfig | None = None
        self.config_view: context.KohyaConfigView | None = None
        self.ctx: HostContext | None = None
        self.generator: torch.Generator | None = None
        self.optimizer_steps = 0
        self.embedding_rows: list[torch.nn.Parameter] = []
        self.saves = saving.SavedFiles()
        self.recorder = StepRecorder.from_env()
        self._rows_dtype = torch.float32
        self._pending_step_end = False
        self._last_logs: dict[str, float] = {}
        self._drawn: list[torch.Tensor] = []
        self._sample_prompts = saving.SamplePromptFile()
        self.sources = BatchSources()  # the photo behind each batch image
        # sd-scripts' objects, kept from the last hook that received them (the encoders may be wrapped later)
        self._args: Any = None
        self._accelerator: Any = None
        self._text_encoders: list[Any] = []
        self._vae: Any = None
        self._last_timesteps: torch.Tensor | None = None
        self._started = time.time()  # sample images older than this run are not its previews

    # ---- before training ---------------------------------------------------------------------
    def assert_extra_args(self, args: Any, train_dataset_group: Any, val_dataset_group: Any) -> None:
        from textboost_ext.registry import create_extension

        self.textboost = tb_args.textboost_config_from_args(args)
        problems = tb_args.host_arg_problems(args, self.textboost, bool(getattr(self, "is_sdxl", False)))
        problems += tb_args.dataset_augmentation_problems(train_dataset_group, self.textboost, str(args.extension))
        if problems:
            raise TextBoostArgumentError("sd-scripts options TextBoost cannot train with:\n  - " + "\n  - ".join(problems))
        tb_args.apply_host_defaults(args)
        super().assert_extra_args(args, train_dataset_group, val_dataset_group)
        try:
            if self.extension is None:
                self.extension = create_extension(str(args.extension))
            self.config_view = context.KohyaConfigView(args, self.textboost, context.dataset_resolution(train_dataset_group))
            self.extension.assert_extra_args(self.config_view)
            if self.extension.wants_source_images():  # views are rendered from each photo, not sd-scripts' crop
                self.sources.enable(train_dataset_group)
        except ValueError as err:
            raise TextBoostArgumentError(str(err)) from None

    def load_target_model(self, args: Any, weight_dtype: torch.dtype, accelerator: Any) -> Any:
        if tiny_unet.patch_requested():  # test support only, see kohya.tiny_unet
            tiny_unet.patch_for_model(args.pretrained_model_name_or_path, bool(getattr(self, "is_sdxl", False)))
        loaded = super().load_target_model(args, weight_dtype, accelerator)
        self._vae = loaded[2]
        return loaded

    def post_process_network(self, args: Any, accelerator: Any, network: Any, text_encoders: list[Any], unet: Any) -> None:
        super().post_process_network(args, accelerator, network, text_encoders, unet)
        assert self.extension is not None and self.config_view is not None, "assert_extra_args runs first"
        self._args, self._accelerator, self._text_encoders = args, accelerator, list(text_encoders)
        try:
            family = context.model_family(args, bool(getattr(self, "is_sdxl", False)))
            lora_network.keep_lora_targets(network, list(self.config_view.textboost.lora_targets))
            clip_skip = None if family == "sdxl" else getattr(args, "clip_skip", None)  # sd-scripts ignores it for SDXL
            lora_network.keep_conditioning_layers(network, conditioning_layer_counts(family, list(text_encoders), clip_skip))
            scheduler = self.get_noise_scheduler(args, torch.device("cpu"))  # the schedule sd-scripts will train with
            model = context.describe_model(family, self.get_tokenizers(self.current_tokenize_strategy()), list(text_encoders),
                                           unet, self._vae, scheduler, bool(args.v_parameterization),
                                           str(args.pretrained_model_name_or_path))
            self.generator = torch.Generator().manual_seed(int(args.seed) + int(accelerator.process_index))
            self.ctx = HostContext(self.config_view, model, network, accelerator.device, self._encode_prompts,
                                   context.weight_dtype_of(args), process_index=int(accelerator.process_index))
            self.extension.post_process_network(self.ctx)
        except ValueError as err:
            raise TextBoostArgumentError(str(err)) from None
        lr = self.config_view.textboost.emb_learning_rate
        groups = [g for g in self.extension.prepare_optimizer_params(self.ctx, [], lr, 0.0) if g.get("name") != "lora"]
        self.embedding_rows = lora_network.attach_embedding_rows(network, groups)
        full_precision = getattr(args, "full_fp16", False) or getattr(args, "full_bf16", False)
        self._rows_dtype = context.weight_dtype_of(args) if full_precision else torch.float32
        lora_network.wrap_save_weights(network, self._flush_step_end, self._after_lora_saved)
        self.recorder.write("setup", accelerator.is_main_process, family=family, extension=self.extension.name,
                            **saving.describe_tokens(self.extension, model.tokenizers),
                            sampler_mean=_sampler_mean(self.extension), optimizer_groups=len(groups))

    def update_metadata(self, metadata: dict[str, Any], args: Any) -> None:
        super().update_metadata(metadata, args)
        if self.ctx is not None and self.extension is not None:
            network = self.ctx.network
            metadata[LORA_LAYERS_KEY] = lora_layers_value([lora.lora_name for lora in network.text_encoder_loras])
            self.extension.update_metadata(self.ctx, metadata)

    # ---- every step --------------------------------------------------------------------------
    def on_step_start(self, args: Any, accelerator: Any, network: Any, text_encoders: list[Any], unet: Any,
                      batch: dict[str, Any], weight_dtype: torch.dtype, is_train: bool = True) -> None:
        super().on_step_start(args, accelerator, network, text_encoders, unet, batch, weight_dtype, is_train)
        self._flush_step_end()
        if self.ctx is None or self.extension is None:
            return
        self._text_encoders = list(text_encoders)
        if not is_train:  # validation: sd-scripts' captions, with a multi-vector name expanded to all its vectors
            captions = [self.extension.prepare_sample_prompt(self.ctx, c) for c in batch["captions"]]
            if captions != list(batch["captions"]):
                self._set_captions(batch, captions)
            return
        lora_network.restore_rows(self.embedding_rows, self._rows_dtype)
        if batch.get("images") is None:
            if self.extension.name == "none":
                return  # a plain LoRA run needs no pixels (--cache_latents is fine there)
            raise TextBoostArgumentError("the batch has no images (cached latents?): TextBoost augments pixels; "
                                         "remove --cache_latents")
        crops = batch.get("crop_top_lefts")
        extra = {"crop_top_lefts": [tuple(int(v) for v in row) for row in crops]} if crops is not None else {}
        step_batch = StepBatch(images=batch["images"], captions=list(batch["captions"]), extra=extra,
                               sources=self.sources.for_batch(batch) if self.extension.wants_source_images() else None)
        self.extension.on_step_start(self.ctx, step_batch, self.optimizer_steps, self.generator)
        batch["images"] = step_batch.images
        if crops is not None:  # SDXL's crop conditioning, for the views rendered from the photos
            batch["crop_top_lefts"] = torch.tensor(step_batch.extra["crop_top_lefts"], dtype=crops.dtype, device=crops.device)
        self._set_captions(batch, list(step_batch.captions))

    def _set_captions(self, batch: dict[str, Any], captions: list[str]) -> None:
        # sd-scripts encodes batch["input_ids_list"]; tokenise with its own strategy (our tokens are in it)
        batch["captions"] = captions
        old = batch.get("input_ids_list")
        ids = list(self.current_tokenize_strategy().tokenize(captions))
        if old:
            ids = [t.to(o.device) for t, o in zip(ids, old)]
        batch["input_ids_list"] = ids

    def get_noise_pred_and_target(self, args: Any, accelerator: Any, noise_scheduler: Any, latents: torch.Tensor,
                                  batch: dict[str, Any], text_encoder_conds: list[torch.Tensor], unet: Any, network: Any,
                                  weight_dtype: torch.dtype, train_unet: bool, is_train: bool = True) -> Any:
        if self.ctx is None or self.extension is None:
            return super().get_noise_pred_and_target(args, accelerator, noise_scheduler, latents, batch, text_encoder_conds,
                                                     unet, network, weight_dtype, train_unet, is_train)
        train_util = self.sd_train_util()
        host_draw = train_util.get_timesteps
        # training draws advance the run's generator; validation (pinned timesteps) must not
        generator = self.generator if is_train else torch.Generator().manual_seed(int(args.seed))
        self._drawn = []

        def extension_draw(min_timestep: int, max_timestep: int, batch_size: int, device: Any) -> torch.Tensor:
            drawn = self.extension.sample_timesteps(self.ctx, batch_size, int(min_timestep), int(max_timestep), generator)
            if drawn is None:  # an extension without a sampler: sd-scripts' uniform draw
                return host_draw(min_timestep, max_timestep, batch_size, device)
            drawn = checked_timesteps(drawn, batch_size, int(min_timestep), int(max_timestep), self.extension.name)
            self._drawn.append(drawn)
            return drawn.to(device)

        train_util.get_timesteps = extension_draw  # a module global looked up at call time; scoped to this call
        try:
            result = super().get_noise_pred_and_target(args, accelerator, noise_scheduler, latents, batch, text_encoder_conds,
                                                       unet, network, weight_dtype, train_unet, is_train)
        finally:
            train_util.get_timesteps = host_draw
        self._last_timesteps = result[2]
        if not is_train:
            self.recorder.write("validation", accelerator.is_main_process, timesteps=result[2])
        return result

    def post_process_loss(self, loss: torch.Tensor, args: Any, timesteps: torch.Tensor, noise_scheduler: Any) -> torch.Tensor:
        loss = super().post_process_loss(loss, args, timesteps, noise_scheduler)
        if self.ctx is None or self.extension is None:
            return loss
        return self.extension.post_process_loss(self.ctx, loss, timesteps)

    def all_reduce_network(self, accelerator: Any, network: Any) -> None:
        super().all_reduce_network(accelerator, network)  # sd-scripts calls it after backward, once per optimizer step
        if self.ctx is not None and self.extension is not None:
            self.extension.on_after_backward(self.ctx)

    def process_batch(self, batch: dict[str, Any], text_encoders: list[Any], unet: Any, network: Any, vae: Any,
                      noise_scheduler: Any, vae_dtype: torch.dtype, weight_dtype: torch.dtype, accelerator: Any, args: Any,
                      text_encoding_strategy: Any, tokenize_strategy: Any, is_train: bool = True,
                      train_text_encoder: bool = True, train_unet: bool = True) -> torch.Tensor:
        loss = super().process_batch(batch, text_encoders, unet, network, vae, noise_scheduler, vae_dtype, weight_dtype,
                                     accelerator, args, text_encoding_strategy, tokenize_strategy, is_train,
                                     train_text_encoder, train_unet)
        if not is_train or self.ctx is None or self.extension is None:
            return loss
        self._pending_step_end = self._pending_step_end or bool(accelerator.sync_gradients)
        self._text_encoders = list(text_encoders)
        self.ctx.network = accelerator.unwrap_model(network)  # set_multiplier(0) for the KP loss needs the real one
        step_batch = StepBatch(images=batch.get("images"), captions=list(batch["captions"]))
        with accelerator.autocast():
            terms = self.extension.process_batch(self.ctx, step_batch, self.optimizer_steps, self.generator)
        logs = {"loss/diffusion": float(loss.detach())}
        total = loss
        for name, value in terms.items():
            value = value.float()
            logs[f"loss/{name}"] = float(value.detach())
            total = total + value
        timesteps = self._last_timesteps
        if timesteps is not None:
            logs["timestep/mean"] = float(timesteps.float().mean())
        self._last_logs = logs
        if self.recorder.enabled:
            self.recorder.write("step", accelerator.is_main_process, step=self.optimizer_steps, captions=batch["captions"],
                                input_ids=batch["input_ids_list"][0][:, 0], timesteps_drawn=self._drawn,
                                timesteps_used=timesteps, loss_total=float(total.detach()), **logs)
        return total

    def _flush_step_end(self) -> None:
        if self._pending_step_end and self.ctx is not None and self.extension is not None:
            self._pending_step_end = False
            self.extension.on_step_end(self.ctx, self.optimizer_steps)
            self.optimizer_steps += 1

    def sample_images(self, accelerator: Any, args: Any, epoch: Any, global_step: int, *rest: Any, **kwargs: Any) -> None:
        self._flush_step_end()  # sd-scripts calls this right after every optimizer step
        if self.ctx is None or self.extension is None or not getattr(args, "sample_prompts", None):
            return super().sample_images(accelerator, args, epoch, global_step, *rest, **kwargs)
        # users write the embedding name once; expand it to every vector token, as the WebUIs do
        user_file = args.sample_prompts
        extension, ctx = self.extension, self.ctx
        args.sample_prompts = str(self._sample_prompts.expanded(user_file, lambda p: extension.prepare_sample_prompt(ctx, p)))
        try:
            return super().sample_images(accelerator, args, epoch, global_step, *rest, **kwargs)
        finally:
            args.sample_prompts = user_file

    def generate_step_logs(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        logs = super().generate_step_logs(*args, **kwargs)
        logs.update(self._last_logs)
        if self.ctx is not None and self.extension is not None:
            logs.update({k: float(v) for k, v in self.extension.step_logs(self.ctx).items()})
        return logs

    # ---- saving --------------------------------------------------------------------------------
    def _after_lora_saved(self, lora_path: Path, dtype: torch.dtype | None) -> None:
        assert self.ctx is not None and self.extension is not None
        # sd-scripts samples after the epoch-end save: an epoch checkpoint gets the newest sample so far
        sample = saving.newest_sample_image(Path(self._args.output_dir) / saving.SAMPLE_FOLDER,
                                            self._args.output_name, self._started)
        written = saving.write_files_beside(self.extension, self.ctx, lora_path, dtype, preview_from=sample)
        removed = self.saves.add(lora_path, written)
        self.recorder.write("save", lora=lora_path, files=written, removed=removed)

    def _encode_prompts(self, captions: list[str]) -> list[torch.Tensor]:
        """``ctx.encode_prompts``: sd-scripts' tokenize + text-encoding strategies over its (wrapped) encoders."""
        strategy = self.current_tokenize_strategy()
        device = self._accelerator.device
        tokens = [t.to(device) for t in strategy.tokenize(list(captions))]
        models = self.get_models_for_text_encoding(self._args, self._accelerator, self._text_encoders)
        return list(self.current_text_encoding_strategy().encode_tokens(strategy, models, tokens))


def checked_timesteps(timesteps: torch.Tensor, batch_size: int, low: int, high: int, who: str) -> torch.Tensor:
    """The extension's draw as sd-scripts expects it: int64 [B] in [low, high), or all == low when low == high."""
    timesteps = torch.as_tensor(timesteps).long().cpu()
    if timesteps.shape != (batch_size,):
        raise ValueError(f"extension {who!r}: sample_timesteps returned {tuple(timesteps.shape)}, expected ({batch_size},)")
    bad = (timesteps != low) if low == high else ((timesteps < low) | (timesteps >= high))
    if bool(bad.any()):
        raise ValueError(f"extension {who!r}: sample_timesteps returned {timesteps.tolist()} outside [{low}, {high})")
    return timesteps


def _sampler_mean(extension: TrainerExtension) -> float | None:
    sampler = getattr(extension, "sampler", None)
    return float(sampler.mean()) if sampler is not None and hasattr(sampler, "mean") else None
