"""Fixtures of the hub tests: adapter folders and a fake Hub on 127.0.0.1 (never the public network)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest


def _load(name: str) -> ModuleType:
    """Import a helper next to this file (pytest runs with --import-mode=importlib: no sys.path entry)."""
    qualified = f"tests_hub_{name}"
    if qualified not in sys.modules:
        spec = importlib.util.spec_from_file_location(qualified, Path(__file__).with_name(f"{name}.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[qualified] = module  # dataclasses look their module up by name
        spec.loader.exec_module(module)
    return sys.modules[qualified]


_UNREACHABLE = "http://127.0.0.1:9"
fake_hub_module = _load("fake_hub")
factory = _load("adapter_factory")


@pytest.fixture(scope="session")
def lora_states() -> Callable[[str], dict]:
    """``lora_states(family)`` -> kohya state dict of a tiny TextEncoderLoRA (built once per family)."""
    cache: dict[str, dict] = {}

    def get(family: str) -> dict:
        if family not in cache:
            cache[family] = factory.tiny_lora_state(family)
        return cache[family]

    return get


@pytest.fixture
def store(tmp_path: Path) -> Path:
    root = tmp_path / "adapters"
    root.mkdir()
    return root


@pytest.fixture
def adapter(store: Path, lora_states: Callable[[str], dict]) -> Path:
    """``<store>/corgi``: a complete SD 1.x adapter folder (no README.md yet)."""
    return factory.make_adapter(store, lora_states("sd1"))


@pytest.fixture
def hub_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """huggingface_hub configured for loopback tests: online, no telemetry, no xet, no user token or cache.

    conftest.py at the top sets HF_HUB_OFFLINE=1 for the whole suite; the hub tests talk to a local
    server only, so they switch the already-imported constants back on. The default ENDPOINT points at
    a closed loopback port (here) or at the fake (``fake_hub``), so a request without ``endpoint=`` is
    refused or recorded instead of leaving the machine.
    """
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    # a stray request without ``endpoint=`` is refused on the loopback discard port, never sent out
    monkeypatch.setattr(constants, "ENDPOINT", _UNREACHABLE)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", _UNREACHABLE + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-stored-token"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE", "TEXTBOOST_ADAPTERS_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    yield


@pytest.fixture
def fake_hub(hub_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    from huggingface_hub import constants

    hub = fake_hub_module.FakeHub().start()
    # huggingface_hub builds file URLs from a template fixed at import and swaps in ``endpoint=`` only
    # when the URL starts with ENDPOINT: both must move together.
    monkeypatch.setattr(constants, "ENDPOINT", hub.endpoint)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.endpoint + "/{repo_id}/resolve/{revision}/{filename}")
    try:
        yield hub
    finally:
        hub.stop()
    assert hub.unknown_routes == [], f"requests the fake Hub does not serve: {hub.unknown_routes}"
