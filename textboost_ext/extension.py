"""TextBoostExtension: the TextBoost method plugged into a host trainer through the hook API.

The same object drives the built-in host (``textboost_ext.host``) and kohya sd-scripts
(``textboost_ext.kohya``). It composes the pure pieces of ``textboost_ext.method``:

- placeholder token (+ augmentation tokens in token mode) with their own trainable rows,
- paired image augmentation + captions that name exactly the augmentations applied,
- SNR-weighted timestep sampling (replacing the host's uniform draw),
- the knowledge-preservation loss against the same encoder with its LoRA switched off (multiplier 0),
  whose outputs are cached per prompt; its prompt draws come from a generator of its own, seeded from
  the run seed, so a λ = 0 run and a λ > 0 run see the same views, captions, noise and timesteps,
- an optimizer layout of two groups: LoRA (weight decay) and new embedding rows (no weight decay).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import torch

from textboost_ext.hooks import HostContext, StepBatch, TrainerExtension
from textboost_ext.models.lean_activations import use_lean_quick_gelu
from textboost_ext.method.captions import caption_file_template
from textboost_ext.method import (
    AUGMENT_SET_TAGS,
    AUGMENT_TOKENS,
    ExtendedTokenEmbedding,
    OriginalOutputCache,
    PreservationPromptSampler,
    TimestepSampler,
    add_placeholder_tokens,
    apply_augmentations,
    build_caption,
    choose_template,
    clamp_new_row_norms_,
    fix_legacy_eos_pooling,
    kp_loss,
    load_prompt_file,
    padding_mask,
    phrase_token_ids,
    placeholder_text,
    placeholder_vector_tokens,
    plan_augmentations,
    render_view,
    resolve_templates,
    shipped_prompts,
    suggest_token_name,
    validate_token_name,
)

EMBEDDING_KEYS_SDXL = ("clip_l", "clip_g")


class TextBoostExtension(TrainerExtension):
    name = "textboost"

    def __init__(self) -> None:
        self.tb: Any = None  # the [textboost] config table
        self.embeddings: list[ExtendedTokenEmbedding] = []
        self.vector_tokens: list[str] = []
        self.augment_tokens: list[str] = []
        self.templates: list[str] = []
        self.sampler: TimestepSampler | None = None
        self.alphas_cumprod: torch.Tensor | None = None  # the schedule, for samplers over another range
        self.kp_prompts: PreservationPromptSampler | None = None
        self.kp_cache: OriginalOutputCache | None = None
        self.kp_generator: torch.Generator | None = None  # KP prompt draws only: never the host's stream
        self._kp_length_of: dict[str, int] = {}  # KP prompt -> tokens up to its EOS (kpl_mask_padding)
        self._last: dict[str, float] = {}

    # ---- before training -------------------------------------------------------------------
    def assert_extra_args(self, config: Any) -> None:
        tb = config.textboost
        problems = []
        if not tb.placeholder_token:
            problems.append("[textboost] placeholder_token is required (the name you will type in prompts, e.g. 'mycorgi')")
        else:
            try:
                validate_token_name(tb.placeholder_token)
            except ValueError as err:
                problems.append(f"[textboost] placeholder_token: {err}")
        if not tb.initializer or not tb.initializer.strip():
            problems.append("[textboost] initializer is required (a phrase describing the subject, e.g. 'corgi dog')")
        if config.network_train_unet_only:
            problems.append("network_train_unet_only = true: TextBoost trains the text encoder only; remove it")
        if problems:
            raise ValueError("TextBoost configuration:\n  - " + "\n  - ".join(problems))
        config.network_train_text_encoder_only = True
        self.tb = tb
        self.templates = resolve_templates(tb.caption_templates)

    def check_captions(self, config: Any, items: Any) -> list[str]:
        """caption_mode "files": every caption must name the placeholder (else an error listing them);
        "templates": one notice listing the dataset's caption sources that the templates leave unused."""
        tb = self.tb
        if tb is None:
            return []
        unique = list({item.path: item for item in items}.values())
        notices = []
        if not tb.class_noun:
            classes = sorted({i.class_tokens for i in unique if i.class_tokens})
            hint = f" (the folder's class tokens say {classes[0]!r})" if classes else ""
            notices.append(f"[textboost] class_noun is not set: the trigger is just {tb.placeholder_token!r} and "
                           f"captions read like 'a photo of {tb.placeholder_token}'; set class_noun = \"dog\"{hint} "
                           f"for the trigger '{tb.placeholder_token} <class>', which also feeds the preservation prompts")
        if tb.caption_mode == "files":
            bad = []
            for item in unique:
                try:
                    caption_file_template(item.caption, tb.placeholder_token)
                except ValueError as err:
                    source = item.caption_file or f"class tokens of {item.path.parent.name}"
                    bad.append(f"{item.path.name} ({source}): {err}")
            if bad:
                raise ValueError(
                    f'caption_mode = "files": {len(bad)} caption(s) cannot train the placeholder; write '
                    f"{tb.placeholder_token!r} where the subject goes (e.g. \"a photo of {self.trigger_phrase()}\"), "
                    "or use caption_mode = \"templates\":\n  - " + "\n  - ".join(bad))
            return notices + [f'captions: caption_mode = "files": {len(unique)} caption(s) from the dataset, each '
                              f"with the augmentation tokens of its view around {tb.placeholder_token!r}"]
        unused = []
        files = [i for i in unique if i.caption_file is not None]
        if files:
            unused.append(f"{len(files)} caption file(s) (*{files[0].caption_file.suffix})")
        options = sorted({o for i in unique for o in i.caption_options})
        unused += options
        classes = sorted({i.class_tokens for i in unique if i.class_tokens and i.class_tokens != tb.class_noun})
        if classes:
            unused.append("folder class tokens " + ", ".join(repr(c) for c in classes))
        if not unused:
            return notices
        return notices + [f'captions: caption_mode = "templates" (TextBoost\'s own): every training caption is a '
                f"caption_templates template with the trigger {self.trigger_phrase()!r} and the augmentation "
                f"tokens of its view, so these are unused: {'; '.join(unused)}. To train on the dataset's "
                f'captions set [textboost] caption_mode = "files" (each must contain {tb.placeholder_token!r}).']

    def check_sample_prompts(self, config: Any, prompts: Any) -> list[str]:
        """Samples are how a user judges the run: prompts without the placeholder show the base model, not
        the subject. None naming it is an error (allow_prompts_without_placeholder = true: a warning);
        some not naming it is a notice (fine as control prompts: TextBoost keeps the rest of the prompt working)."""
        tb = self.tb
        if tb is None or not prompts:
            return []
        pattern = re.compile(rf"(?<![\w<-]){re.escape(tb.placeholder_token)}(?![\w>-])")
        missing = [p for p in prompts if not pattern.search(p)]
        if not missing:
            return []
        listed = "; ".join(repr(p[:60]) for p in missing[:5]) + (f" (+{len(missing) - 5} more)" if len(missing) > 5 else "")
        if len(missing) == len(prompts):
            message = (f"sample_prompts: no prompt contains the placeholder {tb.placeholder_token!r}, so every sample "
                       f"would show the base model, not the trained subject ({listed}); write it where the subject "
                       f"goes, e.g. \"a photo of {self.trigger_phrase()} on a beach\"")
            if not tb.allow_prompts_without_placeholder:
                raise ValueError(message + " (or set [textboost] allow_prompts_without_placeholder = true)")
            return [message]
        return [f"sample_prompts: {len(missing)} of {len(prompts)} prompt(s) do not contain {tb.placeholder_token!r} "
                f"and will show the base model (fine as control prompts): {listed}"]

    def example_captions(self, items: Any, count: int, seed: int) -> list[str]:
        """``count`` training captions as steps would draw them (augmentation tags from the plan alone,
        no image, no model: the placeholder's vector tokens come from the shipped CLIP vocabulary, which
        every supported family's tokenizers share), for ``--dry_run`` / ``--show_captions``."""
        import tempfile

        from textboost_ext.host.dataset import shuffle_caption
        from textboost_ext.models.tokenizer import build_clip_tokenizer

        tb = self.tb
        assert tb is not None, "assert_extra_args first"
        vector_tokens = self.vector_tokens
        if not vector_tokens:
            with tempfile.TemporaryDirectory() as tmp:
                n = len(phrase_token_ids(build_clip_tokenizer(tmp), tb.initializer))
            vector_tokens = placeholder_vector_tokens(tb.placeholder_token, max(1, n))
        generator = torch.Generator().manual_seed(seed)
        subject = placeholder_text(vector_tokens)
        captions = []
        for i in range(count):
            item = items[i % len(items)]
            ops = plan_augmentations(generator, tb.augment, p=tb.augment_p, color_p=tb.augment_color_p)
            tags = [op.tag for op in ops if op.tag is not None]
            captions.append(self._caption(item.caption if not item.shuffle_caption else
                                          shuffle_caption(item.caption, item.keep_tokens, generator),
                                          subject, tags, generator))
        return captions

    def _caption(self, dataset_caption: str, subject: str, tags: list[str], generator: torch.Generator) -> str:
        tb = self.tb
        if tb.caption_mode == "files":  # the user's words: only the placeholder becomes the vector tokens
            template = caption_file_template(dataset_caption, tb.placeholder_token)
            return build_caption(template, subject, None, tags, tb.augment_mode, generator, check_named=False)
        template = choose_template(self.templates, generator)
        return build_caption(template, subject, tb.class_noun, tags, tb.augment_mode, generator)

    def post_process_network(self, ctx: HostContext) -> None:
        tb = self.tb
        model = ctx.model
        for tokenizer in model.tokenizers:  # the name must not already be a word of any tokenizer
            try:
                validate_token_name(tb.placeholder_token, tokenizer.get_vocab())
            except ValueError as err:
                suggestion = suggest_token_name(tb.placeholder_token, tokenizer.get_vocab())
                raise ValueError(f"[textboost] placeholder_token: {err} (try {suggestion!r})") from None
        self.augment_tokens = [AUGMENT_TOKENS[t][0] for t in AUGMENT_SET_TAGS[tb.augment]] if tb.augment_mode == "token" else []
        self.embeddings = []
        for tokenizer, encoder in zip(model.tokenizers, model.text_encoders):
            init_ids = phrase_token_ids(tokenizer, tb.initializer)
            if not init_ids:
                raise ValueError(f"[textboost] initializer {tb.initializer!r} tokenizes to nothing; use a describing phrase")
            self.vector_tokens = placeholder_vector_tokens(tb.placeholder_token, len(init_ids))
            aug_inits = [phrase_token_ids(tokenizer, AUGMENT_TOKENS[t][1]) for t in AUGMENT_SET_TAGS[tb.augment]]
            tokens = self.vector_tokens + self.augment_tokens
            inits: list[int | list[int]] = list(init_ids) + (aug_inits if self.augment_tokens else [])
            ext = add_placeholder_tokens(tokenizer, encoder.get_input_embeddings(), tokens, inits)
            ext.to(next(encoder.parameters()).device)
            encoder.set_input_embeddings(ext)
            # Old CLIP configs pool at the highest token id, which is now an added token.
            fix_legacy_eos_pooling(encoder, tokenizer.eos_token_id)
            self.embeddings.append(ext)
            # two passes with gradients per step: keep the smaller MLP activations (same values)
            use_lean_quick_gelu(encoder)

        scheduler = model.noise_scheduler
        self.alphas_cumprod = scheduler.alphas_cumprod.detach().cpu()
        self.sampler = TimestepSampler(
            self.alphas_cumprod,
            mode=tb.timestep_sampling,
            min_timestep=ctx.config.min_timestep,
            max_timestep=ctx.config.max_timestep,
        )
        prompts = load_prompt_file(tb.preservation_prompts) if tb.preservation_prompts else shipped_prompts()
        self.kp_prompts = PreservationPromptSampler(prompts, tb.class_noun, empty_p=tb.kpl_empty_p, class_p=tb.kpl_class_p)
        self.kp_generator = torch.Generator().manual_seed(stream_seed(ctx.config.seed, ctx.process_index, "kp"))
        self.kp_cache = OriginalOutputCache(lambda p: self._original_outputs(ctx, p), enabled=tb.kpl_cache)

    def prepare_optimizer_params(
        self, ctx: HostContext, lora_params: list[torch.nn.Parameter], learning_rate: float, weight_decay: float
    ) -> list[dict[str, Any]]:
        # New rows train at their own rate with NO weight decay; the original vocabulary is not a
        # parameter of the optimizer at all (it lives frozen in ExtendedTokenEmbedding.base).
        rows = [e.new_rows for e in self.embeddings]
        return [
            {"name": "lora", "params": lora_params, "lr": learning_rate, "weight_decay": weight_decay},
            {"name": "embedding", "params": rows, "lr": self.tb.emb_learning_rate, "weight_decay": 0.0},
        ]

    # ---- every step ------------------------------------------------------------------------
    def wants_source_images(self) -> bool:
        return self.tb is not None and self.tb.augment != "none"

    def on_step_start(self, ctx: HostContext, batch: StepBatch, step: int, generator: torch.Generator) -> None:
        tb = self.tb
        subject = placeholder_text(self.vector_tokens)
        images, captions = [], []
        size_hw = (int(batch.images.shape[-2]), int(batch.images.shape[-1]))
        crops = list(batch.extra.get("crop_top_lefts") or [None] * len(batch.images))
        for i, image in enumerate(batch.images):
            ops = plan_augmentations(generator, tb.augment, p=tb.augment_p, color_p=tb.augment_color_p)
            if batch.sources is not None:  # the augmentation acts on the photo, then it is resized (method.md)
                view = render_view(batch.sources[i].to(image.device), ops, size_hw)
                crops[i] = view.crop_top_left
            else:  # a host without sources: augment the training-size image
                view = apply_augmentations(image, ops)
            images.append(view.image.to(image.dtype))
            captions.append(self._caption(batch.captions[i], subject, view.tags, generator))
        batch.images = torch.stack(images)
        batch.captions = captions
        if batch.sources is not None and "crop_top_lefts" in batch.extra:
            batch.extra["crop_top_lefts"] = crops
        batch.extra["augment_captions"] = captions

    def sample_timesteps(
        self, ctx: HostContext, batch_size: int, min_timestep: int, max_timestep: int, generator: torch.Generator
    ) -> torch.Tensor | None:
        assert self.sampler is not None, "post_process_network must run first"
        if (min_timestep, max_timestep) != (self.sampler.min_timestep, self.sampler.max_timestep):
            # a host may pin the range (sd-scripts' validation sets min == max)
            sampler = TimestepSampler(self.alphas_cumprod, self.tb.timestep_sampling, min_timestep, max_timestep)
            return sampler.sample(batch_size, generator)
        return self.sampler.sample(batch_size, generator)

    def process_batch(self, ctx: HostContext, batch: StepBatch, step: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        tb = self.tb
        if tb.kpl_weight <= 0:
            self._last["loss/kp_raw"] = 0.0
            return {}
        assert self.kp_prompts is not None and self.kp_cache is not None and self.kp_generator is not None
        # its own stream: drawing from ``generator`` would shift every later augmentation, noise and
        # timestep draw of the host whenever λ > 0, and an ablation of λ would measure more than λ
        prompts = self.kp_prompts.sample(len(batch.captions), self.kp_generator)
        if tb.kpl_mask_padding:
            # The masked loss reads each prompt only up to its end-of-text token, and CLIP's attention is
            # causal (a position never sees later ones): both KP passes stop at the longest prompt's EOS,
            # with the same loss and gradients as full-length passes at a fraction of the cost.
            lengths = self._kp_lengths(ctx, prompts)
            length = max(lengths)
            mask = torch.arange(length).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
            original = self.kp_cache.get(prompts, device=ctx.device, length=length)
            adapted = self._encode_prefix(ctx, prompts, length)
            mask = mask.to(ctx.device)
        else:
            original = self.kp_cache.get(prompts, device=ctx.device)
            adapted = ctx.encode_prompts(prompts)
            mask = None
        loss = kp_loss(adapted, original, kind=tb.kpl_type, mask=mask)
        self._last["loss/kp_raw"] = float(loss.detach())
        self._last["kp/cache_hit_rate"] = self.kp_cache.hit_rate
        return {"kp": tb.kpl_weight * loss}

    def _kp_lengths(self, ctx: HostContext, prompts: list[str]) -> list[int]:
        """Per prompt, its positions up to and including the first EOS (the same for every tokenizer of a
        model). Constant per prompt, so each prompt is tokenized for it once."""
        new = [p for p in dict.fromkeys(prompts) if p not in self._kp_length_of]
        if new:
            tokenizer = ctx.model.tokenizers[0]
            ids = tokenizer(new, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                            return_tensors="pt").input_ids
            for prompt, n in zip(new, padding_mask(ids, tokenizer.eos_token_id).sum(dim=-1).tolist()):
                self._kp_length_of[prompt] = int(n)
        return [self._kp_length_of[p] for p in prompts]

    @staticmethod
    def _encode_prefix(ctx: HostContext, prompts: list[str], length: int) -> list[torch.Tensor]:
        """The conditioning of the first ``length`` positions: computed on them alone where the host can
        (``HostContext.encode_prompt_prefix``), else sliced from a full pass (the same values)."""
        if ctx.encode_prompt_prefix is not None:
            return ctx.encode_prompt_prefix(prompts, length)
        return [t[:, :length] if t.dim() == 3 else t for t in ctx.encode_prompts(prompts)]

    def _original_outputs(self, ctx: HostContext, prompts: list[str]) -> list[torch.Tensor]:
        # The original encoder is the same model with its LoRA at multiplier 0: no second copy in memory.
        previous = getattr(ctx.network, "multiplier", 1.0)
        ctx.network.set_multiplier(0.0)
        try:
            with torch.no_grad():
                if self.tb.kpl_mask_padding:  # only what the masked loss reads (see process_batch)
                    outputs = self._encode_prefix(ctx, list(prompts), max(self._kp_lengths(ctx, list(prompts))))
                else:
                    outputs = ctx.encode_prompts(list(prompts))
                return [t.detach().float() for t in outputs]
        finally:
            ctx.network.set_multiplier(previous)

    def on_step_end(self, ctx: HostContext, step: int) -> None:
        if self.tb.norm_clamp:
            for ext in self.embeddings:
                clamp_new_row_norms_(ext)

    def step_logs(self, ctx: HostContext) -> dict[str, float]:
        logs = dict(self._last)
        n = len(self.vector_tokens)
        norms = [ext.new_rows.detach()[:n].norm(dim=-1).mean().item() for ext in self.embeddings]
        if norms:
            logs["embedding/placeholder_norm"] = float(sum(norms) / len(norms))
        return logs

    def prepare_sample_prompt(self, ctx: HostContext, prompt: str) -> str:
        # Users write the embedding name once ("tbmug"); like the WebUIs, expand it to every vector token.
        if len(self.vector_tokens) < 2:
            return prompt
        pattern = re.compile(rf"(?<![\w<-]){re.escape(self.tb.placeholder_token)}(?![\w>-])")
        return pattern.sub(placeholder_text(self.vector_tokens), prompt)

    # ---- saving and resuming -----------------------------------------------------------------
    def placeholder_vectors(self) -> dict[str, torch.Tensor]:
        """The trained placeholder vectors in the embedding-file layout of the family."""
        n = len(self.vector_tokens)
        rows = [ext.new_rows.detach()[:n].float().cpu() for ext in self.embeddings]
        if len(rows) == 2:
            return dict(zip(EMBEDDING_KEYS_SDXL, rows))
        return {"emb_params": rows[0]}

    def update_metadata(self, ctx: HostContext, metadata: dict[str, str]) -> None:
        tb = self.tb
        settings = {
            "placeholder_token": tb.placeholder_token,
            "initializer": tb.initializer,
            "class_noun": tb.class_noun or "",
            "num_vectors": len(self.vector_tokens),
            "kpl_weight": tb.kpl_weight,
            "kpl_type": tb.kpl_type,
            "timestep_sampling": tb.timestep_sampling,
            "augment": tb.augment,
            "augment_mode": tb.augment_mode,
            "augment_p": tb.augment_p,
            "augment_color_p": tb.augment_color_p,
            "emb_learning_rate": tb.emb_learning_rate,
            "norm_clamp": tb.norm_clamp,
            "lora_targets": ",".join(tb.lora_targets),
            "preservation_prompts": Path(tb.preservation_prompts).name if tb.preservation_prompts else "shipped",
        }
        for key, value in settings.items():
            metadata[f"ss_textboost_{key}"] = str(value)
        metadata["modelspec.trigger_phrase"] = self.trigger_phrase() or ""

    def on_save(self, ctx: HostContext, lora_path: Path, save_dtype: torch.dtype) -> list[Path]:
        from textboost_ext.export.embeddings import write_bundled_lora, write_embedding_file
        from textboost_ext.export.safetensors_io import read_header

        token = self.tb.placeholder_token
        model = ctx.model
        v_pred = bool(getattr(model, "is_v_prediction", False))
        resolution = tuple(ctx.config.resolution)
        # The file stem IS the embedding name in the WebUIs, so each checkpoint gets its own folder.
        lora_path = Path(lora_path)
        folder = "embeddings" if lora_path.stem == ctx.config.output_name else f"{lora_path.stem}_embeddings"
        emb_path = lora_path.parent / folder / f"{token}.safetensors"
        emb_path.parent.mkdir(parents=True, exist_ok=True)
        written = [write_embedding_file(emb_path, self.placeholder_vectors(), token, model.family, save_dtype,
                                        v_prediction=v_pred, resolution=resolution)]
        if getattr(ctx.config, "export_bundle", False):
            from safetensors.torch import load_file

            metadata, _ = read_header(lora_path)
            written.append(write_bundled_lora(lora_path, load_file(str(lora_path)), {token: self.placeholder_vectors()},
                                              metadata, save_dtype))
        return written

    def trigger_phrase(self) -> str | None:
        if self.tb is None:
            return None
        noun = f" {self.tb.class_noun}" if self.tb.class_noun else ""
        return f"{self.tb.placeholder_token}{noun}"

    def generators(self) -> dict[str, torch.Generator]:
        return {"kp": self.kp_generator} if self.kp_generator is not None else {}

    def state_dict(self) -> dict[str, Any]:
        return {"new_rows": [ext.new_rows.detach().cpu().clone() for ext in self.embeddings]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        rows = state.get("new_rows", [])
        if len(rows) != len(self.embeddings):
            raise ValueError(f"resume state has {len(rows)} embedding tables, this model has {len(self.embeddings)}")
        with torch.no_grad():
            for ext, saved in zip(self.embeddings, rows):
                if saved.shape != ext.new_rows.shape:
                    raise ValueError(f"resume state embedding rows {tuple(saved.shape)} != {tuple(ext.new_rows.shape)}; "
                                     "placeholder_token/initializer/augment settings must match the interrupted run")
                ext.new_rows.copy_(saved.to(ext.new_rows))


def stream_seed(seed: int, process_index: int, stream: str) -> int:
    """A seed for one named random stream of one process, independent of the host's ``seed + rank``."""
    digest = hashlib.sha256(f"{int(seed)}/{int(process_index)}/{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)
