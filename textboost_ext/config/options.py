"""Allowed values of the config's choice options, and small helpers that interpret options.

Kept apart from the rules (``validate.py``) so hosts can import the vocabularies (optimizers,
samplers, built-in models) and helpers like :func:`parse_optimizer_args` without the rule set.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence

from textboost_ext.config.errors import did_you_mean
from textboost_ext.config.schema import LORA_TARGETS_DEFAULT, TrainConfig
from textboost_ext.models.builtin import BUILTIN_MODELS as _BUILTIN_BY_NAME, BUILTIN_PREFIX

# kohya's optimizer_type names -> (module, class, fixed keyword arguments, pip package when not installed).
# Any other value containing a dot is taken as an importable ``module.Class`` (kohya does the same).
OPTIMIZER_CLASSES: dict[str, tuple[str, str, dict[str, object], str]] = {
    "AdamW": ("torch.optim", "AdamW", {}, "torch"),
    "AdamW8bit": ("bitsandbytes.optim", "AdamW8bit", {}, "bitsandbytes"),
    "PagedAdamW": ("bitsandbytes.optim", "PagedAdamW", {}, "bitsandbytes"),
    "PagedAdamW8bit": ("bitsandbytes.optim", "PagedAdamW8bit", {}, "bitsandbytes"),
    "PagedAdamW32bit": ("bitsandbytes.optim", "PagedAdamW32bit", {}, "bitsandbytes"),
    "Lion": ("lion_pytorch", "Lion", {}, "lion-pytorch"),
    "Lion8bit": ("bitsandbytes.optim", "Lion8bit", {}, "bitsandbytes"),
    "PagedLion8bit": ("bitsandbytes.optim", "PagedLion8bit", {}, "bitsandbytes"),
    "SGDNesterov": ("torch.optim", "SGD", {"nesterov": True, "momentum": 0.9}, "torch"),
    "SGDNesterov8bit": ("bitsandbytes.optim", "SGD8bit", {"nesterov": True, "momentum": 0.9}, "bitsandbytes"),
    # kohya: with a learning rate given, Adafactor runs with relative_step/scale_parameter/warmup_init off
    "Adafactor": ("transformers.optimization", "Adafactor",
                  {"relative_step": False, "scale_parameter": False, "warmup_init": False}, "transformers"),
    "Prodigy": ("prodigyopt", "Prodigy", {}, "prodigyopt"),
}
OPTIMIZERS = tuple(OPTIMIZER_CLASSES)
# Keyword arguments each optimizer accepts through kohya-style `optimizer_args = ["k=v"]`
# (torch.optim.AdamW / bitsandbytes.optim.AdamW8bit; `lr` comes from learning_rate).
OPTIMIZER_ARG_KEYS = {
    "AdamW": ("betas", "eps", "weight_decay", "amsgrad", "maximize", "foreach", "fused"),
    "AdamW8bit": ("betas", "eps", "weight_decay", "amsgrad", "min_8bit_size", "percentile_clipping", "block_wise",
                  "is_paged"),
}
LR_SCHEDULERS = ("constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial")
MIXED_PRECISIONS = ("no", "fp16", "bf16")
SAVE_PRECISIONS = ("fp16", "float", "bf16")
LOG_WITH = ("tensorboard", "wandb", "all", "none")
# kohya's --sample_sampler names (all available as diffusers schedulers).
SAMPLERS = ("ddim", "pndm", "lms", "euler", "euler_a", "heun", "dpm_2", "dpm_2_a", "dpmsolver", "dpmsolver++",
            "dpmsingle", "k_lms", "k_euler", "k_euler_a", "k_dpm_2", "k_dpm_2_a")
KPL_TYPES = ("cosine", "mse")
TIMESTEP_SAMPLINGS = ("snr", "uniform")
AUGMENTS = ("object", "style", "none")
AUGMENT_MODES = ("token", "text", "untagged")  # untagged: ablation only (views augmented, captions silent)
CAPTION_MODES = ("templates", "files")  # [textboost] caption_mode
NUM_TRAIN_TIMESTEPS = 1000  # every SD 1.x / 2.x / XL noise schedule
# Module kinds of a CLIP encoder layer the LoRA can adapt (the default adapts all of them).
LORA_TARGETS = tuple(LORA_TARGETS_DEFAULT)
ATTENTION_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj")

# `pretrained_model_name_or_path = "builtin:tiny-sd1"` names a tiny random-weight model built offline
# (textboost_ext.models.tiny); the value is the family it must be trained as. The list itself lives with
# the code that builds them (models.builtin, torch-free); here it is keyed by the full config value.
BUILTIN_MODELS = {BUILTIN_PREFIX + name: family for name, family in _BUILTIN_BY_NAME.items()}
FAMILY_FLAGS = {"sd1": "v2 = false, sdxl = false", "sd2": "v2 = true, v_parameterization = false",
                "sd2v": "v2 = true, v_parameterization = true", "sdxl": "sdxl = true"}

def model_family(cfg: TrainConfig) -> str:
    """``"sd1"``, ``"sd2"`` (epsilon), ``"sd2v"`` (v-prediction) or ``"sdxl"`` from the kohya flags."""
    if cfg.sdxl:
        return "sdxl"
    if cfg.v2:
        return "sd2v" if cfg.v_parameterization else "sd2"
    return "sd1"


def lora_target_problems(targets: Sequence[str]) -> list[str]:
    """Every problem with a ``lora_targets`` list, one message each ([] when it is valid).

    The one rule for the config checks and ``TextEncoderLoRA`` (which imports it from here: torch-free).
    """
    problems = [f"lora_targets: unknown module {t!r}{did_you_mean(t, LORA_TARGETS)}; allowed: {', '.join(LORA_TARGETS)}"
                for t in targets if t not in LORA_TARGETS]
    if not targets:
        problems.append("lora_targets must not be empty")
    elif len(set(targets)) != len(targets):
        problems.append(f"lora_targets lists a module twice: {list(targets)}")
    attention = [t for t in targets if t in ATTENTION_TARGETS]
    if attention and len(set(attention)) != len(ATTENTION_TARGETS):
        # A1111 skips attention LoRA on SD 2.x / SDXL encoder 2 unless q, k, v AND out are present,
        # and diffusers cannot detect a q/v-only file.
        problems.append("lora_targets: attention projections go together (q_proj, k_proj, v_proj, out_proj); "
                        f"got {attention}. Add the missing ones or drop attention entirely: A1111 skips partial "
                        "attention LoRA on SD 2.x/SDXL and diffusers cannot load it")
    return problems


def is_custom_optimizer(optimizer_type: str) -> bool:
    """``module.Class`` (kohya's way to name any optimizer), not one of the names above."""
    module, _, cls = optimizer_type.rpartition(".")
    return bool(module) and cls.isidentifier() and all(p.isidentifier() for p in module.split("."))


def parse_optimizer_args(optimizer_type: str, args: list[str]) -> dict[str, object]:
    """kohya's ``["weight_decay=0.01", "betas=(0.9,0.99)"]`` -> kwargs; ``ValueError`` naming the bad item.

    Keys are checked here for AdamW/AdamW8bit; for the other optimizers the host checks them against the
    class's own signature once it is imported (``host.optim.check_optimizer``, also run by --dry_run)."""
    allowed = OPTIMIZER_ARG_KEYS.get(optimizer_type)
    kwargs: dict[str, object] = {}
    for item in args:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"optimizer_args item {item!r} is not key=value (e.g. \"weight_decay=0.01\")")
        if allowed is not None and key not in allowed:
            raise ValueError(f"optimizer_args: {optimizer_type} takes no argument {key!r}"
                             f"{did_you_mean(key, allowed)}; allowed: {', '.join(allowed)}")
        try:
            kwargs[key] = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            raise ValueError(f"optimizer_args item {item!r}: {text.strip()!r} is not a Python literal "
                             "(numbers, True/False, tuples like (0.9, 0.999))") from None
    return kwargs
