"""Read a safetensors header (metadata + tensor table) and compute the kohya/A1111 file hashes.

Reads only the header bytes, never the tensors, so listing a store of many adapters stays cheap.
Format: 8-byte little-endian header length ``n``, then ``n`` bytes of JSON: ``{"__metadata__": {str: str},
"<tensor>": {"dtype", "shape", "data_offsets"}, ...}``, then the tensor data.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass
from pathlib import Path

from textboost_ext.hub.errors import AdapterFormatError

# Headers of real LoRA files are a few hundred KiB at most (metadata with tag frequencies, cover images);
# refusing absurd lengths turns a random or truncated file into a clear error instead of a huge read.
MAX_HEADER_BYTES = 100 * 1024 * 1024


@dataclass(frozen=True)
class TensorEntry:
    dtype: str
    shape: tuple[int, ...]
    nbytes: int


@dataclass(frozen=True)
class SafetensorsHeader:
    path: Path
    header_length: int
    metadata: dict[str, str]
    tensors: dict[str, TensorEntry]


def read_header(path: str | Path) -> SafetensorsHeader:
    """Parse the header of ``path``; raise ``AdapterFormatError`` naming the file if it is not safetensors."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            prefix = handle.read(8)
            if len(prefix) < 8:
                raise AdapterFormatError(f"{path}: not a safetensors file (only {size} bytes); re-export or re-download it")
            (length,) = struct.unpack("<Q", prefix)
            if length > min(MAX_HEADER_BYTES, size - 8):
                raise AdapterFormatError(
                    f"{path}: not a safetensors file (header length {length} does not fit a {size}-byte file); "
                    "the file is truncated or of another format: re-export or re-download it"
                )
            raw = handle.read(length)
    except OSError as err:
        raise AdapterFormatError(f"{path}: cannot read ({err.strerror or err})") from err
    try:
        table = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise AdapterFormatError(f"{path}: safetensors header is not valid JSON ({err}); re-export the file") from err
    if not isinstance(table, dict):
        raise AdapterFormatError(f"{path}: safetensors header must be a JSON object")
    metadata = table.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise AdapterFormatError(f"{path}: __metadata__ must map strings to strings (A1111 and diffusers require it)")
    tensors: dict[str, TensorEntry] = {}
    for name, entry in table.items():
        try:
            start, end = entry["data_offsets"]
            tensors[name] = TensorEntry(str(entry["dtype"]), tuple(int(d) for d in entry["shape"]), int(end) - int(start))
        except (TypeError, KeyError, ValueError) as err:
            raise AdapterFormatError(f"{path}: malformed entry for tensor {name!r} in the header ({err!r})") from err
    return SafetensorsHeader(path, length, dict(metadata), tensors)


def model_hash(path: str | Path) -> str:
    """``sshs_model_hash``: SHA-256 (hex) of the bytes after the header, i.e. of the tensor data only."""
    path = Path(path)
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        handle.seek(8 + length)
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def legacy_hash(path: str | Path) -> str:
    """``sshs_legacy_hash``: first 8 hex chars of SHA-256 over the 0x10000 bytes at offset 0x100000."""
    with Path(path).open("rb") as handle:
        handle.seek(0x100000)
        return hashlib.sha256(handle.read(0x10000)).hexdigest()[:8]
