"""Keys a training TOML must not hold: secrets, and kohya options this trainer does not implement.

kohya's own TOML loader accepts any key and silently ignores what it does not know, the most damaging
trust bug of that ecosystem. Users bring their kohya configs here, so each familiar option we do not
implement gets a message saying so and what to use instead, rather than a bare "unknown key".
"""

from __future__ import annotations

import re

_SECRET_KEYS = {"token", "hf_token", "hub_token", "huggingface_token", "hf_api_token", "api_token", "access_token",
                "auth_token", "wandb_api_key", "api_key", "secret", "password"}
_SECRET_KEY_RE = re.compile(r"(hf|hub|huggingface|api|access|auth|wandb|github)_?(token|key)$|secret|password")
# A Hugging Face user access token, e.g. pasted into training_comment by mistake.
HF_TOKEN_VALUE_RE = re.compile(r"hf_[A-Za-z0-9]{30,}")

SECRET_HINT = ("tokens never belong in a config (configs are saved beside adapters and uploaded); set the "
               "HF_TOKEN environment variable or run `hf auth login` instead")


def is_secret_key(key: str) -> bool:
    return key.lower() in _SECRET_KEYS or bool(_SECRET_KEY_RE.search(key.lower()))


def looks_like_token(value: str) -> bool:
    return bool(HF_TOKEN_VALUE_RE.search(value))


_BY_STEPS = "this trainer counts steps, not epochs: use the *_n_steps option"
_NO_DATASET_OPT = "set it per subset in a dataset_config TOML"
_OWN_AUG = "TextBoost's own augmentation is set in [textboost] augment"
_KP_NOT_REG = "TextBoost replaces regularisation images with its knowledge-preservation loss ([textboost] kpl_weight)"
_PLAIN_LOSS = "not implemented: TextBoost trains with the plain diffusion loss"
_NO_BUCKETS = "aspect-ratio buckets are not implemented: images are trained at `resolution`"
_HUB = "use push_to_hub / hub_repo_id / hub_private (or the textboost-hub CLI)"

