"""The TextBoost method as pure torch/stdlib pieces (no diffusers/transformers/accelerate/PIL).

timesteps     SNR-weighted / uniform timestep sampler from ``alphas_cumprod``
augment       paired image augmentations with tags; the augmentation token/phrase vocabulary
captions      training captions (templates, augmentation tokens or phrases)
tokens        placeholder names, token registration, trainable new rows, grad mask, norm clamp
preservation  knowledge-preservation loss, prompt files and sampler, original-output cache
"""

from __future__ import annotations

from textboost_ext.method.augment import (
    AUGMENT_PHRASES,
    AUGMENT_SET_TAGS,
    AUGMENT_SETS,
    AUGMENT_TOKENS,
    AugmentedView,
    apply_augmentations,
    augment_batch,
    augment_view,
    plan_augmentations,
)
from textboost_ext.method.captions import (
    DEFAULT_TEMPLATES,
    TEXTUAL_INVERSION_TEMPLATES,
    augmentation_tokens,
    build_caption,
    choose_template,
    placeholder_text,
    resolve_templates,
)
from textboost_ext.method.preservation import (
    OriginalOutputCache,
    PreservationPromptSampler,
    kp_loss,
    load_prompt_file,
    padding_mask,
    shipped_prompts,
)
from textboost_ext.method.timesteps import (
    TimestepSampler,
    log_snr,
    sample_timesteps,
    snr_from_alphas_cumprod,
    snr_timestep_weights,
    timestep_probabilities,
)
from textboost_ext.method.tokens import (
    ExtendedTokenEmbedding,
    add_placeholder_tokens,
    clamp_new_row_norms_,
    fix_legacy_eos_pooling,
    masked_zero_old_rows_grad,
    phrase_token_ids,
    placeholder_vector_tokens,
    suggest_token_name,
    validate_token_name,
)

__all__ = [
    "AUGMENT_PHRASES",
    "AUGMENT_SETS",
    "AUGMENT_SET_TAGS",
    "AUGMENT_TOKENS",
    "DEFAULT_TEMPLATES",
    "TEXTUAL_INVERSION_TEMPLATES",
    "AugmentedView",
    "ExtendedTokenEmbedding",
    "OriginalOutputCache",
    "PreservationPromptSampler",
    "TimestepSampler",
    "add_placeholder_tokens",
    "apply_augmentations",
    "augment_batch",
    "augment_view",
    "augmentation_tokens",
    "build_caption",
    "choose_template",
    "clamp_new_row_norms_",
    "fix_legacy_eos_pooling",
    "kp_loss",
    "load_prompt_file",
    "log_snr",
    "masked_zero_old_rows_grad",
    "padding_mask",
    "phrase_token_ids",
    "placeholder_text",
    "placeholder_vector_tokens",
    "plan_augmentations",
    "resolve_templates",
    "sample_timesteps",
    "shipped_prompts",
    "snr_from_alphas_cumprod",
    "snr_timestep_weights",
    "suggest_token_name",
    "timestep_probabilities",
    "validate_token_name",
]
