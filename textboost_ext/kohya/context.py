"""sd-scripts' objects seen through our hook API: the config view and the model description.

The extension reads ``ctx.config`` with our ``TrainConfig`` names and ``ctx.model`` as a
:class:`~textboost_ext.models.types.LoadedModel`. Here both are thin adapters over sd-scripts' ``args``
namespace and the models its trainer loaded; nothing is copied that sd-scripts may still change
(``min_timestep``/``max_timestep`` are read live, so the validation pinning is visible).
"""

from __future__ import annotations

import argparse
from typing import Any

import torch

from textboost_ext.config.schema import TextBoostConfig
from textboost_ext.models.types import Family, LoadedModel

NUM_TRAIN_TIMESTEPS = 1000  # sd-scripts' DDPM schedule (train_network.get_noise_scheduler)
DEFAULT_RESOLUTION = (512, 512)
LAST_OUTPUT_NAME = "last"  # sd-scripts' file name when --output_name is not given
WEIGHT_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def parse_resolution(value: Any) -> tuple[int, int] | None:
    """sd-scripts' ``--resolution``: "512", "512,768", or the (w, h) tuple ``prepare_dataset_args`` makes."""
    if value is None:
        return None
    parts = [int(p) for p in value.split(",")] if isinstance(value, str) else [int(p) for p in value]
    if len(parts) == 1:
        return parts[0], parts[0]
    if len(parts) != 2:
        raise ValueError(f"--resolution {value!r}: expected 'size' or 'width,height'")
    return parts[0], parts[1]


def dataset_resolution(dataset_group: Any) -> tuple[int, int] | None:
    """The first dataset's (width, height), which a ``--dataset_config`` may set instead of ``--resolution``."""
    for dataset in getattr(dataset_group, "datasets", []) or []:
        width, height = getattr(dataset, "width", None), getattr(dataset, "height", None)
        if width and height:
            return int(width), int(height)
    return None


class KohyaConfigView:
    """``ctx.config`` for the extension: sd-scripts' ``args`` under our ``TrainConfig`` names.

    Attributes it does not define are read from (and written to) ``args``, so an extension forcing a
    setting (``network_train_text_encoder_only = True``) forces it for sd-scripts too.
    """

    def __init__(self, args: argparse.Namespace, textboost: TextBoostConfig,
                 fallback_resolution: tuple[int, int] | None = None) -> None:
        object.__setattr__(self, "_args", args)
        object.__setattr__(self, "textboost", textboost)
        object.__setattr__(self, "_fallback_resolution", fallback_resolution)

    @property
    def min_timestep(self) -> int:
        value = self._args.min_timestep
        return 0 if value is None else int(value)

    @property
    def max_timestep(self) -> int:
        value = self._args.max_timestep
        return NUM_TRAIN_TIMESTEPS if value is None else int(value)

    @property
    def resolution(self) -> tuple[int, int]:
        return parse_resolution(self._args.resolution) or self._fallback_resolution or DEFAULT_RESOLUTION

    @property
    def output_name(self) -> str:
        return self._args.output_name or LAST_OUTPUT_NAME

    @property
    def export_bundle(self) -> bool:
        return bool(getattr(self._args, "export_bundle", False))

    @property
    def clip_skip(self) -> int | None:
        return getattr(self._args, "clip_skip", None)

    @property
    def extension(self) -> str:
        return str(getattr(self._args, "extension", None) or "textboost")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._args, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._args, name, value)


def model_family(args: argparse.Namespace, is_sdxl: bool) -> Family:
    if is_sdxl:
        return "sdxl"
    return "sd2" if getattr(args, "v2", False) else "sd1"


def weight_dtype_of(args: argparse.Namespace) -> torch.dtype:
    return WEIGHT_DTYPES.get(str(getattr(args, "mixed_precision", "no")), torch.float32)


def describe_model(family: Family, tokenizers: list[Any], text_encoders: list[Any], unet: Any, vae: Any,
                   noise_scheduler: Any, v_parameterization: bool, source: str = "") -> LoadedModel:
    """A ``LoadedModel`` over sd-scripts' objects (the tokenizers are the tokenize strategy's own).

    sd-scripts keeps the prediction type in ``args.v_parameterization``, not in its scheduler; the
    scheduler given here is a private copy whose config is told, so ``is_v_prediction`` is right.
    """
    if v_parameterization:
        noise_scheduler.register_to_config(prediction_type="v_prediction")
    return LoadedModel(family=family, tokenizers=list(tokenizers), text_encoders=list(text_encoders), unet=unet,
                       vae=vae, noise_scheduler=noise_scheduler, source=source)
