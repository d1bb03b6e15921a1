"""Write the kohya-format text-encoder LoRA file that A1111, Forge, ComfyUI, diffusers and sd-scripts load.

``write_lora_file`` casts the state dict (alpha too), runs the compatibility checklist on the result and
the metadata, and refuses to write a file that ``verify_file`` would reject. Then it computes kohya's
``sshs_*`` hashes on exactly the tensors it writes and saves atomically.

State dicts come from ``textboost_ext.network.TextEncoderLoRA.kohya_state_dict()``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch

from textboost_ext.export.checklist import FAMILY_SPECS, CheckResult, check_lora_tensors, group_modules
from textboost_ext.export.metadata_checks import check_metadata, detect_family
from textboost_ext.export.hashes import kohya_hashes
from textboost_ext.export.safetensors_io import atomic_save_safetensors, validate_metadata, validate_tensors

# kohya --save_precision names (and the torch spellings)
_PRECISIONS: dict[str, torch.dtype] = {
    "fp16": torch.float16,
    "float16": torch.float16,
    "half": torch.float16,
    "float": torch.float32,
    "fp32": torch.float32,
    "float32": torch.float32,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
}
DEFAULT_SAVE_DTYPE = torch.float16


def save_precision_dtype(name: str | None) -> torch.dtype:
    """kohya ``save_precision`` -> dtype: "fp16" (default when None), "float"/"fp32", "bf16"."""
    if name is None:
        return DEFAULT_SAVE_DTYPE
    key = str(name).strip().lower()
    if key not in _PRECISIONS:
        raise ValueError(f"save_precision {name!r} is not supported; use one of 'fp16', 'float' (fp32) or 'bf16'")
    return _PRECISIONS[key]


ALPHA_DTYPE = torch.float32  # alpha is written in float32 whatever save_precision is (see cast_state_dict)


def cast_state_dict(state_dict: Mapping[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Every tensor detached, on the CPU, contiguous; the weights in ``dtype``, every ``.alpha`` in float32.

    kohya casts alpha with the weights; in bf16 an alpha of 0.3 becomes 0.30078125, so every client would
    apply a scale 0.26 % off what ``ss_network_alpha`` says. A float32 scalar costs 4 bytes per module.
    """
    if dtype not in (torch.float16, torch.float32, torch.bfloat16):
        raise ValueError(f"save dtype {dtype} is not supported; use torch.float16, torch.float32 or torch.bfloat16")
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"state dict entry {key!r} is {type(value).__name__}, expected a torch.Tensor")
        out[key] = value.detach().to("cpu", ALPHA_DTYPE if key.endswith(".alpha") else dtype).contiguous()
    return out


def alpha_matches_metadata(stored: torch.Tensor, metadata_alpha: str) -> bool:
    """Exact: the stored alpha equals ``ss_network_alpha`` rounded to float32 (the dtype alpha is written in)."""
    return float(stored.float()) == float(torch.tensor(float(metadata_alpha), dtype=ALPHA_DTYPE))


def check_network_metadata(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> list[CheckResult]:
    """ss_network_dim / ss_network_alpha must describe the tensors (sd-scripts and UIs display them); the
    alpha exactly, since every client scales by the stored value."""
    groups = group_modules(tensors)
    ranks = {int(p["lora_down.weight"].shape[0]) for p in groups.values() if "lora_down.weight" in p}
    alpha_tensors = [p["alpha"] for p in groups.values() if "alpha" in p and p["alpha"].dim() == 0]
    problems = []
    dim, alpha = metadata.get("ss_network_dim"), metadata.get("ss_network_alpha")
    try:
        if dim is not None and len(ranks) == 1 and int(float(dim)) != next(iter(ranks)):
            problems.append(f"ss_network_dim={dim} but the tensors have rank {next(iter(ranks))}")
        # several alphas are the "one alpha" check's failure; here the file's one alpha must be the stated one
        if alpha is not None and len({float(a.float()) for a in alpha_tensors}) == 1:
            stored = alpha_tensors[0]
            if not alpha_matches_metadata(stored, alpha):
                problems.append(f"ss_network_alpha={alpha} but the alpha tensors hold {float(stored.float())!r} "
                                f"({str(stored.dtype).removeprefix('torch.')}): clients scale by the stored value; "
                                "store alpha in float32")
    except ValueError:
        problems.append(f"ss_network_dim={dim!r} / ss_network_alpha={alpha!r} are not numbers")
    return [CheckResult("ss_network_dim/alpha match tensors", not problems, "; ".join(problems) or "exact")]


def precheck_lora(
    path: Path, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str], *, allow_bundle: bool = False
) -> list[CheckResult]:
    """The checklist items that can be decided before writing (dims only checked for consistency)."""
    family = detect_family(metadata, tensors)
    if family is None:
        return [CheckResult("family", False, "metadata has no ss_base_model_version/modelspec.architecture; "
                            "build it with textboost_ext.export.metadata.build_metadata")]
    checks = check_lora_tensors(tensors, family, FAMILY_SPECS[family], allow_bundle=allow_bundle, check_dims=False)
    checks += check_metadata(metadata, family, path.stem)
    checks += check_network_metadata(tensors, metadata)
    return checks


def raise_on_failures(path: Path, checks: list[CheckResult]) -> None:
    failed = [c for c in checks if not c.ok]
    if failed:
        lines = "\n".join(f"  - {c.name}: {c.detail}" for c in failed)
        raise ValueError(f"refusing to write {path}: it would fail the compatibility checklist:\n{lines}")


def write_checked_safetensors(
    path: str | os.PathLike[str],
    tensors: Mapping[str, torch.Tensor],
    metadata: Mapping[str, str],
    *,
    allow_bundle: bool = False,
) -> dict[str, str]:
    """Checklist, kohya hashes, atomic save, for tensors already in their final dtype."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"{path}: a LoRA for the WebUIs must be a .safetensors file")
    clean_meta = validate_metadata(metadata, source=str(path))
    clean_tensors = validate_tensors(tensors, source=str(path))
    raise_on_failures(path, precheck_lora(path, clean_tensors, clean_meta, allow_bundle=allow_bundle))
    final = {k: v for k, v in clean_meta.items() if not k.startswith("sshs_")}
    model_hash, legacy_hash = kohya_hashes(clean_tensors, final)
    final["sshs_model_hash"] = model_hash
    final["sshs_legacy_hash"] = legacy_hash
    atomic_save_safetensors(path, clean_tensors, final)
    return final


def write_lora_file(
    path: str | os.PathLike[str],
    state_dict: Mapping[str, torch.Tensor],
    metadata: Mapping[str, str],
    save_dtype: torch.dtype = DEFAULT_SAVE_DTYPE,
) -> dict[str, str]:
    """Write a kohya text-encoder LoRA to ``path`` (``.safetensors``); return the metadata written.

    ``metadata`` should come from ``build_metadata`` with ``output_name`` = the file stem. A missing
    ``ss_output_name`` is filled in; ``sshs_model_hash``/``sshs_legacy_hash`` are (re)computed here.
    Raises ValueError, and writes nothing, if the result would fail the compatibility checklist.
    """
    path = Path(path)
    metadata = dict(metadata)
    metadata.setdefault("ss_output_name", path.stem)
    tensors = cast_state_dict(state_dict, save_dtype)
    return write_checked_safetensors(path, tensors, metadata)
