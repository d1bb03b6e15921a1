"""The local adapter store: where it is, what is in it, and finding one adapter by name or path.

Location, first match wins: an explicit value (CLI ``--adapters_dir`` or the config key ``adapters_dir``),
then the ``TEXTBOOST_ADAPTERS_DIR`` environment variable, then ``./adapters`` relative to the current
working directory (the repository's own ``adapters/`` when run from a checkout). Relative values are
taken relative to the current working directory.

One folder per adapter (see adapters/README.md). The LoRA file is ``<name>/<name>.safetensors``; a
folder renamed on pull (``--name``) keeps its original file name, so a folder with a single top-level
``.safetensors`` also counts. Everything shown about an adapter comes from that file's safetensors
metadata (kohya ``ss_*``, ``modelspec.*``, ``sshs_*``) plus the sidecars next to it.
"""

from __future__ import annotations

import difflib
import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from textboost_ext.hub.errors import AdapterFormatError, AdapterIncompleteError, AdapterNotFoundError, AdapterStoreError
from textboost_ext.hub.header import read_header

ADAPTERS_DIR_ENV = "TEXTBOOST_ADAPTERS_DIR"
DEFAULT_ADAPTERS_DIR = "adapters"
# Training-only folders of an adapter: never uploaded, never needed to use the adapter. The host
# trainer writes into these names, so upload exclusion and training output cannot drift apart.
STATE_SUBDIR = "state"
LOGS_SUBDIR = "logs"
CHECKPOINTS_SUBDIR = "checkpoints"
# What `textboost-hub generate` / `eval` write by default: local results (hundreds of images), never uploaded.
GENERATED_SUBDIR = "generated"
EVAL_SUBDIR = "eval"
PRIVATE_SUBDIRS = (STATE_SUBDIR, LOGS_SUBDIR, CHECKPOINTS_SUBDIR, GENERATED_SUBDIR, EVAL_SUBDIR)
EMBEDDINGS_SUBDIR = "embeddings"
SAMPLES_SUBDIR = "samples"
FAMILIES = ("sd1", "sd2", "sd2v", "sdxl")

_FAMILY_BY_ARCHITECTURE = {
    "stable-diffusion-v1/lora": "sd1",
    "stable-diffusion-v2-512/lora": "sd2",
    "stable-diffusion-v2-768-v/lora": "sd2v",
    "stable-diffusion-xl-v1-base/lora": "sdxl",
}
_FAMILY_BY_BASE_VERSION = {"sd_v1": "sd1", "sd_v2": "sd2", "sd_v2_v": "sd2v"}


def adapters_root(config_value: str | os.PathLike[str] | None = None) -> Path:
    """The store folder: ``config_value`` > ``$TEXTBOOST_ADAPTERS_DIR`` > ``./adapters`` (absolute path)."""
    chosen = config_value if config_value not in (None, "") else os.environ.get(ADAPTERS_DIR_ENV) or DEFAULT_ADAPTERS_DIR
    return Path(chosen).expanduser().absolute()


@dataclass(frozen=True)
class AdapterInfo:
    """One adapter as read from its LoRA file's metadata. ``metadata`` is the full safetensors metadata."""

    name: str
    folder: Path
    lora_file: Path
    family: str | None  # "sd1" | "sd2" | "sd2v" | "sdxl", None when the file does not say
    trigger: str | None
    rank: int | None
    size_bytes: int
    date: str | None  # ISO 8601 (UTC) end of training, or modelspec.date
    short_hash: str | None  # first 12 hex chars of sshs_model_hash (the prefix A1111 shows)
    metadata: dict[str, str] = field(default_factory=dict, repr=False, compare=False)
    # None: a complete adapter (valid manifest.json) or a bare file; else what makes the folder incomplete
    incomplete: str | None = None

    @property
    def alpha(self) -> float | None:
        return _to_float(self.metadata.get("ss_network_alpha"))

    @property
    def embedding_files(self) -> list[Path]:
        return embedding_files(self.folder)


