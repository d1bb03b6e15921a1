"""Checklist items about metadata and names: strings, output name, version keys, embedding names.

Also the base-family detection that reads them (metadata first, then the keys and the hidden size).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from textboost_ext.export.checklist import CheckResult, few, infer_dims, group_modules
from textboost_ext.export.metadata import FORBIDDEN_METADATA_KEYS, architecture_base, base_model_version
from textboost_ext.method.token_names import TOKEN_NAME_PATTERN, is_vocabulary_word, suggest_token_name
from textboost_ext.models.tokenizer import clip_vocab_and_merges


def family_from_metadata(metadata: Mapping[str, Any]) -> dict[str, str]:
    """What each version key says: {key: family} for the keys that name one."""
    found: dict[str, str] = {}
    version = metadata.get("ss_base_model_version")
    if isinstance(version, str):
        if version.startswith("sdxl_"):
            found["ss_base_model_version"] = "sdxl"
        elif version.startswith("sd_v2"):
            found["ss_base_model_version"] = "sd2"
        elif version.startswith("sd_v1"):
            found["ss_base_model_version"] = "sd1"
    arch = metadata.get("modelspec.architecture")
    if isinstance(arch, str):
        for family, prefix in (("sdxl", "stable-diffusion-xl-v1-base"), ("sd2", "stable-diffusion-v2-"), ("sd1", "stable-diffusion-v1")):
            if arch.startswith(prefix):
                found["modelspec.architecture"] = family
                break
    return found


def detect_family(metadata: Mapping[str, Any], tensors: Mapping[str, torch.Tensor]) -> str | None:
    """Family from the version metadata, else from the keys (te1/te2 -> SDXL) and the hidden size."""
    from_meta = family_from_metadata(metadata)
    for key in ("ss_base_model_version", "modelspec.architecture"):
        if key in from_meta:
            return from_meta[key]
    groups = group_modules(tensors)
    prefixes = {p for p, _, _ in groups}
    if prefixes & {"lora_te1", "lora_te2"}:
        return "sdxl"
    hidden = {h for h, _ in infer_dims(groups).values()}
    if hidden == {768}:
        return "sd1"
    if hidden == {1024}:
        return "sd2"
    return None


def check_metadata(metadata: Mapping[str, Any], family: str, stem: str, adapter: str = "lora") -> list[CheckResult]:
    """Items 1 (strings) and 6 (output name, version keys agree with the family); no forbidden keys."""
    results: list[CheckResult] = []
    not_str = [k for k, v in metadata.items() if not isinstance(v, str)]
    results.append(CheckResult("metadata strings", not not_str, f"non-string values: {few(not_str)}" if not_str
                               else f"{len(metadata)} keys"))
    forbidden = [k for k in FORBIDDEN_METADATA_KEYS if k in metadata]
    results.append(CheckResult("no diffusers metadata key", not forbidden, f"{forbidden}: diffusers rejects the file" if forbidden else ""))
    if adapter == "lora":
        name = metadata.get("ss_output_name")
        results.append(CheckResult("ss_output_name = stem", name == stem,
                                   f"ss_output_name is {name!r}, file stem is {stem!r} (A1111 uses it as the <lora:NAME:w> alias)"
                                   if name != stem else stem))
    results.append(check_version_keys(metadata, family, adapter))
    return results


def check_version_keys(metadata: Mapping[str, Any], family: str, adapter: str = "lora") -> CheckResult:
    problems: list[str] = []
    arch = metadata.get("modelspec.architecture")
    if family == "sd2":
        v_pred = isinstance(arch, str) and arch.startswith("stable-diffusion-v2-768-v")
    else:  # only SD 2 has a v architecture; elsewhere the model spec's prediction_type alone says so
        v_pred = metadata.get("modelspec.prediction_type") == "v"
    if adapter == "lora":
        version = metadata.get("ss_base_model_version")
        v_pred = v_pred or version == "sd_v2_v"
        if version != base_model_version(family, v_pred):
            problems.append(f"ss_base_model_version={version!r} (expected {base_model_version(family, v_pred)!r})")
        if metadata.get("ss_v2") != str(family == "sd2"):
            problems.append(f"ss_v2={metadata.get('ss_v2')!r} (expected {str(family == 'sd2')!r})")
    expected_arch = f"{architecture_base(family, v_pred)}/{adapter}"
    if arch != expected_arch:
        problems.append(f"modelspec.architecture={arch!r} (expected {expected_arch!r})")
    prediction = metadata.get("modelspec.prediction_type")
    if prediction is not None and prediction != ("v" if v_pred else "epsilon"):
        problems.append(f"modelspec.prediction_type={prediction!r} disagrees with the architecture")
    return CheckResult("version keys", not problems, "; ".join(problems) if problems else f"{family}{' v-pred' if v_pred else ''}")


def embedding_name_problem(name: str) -> str | None:
    """Why ``name`` is not a usable A1111/Forge/ComfyUI embedding name, or None if it is."""
    if not TOKEN_NAME_PATTERN.match(name):
        return (f"embedding name {name!r}: use letters and digits ('_' or '-' allowed inside); a name with "
                f"punctuation such as <...> stops matching in A1111 prompts")
    vocab, _ = clip_vocab_and_merges()
    if is_vocabulary_word(name, vocab):
        return (f"embedding name {name!r} is an existing CLIP word: A1111 would replace every use of "
                f"{name.lower()!r} in prompts; pick a made-up word (e.g. {suggest_token_name(name, vocab)})")
    return None
