"""The last step of resolving a config, once its dataset is known: what training will really use.

Both the entry script (so ``--dry_run`` shows and the run saves the same config) and the trainer's setup
call :func:`finalize_config`; it is idempotent.

- A dataset TOML's ``batch_size`` / ``resolution`` win over the top level (kohya's rule): they are written
  into the config, with a notice when they differ.
- kohya's epochs become steps: one epoch = every image x its repeats once, in batches of the batch size,
  ``gradient_accumulation_steps`` batches per optimizer step (kohya's count). ``max_train_epochs`` replaces
  ``max_train_steps`` (as in kohya); ``save_every_n_epochs`` / ``sample_every_n_epochs`` become the
  ``*_n_steps`` options. The epoch keys are then cleared, so the saved config holds the steps it trained.
- The model family comes from the model itself where it can be read without loading it (a single
  ``.safetensors`` file's tensor names, a diffusers folder's ``model_index.json``): the loader detects it
  anyway, so an SDXL file without ``sdxl = true`` trains as SDXL; the config now says so too.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from textboost_ext.config.dataset import DatasetSpec, list_images
from textboost_ext.config.schema import TrainConfig


def steps_per_epoch(spec: DatasetSpec, gradient_accumulation_steps: int) -> int:
    images = sum(len(list_images(s.image_dir)) * s.num_repeats for s in spec.subsets if s.image_dir.is_dir())
    return max(1, math.ceil(math.ceil(images / spec.batch_size) / gradient_accumulation_steps))


def detected_family(model: str) -> str | None:
    """``"sdxl"`` / ``"sd2"`` / ``"sd1"`` read from a local model without loading it; None when unknown."""
    from textboost_ext.models.detect import detect_single_file_family
    from textboost_ext.models.errors import BaseModelError
    from textboost_ext.safetensors_header import SafetensorsHeaderError, read_raw_header

    path = Path(model)
    try:
        if path.is_file() and path.suffix == ".safetensors":
            return detect_single_file_family(list(read_raw_header(path)[2]), str(path))
        if (path / "model_index.json").is_file():
            index = json.loads((path / "model_index.json").read_text())
            return "sdxl" if isinstance(index.get("text_encoder_2"), list) and index["text_encoder_2"][0] else None
    except (OSError, ValueError, SafetensorsHeaderError, BaseModelError):
        return None  # the loader reports a broken model with its own message
    return None


def finalize_config(cfg: TrainConfig, spec: DatasetSpec) -> list[str]:
    """Apply the dataset's settings and convert epochs to steps in place; returns one-line notices."""
    notices = []
    family = detected_family(cfg.pretrained_model_name_or_path)
    if family == "sdxl" and not cfg.sdxl:
        cfg.sdxl, cfg.v2 = True, False
        notices.append(f"{cfg.pretrained_model_name_or_path} is an SDXL model (read from the file): training as SDXL "
                       "(sdxl = true); set it in the config to silence this note")
    elif family == "sd2" and not cfg.v2 and not cfg.sdxl:
        cfg.v2 = True
        notices.append(f"{cfg.pretrained_model_name_or_path} is an SD 2.x model (read from the file): v2 = true; "
                       "for a 768-v model also set v_parameterization = true")
    if cfg.dataset_config and (cfg.train_batch_size, tuple(cfg.resolution[:2])) != (spec.batch_size, spec.resolution):
        notices.append(f"{cfg.dataset_config} sets batch_size {spec.batch_size} and resolution "
                       f"{spec.resolution[0]}x{spec.resolution[1]}; they replace the top-level train_batch_size "
                       f"{cfg.train_batch_size} / resolution {cfg.resolution}")
    cfg.train_batch_size, cfg.resolution = spec.batch_size, list(spec.resolution)
    conversions = [(k, s) for k, s in (("max_train_epochs", "max_train_steps"), ("save_every_n_epochs", "save_every_n_steps"),
                                       ("sample_every_n_epochs", "sample_every_n_steps")) if getattr(cfg, k) is not None]
    if conversions:
        per_epoch = steps_per_epoch(spec, cfg.gradient_accumulation_steps)
        done = []
        for epochs_key, steps_key in conversions:
            epochs = getattr(cfg, epochs_key)
            setattr(cfg, steps_key, epochs * per_epoch)
            setattr(cfg, epochs_key, None)
            done.append(f"{epochs_key} {epochs} -> {steps_key} {epochs * per_epoch}")
        notices.append(f"epochs converted to steps ({per_epoch} step(s) per epoch: images x repeats / batch "
                       f"{spec.batch_size} / accumulation {cfg.gradient_accumulation_steps}): " + ", ".join(done))
    return notices
