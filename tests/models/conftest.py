"""Fixtures for the model-loading tests: tiny bases as diffusers folders and as A1111 single files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers.ldm_export import export_single_file
from textboost_ext.models.load import load_base_model
from textboost_ext.models.types import LoadedModel

FAMILIES = ("sd1", "sd2", "sd2v", "sdxl")


@pytest.fixture(scope="session")
def single_file(tiny_model_dir: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, str], Path]:
    """``single_file(family, ".safetensors"|".ckpt")`` -> the tiny model written in the A1111/LDM layout."""
    cache: dict[tuple[str, str], Path] = {}

    def get(family: str, suffix: str) -> Path:
        if (family, suffix) not in cache:
            out = tmp_path_factory.mktemp(f"ldm_{family}") / f"tiny-{family}{suffix}"
            cache[(family, suffix)] = export_single_file(tiny_model_dir(family), out)
        return cache[(family, suffix)]

    return get


@pytest.fixture(scope="session")
def folder_model(tiny_model_dir: Callable[[str], Path]) -> Callable[[str], LoadedModel]:
    """``folder_model(family)`` -> the tiny diffusers folder loaded by ``load_base_model`` (read-only: don't mutate)."""
    cache: dict[str, LoadedModel] = {}

    def get(family: str) -> LoadedModel:
        if family not in cache:
            cache[family] = load_base_model(str(tiny_model_dir(family)))
        return cache[family]

    return get
