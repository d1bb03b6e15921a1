"""Explicit extension registration, plus discovery through the ``textboost_ext.extensions`` entry point."""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points

from textboost_ext.hooks import TrainerExtension

ENTRY_POINT_GROUP = "textboost_ext.extensions"
_REGISTRY: dict[str, Callable[[], TrainerExtension]] = {"none": TrainerExtension}
# Built-in extensions, registered explicitly (imported on first use so that `import textboost_ext`
# stays light). Third-party extensions register through the entry point group instead.
_BUILTIN = {"textboost": ("textboost_ext.extension", "TextBoostExtension")}


def register_extension(name: str, factory: Callable[[], TrainerExtension]) -> None:
    if name in _REGISTRY and _REGISTRY[name] is not factory:
        raise ValueError(f"extension {name!r} is already registered")
    _REGISTRY[name] = factory


def available_extensions() -> list[str]:
    names = set(_REGISTRY) | set(_BUILTIN)
    names.update(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))
    return sorted(names)


def create_extension(name: str) -> TrainerExtension:
    if name not in _REGISTRY and name in _BUILTIN:
        import importlib

        module, attr = _BUILTIN[name]
        register_extension(name, getattr(importlib.import_module(module), attr))
    if name not in _REGISTRY:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.name == name:
                register_extension(name, ep.load())
                break
    if name not in _REGISTRY:
        raise ValueError(f"extension = {name!r} is not registered; available: {available_extensions()}")
    return _REGISTRY[name]()
