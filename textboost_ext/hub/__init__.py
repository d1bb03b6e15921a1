"""Adapter store and Hugging Face Hub tooling (the ``textboost-hub`` CLI lives in ``hub.cli``).

- ``store``: where the store is (``adapters_root``), ``AdapterInfo``, ``list_adapters``, ``resolve_adapter``.
- ``card``: ``render_model_card`` / ``write_model_card`` (README.md with Hub front matter).
- ``samples``: ``samples/index.json`` (``append_to_index`` for the trainer, ``read_samples`` for the card).
- ``push`` / ``pull``: ``push_adapter`` / ``pull_adapter``; ``publish``: the ``push_to_hub = true`` hook.

Names are imported lazily so ``import textboost_ext.hub.store`` stays free of huggingface_hub.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "adapters_root": "store", "AdapterInfo": "store", "list_adapters": "store", "resolve_adapter": "store",
    "render_model_card": "card", "write_model_card": "card",
    "record_sample": "samples", "append_to_index": "samples", "read_samples": "samples",
    "push_adapter": "push", "pull_adapter": "pull",
    "publish_after_training": "publish", "check_publish_config": "publish", "publish_from_config": "publish",
    "HubError": "errors", "VerifyFailedError": "errors", "AdapterStoreError": "errors",
    "AdapterNotFoundError": "errors", "AdapterExistsError": "errors", "AdapterFormatError": "errors",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'textboost_ext.hub' has no attribute {name!r}")
    return getattr(importlib.import_module(f"textboost_ext.hub.{_EXPORTS[name]}"), name)
