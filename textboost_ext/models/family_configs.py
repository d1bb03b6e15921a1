"""The released families' diffusers configs, shipped as JSON package data under ``configs/``.

They are facts about the released checkpoints (SD 1.5, SD 2.1 base / 768-v, SDXL base 1.0), used to
build the config folder that diffusers' ``from_single_file(config=...)`` needs offline; sizes that a
checkpoint's tensors reveal are then overridden from its shapes (see ``ldm_layout``).
"""

from __future__ import annotations

import copy
import json
from functools import lru_cache
from importlib import resources
from typing import Any

from textboost_ext.models.types import Family

BASE_CONFIG_FILES = {
    "sd15": "sd15.json",
    "sd21-base": "sd21-base.json",
    "sd21-768-v": "sd21-768-v.json",
    "sdxl-base": "sdxl-base.json",
}


@lru_cache(maxsize=None)
def _read(name: str) -> str:
    return resources.files("textboost_ext.models").joinpath("configs", BASE_CONFIG_FILES[name]).read_text("utf-8")


def base_config(name: str) -> dict[str, Any]:
    """A fresh copy of one released base's configs: ``unet``, ``vae``, ``text_encoder``[``_2``],
    ``tokenizer``[``_2``] (pad token, max length) and ``scheduler``."""
    if name not in BASE_CONFIG_FILES:
        raise KeyError(f"unknown base config {name!r}; choose one of {sorted(BASE_CONFIG_FILES)}")
    return copy.deepcopy(json.loads(_read(name)))


def base_config_name(family: Family, v_prediction: bool) -> str:
    """The released base whose configs a single file of this family starts from."""
    if family == "sd1":
        return "sd15"
    if family == "sd2":
        # 2.1-768-v and 2.1-base share every tensor shape; only the prediction type (and the
        # nominal sample size) tell them apart, and a single file records neither.
        return "sd21-768-v" if v_prediction else "sd21-base"
    return "sdxl-base"
