"""One description per config key, and the allowed values of the choice keys: the single source of
``--help`` and ``docs/options.md`` (``python -m textboost_ext.config.options_help > docs/options.md``;
a test keeps the file in sync and checks that every schema field is described here).
"""

from __future__ import annotations

import argparse
from dataclasses import fields

from textboost_ext.config.options import (
    AUGMENT_MODES,
    AUGMENTS,
    CAPTION_MODES,
    KPL_TYPES,
    LOG_WITH,
    LORA_TARGETS,
    LR_SCHEDULERS,
    MIXED_PRECISIONS,
    OPTIMIZERS,
    SAMPLERS,
    SAVE_PRECISIONS,
    TIMESTEP_SAMPLINGS,
)
from textboost_ext.config.schema import TextBoostConfig, TrainConfig

# kohya keys that are in the schema only to be refused with a message when set (this trainer trains the
# text encoder only): kept out of --help, where they could only mislead.
HIDDEN_FROM_HELP = ("network_train_unet_only", "unet_lr", "network_train_text_encoder_only")

CHOICES: dict[str, tuple[str, ...]] = {
    "optimizer_type": (*OPTIMIZERS, "module.Class"), "lr_scheduler": LR_SCHEDULERS, "mixed_precision": MIXED_PRECISIONS,
    "save_precision": SAVE_PRECISIONS, "sample_sampler": tuple(SAMPLERS), "log_with": LOG_WITH,
    "save_model_as": ("safetensors",), "network_module": ("textboost_ext.network", "networks.lora"),
    "kpl_type": KPL_TYPES, "timestep_sampling": TIMESTEP_SAMPLINGS, "augment": AUGMENTS, "augment_mode": AUGMENT_MODES,
    "caption_mode": CAPTION_MODES, "lora_targets": LORA_TARGETS, "extension": ("textboost", "none"),
}

HELP: dict[str, str] = {
    # model
    "pretrained_model_name_or_path": "base model: an A1111 single file (.safetensors, .ckpt), a diffusers folder, a Hub id, "
                                     "or builtin:tiny-sd1 (offline demo)",
    "v2": "SD 2.x base (detected from the file anyway)",
    "v_parameterization": "v-prediction model (SD 2.x 768-v)",
    "sdxl": "SDXL base (detected from the file anyway)",
    "vae": "a separate VAE file or folder to use instead of the base model's",
    "clip_skip": "condition on the text encoder's N-th last layer (1 = last, 2 = penultimate); not for SDXL",
    "extension": "training method: textboost, or none for a plain text-encoder LoRA",
    # data
    "dataset_config": "kohya dataset TOML ([[datasets]] / [[datasets.subsets]]); its batch_size/resolution win",
    "train_data_dir": "folder of <repeats>_<class tokens>/ subfolders holding the images (kohya layout)",
    "caption_extension": "caption file extension next to each image (used with caption_mode = \"files\")",
    "resolution": "training size: 512, \"512,768\" or [512, 768] (width, height); images must be at least this large",
    "max_data_loader_n_workers": "data-loading worker processes (0 = in the main process)",
    # network
    "network_module": "the LoRA implementation; both values mean this trainer's kohya-format text-encoder LoRA",
    "network_dim": "LoRA rank",
    "network_alpha": "LoRA alpha (scale = alpha / rank)",
    "network_weights": "start from the weights of an existing LoRA file (.safetensors)",
    "network_train_unet_only": "refused: only the text encoder trains",
    "network_train_text_encoder_only": "always true: only the text encoder trains",
    # optimisation
    "learning_rate": "LoRA learning rate",
    "text_encoder_lr": "LoRA learning rate (kohya's name; wins over learning_rate)",
    "unet_lr": "refused: the UNet does not train",
    "optimizer_type": "optimizer: a kohya name or an importable module.Class",
    "optimizer_args": "optimizer keyword arguments as kohya writes them: [\"weight_decay=0.01\", \"betas=(0.9,0.99)\"]",
    "lr_scheduler": "learning-rate schedule (stepped once per optimizer step)",
    "lr_warmup_steps": "warm-up steps of the schedule (not with constant; use constant_with_warmup)",
    "lr_scheduler_num_cycles": "cosine_with_restarts: number of cycles",
    "lr_scheduler_power": "polynomial: power of the decay",
    "max_train_steps": "optimizer steps to train (the paper: 250)",
    "max_train_epochs": "train this many epochs instead (converted to max_train_steps, with a note)",
    "train_batch_size": "images (augmented views) per step; a dataset TOML's batch_size wins",
    "gradient_accumulation_steps": "micro-batches per optimizer step",
    "max_grad_norm": "clip the LoRA gradient norm (0 = off)",
    "seed": "seed of every random draw (data, augmentation, noise, timesteps)",
    "mixed_precision": "compute precision: fp16 needs a GPU; bf16 is fast on GPUs and AVX-512-bf16/AMX CPUs",
    "gradient_checkpointing": "recompute activations in the backward pass (less memory, slower)",
    "min_timestep": "lowest diffusion timestep drawn",
    "max_timestep": "timesteps are drawn below this",
    # output
    "output_dir": "store folder to write <output_name>/ into (default: the adapter store)",
    "adapters_dir": "the adapter store (default ./adapters or $TEXTBOOST_ADAPTERS_DIR)",
    "output_name": "adapter name: file stem and A1111 <lora:NAME:1> alias",
    "overwrite": "replace an existing adapter of this name",
    "save_model_as": "file format of the LoRA",
    "save_precision": "dtype of the saved LoRA weights (alpha is always float32)",
    "save_every_n_steps": "save a checkpoint LoRA every N steps",
    "save_every_n_epochs": "save a checkpoint every N epochs (converted to steps)",
    "save_last_n_steps": "keep only the checkpoints of the last N steps",
    "save_state": "also save the resumable training state (optimizer, RNG, step)",
    "resume": "continue from a saved state folder (.../state/step-000100)",
    "export_bundle": "also write an A1111-only file with the embedding bundled inside",
    "training_comment": "free text stored in the LoRA metadata (ss_training_comment)",
    # sampling
    "sample_prompts": "kohya prompt file (.txt with --n --w --h --s --l/--g --d --ss, .toml or .json)",
    "sample_every_n_steps": "render the sample prompts every N steps",
    "sample_every_n_epochs": "render the sample prompts every N epochs (converted to steps)",
    "sample_at_first": "also render them before the first step",
    "sample_sampler": "sampler of the sample images (a --ss in a prompt line wins)",
    # logging
    "logging_dir": "folder of the training logs (default: <adapter>/logs)",
    "log_with": "logger: tensorboard, wandb, all or none",
    "log_prefix": "name of the run's log folder",
    # hub
    "push_to_hub": "publish the adapter to the Hugging Face Hub at the end (token: HF_TOKEN or hf auth login)",
    "hub_repo_id": "Hub repository: USER/NAME",
    "hub_private": "create the Hub repository private",
    # [textboost]
    "placeholder_token": "the new word for the subject (made up, not a real word); also the A1111 embedding name",
    "initializer": "phrase the placeholder's vectors start from (one vector per token), e.g. \"corgi dog\"",
    "class_noun": "the subject's class (\"dog\"): appended to captions, the trigger is '<token> <class_noun>'",
    "caption_templates": "caption templates with one {}, or a set name: default, textual_inversion",
    "caption_mode": "templates: captions from caption_templates (the paper); files: the dataset's captions, "
                    "which must contain the placeholder",
    "allow_prompts_without_placeholder": "make sample prompts that never name the placeholder a warning, not an error",
    "emb_learning_rate": "learning rate of the placeholder's vectors",
    "norm_clamp": "keep the new vectors' norm at the vocabulary's mean row norm",
    "lora_targets": "CLIP modules that get LoRA",
    "kpl_weight": "knowledge-preservation loss weight (0 = off)",
    "kpl_type": "knowledge-preservation distance",
    "kpl_mask_padding": "leave padding tokens out of the knowledge-preservation loss (its passes then stop at the "
                        "longest prompt's end: faster, same result for that loss)",
    "kpl_cache": "cache the original encoder's outputs per preservation prompt",
    "kpl_empty_p": "probability of an empty preservation prompt",
    "kpl_class_p": "probability of a class-noun preservation prompt",
    "preservation_prompts": "your preservation prompts (.txt or .jsonl); default: the shipped set",
    "timestep_sampling": "snr: TextBoost's SNR-weighted timesteps; uniform: plain",
    "augment": "augmentation set: object, style (flip + grayscale) or none",
    "augment_mode": "how captions name augmentations: token (<zoom-in>), text (natural phrases), or untagged (not at all: an ablation)",
    "augment_p": "probability of the geometric and collage stages",
    "augment_color_p": "probability of grayscale",
}


