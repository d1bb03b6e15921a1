"""The adapter store: location precedence, reading metadata, listing, resolving names and paths."""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
import sys
from pathlib import Path

import pytest
from safetensors import safe_open

from textboost_ext.hub.errors import AdapterFormatError, AdapterNotFoundError
from textboost_ext.hub.header import read_header
from textboost_ext.hub.store import adapters_root, family_from_metadata, list_adapters, resolve_adapter, scan_adapters
from textboost_ext.safetensors_header import model_hash

factory = sys.modules["tests_hub_adapter_factory"]  # loaded by conftest.py (importlib import mode)


def test_adapters_root_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TEXTBOOST_ADAPTERS_DIR", raising=False)
    assert adapters_root() == tmp_path / "adapters"  # default: ./adapters of the working directory
    monkeypatch.setenv("TEXTBOOST_ADAPTERS_DIR", str(tmp_path / "from_env"))
    assert adapters_root() == tmp_path / "from_env"
    assert adapters_root(None) == tmp_path / "from_env"
    assert adapters_root("explicit") == tmp_path / "explicit"  # argument/config beats env; relative to CWD
    monkeypatch.setenv("TEXTBOOST_ADAPTERS_DIR", "rel_env")
    assert adapters_root() == tmp_path / "rel_env"
    assert adapters_root().is_absolute()


def test_header_matches_safetensors_and_hash_is_exact(adapter: Path) -> None:
    lora = adapter / "corgi.safetensors"
    header = read_header(lora)
    with safe_open(str(lora), framework="pt") as handle:
        assert header.metadata == handle.metadata()
        assert set(header.tensors) == set(handle.keys())
        name = "lora_te_text_model_encoder_layers_1_mlp_fc1.lora_down.weight"
        assert header.tensors[name].shape == tuple(handle.get_tensor(name).shape) == (4, 32)
    data = lora.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    assert model_hash(lora) == hashlib.sha256(data[8 + n:]).hexdigest() == header.metadata["sshs_model_hash"]


def test_list_reads_metadata(store: Path, adapter: Path, lora_states) -> None:  # noqa: ANN001
    factory.make_adapter(store, lora_states("sdxl"), name="xl", family="sdxl", token="myxl")
    factory.make_adapter(store, lora_states("sd2v"), name="v2", family="sd2v", token="myv")
    infos = {i.name: i for i in list_adapters(store)}
    assert sorted(infos) == ["corgi", "v2", "xl"]
    corgi = infos["corgi"]
    assert corgi.folder == adapter and corgi.lora_file == adapter / "corgi.safetensors"
    assert (corgi.family, corgi.trigger, corgi.rank) == ("sd1", "mycorgi", 4)
    assert corgi.size_bytes == (adapter / "corgi.safetensors").stat().st_size
    assert corgi.date == "2025-11-25T10:20:00+00:00"  # from ss_training_finished_at (unix time)
    assert corgi.short_hash == model_hash(adapter / "corgi.safetensors")[:12]
    assert corgi.alpha == 4.0
    assert [p.name for p in corgi.embedding_files] == ["mycorgi.safetensors"]
    assert (infos["xl"].family, infos["v2"].family) == ("sdxl", "sd2v")


def test_family_rules() -> None:
    assert family_from_metadata({"ss_base_model_version": "sdxl_base_v1-0"}) == "sdxl"
    assert family_from_metadata({"modelspec.architecture": "stable-diffusion-v2-512/lora"}) == "sd2"
    assert family_from_metadata({"ss_v2": "True", "ss_v_parameterization": "True"}) == "sd2v"
    assert family_from_metadata({}, ["lora_te2_text_model_encoder_layers_0_mlp_fc1.alpha"]) == "sdxl"
    assert family_from_metadata({}, ["lora_te_text_model_encoder_layers_0_mlp_fc1.alpha"]) is None


def test_trigger_falls_back_to_sidecar_then_embedding(store: Path, lora_states) -> None:  # noqa: ANN001
    meta = factory.lora_metadata("sd1", "plain", "tok")
    for key in ("modelspec.trigger_phrase", "ss_textboost_placeholder_token"):
        del meta[key]
    folder = factory.make_adapter(store, lora_states("sd1"), name="plain", token="tok", metadata=meta)
    (folder / "plain.json").write_text(json.dumps({"activation text": "tok dog"}))
    assert resolve_adapter("plain", store).trigger == "tok dog"
    (folder / "plain.json").unlink()
    assert resolve_adapter("plain", store).trigger == "tok"


def test_resolve_by_name_folder_file_and_renamed_folder(store: Path, adapter: Path, tmp_path: Path) -> None:
    assert resolve_adapter("corgi", store).lora_file == adapter / "corgi.safetensors"
    assert resolve_adapter(str(adapter), tmp_path / "elsewhere").name == "corgi"
    by_file = resolve_adapter(str(adapter / "corgi.safetensors"), tmp_path / "elsewhere")
    assert (by_file.name, by_file.folder) == ("corgi", adapter)
    checkpoint = resolve_adapter(str(adapter / "checkpoints" / "corgi-000100.safetensors"), store)
    assert checkpoint.name == "corgi-000100"
    renamed = store / "my-dog"  # pulled with --name: the file keeps its name (ss_output_name = stem)
    shutil.copytree(adapter, renamed)
    info = resolve_adapter("my-dog", store)
    assert (info.name, info.lora_file.name) == ("my-dog", "corgi.safetensors")


def test_not_found_lists_available_and_suggests(store: Path, adapter: Path) -> None:
    with pytest.raises(AdapterNotFoundError) as err:
        resolve_adapter("corgy", store)
    message = str(err.value)
    assert "corgy" in message and "did you mean 'corgi'" in message and "Available: corgi" in message
    with pytest.raises(AdapterNotFoundError, match="LoRA file not found"):
        resolve_adapter(str(store / "missing.safetensors"), store)
    with pytest.raises(AdapterNotFoundError, match="store is empty"):
        resolve_adapter("corgi", store / "empty")


def test_broken_file_named_and_scan_tolerates_it(store: Path, adapter: Path) -> None:
    broken = store / "broken"
    broken.mkdir()
    (broken / "broken.safetensors").write_bytes(b"\xff" * 64)
    (store / ".pull-x-123").mkdir()  # staging area of an interrupted pull: hidden, skipped
    shutil.copy(adapter / "corgi.safetensors", store / ".pull-x-123" / "x.safetensors")
    (store / "training").mkdir()  # no LoRA yet: not an adapter
    infos, problems = scan_adapters(store)
    assert [i.name for i in infos] == ["corgi"]
    assert [p.name for p, _ in problems] == ["broken"] and "broken.safetensors" in problems[0][1]
    with pytest.raises(AdapterFormatError, match="broken.safetensors"):
        list_adapters(store)
    with pytest.raises(AdapterFormatError, match="not a safetensors file"):
        read_header(broken / "broken.safetensors")


def test_non_string_metadata_rejected(tmp_path: Path) -> None:
    header = json.dumps({"__metadata__": {"ss_network_dim": 4}}).encode()
    path = tmp_path / "bad.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header)
    with pytest.raises(AdapterFormatError, match="strings to strings"):
        read_header(path)


def test_factory_matches_textboost_network() -> None:
    """The fast test LoRA has exactly the keys/shapes/dtypes that TextEncoderLoRA exports."""
    for family in ("sd1", "sdxl"):
        fast, real = factory.tiny_lora_state(family), factory.textboost_lora_state(family)
        assert {k: (tuple(v.shape), v.dtype) for k, v in fast.items()} == {k: (tuple(v.shape), v.dtype) for k, v in real.items()}