# kohya train_network.py option -> what to do instead.
KOHYA_TRAIN_OPTIONS = {
    "save_last_n_epochs": _BY_STEPS, "save_last_n_epochs_state": _BY_STEPS,
    "save_last_n_steps_state": "save_last_n_steps also limits saved states",
    "save_state_on_train_end": "use save_state = true",
    "dynamo_backend": "torch.compile is not used; remove the key",
    "huber_schedule": _PLAIN_LOSS,
    "lr_scheduler_args": "use lr_scheduler_num_cycles / lr_scheduler_power",
    "lr_scheduler_type": "custom scheduler classes are not implemented; use lr_scheduler",
    "network_args": "this LoRA takes no network_args; use network_dim, network_alpha and [textboost] lora_targets",
    "network_dropout": "LoRA dropout is not implemented",
    "min_snr_gamma": "TextBoost samples timesteps by SNR instead of reweighting the loss: "
                     "[textboost] timestep_sampling",
    "debiased_estimation_loss": "TextBoost samples timesteps by SNR: [textboost] timestep_sampling",
    "reg_data_dir": _KP_NOT_REG, "prior_loss_weight": _KP_NOT_REG,
    "xformers": "attention uses PyTorch's scaled-dot-product attention automatically; remove the key",
    "sdpa": "attention uses PyTorch's scaled-dot-product attention automatically; remove the key",
    "mem_eff_attn": "attention uses PyTorch's scaled-dot-product attention automatically; remove the key",
    "cache_latents": "latents are not cached: every step augments the image anew, so cached latents would be stale",
    "cache_latents_to_disk": "latents are not cached: every step augments the image anew",
    "cache_text_encoder_outputs": "the text encoder is what TextBoost trains, so its outputs cannot be cached",
    "no_half_vae": "the SDXL VAE always stays fp32 under fp16 (where it overflows); remove the key",
    "full_fp16": "mixed_precision is the only precision switch (the LoRA stays fp32)",
    "full_bf16": "mixed_precision is the only precision switch (the LoRA stays fp32)",
    "fp8_base": "fp8 base weights are not implemented", "lowram": "not implemented", "highvram": "not implemented",
    "noise_offset": _PLAIN_LOSS, "multires_noise_iterations": _PLAIN_LOSS, "multires_noise_discount": _PLAIN_LOSS,
    "ip_noise_gamma": _PLAIN_LOSS, "zero_terminal_snr": _PLAIN_LOSS, "loss_type": _PLAIN_LOSS, "huber_c": _PLAIN_LOSS,
    "v_pred_like_loss": _PLAIN_LOSS, "scale_v_pred_loss_like_noise_pred": _PLAIN_LOSS, "masked_loss": _PLAIN_LOSS,
    "enable_bucket": _NO_BUCKETS, "min_bucket_reso": _NO_BUCKETS, "max_bucket_reso": _NO_BUCKETS,
    "bucket_reso_steps": _NO_BUCKETS, "bucket_no_upscale": _NO_BUCKETS,
    "shuffle_caption": _NO_DATASET_OPT, "keep_tokens": _NO_DATASET_OPT,
    "caption_prefix": _NO_DATASET_OPT, "caption_suffix": _NO_DATASET_OPT,
    "flip_aug": _OWN_AUG, "color_aug": _OWN_AUG, "random_crop": _OWN_AUG, "face_crop_aug_range": _OWN_AUG,
    "caption_dropout_rate": "caption dropout is not implemented",
    "caption_dropout_every_n_epochs": "caption dropout is not implemented",
    "caption_tag_dropout_rate": "caption dropout is not implemented",
    "in_json": "fine-tuning metadata datasets are not supported; use train_data_dir or dataset_config",
    "max_token_length": "prompts use one 77-token CLIP window",
    "token_string": "use [textboost] placeholder_token", "init_word": "use [textboost] initializer",
    "num_vectors_per_token": "the placeholder gets one vector per token of [textboost] initializer",
    "use_object_template": "TextBoost writes captions from [textboost] caption_templates (\"textual_inversion\" is "
                           "the same object template set, without the templates that name an augmentation)",
    "use_style_template": "TextBoost writes captions from [textboost] caption_templates; for a style set "
                          "[textboost] augment = \"style\"",
    "base_weights": "merging base LoRA weights is not implemented",
    "dim_from_weights": "set network_dim to the rank of network_weights",
    "scale_weight_norms": "not implemented",
    "huggingface_repo_id": "use hub_repo_id (with push_to_hub = true)",
    "huggingface_repo_visibility": "use hub_private",
    "huggingface_repo_type": _HUB, "huggingface_path_in_repo": _HUB, "save_state_to_huggingface": _HUB,
    "resume_from_huggingface": _HUB, "async_upload": _HUB,
    "wandb_run_name": "not implemented; log_prefix names the run",
    "log_tracker_name": "not implemented; log_prefix names the run", "log_tracker_config": "not implemented",
    "log_config": "the resolved config is always saved beside the adapter",
    "persistent_data_loader_workers": "not implemented",
    "debug_dataset": "run with --dry_run to see the resolved config and dataset",
    "output_config": "the resolved config is always saved beside the adapter; --dry_run prints it",
}

# A kohya training option set to the value that turns it off changes nothing, so it is accepted at the top
# level (the kohya_ss GUI and --output_config write many of them out); any other value is refused with its
# message above. ANY_VALUE: options that only act together with another option that is refused when on
# (bucket sizes without enable_bucket, huber_c without loss_type = "huber"), or that name what this trainer
# does anyway (sdpa; no_half_vae: the SDXL VAE stays fp32 under fp16).
ANY_VALUE = object()
TOP_LEVEL_OFF_VALUES: dict[str, object] = {
    **{k: False for k in (
        "xformers", "mem_eff_attn", "cache_latents", "cache_latents_to_disk", "cache_text_encoder_outputs",
        "full_fp16", "full_bf16", "fp8_base", "lowram", "highvram", "zero_terminal_snr",
        "scale_v_pred_loss_like_noise_pred", "masked_loss", "enable_bucket", "shuffle_caption",
        "flip_aug", "color_aug", "random_crop", "debiased_estimation_loss", "save_state_on_train_end", "log_config",
        "dim_from_weights", "save_state_to_huggingface", "resume_from_huggingface", "async_upload", "debug_dataset",
        "output_config")},
    **{k: 0 for k in (
        "noise_offset", "multires_noise_iterations", "ip_noise_gamma", "min_snr_gamma", "network_dropout",
        "scale_weight_norms", "caption_dropout_rate", "caption_dropout_every_n_epochs", "caption_tag_dropout_rate",
        "keep_tokens", "save_last_n_epochs", "save_last_n_epochs_state", "save_last_n_steps_state", "v_pred_like_loss")},
    **{k: "" for k in (
        "caption_prefix", "caption_suffix", "reg_data_dir", "in_json", "base_weights", "huggingface_repo_id",
        "huggingface_repo_visibility", "huggingface_repo_type", "huggingface_path_in_repo", "wandb_run_name",
        "log_tracker_name", "log_tracker_config", "lr_scheduler_type")},
    "loss_type": "l2", "prior_loss_weight": 1.0, "max_token_length": 75, "dynamo_backend": "no",
    "network_args": [], "lr_scheduler_args": [],
    **{k: ANY_VALUE for k in ("multires_noise_discount", "huber_c", "huber_schedule", "min_bucket_reso", "max_bucket_reso",
                              "bucket_reso_steps", "bucket_no_upscale", "sdpa", "no_half_vae",
                              "persistent_data_loader_workers")},
}