def describe(name: str, default: object) -> str:
    """The --help / options.md text of one key: description, allowed values, default."""
    text = HELP[name]
    if name in CHOICES:
        text += f". Allowed: {', '.join(CHOICES[name])}"
    return f"{text}. Default: {default!r}"


def options_markdown() -> str:
    """docs/options.md."""
    lines = ["# Options", "", "Generated from `textboost_ext/config/options_help.py` (the source of `--help`); "
             "regenerate with `python -m textboost_ext.config.options_help > docs/options.md`.", "",
             "Every key goes into the training TOML (top level, or the `[textboost]` table) or on the command line as "
             "`--key value` (booleans: `--key` / `--no_key`). The command line wins.", ""]
    for title, cls in (("Top level (kohya names)", TrainConfig), ("`[textboost]` table", TextBoostConfig)):
        lines += [f"## {title}", "", "| key | description | default |", "|---|---|---|"]
        defaults = cls()
        for f in fields(cls):
            if f.name == "textboost" or f.name in HIDDEN_FROM_HELP:
                continue
            text = HELP[f.name] + (f". Allowed: {', '.join(f'`{c}`' for c in CHOICES[f.name])}" if f.name in CHOICES else "")
            lines.append(f"| `{f.name}` | {text.replace('|', '/')} | `{getattr(defaults, f.name)!r}` |")
        lines.append("")
    lines += ["## Run options (command line only)", "", "| option | description |", "|---|---|"]
    for option, text in _run_actions():
        lines.append(f"| `{option}` | {text} |")
    return "\n".join(lines) + "\n"


def _run_actions() -> list[tuple[str, str]]:
    from textboost_ext.config.cli import build_arg_parser

    parser = build_arg_parser()
    run = next(g for g in parser._action_groups if g.title == "run")
    return [(" ".join(a.option_strings), a.help or "") for a in run._group_actions if a.help != argparse.SUPPRESS]


if __name__ == "__main__":
    print(options_markdown(), end="")
