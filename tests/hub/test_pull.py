"""pull_adapter against the fake Hub: round trip, atomic install, overwrite rules, verify."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from textboost_ext.hub.errors import AdapterExistsError, AdapterFormatError, HubError, VerifyFailedError
from textboost_ext.hub.pull import pull_adapter
from textboost_ext.hub.push import push_adapter
from textboost_ext.hub.store import list_adapters

factory = sys.modules["tests_hub_adapter_factory"]  # loaded by conftest.py (importlib import mode)
SECRET = factory.SECRET
HAS_VERIFY = importlib.util.find_spec("textboost_ext.export.verify") is not None
NO_VERIFY_REASON = "textboost_ext.export.verify is not written yet (another engineer's module)"


@pytest.fixture
def pushed(adapter: Path, fake_hub, monkeypatch) -> Path:  # noqa: ANN001
    monkeypatch.setenv("HF_TOKEN", SECRET)
    push_adapter(adapter, "alice/corgi", endpoint=fake_hub.endpoint)
    return adapter


def test_round_trip(pushed: Path, fake_hub, tmp_path: Path) -> None:  # noqa: ANN001
    root = tmp_path / "other_store"  # created on demand
    target = pull_adapter("alice/corgi", root, endpoint=fake_hub.endpoint, verify=False)
    assert target == root / "corgi"
    assert (target / "corgi.safetensors").read_bytes() == (pushed / "corgi.safetensors").read_bytes()
    got = factory.snapshot(target)
    assert set(got) == factory.EXPECTED_UPLOAD | {"manifest.json"}  # no .cache bookkeeping, no .gitattributes; complete
    assert all(got[rel] == (pushed / rel).read_bytes() for rel in got if rel != "manifest.json")
    assert [p.name for p in root.iterdir()] == ["corgi"]  # staging folder removed
    assert [i.name for i in list_adapters(root)] == ["corgi"]
    assert list_adapters(root)[0].short_hash == list_adapters(pushed.parent)[0].short_hash
    assert SECRET.encode() not in b"".join(got.values())
    assert set(fake_hub.routes_hit()) - {"GET /api/models/alice/corgi"} <= {
        "GET /api/models/alice/corgi/revision/main", "GET /api/models/alice/corgi/tree/main", f"GET /api/models/alice/corgi/tree/{fake_hub.repos['alice/corgi'].commits[-1].sha}",
        *(f"{m} /alice/corgi/resolve/{fake_hub.repos['alice/corgi'].commits[-1].sha}/{f}" for m in ("HEAD", "GET") for f in got),
        "POST /api/repos/create", "POST /api/validate-yaml", "POST /api/models/alice/corgi/preupload/main",
        "POST /api/models/alice/corgi/commit/main",
    }


def test_name_revision_exists_and_overwrite(pushed: Path, fake_hub, tmp_path: Path) -> None:  # noqa: ANN001
    root = tmp_path / "store2"
    first_sha = fake_hub.repos["alice/corgi"].commits[-1].sha
    renamed = pull_adapter("alice/corgi", root, endpoint=fake_hub.endpoint, name="my-dog", verify=False)
    assert renamed == root / "my-dog" and list_adapters(root)[0].name == "my-dog"
    with pytest.raises(AdapterExistsError, match="--overwrite"):
        pull_adapter("alice/corgi", root, endpoint=fake_hub.endpoint, name="my-dog", verify=False)
    # a newer commit replaces the old folder only with overwrite=True; an older revision can still be pulled
    (pushed / "corgi.json").write_text('{"activation text": "mycorgi", "preferred weight": 0.7}')
    push_adapter(pushed, "alice/corgi", endpoint=fake_hub.endpoint)
    (root / "my-dog" / "local-note.txt").write_text("old")
    pull_adapter("alice/corgi", root, endpoint=fake_hub.endpoint, name="my-dog", overwrite=True, verify=False)
    assert "0.7" in (root / "my-dog" / "corgi.json").read_text()
    assert not (root / "my-dog" / "local-note.txt").exists()  # replaced as a whole, not merged
    old = pull_adapter("alice/corgi", root, revision=first_sha, endpoint=fake_hub.endpoint, name="old", verify=False)
    assert "0.7" not in (old / "corgi.json").read_text()
    assert sorted(p.name for p in root.iterdir()) == ["my-dog", "old"]


def test_pull_failures(fake_hub, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("HF_TOKEN", SECRET)
    root = tmp_path / "store"
    with pytest.raises(HubError, match="pull of alice/missing failed") as err:
        pull_adapter("alice/missing", root, endpoint=fake_hub.endpoint, verify=False)
    assert err.value.retry_command == f"textboost-hub pull alice/missing --endpoint {fake_hub.endpoint}"
    assert SECRET not in str(err.value)
    assert list(root.iterdir()) == []  # staging cleaned up, nothing installed
    # a repo without a top-level LoRA is not an adapter
    from huggingface_hub import HfApi

    api = HfApi(endpoint=fake_hub.endpoint, token=SECRET)
    api.create_repo("alice/notes", exist_ok=True)
    api.upload_file(path_or_fileobj=b"just text", path_in_repo="notes.txt", repo_id="alice/notes")
    with pytest.raises(AdapterFormatError, match="no LoRA"):
        pull_adapter("alice/notes", root, endpoint=fake_hub.endpoint, verify=False)
    assert list(root.iterdir()) == []
    with pytest.raises(ValueError, match="plain folder name"):
        pull_adapter("alice/corgi", root, endpoint=fake_hub.endpoint, name="../escape")


@pytest.mark.skipif(not HAS_VERIFY, reason=NO_VERIFY_REASON)
def test_pull_runs_verify(fake_hub, store: Path, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """A file with SD 1.x shapes passes and is installed; a file whose shapes fit no family fails and is not."""
    monkeypatch.setenv("HF_TOKEN", SECRET)
    good = factory.make_adapter(store, factory.real_dims_sd1_state(), name="real", emb_width=768)
    push_adapter(good, "alice/real", endpoint=fake_hub.endpoint)
    root = tmp_path / "pulled"
    assert (pull_adapter("alice/real", root, endpoint=fake_hub.endpoint) / "real.safetensors").is_file()

    bad_state = factory.real_dims_sd1_state()
    for key in [k for k in bad_state if "_self_attn_out_proj." in k]:
        del bad_state[key]  # q/k/v without out_proj: A1111 skips it silently, diffusers cannot detect it
    bad = factory.make_adapter(store, bad_state, name="bad", emb_width=768)
    push_adapter(bad, "alice/bad", endpoint=fake_hub.endpoint)
    with pytest.raises(VerifyFailedError) as err:
        pull_adapter("alice/bad", root, endpoint=fake_hub.endpoint)
    assert "--no_verify" in str(err.value) and err.value.report.ok is False
    assert [c.name for c in err.value.report.failures()] == ["attention q/k/v/out together"]  # the intended reason
    assert err.value.report.format_table() in str(err.value)
    assert sorted(p.name for p in root.iterdir()) == ["real"]  # the failing adapter was not installed
    assert pull_adapter("alice/bad", root, endpoint=fake_hub.endpoint, verify=False).is_dir()
