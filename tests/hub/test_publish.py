"""The training hook: ``push_to_hub = true`` checked before training and executed after it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from huggingface_hub import ModelCard

from textboost_ext.config.schema import TrainConfig
from textboost_ext.hub.publish import check_publish_config, publish_after_training, publish_from_config

factory = sys.modules["tests_hub_adapter_factory"]  # loaded by conftest.py (importlib import mode)


def test_check_before_training(hub_env, monkeypatch) -> None:  # noqa: ANN001
    check_publish_config(TrainConfig())  # push_to_hub off: nothing to check
    with pytest.raises(ValueError, match="hub_repo_id"):
        check_publish_config(TrainConfig(push_to_hub=True))
    with pytest.raises(ValueError, match="hub_repo_id: .*USER/REPO"):
        check_publish_config(TrainConfig(push_to_hub=True, hub_repo_id="no-namespace"))
    with pytest.raises(ValueError, match="no Hugging Face token"):
        check_publish_config(TrainConfig(push_to_hub=True, hub_repo_id="alice/corgi"))
    monkeypatch.setenv("HF_TOKEN", factory.SECRET)
    check_publish_config(TrainConfig(push_to_hub=True, hub_repo_id="alice/corgi"))


def test_publish_after_training_rewrites_the_card(adapter: Path, fake_hub, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("HF_TOKEN", factory.SECRET)
    (adapter / "README.md").write_text("---\nlicense: mit\n---\nstale card from an earlier run\n")
    url = publish_after_training(adapter, "alice/corgi", private=True, endpoint=fake_hub.endpoint)
    assert url.startswith(f"{fake_hub.endpoint}/alice/corgi/commit/")
    card = ModelCard(fake_hub.files("alice/corgi")["README.md"].decode())
    assert card.data.instance_prompt == "mycorgi" and 'load_lora_weights("alice/corgi"' in card.text
    assert fake_hub.repos["alice/corgi"].private is True


def test_publish_from_config(adapter: Path, fake_hub, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("HF_TOKEN", factory.SECRET)
    assert publish_from_config(adapter, TrainConfig()) is None and fake_hub.requests == []
    config = TrainConfig(push_to_hub=True, hub_repo_id="alice/corgi", hub_private=False)
    assert publish_from_config(adapter, config, endpoint=fake_hub.endpoint).startswith(fake_hub.endpoint)
    assert set(fake_hub.files("alice/corgi")) - {".gitattributes"} == factory.EXPECTED_UPLOAD
