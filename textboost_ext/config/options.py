"""Allowed values of the config's choice options, and small helpers that interpret options.

Kept apart from the rules (``validate.py``) so hosts can import the vocabularies (optimizers,
samplers, built-in models) and helpers like :func:`parse_optimizer_args` without the rule set.
"""

from __future__ import annotations

import ast

from textboost_ext.config.errors import did_you_mean
from textboost_ext.config.schema import TrainConfig

OPTIMIZERS = ("AdamW", "AdamW8bit")
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
AUGMENT_MODES = ("token", "text")
NUM_TRAIN_TIMESTEPS = 1000  # every SD 1.x / 2.x / XL noise schedule
ATTENTION_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj")

# `pretrained_model_name_or_path = "builtin:tiny-sd1"` names a tiny random-weight model built offline
# (textboost_ext.models.tiny); the value is the family it must be trained as.
BUILTIN_PREFIX = "builtin:"
BUILTIN_MODELS = {"builtin:tiny-sd1": "sd1", "builtin:tiny-sd2": "sd2", "builtin:tiny-sd2v": "sd2v",
                  "builtin:tiny-sdxl": "sdxl"}
FAMILY_FLAGS = {"sd1": "v2 = false, sdxl = false", "sd2": "v2 = true, v_parameterization = false",
                "sd2v": "v2 = true, v_parameterization = true", "sdxl": "sdxl = true"}

def model_family(cfg: TrainConfig) -> str:
    """``"sd1"``, ``"sd2"`` (epsilon), ``"sd2v"`` (v-prediction) or ``"sdxl"`` from the kohya flags."""
    if cfg.sdxl:
        return "sdxl"
    if cfg.v2:
        return "sd2v" if cfg.v_parameterization else "sd2"
    return "sd1"


def parse_optimizer_args(optimizer_type: str, args: list[str]) -> dict[str, object]:
    """kohya's ``["weight_decay=0.01", "betas=(0.9,0.99)"]`` -> kwargs; ``ValueError`` naming the bad item."""
    allowed = OPTIMIZER_ARG_KEYS[optimizer_type]
    kwargs: dict[str, object] = {}
    for item in args:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"optimizer_args item {item!r} is not key=value (e.g. \"weight_decay=0.01\")")
        if key not in allowed:
            raise ValueError(f"optimizer_args: {optimizer_type} takes no argument {key!r}"
                             f"{did_you_mean(key, allowed)}; allowed: {', '.join(allowed)}")
        try:
            kwargs[key] = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            raise ValueError(f"optimizer_args item {item!r}: {text.strip()!r} is not a Python literal "
                             "(numbers, True/False, tuples like (0.9, 0.999))") from None
    return kwargs
