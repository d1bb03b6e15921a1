"""sshs_model_hash / sshs_legacy_hash: kohya's definitions, recomputed from files with hashlib."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import safetensors.torch
import torch

from textboost_ext.export.hashes import hash_metadata, kohya_hashes, legacy_hash, model_hash
from textboost_ext.export.safetensors_io import atomic_save_safetensors, read_header


def _tensors(seed: int = 0, big: bool = False) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    n = 300_000 if big else 10  # big: > 1 MiB of data so the legacy window holds tensor bytes
    return {
        "lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight": torch.randn(4, n, generator=g),
        "lora_te_text_model_encoder_layers_0_mlp_fc1.lora_up.weight": torch.randn(n, 4, generator=g).half(),
        "lora_te_text_model_encoder_layers_0_mlp_fc1.alpha": torch.tensor(4.0),
        "bundle": torch.randn(3, generator=g).bfloat16(),
    }


def _after_header(data: bytes) -> bytes:
    n = int.from_bytes(data[:8], "little")
    return data[8 + n:]


def test_model_hash_is_sha256_after_header() -> None:
    data = safetensors.torch.save(_tensors(), metadata={"ss_x": "1"})
    assert model_hash(data) == hashlib.sha256(_after_header(data)).hexdigest()


def test_tensor_bytes_do_not_depend_on_metadata() -> None:
    t = _tensors()
    variants = [safetensors.torch.save(t, metadata=m) for m in ({}, {"ss_a": "1"}, {"ss_a": "1", "modelspec.title": "x" * 333})]
    variants.append(safetensors.torch.save(t))  # no __metadata__ at all
    variants.append(safetensors.torch.save(dict(reversed(list(t.items()))), metadata={"b": "2"}))  # other insertion order
    headers = {int.from_bytes(v[:8], "little") for v in variants}
    assert len(headers) > 1 and all(h % 8 == 0 for h in headers)  # padding differs, data offsets are relative
    assert len({_after_header(v) for v in variants}) == 1


def test_legacy_hash_of_short_data_is_sha256_of_nothing() -> None:
    data = safetensors.torch.save(_tensors(), metadata={})
    assert len(data) < 0x100000
    assert legacy_hash(data) == hashlib.sha256(b"").hexdigest()[:8] == "e3b0c442"


def test_legacy_hash_window() -> None:
    data = safetensors.torch.save(_tensors(big=True), metadata={"ss_a": "1"})
    assert len(data) > 0x110000
    assert legacy_hash(data) == hashlib.sha256(data[0x100000:0x110000]).hexdigest()[:8]


@pytest.mark.parametrize("big", [False, True])
def test_kohya_hashes_match_the_saved_file(tmp_path: Path, big: bool) -> None:
    tensors = _tensors(big=big)
    metadata = {"ss_network_dim": "4", "ss_output_name": "f", "modelspec.title": "T", "other": "x"}
    mh, lh = kohya_hashes(tensors, metadata)
    path = tmp_path / "f.safetensors"
    atomic_save_safetensors(path, tensors, {**metadata, "sshs_model_hash": mh, "sshs_legacy_hash": lh})
    raw = path.read_bytes()
    # model hash: recomputed from the final file's bytes
    assert mh == model_hash(path) == hashlib.sha256(_after_header(raw)).hexdigest()
    # legacy hash: kohya's in-memory serialisation with only ss_* metadata (not the final header)
    only_ss = safetensors.torch.save(tensors, metadata={"ss_network_dim": "4", "ss_output_name": "f"})
    assert lh == hashlib.sha256(only_ss[0x100000:0x110000]).hexdigest()[:8]
    stored, _ = read_header(path)
    assert stored["sshs_model_hash"] == mh and stored["sshs_legacy_hash"] == lh


def test_hash_metadata_keeps_only_ss_keys() -> None:
    assert hash_metadata({"ss_a": "1", "sshs_model_hash": "h", "modelspec.x": "y", "ss_": "z"}) == {"ss_a": "1", "ss_": "z"}


def test_metadata_other_than_ss_does_not_change_hashes() -> None:
    t = _tensors(big=True)
    base = kohya_hashes(t, {"ss_a": "1"})
    assert kohya_hashes(t, {"ss_a": "1", "modelspec.title": "anything", "sshs_model_hash": "old"}) == base
    assert kohya_hashes(t, {"ss_a": "12"})[0] == base[0]  # model hash ignores metadata entirely
    assert kohya_hashes(t, {"ss_a": "1" * 20})[1] != base[1]  # legacy window shifts with the ss_* header