def is_top_level_off(key: str, value: object) -> bool:
    """True when a kohya training option we do not implement is set to its "off" value (see above)."""
    off = TOP_LEVEL_OFF_VALUES.get(key, NO_OFF_VALUE_TOP)
    if off is ANY_VALUE:
        return True
    if off is NO_OFF_VALUE_TOP:
        return False
    return _equals_off(value, off)


NO_OFF_VALUE_TOP = object()

# Keys that are real options, just not in this place.
MISPLACED_KEYS = {
    "config_file": "is a command-line option (--config_file), not a config key",
    "sd_scripts_dir": "is a command-line option (--sd_scripts_dir), not a config key",
    "dry_run": "is a command-line option (--dry_run), not a config key",
    "datasets": "belongs in a separate dataset TOML; point dataset_config at that file",
}

# kohya dataset-TOML keys this trainer does not implement: key -> (value that means "off", remedy).
# A key set to its "off" value changes nothing, so it is accepted (kohya configs often spell those out);
# any other value is an error. NO_OFF_VALUE: every value is an error.
NO_OFF_VALUE = object()
_NOT_IMPL = "it is not implemented"
KOHYA_DATASET_OPTIONS: dict[str, tuple[object, str]] = {
    "flip_aug": (False, _OWN_AUG), "color_aug": (False, _OWN_AUG), "random_crop": (False, _OWN_AUG),
    "face_crop_aug_range": (NO_OFF_VALUE, _OWN_AUG),
    "is_reg": (False, _KP_NOT_REG),
    "enable_bucket": (False, _NO_BUCKETS), "bucket_no_upscale": (False, _NO_BUCKETS),
    "min_bucket_reso": (NO_OFF_VALUE, _NO_BUCKETS), "max_bucket_reso": (NO_OFF_VALUE, _NO_BUCKETS),
    "bucket_reso_steps": (NO_OFF_VALUE, _NO_BUCKETS),
    "caption_dropout_rate": (0, _NOT_IMPL), "caption_dropout_every_n_epochs": (0, _NOT_IMPL),
    "caption_tag_dropout_rate": (0, _NOT_IMPL), "token_warmup_min": (1, _NOT_IMPL), "token_warmup_step": (0, _NOT_IMPL),
    "enable_wildcard": (False, _NOT_IMPL), "caption_separator": (",", _NOT_IMPL),
    "keep_tokens_separator": ("", _NOT_IMPL), "secondary_separator": (NO_OFF_VALUE, _NOT_IMPL),
    "custom_attributes": ({}, _NOT_IMPL), "cache_info": (False, _NOT_IMPL), "cache_latents": (False, _NOT_IMPL),
    "alpha_mask": (False, "masked loss is not implemented"),
    "metadata_file": (NO_OFF_VALUE, "fine-tuning (metadata) datasets are not supported; use image_dir subsets"),
    "conditioning_data_dir": (NO_OFF_VALUE, "ControlNet datasets are not supported"),
    "network_multiplier": (1.0, _NOT_IMPL), "validation_seed": (NO_OFF_VALUE, "a validation split is not implemented"),
    "validation_split": (0, "a validation split is not implemented"), "resize_interpolation": (NO_OFF_VALUE, _NOT_IMPL),
}


def is_off_value(key: str, value: object) -> bool:
    """True when a dataset option we do not implement is set to the value that turns it off."""
    off = KOHYA_DATASET_OPTIONS[key][0]
    if off is NO_OFF_VALUE:
        return False
    return _equals_off(value, off)


def _equals_off(value: object, off: object) -> bool:
    """``value`` is the off value ``off``, with TOML types kept apart (bool is an int in Python: 0 is not `false`)."""
    if isinstance(off, bool) or isinstance(value, bool):
        return value is off
    if isinstance(off, (int, float)):
        return isinstance(value, (int, float)) and value == off
    return value == off