def family_from_metadata(metadata: dict[str, str], tensor_names: list[str] | None = None) -> str | None:
    """Base family the way the WebUIs decide it: ``ss_base_model_version``, then ``modelspec.architecture``,
    then ``ss_v2``/``ss_v_parameterization``, then the key prefixes (``lora_te1_``/``lora_te2_`` = SDXL)."""
    version = metadata.get("ss_base_model_version", "")
    if version.startswith("sdxl_"):
        return "sdxl"
    if version in _FAMILY_BY_BASE_VERSION:
        return _FAMILY_BY_BASE_VERSION[version]
    if metadata.get("modelspec.architecture") in _FAMILY_BY_ARCHITECTURE:
        return _FAMILY_BY_ARCHITECTURE[metadata["modelspec.architecture"]]
    if metadata.get("ss_v2") == "True":
        return "sd2v" if metadata.get("ss_v_parameterization") == "True" else "sd2"
    if metadata.get("ss_v2") == "False":
        return "sd1"
    names = tensor_names or []
    if any(n.startswith(("lora_te1_", "lora_te2_")) for n in names):
        return "sdxl"
    return None


def embedding_files(folder: Path) -> list[Path]:
    """``embeddings/<token>.safetensors`` files of an adapter (the stem is the token A1111 matches)."""
    emb_dir = Path(folder) / EMBEDDINGS_SUBDIR
    return sorted(emb_dir.glob("*.safetensors")) if emb_dir.is_dir() else []


def read_sidecar(lora_file: Path) -> dict[str, object]:
    """A1111 user-metadata sidecar ``<stem>.json`` next to the LoRA file ({} when absent)."""
    path = lora_file.with_suffix(".json")
    if not path.is_file():
        return {}
    data = read_json(path, "fix or delete the sidecar")
    if not isinstance(data, dict):
        raise AdapterFormatError(f"{path}: must hold a JSON object like {{\"activation text\": \"...\"}}")
    return data


def read_json(path: Path, fix: str) -> Any:
    """The JSON value in ``path``; ``AdapterFormatError`` naming the file and ``fix`` when it is not JSON."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise AdapterFormatError(f"{path}: not valid JSON ({err}); {fix}") from err


def find_lora_file(folder: Path) -> Path:
    """The adapter's LoRA: ``<folder>/<folder name>.safetensors``, else its only top-level LoRA file."""
    folder = Path(folder)
    exact = folder / f"{folder.name}.safetensors"
    if exact.is_file():
        return exact
    candidates = sorted(p for p in folder.glob("*.safetensors") if p.is_file())
    if len(candidates) > 1:  # the optional A1111 bundled variant carries bundle_emb.* keys: not the main file
        candidates = [p for p in candidates if not any(k.startswith("bundle_emb.") for k in read_header(p).tensors)]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise AdapterNotFoundError(f"{folder}: no LoRA file (expected {exact.name}); is training still running?")
    raise AdapterFormatError(
        f"{folder}: several LoRA files ({', '.join(p.name for p in candidates)}) and none named {exact.name}; "
        "rename the main one or pass the file path"
    )


def read_adapter(lora_file: Path, name: str | None = None) -> AdapterInfo:
    """Build the ``AdapterInfo`` of one LoRA file (its folder is the file's parent)."""
    lora_file = Path(lora_file).absolute()
    header = read_header(lora_file)
    meta = header.metadata
    rank = _to_int(meta.get("ss_network_dim"))
    if rank is None:  # no metadata: the rank is the first dimension of any down projection
        rank = next((t.shape[0] for n, t in header.tensors.items() if n.endswith(".lora_down.weight") and t.shape), None)
    stored_hash = meta.get("sshs_model_hash")
    return AdapterInfo(
        name=name or lora_file.stem,
        folder=lora_file.parent,
        lora_file=lora_file,
        family=family_from_metadata(meta, list(header.tensors)),
        trigger=_trigger(meta, lora_file),
        rank=rank,
        size_bytes=lora_file.stat().st_size,
        date=_date(meta),
        short_hash=stored_hash[:12] if stored_hash else None,
        metadata=meta,
    )


def read_adapter_folder(folder: Path) -> AdapterInfo:
    from dataclasses import replace

    from textboost_ext.hub.manifest import check_complete

    folder = Path(folder).absolute()
    status = check_complete(folder)
    try:
        info = read_adapter(find_lora_file(folder), name=folder.name)
    except AdapterNotFoundError as err:
        if status.complete:
            raise
        raise AdapterIncompleteError(f"{folder}: incomplete adapter ({status.summary()}); {err}") from None
    return info if status.complete else replace(info, incomplete=status.summary())


