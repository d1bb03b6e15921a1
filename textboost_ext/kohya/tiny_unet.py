"""Test support: let sd-scripts' SD 1.x/2.x UNet class load our tiny test models.

sd-scripts converts a diffusers UNet into ``library.original_unet.UNet2DConditionModel``, whose layout
comes from module constants with the full SD 1.x sizes, so a tiny diffusers UNet fails to load.
:func:`patch_original_unet_layout` sets those constants from the model's ``unet/config.json``. It
changes module globals for the whole process, so it runs only when ``TEXTBOOST_TEST_PATCH_UNET_LAYOUT=1``
(the integration tests set it for their sd-scripts subprocess); a real model never needs it. SDXL's
UNet class hard-codes its block structure and cannot be patched this way.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

PATCH_ENV = "TEXTBOOST_TEST_PATCH_UNET_LAYOUT"


def patch_requested() -> bool:
    return os.environ.get(PATCH_ENV, "") == "1"


def patch_original_unet_layout(unet_config: dict[str, Any], module: Any = None) -> None:
    """Make sd-scripts' SD 1.x/2.x UNet class build the layout a diffusers UNet config describes."""
    if module is None:
        from library import original_unet as module  # sd-scripts, on sys.path when this runs
    channels = tuple(int(c) for c in unet_config["block_out_channels"])
    groups = int(unet_config.get("norm_num_groups", 32))
    layers = int(unet_config.get("layers_per_block", 2))
    module.BLOCK_OUT_CHANNELS = channels
    module.TIMESTEP_INPUT_DIM = channels[0]
    module.TIME_EMBED_DIM = channels[0] * 4
    module.LAYERS_PER_BLOCK = layers
    module.LAYERS_PER_BLOCK_UP = layers + 1
    module.NORM_GROUPS = groups
    module.TRANSFORMER_NORM_NUM_GROUPS = groups  # diffusers uses norm_num_groups for the transformer norm too
    module.NORM_EPS = float(unet_config.get("norm_eps", 1e-5))
    module.DOWN_BLOCK_TYPES = list(unet_config["down_block_types"])
    module.UP_BLOCK_TYPES = list(unet_config["up_block_types"])


def patch_for_model(model_path: str | os.PathLike[str], is_sdxl: bool, module: Any = None) -> None:
    """Apply the patch for a diffusers folder (``<model>/unet/config.json``)."""
    if is_sdxl:
        raise ValueError(f"{PATCH_ENV}=1: sd-scripts' SDXL UNet class hard-codes its blocks; only SD 1.x/2.x tiny "
                         "models can be loaded this way")
    config_file = Path(model_path) / "unet" / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{PATCH_ENV}=1 needs a diffusers folder with unet/config.json; {config_file} is missing")
    patch_original_unet_layout(json.loads(config_file.read_text(encoding="utf-8")), module)
