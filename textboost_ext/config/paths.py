"""Input paths in a config: where relative paths are looked up, and whether they exist.

kohya resolves every relative path against the current folder, so a config only works from the
folder it was written for. We look in the current folder first (kohya's behaviour), then beside the
TOML file, so ``config_templates/demo.toml`` can say ``../examples/demo_subject`` and run from
anywhere. Paths that exist become absolute, so the resolved config saved beside an adapter still
points at the same files. Output folders (output_dir, logging_dir, adapters_dir) stay relative to
the current folder, as in kohya.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from textboost_ext.config.errors import Problems
from textboost_ext.config.schema import TrainConfig
from textboost_ext.config.options import BUILTIN_PREFIX

# field -> what it must be: "file", "dir" or "model" (file, diffusers folder, or a Hub id)
INPUT_PATHS = {
    "pretrained_model_name_or_path": "model",
    "vae": "file_or_dir",
    "dataset_config": "file",
    "train_data_dir": "dir",
    "network_weights": "file",
    "resume": "dir",
    "sample_prompts": "file",
    "preservation_prompts": "file",  # [textboost]
}
MODEL_FILE_SUFFIXES = (".safetensors", ".ckpt")
_HUB_ID_RE = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


def resolve_input_path(value: str, base_dir: Path | None) -> str:
    """Absolute path when ``value`` exists (current folder first, then ``base_dir``), else ``value`` unchanged."""
    if value.startswith(BUILTIN_PREFIX) or not value:
        return value
    path = Path(value).expanduser()
    if path.exists():
        return os.path.abspath(path)
    if base_dir is not None and not path.is_absolute() and (base_dir / path).exists():
        return os.path.abspath(base_dir / path)
    return value


def _get(cfg: TrainConfig, key: str) -> str | None:
    owner = cfg.textboost if key == "preservation_prompts" else cfg
    return getattr(owner, key)


def check_paths(cfg: TrainConfig, problems: Problems | None = None) -> None:
    """Check that every input path of ``cfg`` exists and has the right kind.

    The host calls this after :func:`load_config` (which validates without touching the disk, so
    templates with placeholder paths still validate). Raises :class:`ConfigError` listing every
    missing path unless ``problems`` collects them.
    """
    report = problems if problems is not None else Problems()
    where = "looked in the current folder, then beside the config file"
    for key, kind in INPUT_PATHS.items():
        value = _get(cfg, key)
        if value is None or value == "" or value.startswith(BUILTIN_PREFIX):
            continue
        path = Path(value).expanduser()
        if kind == "model":
            _check_model_path(key, value, path, report, where)
        elif key == "resume" and not path.exists() and _staged(path):
            continue  # the state of a run that was killed: still beside its (not yet existing) adapter folder
        elif not path.exists():
            report.at(key, f"{key} = {value!r}: no such {'folder' if kind == 'dir' else 'file'} ({where})")
        elif kind == "dir" and not path.is_dir():
            report.at(key, f"{key} = {value!r} is a file; it must be a folder")
        elif kind == "file" and not path.is_file():
            report.at(key, f"{key} = {value!r} is a folder; it must be a file")
    if problems is None:
        report.raise_if_any()


def _staged(path: Path) -> bool:
    from textboost_ext.hub.staging import staged_alternative

    return staged_alternative(path) is not None


def _check_model_path(key: str, value: str, path: Path, report: Problems, where: str) -> None:
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            report.at(key, f"{key} = {value!r} is a folder without model_index.json; point it at a diffusers model "
                      "folder or a single .safetensors checkpoint")
    elif path.is_file():
        if path.suffix.lower() not in MODEL_FILE_SUFFIXES:
            report.at(key, f"{key} = {value!r}: a single-file checkpoint must be .safetensors or .ckpt")
    elif path.suffix.lower() in MODEL_FILE_SUFFIXES or not _HUB_ID_RE.match(value):
        report.at(key, f"{key} = {value!r}: no such file or folder ({where})")
    # else: an "owner/name" Hub id, resolved by the model loader.
