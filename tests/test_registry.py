"""Extension registration: explicit, discoverable through the entry point, clear errors."""

from __future__ import annotations

import pytest

from textboost_ext import registry
from textboost_ext.hooks import TrainerExtension


def test_builtin_and_entry_point_extensions_are_listed() -> None:
    names = registry.available_extensions()
    assert {"none", "textboost"} <= set(names)
    from importlib.metadata import entry_points

    assert "textboost" in {ep.name for ep in entry_points(group=registry.ENTRY_POINT_GROUP)}  # pyproject entry point


def test_create_textboost_and_none() -> None:
    from textboost_ext.extension import TextBoostExtension

    assert isinstance(registry.create_extension("textboost"), TextBoostExtension)
    assert type(registry.create_extension("none")) is TrainerExtension


def test_explicit_registration_and_duplicates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    class Mine(TrainerExtension):
        name = "mine"

    registry.register_extension("mine", Mine)
    assert isinstance(registry.create_extension("mine"), Mine)
    registry.register_extension("mine", Mine)  # the same factory again is fine
    with pytest.raises(ValueError, match="already registered"):
        registry.register_extension("mine", TrainerExtension)


def test_unknown_extension_names_the_available_ones() -> None:
    with pytest.raises(ValueError) as err:
        registry.create_extension("textbost")
    assert "textbost" in str(err.value) and "textboost" in str(err.value)
