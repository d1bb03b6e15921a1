"""Resumable training state: ``<adapter_dir>/state/step-NNNNNN/``.

A state folder holds everything a run needs to continue as if it had never stopped: the LoRA weights
(fp32), optimizer and LR-scheduler state, the extension's state (e.g. trained embedding rows), every
random-number generator (per process) and the data position. It is NOT a usable LoRA file (those are
``<name>.safetensors`` and ``checkpoints/``) and is never uploaded.

Files are written into a hidden temporary folder next to the final one, then renamed, so a crash
never leaves a half-written state under a final name. Loading uses ``torch.load(weights_only=True)``:
a state folder from elsewhere cannot run code.

The trainer keeps only the newest state folder: each save replaces the previous one (intermediate
LoRA files under ``checkpoints/`` follow ``save_last_n_steps`` instead).

``network_weights`` (start from a LoRA file) is a different thing: it loads weights only and starts
at step 0 with a fresh optimizer.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from textboost_ext.atomic_write import WriteFailedError, current_umask, is_write_failure
from textboost_ext.faultpoints import pause_point
from textboost_ext.hub.store import STATE_SUBDIR  # the one name for the resumable-state folder

_STEP_DIR = re.compile(r"^step-(\d{6,})$")
FORMAT_VERSION = 1


@dataclass
class TrainingState:
    step: int
    network: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    lr_scheduler: dict[str, Any]
    extension: dict[str, Any]
    rng_states: list[dict[str, Any]]  # one per process, in rank order
    data_state: dict[str, Any]
    path: Path


def step_dir_name(step: int) -> str:
    return f"step-{step:06d}"


def capture_rng_state(generators: dict[str, torch.Generator]) -> dict[str, Any]:
    """This process's RNG: python, numpy, torch CPU (and CUDA), and the named torch generators."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        # numpy's state holds an ndarray, which weights_only loading refuses: store it as a tensor
        "numpy": (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]),
        "torch": torch.get_rng_state(),
        "generators": {name: g.get_state() for name, g in generators.items()},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any], generators: dict[str, torch.Generator]) -> None:
    version, key, *rest = state["numpy"]
    random.setstate(_as_python_random_state(state["python"]))
    np.random.set_state((version, key.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    missing = sorted(set(generators) - set(state["generators"]))
    if missing:
        raise ValueError(f"the saved state has no RNG state for generator(s) {missing}")
    for name, generator in generators.items():
        generator.set_state(state["generators"][name])


def _as_python_random_state(value: Any) -> tuple[Any, ...]:
    # random.getstate() is (version, tuple_of_ints, gauss); torch.load may hand back lists
    version, internal, gauss = value
    return (version, tuple(internal), gauss)


def save_state(
    directory: str | Path,
    step: int,
    network: dict[str, torch.Tensor],
    optimizer: dict[str, Any],
    lr_scheduler: dict[str, Any],
    extension_state: dict[str, Any],
    rng_states: list[dict[str, Any]],
    data_state: dict[str, Any],
    keep_last: int = 1,
) -> Path:
    """Write ``<directory>/step-NNNNNN/`` atomically; keep only the newest ``keep_last`` state folders.

    ``directory`` is the ``state/`` folder. ``network`` is the LoRA's kohya state dict (fp32).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / step_dir_name(step)
    tmp = directory / f".{final.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        tmp.mkdir()
        _write_state_files(tmp, step, network, optimizer, lr_scheduler, extension_state, rng_states, data_state)
    except Exception as err:  # a full disk must not leave a half-written hidden state folder behind
        shutil.rmtree(tmp, ignore_errors=True)
        if is_write_failure(err):
            raise WriteFailedError(final, err) from None
        raise
    pause_point("state-written")  # fault tests: the state is complete but not yet under its final name
    if final.exists():  # re-saving the same step (e.g. resumed and stopped again): replace it whole
        old = directory / f".{final.name}.old-{os.getpid()}"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old)
    else:
        os.replace(tmp, final)
    for stale in list_states(directory)[:-keep_last] if keep_last > 0 else []:
        shutil.rmtree(stale)
    return final


def _write_state_files(tmp: Path, step: int, network: dict[str, torch.Tensor], optimizer: dict[str, Any],
                       lr_scheduler: dict[str, Any], extension_state: dict[str, Any], rng_states: list[dict[str, Any]],
                       data_state: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in network.items()}, str(tmp / "network.safetensors"))
    os.chmod(tmp / "network.safetensors", 0o666 & ~current_umask())  # safetensors writes it 0600
    torch.save(optimizer, tmp / "optimizer.pt")
    torch.save(lr_scheduler, tmp / "lr_scheduler.pt")
    torch.save(extension_state, tmp / "extension.pt")
    torch.save(rng_states, tmp / "rng.pt")
    info = {"format_version": FORMAT_VERSION, "step": step, "num_processes": len(rng_states), "data": data_state}
    (tmp / "trainer_state.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    for file in tmp.iterdir():  # on disk before the rename makes the folder count
        with open(file, "rb") as handle:
            os.fsync(handle.fileno())


def list_states(directory: str | Path) -> list[Path]:
    """State folders under ``directory``, oldest step first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if p.is_dir() and (m := _STEP_DIR.match(p.name))]
    return [p for _, p in sorted(found)]


def resolve_state_dir(path: str | Path) -> Path:
    """``resume`` may name a ``step-NNNNNN`` folder, a ``state/`` folder or an adapter folder: newest step wins."""
    path = Path(path)
    if (path / "trainer_state.json").is_file():
        return path
    for candidate in (path, path / STATE_SUBDIR):
        states = list_states(candidate)
        if states:
            return states[-1]
    raise FileNotFoundError(
        f"resume = {str(path)!r}: no saved training state there (expected a {STATE_SUBDIR}/step-NNNNNN folder "
        f"holding trainer_state.json; state is written when save_state = true)"
    )


def load_state(directory: str | Path) -> TrainingState:
    path = resolve_state_dir(directory)
    from safetensors.torch import load_file

    info = json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
    if info.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: state format {info.get('format_version')} is not supported (expected {FORMAT_VERSION})")

    def load(name: str) -> Any:
        return torch.load(path / name, map_location="cpu", weights_only=True)

    return TrainingState(
        step=int(info["step"]),
        network=load_file(str(path / "network.safetensors")),
        optimizer=load("optimizer.pt"),
        lr_scheduler=load("lr_scheduler.pt"),
        extension=load("extension.pt"),
        rng_states=load("rng.pt"),
        data_state=dict(info.get("data", {})),
        path=path,
    )
