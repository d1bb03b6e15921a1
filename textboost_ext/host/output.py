"""The adapter folder: where a run writes, what it refuses, which intermediate files it keeps.

Layout (see ``adapters/README.md``)::

    <output_dir or adapters_dir>/<output_name>/
      <output_name>.safetensors                     the final LoRA
      checkpoints/<output_name>-step000100.safetensors   every save_every_n_steps
      state/step-000100/                           resumable state (save_state = true)
      samples/                                     sample images + index.json
      logs/                                        TensorBoard
      training_config.toml                         the resolved config

Retention follows kohya's ``save_last_n_steps``: after saving at step ``s``, intermediate LoRA files
older than ``s - save_last_n_steps`` are deleted; e.g. every 2 steps, last 4, at step 10 the files of
steps 6, 8 and 10 remain. The final LoRA is never deleted and is not duplicated into checkpoints/.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textboost_ext.hub.store import (
    ADAPTERS_DIR_ENV,
    CHECKPOINTS_SUBDIR,
    LOGS_SUBDIR,
    SAMPLES_SUBDIR,
    STATE_SUBDIR,
    adapters_root,
)

# Subfolders a run owns completely; `overwrite = true` clears them so old samples/states cannot mix in.
RUN_SUBDIRS = (CHECKPOINTS_SUBDIR, SAMPLES_SUBDIR, STATE_SUBDIR, LOGS_SUBDIR)


class OutputError(RuntimeError):
    """The adapter folder cannot be used; the message names the folder and the fix."""


@dataclass(frozen=True)
class AdapterPaths:
    root: Path  # the folder holding adapters
    adapter_dir: Path
    name: str

    @property
    def lora_file(self) -> Path:
        return self.adapter_dir / f"{self.name}.safetensors"

    @property
    def checkpoints_dir(self) -> Path:
        return self.adapter_dir / CHECKPOINTS_SUBDIR

    @property
    def state_dir(self) -> Path:
        return self.adapter_dir / STATE_SUBDIR

    @property
    def samples_dir(self) -> Path:
        return self.adapter_dir / SAMPLES_SUBDIR

    @property
    def logs_dir(self) -> Path:
        return self.adapter_dir / LOGS_SUBDIR

    @property
    def config_file(self) -> Path:
        return self.adapter_dir / "training_config.toml"

    def checkpoint_file(self, step: int) -> Path:
        return self.checkpoints_dir / f"{self.name}-step{step:06d}.safetensors"


def output_root(config: Any) -> Path:
    """Where this run's adapter folder goes: ``output_dir``, else the adapter store
    (the store's own rule, shared with the hub CLI: ``adapters_dir`` > ``$TEXTBOOST_ADAPTERS_DIR`` > ``./adapters``)."""
    return adapters_root(config.output_dir or config.adapters_dir)


def adapter_paths(config: Any) -> AdapterPaths:
    root = output_root(config)
    return AdapterPaths(root=root, adapter_dir=root / config.output_name, name=config.output_name)


def refuse_existing_adapter(paths: AdapterPaths, overwrite: bool, resuming: bool) -> bool:
    """Raise if a non-empty adapter folder would be clobbered; return True when it must be cleared.

    Read-only, so every process of a multi-process run can call it and fail the same way. Resuming
    into the same folder is allowed (it continues that run).
    """
    existing = paths.adapter_dir.is_dir() and any(paths.adapter_dir.iterdir())
    if not existing or resuming:
        return False
    if not overwrite:
        raise OutputError(
            f"adapter folder {paths.adapter_dir} already exists and is not empty; choose another output_name, "
            f"or set overwrite = true (command line: --overwrite) to replace it, or resume = \"{paths.state_dir}\" "
            f"to continue its saved state"
        )
    return True


def clear_previous_run(paths: AdapterPaths) -> None:
    """``overwrite``: remove the old run's own subfolders; top-level files are replaced as the new run writes."""
    for sub in RUN_SUBDIRS:
        if (paths.adapter_dir / sub).is_dir():
            shutil.rmtree(paths.adapter_dir / sub)


def prepare_adapter_dir(paths: AdapterPaths, overwrite: bool, resuming: bool) -> None:
    """Single-process convenience: refuse, clear on overwrite, then check the folder is writable."""
    if refuse_existing_adapter(paths, overwrite, resuming):
        clear_previous_run(paths)
    check_writable(paths.adapter_dir)


def check_writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise OutputError(
            f"cannot write to the output folder {folder} ({exc.strerror or exc}); choose a writable output_dir "
            f"(or adapters_dir / ${ADAPTERS_DIR_ENV})"
        ) from None


_CHECKPOINT = re.compile(r"-step(\d{6,})\.safetensors$")


def list_checkpoints(paths: AdapterPaths) -> list[tuple[int, Path]]:
    if not paths.checkpoints_dir.is_dir():
        return []
    found = []
    for file in paths.checkpoints_dir.iterdir():
        match = _CHECKPOINT.search(file.name)
        if match and file.name.startswith(f"{paths.name}-step"):
            found.append((int(match.group(1)), file))
    return sorted(found)


def prune_checkpoints(paths: AdapterPaths, current_step: int, save_last_n_steps: int | None) -> list[Path]:
    """Delete intermediate LoRA files older than ``current_step - save_last_n_steps``; return them."""
    if save_last_n_steps is None:
        return []
    removed = []
    for step, file in list_checkpoints(paths):
        if step < current_step - save_last_n_steps:
            file.unlink()
            removed.append(file)
    return removed


def should_save(step: int, every_n_steps: int | None, max_steps: int) -> bool:
    """An intermediate save at ``step`` (1-based); the last step gets the final file instead."""
    return bool(every_n_steps) and step % every_n_steps == 0 and step < max_steps  # type: ignore[operator]