def require_complete(info: AdapterInfo, action: str) -> None:
    """Refuse to ``action`` an adapter folder that a run did not finish."""
    if info.incomplete:
        raise AdapterIncompleteError(
            f"{info.folder} is an incomplete adapter ({info.incomplete}); refusing to {action} it. Train it again "
            f"with --overwrite (or resume its saved state), or pull it again"
        )


def scan_adapters(root: Path) -> tuple[list[AdapterInfo], list[tuple[Path, str]]]:
    """Every adapter under ``root`` plus the folders that look like adapters but could not be read.

    Hidden folders (``.pull-*``, ``.<name>.staging``) are skipped. A folder whose files cannot be read
    (damaged, unreadable, a killed run) is a problem entry; it never stops the scan of the others.
    """
    root = Path(root)
    infos: list[AdapterInfo] = []
    problems: list[tuple[Path, str]] = []
    if not root.is_dir():
        return infos, problems
    from textboost_ext.hub.manifest import MANIFEST_NAME

    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            if not any(folder.glob("*.safetensors")) and not (folder / MANIFEST_NAME).exists():
                if any(folder.iterdir()) and (folder / "training_config.toml").exists():
                    problems.append((folder, "incomplete adapter: no LoRA file yet (a run is going on or was killed)"))
                continue
            infos.append(read_adapter_folder(folder))
        except AdapterStoreError as err:
            problems.append((folder, str(err)))
        except (OSError, ValueError) as err:  # unreadable folder or file: report it, list the rest
            problems.append((folder, f"cannot read it ({type(err).__name__}: {err})"))
    return infos, problems


def list_adapters(root: Path | None = None) -> list[AdapterInfo]:
    """Adapters in the store, sorted by name. A broken adapter raises (``scan_adapters`` tolerates it)."""
    infos, problems = scan_adapters(adapters_root() if root is None else Path(root))
    if problems:
        raise AdapterFormatError("; ".join(message for _, message in problems))
    return infos


def resolve_adapter(name_or_file: str | os.PathLike[str], root: Path | None = None) -> AdapterInfo:
    """An adapter by store name, by folder path, or by ``.safetensors`` path."""
    root = adapters_root() if root is None else Path(root)
    text = os.fspath(name_or_file)
    path = Path(text).expanduser()
    if path.suffix == ".safetensors":
        if not path.is_file():
            raise AdapterNotFoundError(f"LoRA file not found: {path}")
        return read_adapter(path)  # named by its stem, which A1111 uses too
    in_store = root / text
    if _is_plain_name(text) and in_store.is_dir():
        return read_adapter_folder(in_store)
    if path.is_dir():  # a folder path (checked after the store, so a store name always wins)
        return read_adapter_folder(path)
    available = sorted(info.name for info in scan_adapters(root)[0])
    hint = difflib.get_close_matches(text, available, n=1)
    message = f"no adapter {text!r} in {root}"
    message += f"; did you mean {hint[0]!r}?" if hint else ""
    message += f" Available: {', '.join(available)}" if available else " (the store is empty)"
    message += f". Pass a folder or .safetensors path, or choose the store with --adapters_dir / ${ADAPTERS_DIR_ENV}."
    raise AdapterNotFoundError(message)


# ---- small helpers ---------------------------------------------------------------------------------
def _is_plain_name(text: str) -> bool:
    return bool(text) and "/" not in text and os.sep not in text and text not in (".", "..")


def _trigger(meta: dict[str, str], lora_file: Path) -> str | None:
    if meta.get("modelspec.trigger_phrase"):
        return meta["modelspec.trigger_phrase"]
    activation = read_sidecar(lora_file).get("activation text")
    if isinstance(activation, str) and activation.strip():
        return activation.strip()
    if meta.get("ss_textboost_placeholder_token"):
        return meta["ss_textboost_placeholder_token"]
    embeddings = embedding_files(lora_file.parent)
    return embeddings[0].stem if len(embeddings) == 1 else None


def _date(meta: dict[str, str]) -> str | None:
    finished = _to_float(meta.get("ss_training_finished_at"))
    if finished is not None:
        return datetime.fromtimestamp(finished, tz=timezone.utc).isoformat(timespec="seconds")
    return meta.get("modelspec.date") or None


def _to_int(value: str | None) -> int | None:
    try:
        return int(float(value)) if value not in (None, "", "None") else None
    except ValueError:
        return None


def _to_float(value: str | None) -> float | None:
    try:
        return float(value) if value not in (None, "", "None") else None
    except ValueError:
        return None
