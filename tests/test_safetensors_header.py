"""The torch-free safetensors header reader and file hashes shared by the exporter and the adapter store."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from textboost_ext.safetensors_header import SafetensorsHeaderError, legacy_hash, model_hash, read_raw_header


def _write(path: Path, table: dict, data: bytes) -> bytes:
    header = json.dumps(table).encode()
    header += b" " * (-len(header) % 8)
    raw = len(header).to_bytes(8, "little") + header + data
    path.write_bytes(raw)
    return raw


def test_raw_header_and_hashes_of_a_file(tmp_path: Path) -> None:
    table = {"__metadata__": {"ss_a": "1", "n": 2}, "x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}
    raw = _write(tmp_path / "a.safetensors", table, b"\x01" * 8)
    length, metadata, tensors = read_raw_header(tmp_path / "a.safetensors")
    assert raw[8 + length:] == b"\x01" * 8
    assert metadata == {"ss_a": "1", "n": 2}  # as found: checking value types is the caller's business
    assert tensors == {"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}
    assert model_hash(tmp_path / "a.safetensors") == model_hash(raw) == hashlib.sha256(b"\x01" * 8).hexdigest()
    assert legacy_hash(raw) == hashlib.sha256(b"").hexdigest()[:8]  # shorter than 0x100000 bytes


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\x01\x02", "not a safetensors file"),
        ((10**6).to_bytes(8, "little") + b"{}", "header length"),
        ((8).to_bytes(8, "little") + b"not json", "not valid JSON"),
        ((2).to_bytes(8, "little") + b"[]", "not a JSON object"),
        ((22).to_bytes(8, "little") + b'{"__metadata__": [1]} ', "must map strings to strings"),
    ],
)
def test_not_safetensors_is_a_clear_error_naming_the_file(tmp_path: Path, raw: bytes, message: str) -> None:
    (tmp_path / "bad.safetensors").write_bytes(raw)
    with pytest.raises(SafetensorsHeaderError, match=message) as info:
        read_raw_header(tmp_path / "bad.safetensors")
    assert "bad.safetensors" in str(info.value) and isinstance(info.value, ValueError)


def test_imports_no_torch() -> None:
    code = "import sys, textboost_ext.safetensors_header, textboost_ext.atomic_write; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
