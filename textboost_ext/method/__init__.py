"""The TextBoost method as pure torch/stdlib pieces (no diffusers/transformers/accelerate/PIL).

timesteps     SNR-weighted / uniform timestep sampler from ``alphas_cumprod``
augment       paired image augmentations with tags; the augmentation token/phrase vocabulary
captions      training captions (templates, augmentation tokens or phrases)
token_names   placeholder/embedding name rules (torch-free: the config layer uses them)
tokens        token registration, trainable new rows, grad mask, norm clamp
preservation  knowledge-preservation loss, prompt files and sampler, original-output cache
views         training views rendered from the source image (augment first, then resize)
caption_templates  template sets and the words that name an augmentation (stdlib only)
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> submodule. Exports load on first use (PEP 562), so a torch-free piece such as
# ``token_names`` can be imported by the config layer without importing torch.
_EXPORTS: dict[str, str] = {
    "AUGMENT_PHRASES": "augment",
    "AUGMENT_SETS": "augment",
    "AUGMENT_SET_TAGS": "augment",
    "AUGMENT_TOKENS": "augment",
    "AugmentedView": "augment",
    "DEFAULT_TEMPLATES": "captions",
    "ExtendedTokenEmbedding": "tokens",
    "OriginalOutputCache": "preservation",
    "PreservationPromptSampler": "preservation",
    "TEXTUAL_INVERSION_TEMPLATES": "captions",
    "TimestepSampler": "timesteps",
    "add_placeholder_tokens": "tokens",
    "apply_augmentations": "augment",
    "augment_batch": "augment",
    "augment_view": "augment",
    "augmentation_tokens": "captions",
    "build_caption": "captions",
    "choose_template": "captions",
    "clamp_new_row_norms_": "tokens",
    "fix_legacy_eos_pooling": "tokens",
    "kp_loss": "preservation",
    "load_prompt_file": "preservation",
    "log_snr": "timesteps",
    "masked_zero_old_rows_grad": "tokens",
    "padding_mask": "preservation",
    "phrase_token_ids": "tokens",
    "placeholder_text": "captions",
    "placeholder_vector_tokens": "tokens",
    "plan_augmentations": "augment",
    "render_view": "views",
    "resolve_templates": "captions",
    "sample_timesteps": "timesteps",
    "shipped_prompts": "preservation",
    "snr_from_alphas_cumprod": "timesteps",
    "snr_timestep_weights": "timesteps",
    "suggest_token_name": "token_names",
    "timestep_probabilities": "timesteps",
    "token_name_problem": "token_names",
    "validate_token_name": "token_names",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
