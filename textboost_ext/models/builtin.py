"""``builtin:tiny-*`` bases: tiny random-weight models built once into a cache folder.

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
# name -> tiny family (see models.tiny.TINY_FAMILIES)
BUILTIN_MODELS = {"tiny-sd1": "sd1", "tiny-sd2": "sd2", "tiny-sd2v": "sd2v", "tiny-sdxl": "sdxl"}
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
    final = cache_root() / name
    if (final / "model_index.json").is_file():
        return final
    from textboost_ext.models.tiny import save_tiny_model

    final.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{name}.building-", dir=final.parent))
    try:
        # save_tiny_model also writes tokenizer sources beside its target: keep both inside `building`.
        save_tiny_model(BUILTIN_MODELS[name], building / "model")
        try:
            os.rename(building / "model", final)
        except OSError as e:
            if not (final / "model_index.json").is_file():  # not a concurrent build that won the race
                raise BaseModelError(f"{final} exists but is not a built model; delete it to rebuild") from e
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return final
