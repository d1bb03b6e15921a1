"""A hostile repo on the fake Hub: ``pull`` installs nothing it should not, and says why without a traceback.

Tried: path-traversal and control-character file names, a pickle whose unpickling would create a file
(beside a valid LoRA, and renamed to .safetensors), a huge declared header, a file that claims to be
many GB, non-LoRA keys, control characters in metadata. Every pull is also tried with --no_verify.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import struct
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save

from textboost_ext.hub.cli import main as hub_main

try:  # imported now, offline: on import it asks the Hub for its kernels, which the fake Hub would record
    import bitsandbytes  # noqa: F401
except ImportError:
    pass

factory = sys.modules["tests_hub_adapter_factory"]  # loaded by conftest.py (importlib import mode)
fake_hub_module = sys.modules["tests_hub_fake_hub"]


class _Planted:
    """Unpickling this creates a file: the proof that nothing unpickled it."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (open, (self.marker, "w"))


class _Declared(bytes):
    declared_size: int


def _huge(data: bytes, size: int) -> bytes:
    out = _Declared(data)
    out.declared_size = size
    return out


def _seed(hub: object, repo_id: str, files: dict[str, bytes]) -> None:
    repo = fake_hub_module.Repo(repo_id, private=False)
    repo.commits.append(fake_hub_module.Commit(hashlib.sha1(repo_id.encode()).hexdigest(), "evil", files))
    hub.repos[repo_id] = repo  # type: ignore[attr-defined]


def test_hostile_repos(fake_hub, tmp_path: Path, lora_states, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: ANN001
    marker = tmp_path / "UNPICKLED"
    meta = factory.lora_metadata("sd1", "evil", "tbevil")
    good_lora = save(lora_states("sd1"), metadata=meta)
    evil_meta = dict(meta, ss_training_comment="\x1b[2J\x1b]0;pwned\x07red \x1b[31mtext", ss_output_name="evil\x1b[1m")
    ansi_lora = save(lora_states("sd1"), metadata=evil_meta)
    pickled = pickle.dumps(_Planted(str(marker)))
    buffer = io.BytesIO()
    torch.save({"x": torch.zeros(1)}, buffer)
    repos = {
        "traversal": {"evil.safetensors": good_lora, "../escape.txt": b"x"},
        "traversal_deep": {"evil.safetensors": good_lora, "embeddings/../../escape.safetensors": good_lora},
        "control_name": {"evil.safetensors": good_lora, "notes\x1b[2J.txt": b"x"},
        "pickle_beside": {"evil.safetensors": good_lora, "pytorch_lora_weights.bin": pickled, "model.ckpt": pickled},
        "pickle_renamed": {"evil.safetensors": pickled},
        "torch_renamed": {"evil.safetensors": buffer.getvalue()},
        "huge_header": {"evil.safetensors": struct.pack("<Q", 2**40) + b"{}"},
        "multi_gb": {"evil.safetensors": _huge(good_lora, 5 * 1024**3)},
        "wrong_keys": {"evil.safetensors": save({"model.diffusion_model.w": torch.zeros(4)})},
        "ansi_metadata": {"evil.safetensors": ansi_lora, "evil.json": json.dumps({"activation text": "\x1b[5mblink"}).encode()},
    }
    for name, files in repos.items():
        _seed(fake_hub, f"mallory/{name}", files)
    root = tmp_path / "store"
    tried, accepted, tracebacks = 0, [], []
    for name in repos:
        for extra in ([], ["--no_verify"]):
            tried += 1
            args = ["--adapters_dir", str(root), "pull", f"mallory/{name}", "--endpoint", fake_hub.endpoint, "--name", name, *extra]
            try:
                code = hub_main(args)
            except BaseException as exc:  # noqa: BLE001
                tracebacks.append((name, extra, repr(exc)))
                continue
            said = capsys.readouterr()
            if "Traceback" in said.err:
                tracebacks.append((name, extra, said.err[-500:]))
            if code == 0:
                accepted.append((name, extra))
    installed = {p.name: sorted(q.relative_to(p).as_posix() for q in p.rglob("*") if q.is_file()) for p in root.iterdir()}
    # only the two harmless repos install, and only with --no_verify (their tiny LoRA does not fit the SD 1.5 they
    # name): the pickles stay on the Hub, the escape sequences are shown escaped
    assert sorted(accepted) == [("ansi_metadata", ["--no_verify"]), ("pickle_beside", ["--no_verify"])], accepted
    assert installed["pickle_beside"] == ["evil.safetensors", "manifest.json"]
    assert not marker.exists() and not (tmp_path / "escape.txt").exists() and not (root / "escape.txt").exists()
    assert sorted(installed) == ["ansi_metadata", "pickle_beside"]  # no .pull-* leftovers, nothing else
    hostile_accepted = [a for a in accepted if a[0] not in ("ansi_metadata", "pickle_beside")]
    with capsys.disabled():  # the counts go into the closing note
        print(f"\nhostile pulls: tried {tried}, accepted {len(hostile_accepted)} hostile, tracebacks {len(tracebacks)}")
    assert not tracebacks

    for command in (["list"], ["inspect", "ansi_metadata"], ["inspect", "ansi_metadata", "--json"]):
        hub_main(["--adapters_dir", str(root), *command])
        said = capsys.readouterr()
        assert "\x1b" not in said.out + said.err and "\x07" not in said.out + said.err, command


def test_size_limit_is_configurable_and_named(fake_hub, tmp_path: Path, lora_states, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: ANN001
    lora = save(lora_states("sd1"), metadata=factory.lora_metadata("sd1", "big", "tbbig"))
    _seed(fake_hub, "mallory/big", {"big.safetensors": lora})
    root = tmp_path / "store"
    code = hub_main(["--adapters_dir", str(root), "pull", "mallory/big", "--endpoint", fake_hub.endpoint, "--max_file_mb", "0.001"])
    err = capsys.readouterr().err
    assert code == 1 and "over the limit of 0 MB per file" in err and "--max_file_mb" in err
    assert not any("/resolve/" in route for route in fake_hub.routes_hit())  # refused before downloading anything
    assert not root.exists() or not any(root.iterdir())


def test_demo_adapter_round_trips_against_its_builtin_base(fake_hub, store: Path, tmp_path: Path, lora_states) -> None:  # noqa: ANN001
    """An adapter trained on a built-in tiny base is verified against that base (not real SD 1.x sizes)."""
    from textboost_ext.hub.pull import pull_adapter
    from textboost_ext.hub.push import push_adapter

    meta = dict(factory.lora_metadata("sd1", "demo", "tbdemo"), ss_sd_model_name="builtin:tiny-sd1")
    folder = factory.make_adapter(store, lora_states("sd1"), name="demo", token="tbdemo", metadata=meta)
    push_adapter(folder, "alice/demo", endpoint=fake_hub.endpoint, token=factory.SECRET, allow_demo=True)
    pulled = pull_adapter("alice/demo", tmp_path / "other", endpoint=fake_hub.endpoint)  # verified
    for name in ("demo.safetensors", "embeddings/tbdemo.safetensors", "demo.json", "README.md"):
        assert (pulled / name).read_bytes() == (folder / name).read_bytes(), name
