"""Toy-world fixtures: the shipped base materialized once per session into a private cache, and the oracle."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from textboost_ext.models.builtin import CACHE_ENV


@pytest.fixture(scope="session")
def toy_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """``builtin:toyworld`` resolves into a session folder, never the user's cache."""
    old = os.environ.get(CACHE_ENV)
    root = tmp_path_factory.mktemp("toy_cache")
    os.environ[CACHE_ENV] = str(root)
    yield root
    if old is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = old


@pytest.fixture(scope="session")
def toy_pipe(toy_cache: Path) -> Any:
    from textboost_ext.toyworld.evaluate import load_toy_pipeline

    return load_toy_pipeline()


@pytest.fixture(scope="session")
def oracle() -> Any:
    from textboost_ext.toyworld.shipped import load_shipped_oracle

    return load_shipped_oracle()
