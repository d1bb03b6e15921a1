"""Checks on a safetensors file given to us (``convert``, ``verify``, ``pull``) before anything loads it
(stdlib only): a regular file (a FIFO would block forever), not empty, not absurdly large, and a
header whose every tensor entry is consistent (known dtype, sane shape, offsets that tile the data
area exactly). Reading only the header, so a multi-GB or hostile file costs a few KB of reading.
"""

from __future__ import annotations

import math
import os
import stat
from pathlib import Path

from textboost_ext.safetensors_header import SafetensorsHeaderError, read_raw_header

# A text-encoder LoRA is at most a few hundred MB (rank 128 on SDXL's two encoders in fp32); an embedding KBs.
MAX_LORA_BYTES = 2 * 1024**3
# LoRA headers are tens of KB (hundreds of tensors); anything far beyond is not a LoRA header.
MAX_HEADER_BYTES = 16 * 1024**2
MAX_TENSORS = 100_000
DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
               "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}


def check_safetensors_file(path: str | os.PathLike[str], max_bytes: int = MAX_LORA_BYTES) -> None:
    """Raise ``SafetensorsHeaderError`` (a ValueError) naming ``path`` and the problem; return if it looks sound."""
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    if stat.S_ISDIR(info.st_mode):
        raise SafetensorsHeaderError(f"{path} is a folder; give a .safetensors file")
    if not stat.S_ISREG(info.st_mode):
        raise SafetensorsHeaderError(f"{path} is not a regular file (a pipe, device or socket); give a .safetensors file")
    if info.st_size == 0:
        raise SafetensorsHeaderError(f"{path} is empty (0 bytes); re-export or re-download it")
    if info.st_size > max_bytes:
        raise SafetensorsHeaderError(
            f"{path} is {info.st_size / 1024**3:.1f} GB, far larger than a text-encoder LoRA (at most "
            f"{max_bytes / 1024**3:.0f} GB); is it a full checkpoint?"
        )
    length, _, table = read_raw_header(path)
    if length > MAX_HEADER_BYTES:
        raise SafetensorsHeaderError(f"{path}: a {length}-byte header is absurd for a LoRA; the file is not one")
    if len(table) > MAX_TENSORS:
        raise SafetensorsHeaderError(f"{path}: {len(table)} tensors is absurd for a LoRA; the file is not one")
    data_size = info.st_size - 8 - length
    spans = []
    for name, entry in table.items():
        where = f"{path}: tensor {name[:80]!r}"
        if not isinstance(entry, dict) or entry.get("dtype") not in DTYPE_BYTES:
            raise SafetensorsHeaderError(f"{where} has no known dtype; the header is damaged")
        shape, offsets = entry.get("shape"), entry.get("data_offsets")
        if not isinstance(shape, list) or len(shape) > 8 or not all(isinstance(d, int) and 0 <= d < 2**40 for d in shape):
            raise SafetensorsHeaderError(f"{where} has an impossible shape; the header is damaged")
        if (not isinstance(offsets, list) or len(offsets) != 2 or not all(isinstance(o, int) for o in offsets)
                or not 0 <= offsets[0] <= offsets[1] <= data_size):
            raise SafetensorsHeaderError(f"{where} points outside the file; the file is truncated or damaged")
        if offsets[1] - offsets[0] != math.prod(shape) * DTYPE_BYTES[entry["dtype"]]:
            raise SafetensorsHeaderError(f"{where}: its byte range does not match its shape and dtype; the header is damaged")
        spans.append(offsets)
    end = 0
    for start, stop in sorted(spans):
        if start != end:
            raise SafetensorsHeaderError(f"{path}: tensor data overlaps or has gaps; the file is damaged")
        end = stop
    if end != data_size:
        raise SafetensorsHeaderError(f"{path}: {data_size - end} bytes after the last tensor; the file is damaged")
