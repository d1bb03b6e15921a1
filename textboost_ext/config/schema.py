"""Typed training configuration. Field names are kohya sd-scripts option names where kohya has one.

These dataclasses are the single source of truth for valid keys, their types and defaults; the loader
(``config.load``) validates TOML and CLI input against them strictly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

LORA_TARGETS_DEFAULT = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]
CAPTION_TEMPLATES_DEFAULT = ["{}", "a {}", "one {}", "the {}", "photo of a {}"]


@dataclass
class TextBoostConfig:
    """The ``[textboost]`` table: the method's own settings (defaults from the paper / method.md)."""

    placeholder_token: str | None = None  # A1111-safe embedding name, e.g. "mycorgi"
    initializer: str | None = None  # phrase the placeholder vectors start from, e.g. "corgi dog"
    class_noun: str | None = None  # e.g. "dog"; appended to captions and used in KP class templates
    caption_templates: list[str] = field(default_factory=lambda: list(CAPTION_TEMPLATES_DEFAULT))
    # "templates": every caption from caption_templates + the trigger (the paper's setup); "files": the
    # dataset's captions (caption files / class tokens + prefix/suffix, shuffled), which must name the placeholder
    caption_mode: str = "templates"
    # sample prompts that all lack placeholder_token are an error (they would show the untrained base);
    # true makes it a warning
    allow_prompts_without_placeholder: bool = False
    emb_learning_rate: float = 1e-3
    norm_clamp: bool = False
    lora_targets: list[str] = field(default_factory=lambda: list(LORA_TARGETS_DEFAULT))
    kpl_weight: float = 0.1
    kpl_type: str = "cosine"  # "cosine" | "mse"
    kpl_mask_padding: bool = False
    kpl_cache: bool = True
    kpl_empty_p: float = 0.1
    kpl_class_p: float = 0.1
    preservation_prompts: str | None = None  # .txt or .jsonl; None = the shipped set
    timestep_sampling: str = "snr"  # "snr" | "uniform"
    augment: str = "object"  # "object" | "style" | "none"
    augment_mode: str = "token"  # "token" | "text" | "untagged" (ablation: augmented views, silent captions)
    augment_p: float = 0.5
    augment_color_p: float = 0.2


@dataclass
class TrainConfig:
    """The training TOML's top level (kohya names) plus ``textboost``."""

    # model
    pretrained_model_name_or_path: str = ""
    v2: bool = False
    v_parameterization: bool = False
    sdxl: bool = False
    vae: str | None = None
    clip_skip: int | None = None
    # extension
    extension: str = "textboost"  # registered extension name, or "none" for a plain TE LoRA
    # data
    dataset_config: str | None = None
    train_data_dir: str | None = None
    caption_extension: str = ".txt"
    resolution: list[int] = field(default_factory=lambda: [512, 512])
    max_data_loader_n_workers: int = 0
    # network
    network_module: str = "textboost_ext.network"
    network_dim: int = 4
    network_alpha: float = 4.0
    network_weights: str | None = None
    network_train_unet_only: bool = False
    network_train_text_encoder_only: bool = True
    # optimisation
    learning_rate: float = 5e-5
    text_encoder_lr: float | None = None
    unet_lr: float | None = None
    optimizer_type: str = "AdamW8bit"
    optimizer_args: list[str] = field(default_factory=list)  # kohya style: ["weight_decay=0.01"]
    lr_scheduler: str = "constant"
    lr_warmup_steps: int = 0
    lr_scheduler_num_cycles: int = 1  # cosine_with_restarts: number of restarts (kohya)
    lr_scheduler_power: float = 1.0  # polynomial: the decay's power (kohya)
    max_train_steps: int = 250
    # kohya's epochs: converted to steps once the dataset is known (one epoch = every image x repeats once),
    # with a one-line notice; the resolved config then holds the steps (config.epochs)
    max_train_epochs: int | None = None
    train_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    max_grad_norm: float = 1.0
    seed: int = 42
    mixed_precision: str = "no"  # "no" | "fp16" | "bf16"
    gradient_checkpointing: bool = False
    min_timestep: int = 0
    max_timestep: int = 1000
    # output
    output_dir: str | None = None  # None = the adapter store (adapters/ or TEXTBOOST_ADAPTERS_DIR)
    adapters_dir: str | None = None
    output_name: str = "textboost"
    overwrite: bool = False
    save_model_as: str = "safetensors"
    save_precision: str = "fp16"  # "fp16" | "float" | "bf16"
    save_every_n_steps: int | None = None
    save_every_n_epochs: int | None = None
    save_last_n_steps: int | None = None
    save_state: bool = False
    resume: str | None = None
    export_bundle: bool = False
    training_comment: str | None = None
    # sampling
    sample_prompts: str | None = None
    sample_every_n_steps: int | None = None
    sample_every_n_epochs: int | None = None
    sample_at_first: bool = False
    sample_sampler: str = "ddim"
    # logging
    logging_dir: str | None = None
    log_with: str | None = "tensorboard"  # "tensorboard" | "wandb" | "all" | "none"
    log_prefix: str | None = None
    # hub
    push_to_hub: bool = False
    hub_repo_id: str | None = None
    hub_private: bool = False
    # method
    textboost: TextBoostConfig = field(default_factory=TextBoostConfig)
