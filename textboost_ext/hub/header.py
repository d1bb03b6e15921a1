"""The adapter store's typed view of a safetensors header: string metadata and a tensor table.

Reads only the header bytes, never the tensors, so listing a store of many adapters stays cheap.
Parsing lives in ``textboost_ext.safetensors_header`` (shared with the exporter); this module adds
the stricter checks the store needs (string-only metadata, well-formed entries) and reports every
problem as ``AdapterFormatError`` naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from textboost_ext.hub.errors import AdapterFormatError
from textboost_ext.safetensors_header import SafetensorsHeaderError, read_raw_header


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
        length, metadata, table = read_raw_header(path)
    except OSError as err:
        raise AdapterFormatError(f"{path}: cannot read ({err.strerror or err})") from err
    except SafetensorsHeaderError as err:
        raise AdapterFormatError(str(err)) from err
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise AdapterFormatError(f"{path}: __metadata__ must map strings to strings (A1111 and diffusers require it)")
    tensors: dict[str, TensorEntry] = {}
    for name, entry in table.items():
        try:
            start, end = entry["data_offsets"]
            tensors[name] = TensorEntry(str(entry["dtype"]), tuple(int(d) for d in entry["shape"]), int(end) - int(start))
        except (TypeError, KeyError, ValueError) as err:
            raise AdapterFormatError(f"{path}: malformed entry for tensor {name!r} in the header ({err!r})") from err
    return SafetensorsHeader(path, length, dict(metadata), tensors)
