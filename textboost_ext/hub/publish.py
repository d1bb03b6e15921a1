"""Training-side hook: push the finished adapter when the training TOML says ``push_to_hub = true``.

Call ``check_publish_config(config)`` before training (no network: fails fast on a missing
``hub_repo_id`` or token, instead of after hours of training) and ``publish_from_config(adapter_dir,
config)`` after the adapter is saved. A failed upload raises ``HubError``; the adapter is already saved
then, and the message holds the command that retries the upload alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from textboost_ext.hub.auth import resolve_token
from textboost_ext.hub.card import write_model_card
from textboost_ext.hub.push import check_repo_id, push_adapter

if TYPE_CHECKING:
    from textboost_ext.config.schema import TrainConfig


def publish_after_training(
    adapter_dir: str | Path, repo_id: str, private: bool = False, endpoint: str | None = None, token: str | None = None
) -> str:
    """Rewrite the model card for this run (it names ``repo_id`` in its code) and push; return the commit URL."""
    check_repo_id(repo_id)
    write_model_card(adapter_dir, repo_id=repo_id)
    return push_adapter(adapter_dir, repo_id, private=private, token=token, endpoint=endpoint)


def check_publish_config(config: "TrainConfig", token: str | None = None) -> None:
    """Raise ValueError naming the key when ``push_to_hub = true`` cannot work; do nothing otherwise."""
    if not config.push_to_hub:
        return
    if config.pretrained_model_name_or_path.startswith("builtin:"):
        raise ValueError(f"push_to_hub = true with {config.pretrained_model_name_or_path}, a tiny random-weight demo "
                         "model: its adapter loads into no real model. Set push_to_hub = false (to publish the demo anyway: "
                         "textboost-hub push NAME --repo_id USER/REPO --allow_demo)")
    if not config.hub_repo_id:
        raise ValueError("push_to_hub = true needs hub_repo_id = \"USER/REPO\" in the training TOML (or set push_to_hub = false)")
    try:
        check_repo_id(config.hub_repo_id)
    except ValueError as err:
        raise ValueError(f"hub_repo_id: {err}") from None
    if not resolve_token(token):
        raise ValueError("push_to_hub = true but no Hugging Face token: run `hf auth login` or set HF_TOKEN before training")


def publish_from_config(adapter_dir: str | Path, config: "TrainConfig", endpoint: str | None = None) -> str | None:
    """Push when ``config.push_to_hub``; return the commit URL, or None when pushing is off."""
    if not config.push_to_hub:
        return None
    check_publish_config(config)
    assert config.hub_repo_id is not None  # checked above
    return publish_after_training(adapter_dir, config.hub_repo_id, private=config.hub_private, endpoint=endpoint)
