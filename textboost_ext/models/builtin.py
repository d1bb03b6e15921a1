"""``builtin:`` bases, built once into a cache folder: ``tiny-*`` (random weights, for tests of every family's
code path) and ``toyworld`` (the pretrained toy base shipped in the package, see ``textboost_ext.toyworld``).

The cache root is ``$TEXTBOOST_CACHE_DIR`` or ``~/.cache/textboost_ext``; each model is a diffusers
folder there (``tiny-sd1`` ...), loaded through the same code as a user's folder. A model is built in
a hidden temporary folder beside it and renamed into place, so an interrupted build never leaves a
half-written model at the final path, and two processes building at once both end up with a whole one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from textboost_ext.models.errors import BaseModelError

# `pretrained_model_name_or_path = "builtin:<name>"`. The config layer validates against this table too,
# so this module stays free of torch (models.tiny is imported only when a model is built).
BUILTIN_PREFIX = "builtin:"
# name -> model family (tiny-*: see models.tiny.TINY_FAMILIES)
BUILTIN_MODELS = {"tiny-sd1": "sd1", "tiny-sd2": "sd2", "tiny-sd2v": "sd2v", "tiny-sdxl": "sdxl", "toyworld": "sd1"}
TOYWORLD = "toyworld"
CACHE_ENV = "TEXTBOOST_CACHE_DIR"


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "textboost_ext")


def is_builtin(path_or_id: str) -> bool:
    return path_or_id.startswith(BUILTIN_PREFIX)


def builtin_model_dir(path_or_id: str) -> Path:
    """The cached diffusers folder of ``builtin:<name>``, built on first use."""
    name = path_or_id[len(BUILTIN_PREFIX) :]
    if name not in BUILTIN_MODELS:
        choices = ", ".join(BUILTIN_PREFIX + n for n in BUILTIN_MODELS)
        raise BaseModelError(f"unknown built-in model {path_or_id!r}; choose one of {choices}")
    final = cache_root() / _cache_name(name)
    if (final / "model_index.json").is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{name}.building-", dir=final.parent))
    try:
        # save_tiny_model also writes tokenizer sources beside its target: keep both inside `building`.
        _build(name, building / "model")
        try:
            os.rename(building / "model", final)
        except OSError as e:
            if not (final / "model_index.json").is_file():  # not a concurrent build that won the race
                raise BaseModelError(f"{final} exists but is not a built model; delete it to rebuild") from e
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return final


def _cache_name(name: str) -> str:
    if name == TOYWORLD:  # one folder per shipped version: a new base is never served from an old cache
        from textboost_ext.toyworld.shipped import ShippedFileError, record_digest

        try:
            return f"{name}-{record_digest()}"
        except ShippedFileError as e:
            raise BaseModelError(str(e)) from e
    return name


def _build(name: str, directory: Path) -> None:
    if name == TOYWORLD:
        from textboost_ext.toyworld.shipped import ShippedFileError, materialize

        try:
            materialize(directory)
        except ShippedFileError as e:
            raise BaseModelError(str(e)) from e
        return
    from textboost_ext.models.tiny import save_tiny_model

    save_tiny_model(BUILTIN_MODELS[name], directory)
