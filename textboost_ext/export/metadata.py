"""safetensors metadata for an exported LoRA: kohya ``ss_*``, our ``ss_textboost_*`` and SAI ``modelspec.*``.

Every value is a string (the safetensors header allows nothing else). Version keys are written twice on
purpose: A1111 reads ``ss_base_model_version``/``ss_v2``, Forge reads ``modelspec.architecture``; the
two must agree (compatibility checklist item 6). diffusers' ``lora_adapter_metadata`` key is never
written: diffusers then rejects the kohya file.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from textboost_ext.models.types import BASE_MODEL_VERSION

FAMILIES = ("sd1", "sd2", "sdxl")
# ss_network_module: the kohya module name, so sd-scripts tools (and the WebUIs that read it) treat the
# file as a plain kohya LoRA.
NETWORK_MODULE = "networks.lora"
SAI_MODEL_SPEC_VERSION = "1.0.0"
IMPL_DIFFUSERS = "diffusers"
IMPL_STABILITY = "https://github.com/Stability-AI/generative-models"
FORBIDDEN_METADATA_KEYS = ("lora_adapter_metadata",)
# the text-encoder layers the file adapts, per kohya prefix: {"lora_te1": "0-10", "lora_te2": "0-31"}
LORA_LAYERS_KEY = "ss_textboost_lora_layers"
_MODULE_LAYER = re.compile(r"^(lora_te\d?)_text_model_encoder_layers_(\d+)_")
_TEXTBOOST_KEY = re.compile(r"^[a-z0-9_]+$")


def base_model_version(family: str, v_prediction: bool) -> str:
    """kohya's ``ss_base_model_version``: sd_v1, sd_v2, sd_v2_v, sdxl_base_v1-0."""
    check_family(family)
    return BASE_MODEL_VERSION[(family, bool(v_prediction) and family == "sd2")]


def architecture_base(family: str, v_prediction: bool) -> str:
    """SAI model-spec architecture without the adapter suffix (``/lora`` or ``/textual-inversion``)."""
    check_family(family)
    if family == "sd1":
        return "stable-diffusion-v1"
    if family == "sd2":
        return "stable-diffusion-v2-768-v" if v_prediction else "stable-diffusion-v2-512"
    return "stable-diffusion-xl-v1-base"


def implementation(family: str) -> str:
    return IMPL_STABILITY if family == "sdxl" else IMPL_DIFFUSERS


def check_family(family: str) -> None:
    if family not in FAMILIES:
        raise ValueError(f"unknown base family {family!r}; expected one of {FAMILIES}")


def iso_date(timestamp: float | None) -> str:
    moment = datetime.now(timezone.utc) if timestamp is None else datetime.fromtimestamp(timestamp, tz=timezone.utc)
    return moment.isoformat(timespec="seconds")


@dataclass
class TrainingInfo:
    """Everything the export metadata records about one training run."""

    output_name: str
    family: str
    v_prediction: bool = False
    resolution: tuple[int, int] = (512, 512)
    network_dim: int = 4
    network_alpha: float = 4.0
    network_args: dict[str, Any] = field(default_factory=dict)
    sd_model_name: str = ""
    training_started_at: float | None = None
    training_finished_at: float | None = None
    steps: int = 0
    seed: int | None = None
    learning_rate: float | None = None
    text_encoder_lr: float | None = None
    optimizer: str = ""
    num_train_images: int = 0
    mixed_precision: str = "no"
    tag_frequency: dict[str, dict[str, int]] = field(default_factory=dict)
    dataset_dirs: dict[str, dict[str, int]] = field(default_factory=dict)
    training_comment: str | None = None
    trigger_phrase: str | None = None
    title: str | None = None
    textboost: dict[str, object] = field(default_factory=dict)


def _text(value: object) -> str:
    """kohya writes ``str(value)`` for scalars (None -> "None", True -> "True"); JSON for containers."""
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def _check_info(info: TrainingInfo) -> None:
    check_family(info.family)
    if not info.output_name or "/" in info.output_name or "\\" in info.output_name:
        raise ValueError(f"output_name {info.output_name!r} must be a non-empty file stem (no folders)")
    if len(info.resolution) != 2 or any(int(x) <= 0 for x in info.resolution):
        raise ValueError(f"resolution must be (width, height) > 0, got {info.resolution!r}")
    if int(info.network_dim) < 1 or float(info.network_alpha) <= 0:
        raise ValueError(f"network_dim must be >= 1 and network_alpha > 0, got {info.network_dim}/{info.network_alpha}")
    for key in info.textboost:
        if not _TEXTBOOST_KEY.match(key):
            raise ValueError(f"textboost metadata key {key!r}: use lower-case letters, digits and '_' only")


