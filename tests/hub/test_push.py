"""push_adapter against a fake Hub on 127.0.0.1: what arrives, what never leaves, and failures."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest
from huggingface_hub import ModelCard

from textboost_ext.hub.errors import HubError
from textboost_ext.hub.push import push_adapter, upload_plan

factory = sys.modules["tests_hub_adapter_factory"]  # loaded by conftest.py (importlib import mode)
fake_hub_module = sys.modules["tests_hub_fake_hub"]
SECRET = factory.SECRET
UPLOAD_ROUTES = {"POST /api/repos/create", "POST /api/validate-yaml", "POST /api/models/alice/corgi/preupload/main",
                 "POST /api/models/alice/corgi/commit/main", "GET /api/models/alice/corgi"}


@pytest.fixture
def hub_logs(caplog: pytest.LogCaptureFixture):  # noqa: ANN201
    """Capture huggingface_hub's own logger (it does not propagate) at DEBUG, plus ours."""
    hf_logger = logging.getLogger("huggingface_hub")
    hf_logger.addHandler(caplog.handler)
    old_level = hf_logger.level
    hf_logger.setLevel(logging.DEBUG)
    caplog.set_level(logging.DEBUG)
    yield caplog
    hf_logger.removeHandler(caplog.handler)
    hf_logger.setLevel(old_level)


def test_push_uploads_exactly_the_adapter(adapter: Path, fake_hub, monkeypatch, capsys, hub_logs) -> None:  # noqa: ANN001
    monkeypatch.setenv("HF_TOKEN", SECRET)
    url = push_adapter(adapter, "alice/corgi", private=True, endpoint=fake_hub.endpoint)

    files = fake_hub.files("alice/corgi")
    assert files.pop(".gitattributes") == fake_hub_module.GITATTRIBUTES  # from repo creation
    assert set(files) == factory.EXPECTED_UPLOAD  # no state/, logs/, checkpoints/, .env
    assert set(upload_plan(adapter)[0]) == factory.EXPECTED_UPLOAD
    for rel, data in files.items():
        assert data == (adapter / rel).read_bytes(), rel
    repo = fake_hub.repos["alice/corgi"]
    assert repo.private is True
    create = next(r for r in fake_hub.requests if r.path == "/api/repos/create")
    assert json.loads(create.body)["visibility"] == "private"
    assert url == f"{fake_hub.endpoint}/alice/corgi/commit/{repo.commits[-1].sha}"
    assert set(fake_hub.routes_hit()) <= UPLOAD_ROUTES  # no whoami, no telemetry, nothing else

    card = ModelCard(files["README.md"].decode())
    assert card.data.instance_prompt == "mycorgi" and "template:sd-lora" in card.data.tags
    assert 'pipe.load_lora_weights("alice/corgi"' in card.text  # generated for this repo before upload

    # the token authenticated every request, and appears nowhere else
    assert all(r.headers.get("authorization") == f"Bearer {SECRET}" for r in fake_hub.requests)
    assert SECRET.encode() not in fake_hub.all_request_bytes()
    assert all(SECRET.encode() not in data for data in files.values())
    out = capsys.readouterr()
    assert SECRET not in out.out + out.err
    assert SECRET not in hub_logs.text and "alice/corgi" in hub_logs.text  # the logs were captured


