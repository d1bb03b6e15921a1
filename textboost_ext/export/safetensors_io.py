"""Write safetensors files atomically; read their header without loading tensors.

Every exported file goes through ``atomic_save_safetensors``: it validates what a WebUI would choke on
(non-string metadata, NaN/Inf weights) BEFORE anything touches the final path, then writes through
``textboost_ext.atomic_write`` (temp file in the same folder, fsync, ``os.replace``), so a crash never
leaves a half-written LoRA where a WebUI would pick it up. Header parsing is shared with the torch-free
adapter store (``textboost_ext.safetensors_header``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from textboost_ext.atomic_write import atomic_output
from textboost_ext.safetensors_header import read_raw_header


def validate_metadata(metadata: Mapping[str, Any], source: str = "metadata") -> dict[str, str]:
    """Return a plain ``dict[str, str]``; raise ValueError naming the first key whose value is not a str."""
    out: dict[str, str] = {}
    for key, value in metadata.items():
        if not isinstance(key, str):
            raise ValueError(f"{source}: metadata key {key!r} is not a string")
        if not isinstance(value, str):
            raise ValueError(
                f"{source}: metadata[{key!r}] is {type(value).__name__} ({value!r}); safetensors metadata values "
                f"must be strings: convert it with str() or json.dumps() first"
            )
        out[key] = value
    return out


def validate_tensors(tensors: Mapping[str, Any], source: str = "state dict") -> dict[str, torch.Tensor]:
    """Return contiguous CPU tensors; raise ValueError naming any non-tensor or non-finite entry."""
    out: dict[str, torch.Tensor] = {}
    for key, value in tensors.items():
        if not isinstance(key, str):
            raise ValueError(f"{source}: tensor key {key!r} is not a string")
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"{source}: {key!r} is {type(value).__name__}, expected a torch.Tensor")
        tensor = value.detach().to("cpu").contiguous()
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            bad = "NaN" if bool(torch.isnan(tensor).any()) else "Inf"
            raise ValueError(f"{source}: tensor {key!r} contains {bad}; refusing to write it (training diverged?)")
        out[key] = tensor
    return out


def atomic_save_safetensors(
    path: str | os.PathLike[str], tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]
) -> None:
    """Save ``tensors`` with ``metadata`` to ``path`` atomically (temp file in the same folder, fsync, replace).

    Raises ValueError (naming the key) for a non-string metadata value, a non-tensor, or NaN/Inf.
    """
    from safetensors.torch import save_file

    source = str(Path(path))
    clean_metadata = validate_metadata(metadata, source=source)
    clean_tensors = validate_tensors(tensors, source=source)
    with atomic_output(path) as tmp:
        save_file(clean_tensors, tmp, metadata=clean_metadata)


def read_header(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """``(metadata, tensor_info)`` from the JSON header only (no tensor data is read).

    ``tensor_info[name]`` has ``dtype`` (safetensors spelling: "F16", "F32", "BF16"...), ``shape`` and
    ``data_offsets``. Metadata values are returned as found, so a checker can report non-strings.
    """
    _, metadata, tensor_info = read_raw_header(path)
    return metadata, tensor_info


def load_tensors(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """All tensors of a safetensors file on the CPU."""
    from safetensors.torch import load_file

    return load_file(str(path), device="cpu")
