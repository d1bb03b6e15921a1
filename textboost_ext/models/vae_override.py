"""A replacement VAE (kohya's ``--vae``): a diffusers VAE folder, a pipeline folder, or an LDM VAE file."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from textboost_ext.models.checkpoint_file import SINGLE_FILE_SUFFIXES, read_checkpoint
from textboost_ext.models.errors import BaseModelError, BaseModelNotFoundError
from textboost_ext.models.family_configs import base_config, base_config_name
from textboost_ext.models.ldm_layout import VAE_PREFIX, infer_vae_config
from textboost_ext.models.single_file import load_component_from_single_file
from textboost_ext.models.types import Family


def load_vae(path: str, family: Family, torch_dtype: torch.dtype) -> Any:
    """Load the VAE at ``path`` for a base of ``family`` (see ``prepare_vae``)."""
    return prepare_vae(path)(family, torch_dtype)


def prepare_vae(path: str) -> Callable[[Family, torch.dtype], Any]:
    """Check ``path`` now (before a large base is loaded) and return ``build(family, torch_dtype)``.

    Accepted: a diffusers VAE folder (config.json), a pipeline folder (vae/config.json), or an
    A1111/LDM VAE file (bare ``encoder.*``/``decoder.*`` keys, or a whole checkpoint's ``first_stage_model.*``).
    """
    from diffusers import AutoencoderKL

    p = Path(path).expanduser()
    if p.is_dir():
        for subfolder in ("", "vae"):
            if (p / subfolder / "config.json").is_file():
                opts = {"subfolder": subfolder} if subfolder else {}
                return lambda family, dtype: AutoencoderKL.from_pretrained(
                    str(p), torch_dtype=dtype, local_files_only=True, **opts
                ).eval()
        raise BaseModelError(f"vae {path}: a folder without config.json (or vae/config.json); not a diffusers VAE")
    if not p.is_file():
        raise BaseModelNotFoundError(f"vae {path}: no such file or folder; check the spelling")
    if p.suffix.lower() not in SINGLE_FILE_SUFFIXES:
        raise BaseModelError(f"vae {path}: unsupported file type {p.suffix!r}; use a {'/'.join(SINGLE_FILE_SUFFIXES)} file or a diffusers VAE folder")
    ckpt = read_checkpoint(p)
    keys = ckpt.state_dict.keys()
    prefix = VAE_PREFIX if any(k.startswith(VAE_PREFIX + "encoder.down.") for k in keys) else ""
    if not any(k.startswith(prefix + "encoder.down.") for k in keys):
        hint = " (diffusers-named weights: point vae at their folder with config.json)" if any("down_blocks" in k for k in keys) else ""
        raise BaseModelError(f"vae {path}: not an LDM/A1111 VAE file; expected keys like 'encoder.down.0.block.0.conv1.weight'{hint}")

    def build(family: Family, torch_dtype: torch.dtype) -> Any:
        # The family decides what no shape shows (scaling factor: 0.18215 for SD 1.x/2.x, 0.13025 for SDXL).
        base = base_config(base_config_name(family, False))["vae"]
        config = infer_vae_config(ckpt.shapes(), prefix, base, ckpt.architecture_hints.get("vae"), str(p))
        with tempfile.TemporaryDirectory(prefix="textboost_vae_") as tmp:
            return load_component_from_single_file("vae", config, ckpt, tmp, torch_dtype)

    return build
