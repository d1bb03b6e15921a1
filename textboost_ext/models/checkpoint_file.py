"""Reading A1111-style single-file checkpoints (``.safetensors`` / ``.ckpt``) with clear errors."""

from __future__ import annotations

import json
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from textboost_ext.models.errors import BaseModelError
from textboost_ext.models.ldm_layout import ARCHITECTURE_HINT_KEY, check_hints

SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt")


@dataclass
class Checkpoint:
    path: Path
    state_dict: dict[str, torch.Tensor]
    architecture_hints: dict[str, dict[str, Any]] = field(default_factory=dict)

    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {k: tuple(v.shape) for k, v in self.state_dict.items()}


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Load every tensor of a single file on CPU, unwrapping ``state_dict`` nesting."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        tensors, raw_hints = _read_safetensors(path)
    elif suffix == ".ckpt":
        tensors, raw_hints = _read_ckpt(path)
    else:
        raise BaseModelError(
            f"{path}: unsupported file type {path.suffix!r}; a base model is a diffusers folder (with "
            f"model_index.json) or a single {' / '.join(SINGLE_FILE_SUFFIXES)} file"
        )
    hints: dict[str, dict[str, Any]] = {}
    if raw_hints is not None:
        try:
            parsed = json.loads(raw_hints)
        except (TypeError, json.JSONDecodeError) as e:
            raise BaseModelError(f"{path}: {ARCHITECTURE_HINT_KEY!r} is not valid JSON ({e})") from e
        hints = check_hints(parsed, str(path))
    return Checkpoint(path, tensors, hints)


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], str | None]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises SafetensorError/OSError/ValueError by version
        raise BaseModelError(
            f"{path}: not a readable .safetensors file ({type(e).__name__}: {e}); the file is probably truncated or "
            "corrupt: download it again"
        ) from e
    return tensors, metadata.get(ARCHITECTURE_HINT_KEY)


def _read_ckpt(path: Path) -> tuple[dict[str, torch.Tensor], str | None]:
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise BaseModelError(
            f"{path}: torch.load(weights_only=True) refused it ({_first_line(e)}). It holds Python objects beyond "
            "tensors, or is not a checkpoint at all; convert it to .safetensors with a tool you trust"
        ) from e
    except Exception as e:
        raise BaseModelError(f"{path}: not a readable .ckpt file ({type(e).__name__}: {_first_line(e)}); download it again") from e
    if not isinstance(obj, dict):
        raise BaseModelError(f"{path}: holds a {type(obj).__name__}, not a state dict")
    raw_hints = obj.get(ARCHITECTURE_HINT_KEY)
    while isinstance(obj.get("state_dict"), dict):  # Lightning/LDM checkpoints nest the weights
        obj = obj["state_dict"]
    tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    return tensors, raw_hints if isinstance(raw_hints, str) else None


def _first_line(e: BaseException) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def sidecar_says_v_prediction(path: Path) -> bool:
    """A1111 reads ``<name>.yaml`` beside a checkpoint as its LDM config; SD 2.x 768-v configs say
    ``parameterization: "v"``."""
    yaml_path = path.with_suffix(".yaml")
    if not yaml_path.is_file():
        return False
    text = yaml_path.read_text("utf-8", errors="replace")
    return re.search(r"""^\s*parameterization:\s*["']?v["']?\s*(#.*)?$""", text, re.MULTILINE) is not None
