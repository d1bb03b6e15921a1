"""Files the sd-scripts host writes beside sd-scripts' LoRA file, and the sample-prompt rewrite.

Every ``save_weights`` of the network (step/epoch checkpoints and the final file) is followed by
:func:`write_files_beside`: the extension's files (``embeddings/<token>.safetensors``, the optional
``<stem>_a1111_bundle.safetensors``), A1111's ``<stem>.json`` and, once sd-scripts has drawn sample images,
``<stem>.preview.png`` (the newest sample of this run). sd-scripts deletes old checkpoints
itself (``--save_last_n_steps`` etc.) without knowing about those files, so :class:`SavedFiles` deletes
the files of a checkpoint that is gone, at the next save (only files this run wrote).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from textboost_ext.export.sidecars import FAMILY_TO_SD_VERSION, write_preview, write_user_metadata_json
from textboost_ext.hooks import HostContext, TrainerExtension

SAMPLE_FOLDER = "sample"  # sd-scripts' sample_images writes <output_dir>/sample/<output_name>_<step>_<nn>_<time>.png


def newest_sample_image(sample_dir: Path, output_name: str | None, not_before: float) -> Path | None:
    """The newest PNG sd-scripts drew for this run, or None.

    Only files named like this run's samples (sd-scripts prefixes them with ``<output_name>_``) and
    written at or after ``not_before`` count, so a shared ``output_dir`` never lends a preview from
    another run or an earlier one.
    """
    if not sample_dir.is_dir():
        return None
    prefix = f"{output_name}_" if output_name else ""
    candidates = [(p.stat().st_mtime, p.name, p) for p in sample_dir.glob(f"{prefix}*.png") if p.is_file()]
    candidates = [c for c in candidates if c[0] >= not_before]
    return max(candidates)[2] if candidates else None


def write_files_beside(extension: TrainerExtension, ctx: HostContext, lora_path: Path, dtype: torch.dtype | None,
                       preview_from: Path | None = None) -> list[Path]:
    """The extension's ``on_save`` files, ``<stem>.json`` and, from ``preview_from``, ``<stem>.preview.png``.

    Returns every path written.
    """
    lora_path = Path(lora_path)
    written = list(extension.on_save(ctx, lora_path, dtype or torch.float32))
    description = f"Text-encoder LoRA trained with textboost-ext ({extension.name}) in kohya sd-scripts"
    written.append(write_user_metadata_json(lora_path, extension.trigger_phrase() or "",
                                            FAMILY_TO_SD_VERSION[ctx.model.family], description=description))
    if preview_from is not None:
        written.append(write_preview(lora_path, preview_from))
    return written


class SavedFiles:
    """LoRA file -> the files written beside it; drops the files of LoRA files that no longer exist."""

    def __init__(self) -> None:
        self.beside: dict[Path, list[Path]] = {}

    def add(self, lora_path: Path, files: list[Path]) -> list[Path]:
        self.beside[Path(lora_path)] = [Path(f) for f in files]
        removed: list[Path] = []
        for gone in [p for p in self.beside if not p.exists()]:
            extras = self.beside.pop(gone)
            still_used = {f for other in self.beside.values() for f in other}
            for extra in extras:
                if extra not in still_used and extra.exists():
                    extra.unlink()
                    removed.append(extra)
                    if extra.parent.name.endswith("_embeddings") and not any(extra.parent.iterdir()):
                        extra.parent.rmdir()  # the checkpoint's own embeddings folder
        return removed


class SamplePromptFile:
    """A private copy of ``--sample_prompts`` with each prompt rewritten, made once and reused."""

    def __init__(self) -> None:
        self._source: str | None = None
        self._copy: Path | None = None

    def expanded(self, user_file: str, rewrite: Callable[[str], str]) -> Path:
        source = Path(user_file)
        if self._source != user_file or self._copy is None:
            text = source.read_text(encoding="utf-8")
            new_text = "\n".join(rewrite(line) for line in text.split("\n"))
            if new_text == text:
                self._copy = source
            else:
                folder = Path(tempfile.mkdtemp(prefix="textboost_prompts_"))
                atexit.register(shutil.rmtree, folder, True)
                self._copy = folder / source.name  # same suffix: sd-scripts picks the format by it
                self._copy.write_text(new_text, encoding="utf-8")
            self._source = user_file
        return self._copy


def describe_tokens(extension: TrainerExtension, tokenizers: list[Any]) -> dict[str, Any]:
    """The tokens an extension added and their ids in each tokenizer (for the step record)."""
    tokens = list(getattr(extension, "vector_tokens", [])) + list(getattr(extension, "augment_tokens", []))
    return {"vector_tokens": list(getattr(extension, "vector_tokens", [])),
            "augment_tokens": list(getattr(extension, "augment_tokens", [])),
            "token_ids": [[int(i) for i in tok.convert_tokens_to_ids(tokens)] for tok in tokenizers] if tokens else [],
            "tokenizer_lengths": [len(tok) for tok in tokenizers]}
