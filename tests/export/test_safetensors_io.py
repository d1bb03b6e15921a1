"""Atomic safetensors writing and cheap header reading."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from textboost_ext.export.safetensors_io import atomic_save_safetensors, read_header


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_roundtrip_and_header(tmp_path: Path) -> None:
    path = tmp_path / "a.safetensors"
    tensors = {"x": torch.arange(6, dtype=torch.float32).reshape(2, 3), "y": torch.tensor(2.0, dtype=torch.float16)}
    atomic_save_safetensors(path, tensors, {"ss_a": "1", "k": "v"})
    loaded = load_file(str(path))
    assert torch.equal(loaded["x"], tensors["x"]) and loaded["y"].dtype == torch.float16
    metadata, info = read_header(path)
    assert metadata == {"ss_a": "1", "k": "v"}
    assert info["x"]["shape"] == [2, 3] and info["x"]["dtype"] == "F32" and info["y"]["shape"] == []
    assert _leftovers(tmp_path) == []


def test_non_contiguous_tensor_is_written_contiguous(tmp_path: Path) -> None:
    t = torch.arange(12, dtype=torch.float32).reshape(3, 4).t()
    assert not t.is_contiguous()
    atomic_save_safetensors(tmp_path / "c.safetensors", {"t": t}, {})
    assert torch.equal(load_file(str(tmp_path / "c.safetensors"))["t"], t)


@pytest.mark.parametrize("value", [4, 1.5, None, True, ["a"]])
def test_non_string_metadata_names_the_key(tmp_path: Path, value: object) -> None:
    path = tmp_path / "m.safetensors"
    with pytest.raises(ValueError, match="ss_network_dim"):
        atomic_save_safetensors(path, {"x": torch.zeros(1)}, {"ok": "1", "ss_network_dim": value})  # type: ignore[dict-item]
    assert not path.exists() and _leftovers(tmp_path) == []


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_tensor_names_the_key(tmp_path: Path, bad: float) -> None:
    path = tmp_path / "n.safetensors"
    t = torch.ones(3)
    t[1] = bad
    with pytest.raises(ValueError, match=r"lora_te_x\.lora_up\.weight.*(NaN|Inf)"):
        atomic_save_safetensors(path, {"ok": torch.ones(2), "lora_te_x.lora_up.weight": t}, {})
    assert not path.exists() and _leftovers(tmp_path) == []


def test_failed_write_keeps_the_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "keep.safetensors"
    atomic_save_safetensors(path, {"x": torch.ones(2)}, {"v": "1"})
    before = path.read_bytes()
    shared = torch.zeros(4)
    # safetensors refuses tensors that share memory: the error happens while the temp file is written
    with pytest.raises(Exception):
        atomic_save_safetensors(path, {"a": shared, "b": shared[:2]}, {"v": "2"})
    assert path.read_bytes() == before
    assert _leftovers(tmp_path) == []


def test_read_header_rejects_garbage(tmp_path: Path) -> None:
    (tmp_path / "short.safetensors").write_bytes(b"\x01\x02")
    with pytest.raises(ValueError, match="not a safetensors file"):
        read_header(tmp_path / "short.safetensors")
    (tmp_path / "long.safetensors").write_bytes((10**6).to_bytes(8, "little") + b"{}")
    with pytest.raises(ValueError, match="header length"):
        read_header(tmp_path / "long.safetensors")
    body = b"not json"
    (tmp_path / "bad.safetensors").write_bytes(len(body).to_bytes(8, "little") + body)
    with pytest.raises(ValueError, match="not valid JSON"):
        read_header(tmp_path / "bad.safetensors")


def test_read_header_reports_non_string_metadata_as_found(tmp_path: Path) -> None:
    header = json.dumps({"__metadata__": {"a": 1}, "x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    header += b" " * (-len(header) % 8)
    (tmp_path / "h.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + b"\x00" * 4)
    metadata, info = read_header(tmp_path / "h.safetensors")
    assert metadata == {"a": 1} and "x" in info
