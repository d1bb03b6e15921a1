"""A table of garbage given to ``convert`` / ``verify`` / ``inspect``: every one is refused with a short
message and a non-zero exit, never a traceback, never a hang (a FIFO), never a huge read (a sparse
multi-GB file), and ``convert`` never replaces or creates what it should not."""

from __future__ import annotations

import json
import os
import struct
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from textboost_ext.hub.cli import main as hub_main


def _safetensors(header: object, data: bytes = b"") -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


def _garbage(folder: Path, real_dims_sd1: Callable[..., Path]) -> dict[str, Path]:
    made: dict[str, Path] = {}

    def put(name: str, data: bytes) -> None:
        made[name] = folder / f"{name}.safetensors"
        made[name].write_bytes(data)

    put("empty", b"")
    put("random", os.urandom(4096))
    put("png", b"\x89PNG\r\n\x1a\n" + os.urandom(200))
    put("pickle", b"\x80\x04\x95" + os.urandom(100))  # looks like a torch .pt / pickle
    put("huge_header_length", struct.pack("<Q", 2**40) + b"{}")
    put("header_not_json", struct.pack("<Q", 10) + b"not json!!")
    put("header_array", _safetensors([1, 2, 3]))
    put("metadata_not_strings", _safetensors({"__metadata__": {"a": 1}}))
    put("unknown_dtype", _safetensors({"x": {"dtype": "Q99", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4))
    put("offsets_outside", _safetensors({"x": {"dtype": "F32", "shape": [1000], "data_offsets": [0, 4000]}}, b"\0" * 4))
    put("shape_mismatch", _safetensors({"x": {"dtype": "F32", "shape": [3], "data_offsets": [0, 4]}}, b"\0" * 4))
    put("wrong_keys", b"")
    save_file({"model.diffusion_model.x": torch.zeros(2)}, str(made["wrong_keys"]))
    good = real_dims_sd1(folder / "good.safetensors")
    put("truncated", good.read_bytes()[: good.stat().st_size // 2])
    sparse = folder / "sparse.safetensors"  # 3 GB on paper, nothing on disk
    with open(sparse, "wb") as handle:
        handle.write(_safetensors({"x": {"dtype": "U8", "shape": [3 * 1024**3], "data_offsets": [0, 3 * 1024**3]}}))
        handle.truncate(3 * 1024**3 + 200)
    made["sparse_3gb"] = sparse
    fifo = folder / "fifo.safetensors"
    os.mkfifo(fifo)
    made["fifo"] = fifo
    (folder / "a_folder.safetensors").mkdir()
    made["folder"] = folder / "a_folder.safetensors"
    made["missing"] = folder / "missing.safetensors"
    return made


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs")
def test_garbage_table(tmp_path: Path, capsys: pytest.CaptureFixture[str], real_dims_sd1: Callable[..., Path]) -> None:
    inputs = _garbage(tmp_path, real_dims_sd1)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    tried, accepted, tracebacks, seconds = 0, [], [], {}
    for label, path in inputs.items():
        for command in (["verify", str(path)], ["convert", str(path), str(out_dir / f"{label}.safetensors")],
                        ["inspect", str(path)]):
            tried += 1
            started = time.monotonic()
            try:
                code = hub_main(["--adapters_dir", str(tmp_path / "store"), *command])
            except BaseException as exc:  # noqa: BLE001 - a traceback is what this test is about
                tracebacks.append((label, command[0], repr(exc)))
                continue
            seconds[f"{label} {command[0]}"] = time.monotonic() - started
            captured = capsys.readouterr()
            said = captured.out + captured.err
            if code == 0 and not (label == "wrong_keys" and command[0] == "inspect"):  # a valid file, shown
                accepted.append((label, command[0]))
            elif code != 0 and (not said.strip() or "Traceback" in said):
                tracebacks.append((label, command[0], said[-500:]))
    with capsys.disabled():  # the counts go into the closing note
        print(f"\ngarbage inputs: tried {tried}, accepted {len(accepted)}, tracebacks {len(tracebacks)}")
    assert not tracebacks and not accepted, (tracebacks, accepted)
    assert max(seconds.values()) < 10, sorted(seconds.items(), key=lambda kv: -kv[1])[:3]  # no huge reads, no hang
    assert sorted(p.name for p in out_dir.iterdir()) == []  # convert wrote nothing for any of them


def test_convert_destination_rules(tmp_path: Path, capsys: pytest.CaptureFixture[str], real_dims_sd1: Callable[..., Path]) -> None:
    src = real_dims_sd1(tmp_path / "good.safetensors")
    unrelated = tmp_path / "b.safetensors"
    unrelated.write_bytes(b"someone else's file")
    assert hub_main(["convert", str(src), str(unrelated)]) == 1
    assert "already exists; pass --overwrite" in capsys.readouterr().err and unrelated.read_bytes() == b"someone else's file"
    assert hub_main(["convert", str(src), str(tmp_path / "no" / "such" / "dir" / "x.safetensors")]) == 1
    assert "does not exist; create it first" in capsys.readouterr().err and not (tmp_path / "no").exists()
    assert hub_main(["convert", str(src), str(tmp_path / "x.safetensors"), "--arch", "sdxl"]) == 1
    assert "--arch sdxl but the file is a sd1 LoRA" in capsys.readouterr().err
    assert hub_main(["convert", str(src), str(unrelated), "--overwrite", "--save_precision", "fp16"]) == 0
    assert unrelated.read_bytes()[:8] != b"someone "
    mode = unrelated.stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask  # like any file we create, not safetensors' private 0600


def test_verify_fails_on_an_incomplete_adapter(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               real_dims_sd1: Callable[..., Path]) -> None:
    from textboost_ext.hub.manifest import write_manifest

    store = tmp_path / "store"
    folder = store / "dog"
    folder.mkdir(parents=True)
    real_dims_sd1(folder / "dog.safetensors")
    (folder / "embeddings").mkdir()
    save_file({"emb_params": torch.zeros(1, 768)}, str(folder / "embeddings" / "tbdog.safetensors"))
    write_manifest(folder)
    assert hub_main(["--adapters_dir", str(store), "verify", "dog"]) == 0
    capsys.readouterr()
    (folder / "embeddings" / "tbdog.safetensors").unlink()  # killed between the LoRA and its embedding
    assert hub_main(["--adapters_dir", str(store), "verify", "dog"]) == 1
    assert "incomplete adapter: embeddings/tbdog.safetensors missing" in capsys.readouterr().out
    assert hub_main(["--adapters_dir", str(store), "list"]) == 0
    assert "dog: INCOMPLETE (embeddings/tbdog.safetensors missing)" in capsys.readouterr().out
