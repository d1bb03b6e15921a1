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

import os
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
from textboost_ext.faultpoints import pause_point
from textboost_ext.hub.manifest import MANIFEST_NAME, check_complete, write_manifest
from textboost_ext.hub.staging import clean_leftovers, staging_dir, swap_in



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


@dataclass(frozen=True)
class OutputPlan:
    """Where this run writes (``paths``) and where the finished adapter ends up (``final``).

    A run writes into ``<store>/.<name>.staging`` and swaps it in when it has finished (``staged``), so
    the adapter's own folder only ever holds a finished adapter, and an adapter being replaced stays
    intact until the new one is complete. ``seed_from``: a finished adapter whose files the staging
    folder starts with (a resume continuing it; hard links, and every write replaces files, so the
    originals are never modified). ``keep_staging``: the run continues the state saved in the staging
    folder by an interrupted run. Not staged: a resume continuing a folder written in place by an older
    version.
    """

    paths: AdapterPaths
    final: AdapterPaths
    staged: bool
    seed_from: Path | None = None
    keep_staging: bool = False
    resume: str | None = None  # the state to load: ``resume`` as given, or its place in the staging folder

    def final_path(self, path: Path) -> Path:
        """``path`` inside the staging folder -> the same file once swapped in."""
        try:
            return self.final.adapter_dir / Path(path).relative_to(self.paths.adapter_dir)
        except ValueError:
            return Path(path)


def staging_paths(final: AdapterPaths) -> AdapterPaths:
    return AdapterPaths(root=final.root, adapter_dir=staging_dir(final.root, final.name), name=final.name)


def plan_output(final: AdapterPaths, overwrite: bool, resume: str | None) -> OutputPlan:
    """Decide where the run writes; raise ``OutputError`` if it would clobber an adapter. Read-only, so every
    process of a multi-process run computes the same plan (and fails alike)."""
    staging = staging_paths(final)
    if resume is not None and not final.adapter_dir.exists() and _inside(Path(resume), final.adapter_dir):
        # `resume = adapters/NAME/...` after the run was killed: its files are still in the staging folder
        resume = str(staging.adapter_dir / Path(resume).absolute().relative_to(final.adapter_dir.absolute()))
    if resume is not None and _inside(Path(resume), staging.adapter_dir):
        return OutputPlan(staging, final, staged=True, keep_staging=True, resume=resume)  # continues an interrupted run
    existing = final.adapter_dir.is_dir() and any(final.adapter_dir.iterdir())
    if existing:
        status = check_complete(final.adapter_dir)
        if resume is not None:
            if status.complete:  # continue a finished adapter: it stays usable until the longer run is done
                return OutputPlan(staging, final, staged=True, seed_from=final.adapter_dir, resume=resume)
            return OutputPlan(final, final, staged=False, resume=resume)  # a folder an older version wrote in place
        if not overwrite:
            if status.complete:
                raise OutputError(
                    f"adapter folder {final.adapter_dir} already exists; choose another output_name, or set "
                    f"overwrite = true (command line: --overwrite) to replace it once the new run has finished"
                    + _resume_hint(final.state_dir)
                )
            raise OutputError(
                f"adapter folder {final.adapter_dir} holds an incomplete adapter ({status.summary()}); set "
                f"overwrite = true (command line: --overwrite) to replace it" + _resume_hint(final.state_dir)
            )
    elif staging.adapter_dir.is_dir() and any(staging.adapter_dir.iterdir()) and not overwrite and resume is None:
        raise OutputError(
            f"an earlier run of {final.name!r} did not finish (its files are in {staging.adapter_dir}); set "
            f"overwrite = true (command line: --overwrite) to start over" + _resume_hint(staging.state_dir)
        )
    return OutputPlan(staging, final, staged=True, resume=resume)


def _resume_hint(state_dir: Path) -> str:
    from textboost_ext.host.checkpoint import list_states

    states = list_states(state_dir)
    return f", or resume = \"{states[-1]}\" to continue its saved state" if states else ""


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.absolute().relative_to(folder.absolute())
        return True
    except ValueError:
        return False


def prepare_output(plan: OutputPlan) -> None:
    """Main process, holding the adapter lock: clean leftovers, then set up the staging folder."""
    clean_leftovers(plan.final.adapter_dir)
    if plan.staged:
        staging = plan.paths.adapter_dir
        if staging.exists() and not plan.keep_staging:
            shutil.rmtree(staging)  # an interrupted earlier attempt; this run replaces it (overwrite)
        if plan.seed_from is not None:
            _link_tree(plan.seed_from, staging)
        clean_leftovers(staging)
    check_writable(plan.paths.adapter_dir)


def _link_tree(source: Path, dest: Path) -> None:
    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(source, dest, copy_function=link, ignore=shutil.ignore_patterns(MANIFEST_NAME, ".*"))


def finish_output(plan: OutputPlan) -> None:
    """Main process, last step of a run: write the manifest (the adapter is complete from here), then swap
    a staged folder in."""
    pause_point("before-manifest")
    write_manifest(plan.paths.adapter_dir)
    if plan.staged:
        swap_in(plan.paths.adapter_dir, plan.final.adapter_dir)


def prepare_adapter_dir(paths: AdapterPaths, overwrite: bool, resuming: bool) -> OutputPlan:
    """Single-process convenience: plan and prepare (see ``plan_output`` / ``prepare_output``)."""
    plan = plan_output(paths, overwrite, str(paths.state_dir) if resuming else None)
    prepare_output(plan)
    return plan


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