def build_metadata(info: TrainingInfo) -> dict[str, str]:
    """The full metadata dict (all values str) for a LoRA file named ``<info.output_name>.safetensors``."""
    _check_info(info)
    width, height = (int(x) for x in info.resolution)
    meta: dict[str, str] = {
        "ss_network_module": NETWORK_MODULE,
        "ss_network_dim": str(int(info.network_dim)),
        "ss_network_alpha": str(float(info.network_alpha)),
        "ss_network_args": json.dumps({k: str(v) for k, v in info.network_args.items()}, sort_keys=True),
        "ss_base_model_version": base_model_version(info.family, info.v_prediction),
        "ss_v2": str(info.family == "sd2"),
        "ss_output_name": info.output_name,
        "ss_sd_model_name": info.sd_model_name,
        "ss_training_started_at": _text(info.training_started_at),
        "ss_training_finished_at": _text(info.training_finished_at),
        "ss_steps": str(int(info.steps)),
        "ss_seed": _text(info.seed),
        "ss_learning_rate": _text(info.learning_rate),
        "ss_text_encoder_lr": _text(info.text_encoder_lr),
        "ss_optimizer": info.optimizer,
        "ss_num_train_images": str(int(info.num_train_images)),
        # kohya writes str(tuple): "(512, 512)"
        "ss_resolution": f"({width}, {height})",
        "ss_mixed_precision": info.mixed_precision,
        "ss_tag_frequency": json.dumps(info.tag_frequency, ensure_ascii=False),
        "ss_dataset_dirs": json.dumps(info.dataset_dirs, ensure_ascii=False),
        "ss_training_comment": _text(info.training_comment),
    }
    for key, value in info.textboost.items():
        meta[f"ss_textboost_{key}"] = _text(value)
    meta.update(modelspec(info, adapter="lora"))
    return meta


def modelspec(info: TrainingInfo, adapter: str = "lora") -> dict[str, str]:
    """SAI model spec keys (``adapter`` "lora" or "textual-inversion")."""
    check_family(info.family)
    width, height = (int(x) for x in info.resolution)
    timestamp = info.training_finished_at if info.training_finished_at is not None else info.training_started_at
    spec = {
        "modelspec.sai_model_spec": SAI_MODEL_SPEC_VERSION,
        "modelspec.architecture": f"{architecture_base(info.family, info.v_prediction)}/{adapter}",
        "modelspec.implementation": implementation(info.family),
        "modelspec.title": info.title or info.output_name,
        "modelspec.resolution": f"{width}x{height}",
        "modelspec.prediction_type": "v" if info.v_prediction else "epsilon",
        "modelspec.date": iso_date(timestamp),
    }
    if info.trigger_phrase:
        spec["modelspec.trigger_phrase"] = info.trigger_phrase
    return spec


def module_layer(name: str) -> tuple[str, int]:
    """``(prefix, layer index)`` of a kohya text-encoder module name ("lora_te1_text_model_encoder_layers_3_...")."""
    match = _MODULE_LAYER.match(name)
    if match is None:
        raise ValueError(f"{name!r} is not a kohya text-encoder module name")
    return match.group(1), int(match.group(2))


def lora_layers_value(module_names: list[str]) -> str:
    """``LORA_LAYERS_KEY``'s value for a file with these kohya module names (JSON; ranges like "0-10")."""
    layers: dict[str, set[int]] = {}
    for name in module_names:
        prefix, layer = module_layer(name)
        layers.setdefault(prefix, set()).add(layer)
    return json.dumps({prefix: _ranges(sorted(ids)) for prefix, ids in sorted(layers.items())}, sort_keys=True)


def _ranges(ids: list[int]) -> str:
    spans: list[list[int]] = []
    for i in ids:
        if spans and i == spans[-1][1] + 1:
            spans[-1][1] = i
        else:
            spans.append([i, i])
    return ",".join(f"{a}-{b}" if a != b else str(a) for a, b in spans)
