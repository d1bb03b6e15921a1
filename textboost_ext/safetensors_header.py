"""A safetensors file's header and its tensor-data hashes, read without loading tensors (stdlib only).

Format: 8-byte little-endian header length ``n``, then ``n`` bytes of JSON: ``{"__metadata__": {str: str},
"<tensor>": {"dtype", "shape", "data_offsets"}, ...}``, then the tensor data.

Shared by the exporter (``textboost_ext.export``, which imports torch) and the adapter store
(``textboost_ext.hub``, which must not), so this module imports only the standard library.
The hashes are the sd-webui-additional-networks ones kohya stores as ``sshs_model_hash`` /
``sshs_legacy_hash`` (see ``textboost_ext.export.hashes`` for how kohya computes them at save time).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
from pathlib import Path
from typing import Any, BinaryIO

# safetensors itself refuses headers over 100 MB; real LoRA headers are a few hundred KiB at most, so a
# larger length means a random or truncated file: a clear error instead of a huge read.
MAX_HEADER_BYTES = 100_000_000
LEGACY_OFFSET = 0x100000
LEGACY_LENGTH = 0x10000
_BLOCK = 1024 * 1024

HashSource = str | os.PathLike[str] | bytes | bytearray | memoryview


class SafetensorsHeaderError(ValueError):
    """The file is not a readable safetensors file; the message names it and the fix."""


def read_raw_header(path: str | os.PathLike[str]) -> tuple[int, dict[str, Any], dict[str, Any]]:
    """``(header_length, metadata, tensor_table)`` of ``path`` as found in its JSON header.

    ``metadata`` values are NOT checked to be strings (a checker may want to report them);
    ``tensor_table[name]`` is the raw entry (``dtype``, ``shape``, ``data_offsets``). Raises
    ``SafetensorsHeaderError`` for a file that is not safetensors; ``OSError`` if it cannot be read.
    """
    path = Path(path)
    info = path.stat()
    if not stat.S_ISREG(info.st_mode):  # opening a FIFO would block forever; a folder is not a file
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file (a pipe, device or socket)"
        raise SafetensorsHeaderError(f"{path} is {kind}; give a .safetensors file")
    size = info.st_size
    with path.open("rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise SafetensorsHeaderError(
                f"{path}: not a safetensors file (only {size} bytes, shorter than the 8-byte header length); "
                "re-export or re-download it"
            )
        length = int.from_bytes(prefix, "little")
        if length > min(MAX_HEADER_BYTES, size - 8):
            raise SafetensorsHeaderError(
                f"{path}: not a safetensors file (header length {length} does not fit a {size}-byte file); "
                "the file is truncated or of another format: re-export or re-download it"
            )
        raw = handle.read(length)
    try:
        table = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SafetensorsHeaderError(f"{path}: safetensors header is not valid JSON ({err}); re-export the file") from err
    if not isinstance(table, dict):
        raise SafetensorsHeaderError(f"{path}: safetensors header is not a JSON object")
    metadata = table.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict):
        raise SafetensorsHeaderError(
            f"{path}: __metadata__ is not a JSON object (it must map strings to strings for A1111 and diffusers)"
        )
    return length, metadata, table


def _open(source: HashSource) -> BinaryIO:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return io.BytesIO(bytes(source))
    return open(source, "rb")


def model_hash(source: HashSource) -> str:
    """``sshs_model_hash``: sha256 hex of everything after the header (a file path or serialised bytes)."""
    with _open(source) as handle:
        prefix = handle.read(8)
        if len(prefix) != 8:
            raise SafetensorsHeaderError("not a safetensors serialisation: shorter than the 8-byte header length")
        handle.seek(int.from_bytes(prefix, "little") + 8)
        digest = hashlib.sha256()
        for block in iter(lambda: handle.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def legacy_hash(source: HashSource) -> str:
    """``sshs_legacy_hash``: first 8 hex chars of sha256 over the 0x10000 bytes at offset 0x100000
    (whatever exists there: fewer, possibly none, for a shorter file)."""
    with _open(source) as handle:
        handle.seek(LEGACY_OFFSET)
        window = handle.read(LEGACY_LENGTH)
    return hashlib.sha256(window).hexdigest()[:8]
