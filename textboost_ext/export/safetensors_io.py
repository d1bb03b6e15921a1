"""Write safetensors files atomically; read their header without loading tensors.

Every exported file goes through ``atomic_save_safetensors``: it validates what a WebUI would choke on
(non-string metadata, NaN/Inf weights) BEFORE anything touches the final path, writes a temp file in
the same folder, fsyncs it and ``os.replace``s it over the target, so a crash never leaves a
half-written LoRA where a WebUI would pick it up.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

# A header larger than this is not a LoRA we wrote (safetensors itself caps it at 100 MB).
MAX_HEADER_BYTES = 100_000_000


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


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable on POSIX; not supported (nor needed) on Windows.
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temp file in the same folder + fsync + ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)
    return path


def atomic_save_safetensors(
    path: str | os.PathLike[str], tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]
) -> None:
    """Save ``tensors`` with ``metadata`` to ``path`` atomically (temp file in the same folder, fsync, replace).

    Raises ValueError (naming the key) for a non-string metadata value, a non-tensor, or NaN/Inf.
    """
    from safetensors.torch import save_file

    path = Path(path)
    clean_metadata = validate_metadata(metadata, source=str(path))
    clean_tensors = validate_tensors(tensors, source=str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".safetensors.tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(clean_tensors, tmp_name, metadata=clean_metadata)
        with open(tmp_name, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def read_header(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """``(metadata, tensor_info)`` from the JSON header only (no tensor data is read).

    ``tensor_info[name]`` has ``dtype`` (safetensors spelling: "F16", "F32", "BF16"...), ``shape`` and
    ``data_offsets``. Metadata values are returned as found, so a checker can report non-strings.
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as handle:
        prefix = handle.read(8)
        if len(prefix) != 8:
            raise ValueError(f"{path}: not a safetensors file (shorter than its 8-byte header length)")
        n = int.from_bytes(prefix, "little")
        if n > min(MAX_HEADER_BYTES, size - 8):
            raise ValueError(f"{path}: not a safetensors file (header length {n} does not fit a {size}-byte file)")
        raw = handle.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: safetensors header is not valid JSON ({exc})") from exc
    if not isinstance(header, dict):
        raise ValueError(f"{path}: safetensors header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict):
        raise ValueError(f"{path}: __metadata__ is not a JSON object")
    return metadata, header


def load_tensors(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """All tensors of a safetensors file on the CPU."""
    from safetensors.torch import load_file

    return load_file(str(path), device="cpu")
