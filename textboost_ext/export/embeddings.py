"""Placeholder-token embeddings as standalone textual-inversion files, and the optional A1111 bundle.

Standalone file ``<token>.safetensors`` (the stem IS the embedding name in A1111, Forge and ComfyUI):
``{"emb_params": [n, dim]}`` for SD 1.x/2.x, ``{"clip_l": [n, 768], "clip_g": [n, 1280]}`` for SDXL,
metadata = SAI model spec with architecture ``.../textual-inversion`` (what kohya's TI trainer writes).

Bundled variant (A1111 1.7+ only): the LoRA keys plus ``bundle_emb.<token>.string_to_param.*``
(SD 1.x/2.x) or ``bundle_emb.<token>.clip_l`` / ``.clip_g`` (SDXL), written to a SEPARATE file
``<stem>_a1111_bundle.safetensors`` next to the main LoRA. The main file never carries bundle keys:
diffusers refuses such a file and Forge/ComfyUI ignore the embedding. The bundle's
``ss_output_name`` is its own stem (checklist item 6), so install either file, not both.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch

from textboost_ext.export.metadata_checks import embedding_name_problem, family_from_metadata
from textboost_ext.export.lora_file import DEFAULT_SAVE_DTYPE, cast_state_dict, write_checked_safetensors
from textboost_ext.export.metadata import TrainingInfo, check_family, modelspec
from textboost_ext.export.safetensors_io import atomic_save_safetensors

BUNDLE_SUFFIX = "_a1111_bundle"
EMBEDDING_KEYS = {"sd1": ("emb_params",), "sd2": ("emb_params",), "sdxl": ("clip_l", "clip_g")}


def validate_embedding_name(token: str) -> None:
    problem = embedding_name_problem(token)
    if problem is not None:
        raise ValueError(problem)


def embedding_tensors(vectors: Mapping[str, torch.Tensor], family: str, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Validate/normalise ``vectors`` to the family's keys, each [n_vectors, dim] in ``dtype``.

    A 1-D vector is accepted as one row. SDXL needs the same number of rows for clip_l and clip_g.
    """
    check_family(family)
    expected = EMBEDDING_KEYS[family]
    if set(vectors) != set(expected):
        raise ValueError(f"{family} embeddings need exactly the keys {list(expected)}, got {sorted(vectors)}")
    out: dict[str, torch.Tensor] = {}
    for key in expected:
        value = vectors[key]
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            raise ValueError(f"embedding {key!r} must be a floating-point tensor")
        value = value.detach().to("cpu", dtype)
        if value.dim() == 1:
            value = value.unsqueeze(0)
        if value.dim() != 2 or value.shape[0] < 1:
            raise ValueError(f"embedding {key!r} has shape {tuple(value.shape)}; expected [n_vectors, dim]")
        out[key] = value.contiguous()
    rows = {v.shape[0] for v in out.values()}
    if len(rows) != 1:
        raise ValueError(f"SDXL embeddings need the same number of vectors in clip_l and clip_g, got {sorted(rows)}")
    return out


def embedding_metadata(token: str, family: str, v_prediction: bool = False, resolution: tuple[int, int] = (512, 512),
                       timestamp: float | None = None) -> dict[str, str]:
    info = TrainingInfo(output_name=token, family=family, v_prediction=v_prediction, resolution=resolution,
                        training_finished_at=timestamp, title=token)
    return modelspec(info, adapter="textual-inversion")


def write_embedding_file(
    path: str | os.PathLike[str],
    vectors: Mapping[str, torch.Tensor],
    token: str,
    family: str,
    dtype: torch.dtype = torch.float32,
    *,
    v_prediction: bool = False,
    resolution: tuple[int, int] = (512, 512),
) -> Path:
    """Write ``<token>.safetensors``; ``path`` must have that stem (the file name is the embedding name)."""
    path = Path(path)
    validate_embedding_name(token)
    if path.stem != token or path.suffix != ".safetensors":
        raise ValueError(f"{path}: the embedding file must be named {token}.safetensors (the stem is the name users type)")
    tensors = embedding_tensors(vectors, family, dtype)
    atomic_save_safetensors(path, tensors, embedding_metadata(token, family, v_prediction, resolution))
    return path


def bundle_embedding_keys(token: str, vectors: Mapping[str, torch.Tensor], family: str,
                          dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """The ``bundle_emb.<token>.*`` entries A1111 1.7+ reads from a LoRA file."""
    validate_embedding_name(token)
    tensors = embedding_tensors(vectors, family, dtype)
    if family == "sdxl":
        return {f"bundle_emb.{token}.{key}": value for key, value in tensors.items()}
    # A1111's .pt embedding layout: string_to_param maps "*" to the vectors
    return {f"bundle_emb.{token}.string_to_param.*": tensors["emb_params"]}


def bundled_path(lora_path: str | os.PathLike[str]) -> Path:
    lora_path = Path(lora_path)
    return lora_path.with_name(f"{lora_path.stem}{BUNDLE_SUFFIX}{lora_path.suffix}")


def write_bundled_lora(
    lora_path: str | os.PathLike[str],
    lora_sd: Mapping[str, torch.Tensor],
    embeddings: Mapping[str, Mapping[str, torch.Tensor]],
    metadata: Mapping[str, str],
    save_dtype: torch.dtype = DEFAULT_SAVE_DTYPE,
) -> Path:
    """Write ``<stem>_a1111_bundle.safetensors`` next to ``lora_path``: LoRA + ``{token: vectors}`` bundled.

    ``metadata`` is the main file's; ``ss_output_name`` and the modelspec title become the bundle's stem.
    """
    out = bundled_path(lora_path)
    family = _family_of(metadata)
    tensors = cast_state_dict(lora_sd, save_dtype)
    if any(k.startswith("bundle_emb.") for k in tensors):
        raise ValueError("lora_sd already contains bundle_emb keys; pass the embeddings separately")
    if not embeddings:
        raise ValueError("write_bundled_lora needs at least one embedding")
    for token, vectors in embeddings.items():
        tensors.update(bundle_embedding_keys(token, vectors, family, save_dtype))
    meta = {k: v for k, v in metadata.items() if not k.startswith("sshs_")}
    meta["ss_output_name"] = out.stem
    if "modelspec.title" in meta:
        meta["modelspec.title"] = f"{meta['modelspec.title']} (A1111 bundle)"
    write_checked_safetensors(out, tensors, meta, allow_bundle=True)
    return out


def _family_of(metadata: Mapping[str, str]) -> str:
    found = family_from_metadata(metadata)
    if not found:
        raise ValueError("metadata has no ss_base_model_version/modelspec.architecture; build it with build_metadata")
    return next(iter(found.values()))
