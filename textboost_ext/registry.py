"""Explicit extension registration, plus discovery through the ``textboost_ext.extensions`` entry point."""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points

from textboost_ext.hooks import TrainerExtension

ENTRY_POINT_GROUP = "textboost_ext.extensions"
_REGISTRY: dict[str, Callable[[], TrainerExtension]] = {"none": TrainerExtension}


def register_extension(name: str, factory: Callable[[], TrainerExtension]) -> None:
    if name in _REGISTRY and _REGISTRY[name] is not factory:
        raise ValueError(f"extension {name!r} is already registered")
    _REGISTRY[name] = factory


def available_extensions() -> list[str]:
    names = set(_REGISTRY)
    names.update(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))
    return sorted(names)


def create_extension(name: str) -> TrainerExtension:
    if name not in _REGISTRY:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.name == name:
                register_extension(name, ep.load())
                break
    if name not in _REGISTRY:
        raise ValueError(f"extension = {name!r} is not registered; available: {available_extensions()}")
    return _REGISTRY[name]()
