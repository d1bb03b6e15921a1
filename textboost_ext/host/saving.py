"""Writing the usable outputs of a run: the kohya LoRA file (with provenance metadata) and its sidecars.

Every save (intermediate or final) goes through :func:`write_lora`: metadata from the run
(:func:`training_info`), ``extension.update_metadata``, the checked kohya writer, then
``extension.on_save`` for the files that belong beside the LoRA (e.g. the trained embedding).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from textboost_ext.export.lora_file import save_precision_dtype, write_lora_file
from textboost_ext.export.metadata import LORA_LAYERS_KEY, TrainingInfo, build_metadata, lora_layers_value
from textboost_ext.export.sidecars import FAMILY_TO_SD_VERSION, write_preview, write_user_metadata_json
from textboost_ext.faultpoints import pause_point
from textboost_ext.host import dataset as data
from textboost_ext.hooks import HostContext, TrainerExtension


def optimizer_description(optimizer: torch.optim.Optimizer, optimizer_args: Sequence[str]) -> str:
    """kohya's ``ss_optimizer``: the class path, with the user's optimizer_args in parentheses."""
    inner = getattr(optimizer, "optimizer", optimizer)  # unwrap accelerate's AcceleratedOptimizer
    name = f"{type(inner).__module__}.{type(inner).__name__}"
    return f"{name}({','.join(optimizer_args)})" if optimizer_args else name


def training_info(
    config: Any, model: Any, resolution_wh: tuple[int, int], items: Sequence[data.ImageItem], *, file_stem: str,
    steps: int, started_at: float, optimizer: str, trigger_phrase: str | None,
    tag_frequency: dict[str, dict[str, int]] | None = None,
) -> TrainingInfo:
    """What the LoRA file's metadata records; ``file_stem`` is the file's own name (A1111's alias)."""
    import time

    return TrainingInfo(
        output_name=file_stem,
        family=model.family,
        v_prediction=model.is_v_prediction,
        resolution=resolution_wh,
        network_dim=config.network_dim,
        network_alpha=config.network_alpha,
        network_args={"lora_targets": ",".join(config.textboost.lora_targets)},
        sd_model_name=os.path.basename(str(config.pretrained_model_name_or_path).rstrip("/\\")),
        training_started_at=started_at,
        training_finished_at=time.time(),  # of this save, as kohya
        steps=steps,
        seed=config.seed,
        learning_rate=config.learning_rate,
        text_encoder_lr=config.text_encoder_lr or config.learning_rate,
        optimizer=optimizer,
        num_train_images=len(items),
        mixed_precision=config.mixed_precision,
        # the words of the captions trained, when the host counted them; else the dataset's caption tags
        tag_frequency=tag_frequency if tag_frequency is not None else data.tag_frequency(items),
        dataset_dirs=data.dataset_summary(items),
        training_comment=config.training_comment,
        trigger_phrase=trigger_phrase,
    )


def write_lora(
    path: Path, network: Any, info: TrainingInfo, extension: TrainerExtension, ctx: HostContext, save_precision: str
) -> list[Path]:
    """The kohya LoRA at ``path`` with metadata; returns the files the extension wrote beside it."""
    save_dtype = save_precision_dtype(save_precision)
    metadata = build_metadata(info)
    metadata[LORA_LAYERS_KEY] = lora_layers_value(network.module_names())
    extension.update_metadata(ctx, metadata)
    write_lora_file(path, network.kohya_state_dict(torch.float32), metadata, save_dtype)
    pause_point("lora-written")  # fault tests: the LoRA is there, its embedding not yet
    return list(extension.on_save(ctx, path, save_dtype))


def write_sidecars(lora_path: Path, family: str, trigger_phrase: str | None, preview: Path | None, description: str) -> list[Path]:
    """A1111's ``<stem>.json`` (activation text = the trigger) and ``<stem>.preview.png`` (a sample)."""
    sd_version = FAMILY_TO_SD_VERSION[family]
    written = [write_user_metadata_json(lora_path, activation_text=trigger_phrase or "", sd_version=sd_version, description=description)]
    if preview is not None:
        written.append(write_preview(lora_path, preview))
    return written