def test_public_by_default_and_private_on_existing_public_repo_refused(adapter: Path, fake_hub, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("HF_TOKEN", SECRET)
    push_adapter(adapter, "alice/corgi", endpoint=fake_hub.endpoint)
    assert fake_hub.repos["alice/corgi"].private is False
    commits = len(fake_hub.repos["alice/corgi"].commits)
    (adapter / "corgi.json").write_text('{"activation text": "mycorgi", "preferred weight": 0.8}')
    with pytest.raises(HubError, match="already exists and is public") as err:
        push_adapter(adapter, "alice/corgi", private=True, endpoint=fake_hub.endpoint)
    assert "--private" in err.value.retry_command
    assert len(fake_hub.repos["alice/corgi"].commits) == commits  # nothing uploaded


def test_push_twice_updates(adapter: Path, fake_hub, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("HF_TOKEN", SECRET)
    first = push_adapter(adapter, "alice/corgi", endpoint=fake_hub.endpoint)
    again = push_adapter(adapter, "alice/corgi", endpoint=fake_hub.endpoint)  # nothing changed: no empty commit
    assert again == first and len(fake_hub.repos["alice/corgi"].commits) == 2  # creation + first push
    factory.write_lora(adapter / "corgi.safetensors", factory.tiny_lora_state("sd1", seed=7),
                       factory.lora_metadata("sd1", "corgi", "mycorgi", ss_steps="500"))
    (adapter / "samples" / "extra.png").write_bytes(factory.png_bytes((1, 2, 3)))
    second = push_adapter(adapter, "alice/corgi", endpoint=fake_hub.endpoint, regenerate_card=True)
    assert second != first and len(fake_hub.repos["alice/corgi"].commits) == 3
    files = fake_hub.files("alice/corgi")
    assert files["corgi.safetensors"] == (adapter / "corgi.safetensors").read_bytes()
    assert "samples/extra.png" in files
    assert "| steps | 500 |" in files["README.md"].decode()
    assert fake_hub.files("alice/corgi", fake_hub.repos["alice/corgi"].commits[1].sha)["corgi.safetensors"] != files["corgi.safetensors"]


@pytest.mark.parametrize("mode", ["500-echo", "drop"])
def test_failed_upload_is_a_clear_error_and_leaves_the_folder(adapter: Path, fake_hub, monkeypatch, capsys, hub_logs, mode: str) -> None:  # noqa: ANN001
    monkeypatch.setenv("HF_TOKEN", SECRET)
    (adapter / "README.md").write_text("---\nlicense: mit\n---\n# my own card\n")
    before = factory.snapshot(adapter)
    fake_hub.fail("commit", mode)
    with pytest.raises(HubError) as err:
        push_adapter(adapter, "alice/corgi", endpoint=fake_hub.endpoint)
    message = str(err.value)
    assert err.value.stage == "uploading files"
    assert "failed while uploading files" in message and "was not changed" in message
    retry = f"textboost-hub push {adapter} --repo_id alice/corgi --endpoint {fake_hub.endpoint}"
    assert err.value.retry_command == retry and retry in message
    assert ("500" in message) if mode == "500-echo" else ("disconnected" in message.lower())
    assert SECRET not in message and SECRET not in repr(err.value.__context__) and err.value.__cause__ is None
    if mode == "500-echo":
        assert "Bearer ***" in message  # the server echoed the token: scrubbed
    assert factory.snapshot(adapter) == before  # byte-identical, nothing added or removed
    assert len(fake_hub.repos["alice/corgi"].commits) == 1  # only the creation commit
    out = capsys.readouterr()
    assert SECRET not in out.out + out.err + hub_logs.text
    # the retry (the same call) succeeds once the Hub is back
    push_adapter(adapter, "alice/corgi", endpoint=fake_hub.endpoint)
    assert fake_hub.files("alice/corgi")["README.md"] == before["README.md"]  # an existing card is kept


def test_no_token_fails_before_any_request(adapter: Path, fake_hub) -> None:  # noqa: ANN001
    with pytest.raises(HubError, match="hf auth login") as err:
        push_adapter(adapter, "alice/corgi", endpoint=fake_hub.endpoint)
    assert err.value.stage == "auth" and fake_hub.requests == []


def test_token_in_an_uploadable_file_blocks_the_push(adapter: Path, fake_hub, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("HF_TOKEN", SECRET)
    (adapter / "training_config.toml").write_text(f'hub_token = "{SECRET}"\n')
    with pytest.raises(HubError, match="training_config.toml") as err:
        push_adapter(adapter, "alice/corgi", endpoint=fake_hub.endpoint)
    assert SECRET not in str(err.value) and fake_hub.requests == []
    # a token-shaped string that is not ours is caught too
    (adapter / "training_config.toml").write_text('note = "hf_' + "a1B2" * 9 + '"\n')
    with pytest.raises(HubError, match="contain"):
        push_adapter(adapter, "alice/corgi", token="hf_other_token_value", endpoint=fake_hub.endpoint)


def test_explicit_token_beats_env(adapter: Path, fake_hub, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("HF_TOKEN", "hf_from_env_not_used")
    push_adapter(adapter, "alice/corgi", token=SECRET, endpoint=fake_hub.endpoint)
    assert {r.headers.get("authorization") for r in fake_hub.requests} == {f"Bearer {SECRET}"}


def test_bad_repo_id(adapter: Path, hub_env) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match="USER/REPO"):
        push_adapter(adapter, "just-a-name", token=SECRET, endpoint="http://127.0.0.1:9")


def test_uploaded_card_names_the_repo_and_config_holds_no_local_paths(adapter: Path, fake_hub, monkeypatch) -> None:  # noqa: ANN001
    from textboost_ext.hub.card import write_model_card

    monkeypatch.setenv("HF_TOKEN", SECRET)
    write_model_card(adapter)  # as training writes it: before any repo id is known
    assert "<your-username>/corgi" in (adapter / "README.md").read_text()
    config = adapter / "training_config.toml"
    local = ('pretrained_model_name_or_path = "/home/alice/models/v1-5-pruned.safetensors"\n'
             'train_data_dir = "/home/alice/private/dog_photos"\nsample_prompts = "/home/alice/prompts.txt"\n'
             'vae = "stabilityai/sd-vae-ft-mse"\n')
    before = local + config.read_text()
    config.write_text(before)
    push_adapter(adapter, "alice/corgi", endpoint=fake_hub.endpoint)
    files = fake_hub.files("alice/corgi")
    card, uploaded = files["README.md"].decode(), files["training_config.toml"].decode()
    assert "<your-username>" not in card and 'pipe.load_lora_weights("alice/corgi"' in card
    assert "/home/alice" not in uploaded and "alice" not in uploaded.split("[textboost]")[0].replace("alice/corgi", "")
    assert 'pretrained_model_name_or_path = "v1-5-pruned.safetensors"' in uploaded
    assert 'train_data_dir = "dog_photos"' in uploaded and 'sample_prompts = "prompts.txt"' in uploaded
    assert 'vae = "stabilityai/sd-vae-ft-mse"' in uploaded  # a Hub id is kept
    assert config.read_text() == before  # the local folder is unchanged


def test_demo_adapter_card_names_no_base_and_push_needs_allow_demo(store: Path, lora_states, fake_hub, monkeypatch) -> None:  # noqa: ANN001
    from huggingface_hub import ModelCard

    from textboost_ext.hub.card import write_model_card

    monkeypatch.setenv("HF_TOKEN", SECRET)
    metadata = factory.lora_metadata("sd1", "demo", "mycorgi") | {"ss_sd_model_name": "builtin:tiny-sd1"}
    folder = factory.make_adapter(store, lora_states("sd1"), name="demo", metadata=metadata)
    card = ModelCard((write_model_card(folder)).read_text())
    assert card.data.base_model is None and "demo" in card.data.tags
    with pytest.raises(HubError, match="demo adapter .* --allow_demo") as err:
        push_adapter(folder, "alice/demo", endpoint=fake_hub.endpoint)
    assert "alice/demo" not in fake_hub.repos and err.value.retry_command.endswith("--allow_demo")
    push_adapter(folder, "alice/demo", endpoint=fake_hub.endpoint, allow_demo=True)
    assert "demo.safetensors" in fake_hub.files("alice/demo")


def test_push_to_hub_with_a_builtin_model_is_refused_before_training() -> None:
    from textboost_ext.config import TrainConfig
    from textboost_ext.hub.publish import check_publish_config

    with pytest.raises(ValueError, match="tiny random-weight demo model"):
        check_publish_config(TrainConfig(pretrained_model_name_or_path="builtin:tiny-sd1", push_to_hub=True,
                                         hub_repo_id="alice/demo"))
