"""An adapter is complete or it does not count: ``manifest.json``, the last file a run writes (stdlib only).

It lists every file of the adapter (relative path, size, SHA-256) except the training-only folders
(``state/``, ``logs/``, ``checkpoints/``, ``generated/``, ``eval/``), hidden files and itself. A folder
without a valid manifest, or whose listed files are missing or have another size, is *incomplete*: a
run was killed before it finished, or files were removed. ``list`` marks it, ``verify`` fails on it,
``push`` refuses it. ``verify`` also compares the hashes of the weight files.

Commands that rewrite a file of a complete adapter (``card``) update the manifest afterwards.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from textboost_ext.atomic_write import atomic_write_text

MANIFEST_NAME = "manifest.json"
FORMAT = "textboost-adapter-manifest/1"
# kept in step with store.PRIVATE_SUBDIRS (not imported: store imports this module)
_PRIVATE = ("state", "logs", "checkpoints", "generated", "eval")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def adapter_files(folder: Path) -> list[Path]:
    """The files a manifest covers, as paths relative to ``folder`` (sorted)."""
    folder = Path(folder)
    found: list[Path] = []
    for path in folder.rglob("*"):
        rel = path.relative_to(folder)
        if rel.parts[0] in _PRIVATE or any(part.startswith(".") for part in rel.parts):
            continue
        if rel.as_posix() == MANIFEST_NAME or not path.is_file() or path.is_symlink():
            continue
        found.append(rel)
    return sorted(found)


def write_manifest(folder: Path) -> Path:
    """Hash every adapter file of ``folder`` and write ``manifest.json`` (atomically) as the last step."""
    folder = Path(folder)
    files = {
        rel.as_posix(): {"size": (folder / rel).stat().st_size, "sha256": sha256_file(folder / rel)}
        for rel in adapter_files(folder)
    }
    data = {"format": FORMAT, "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "files": files}
    return atomic_write_text(folder / MANIFEST_NAME, json.dumps(data, indent=1, sort_keys=True) + "\n")


def update_manifest(folder: Path, changed: Iterable[Path]) -> None:
    """Re-record ``changed`` files in an existing manifest (nothing happens when the folder has none)."""
    folder = Path(folder)
    listed = read_manifest(folder)
    if listed is None:
        return
    for path in changed:
        rel = Path(path).absolute().relative_to(folder.absolute()).as_posix()
        if Path(folder / rel).is_file():
            listed[rel] = {"size": (folder / rel).stat().st_size, "sha256": sha256_file(folder / rel)}
        else:
            listed.pop(rel, None)
    data = {"format": FORMAT, "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "files": listed}
    atomic_write_text(folder / MANIFEST_NAME, json.dumps(data, indent=1, sort_keys=True) + "\n")


def read_manifest(folder: Path) -> dict[str, dict[str, object]] | None:
    """``{relative path: {"size", "sha256"}}``, or None when the manifest is missing or not one of ours."""
    path = Path(folder) / MANIFEST_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("files"), dict):
        return None
    files = data["files"]
    for rel, entry in files.items():
        if not isinstance(rel, str) or not isinstance(entry, dict) or not isinstance(entry.get("size"), int):
            return None
        if rel.startswith("/") or ".." in Path(rel).parts:
            return None
    return files


@dataclass
class Completeness:
    complete: bool
    problems: list[str] = field(default_factory=list)  # what is missing or different, one phrase each
    changed: list[str] = field(default_factory=list)  # non-weight files whose hash changed (e.g. an edited sidecar)

    def summary(self) -> str:
        return "; ".join(self.problems)


def check_complete(folder: Path, hashes: bool = False) -> Completeness:
    """Is ``folder`` a finished adapter? Sizes always; with ``hashes`` the weight files' SHA-256 too."""
    folder = Path(folder)
    listed = read_manifest(folder)
    if listed is None:
        reason = "invalid" if (folder / MANIFEST_NAME).exists() else "missing"
        return Completeness(False, [f"{MANIFEST_NAME} {reason} (the run that wrote this folder did not finish)"])
    problems: list[str] = []
    changed: list[str] = []
    for rel, entry in sorted(listed.items()):
        path = folder / rel
        if not path.is_file():
            problems.append(f"{rel} missing")
            continue
        # weights must be what training wrote; a sidecar edited in a WebUI (or a rewritten card) is only noted
        report = problems if rel.endswith(".safetensors") else changed
        if path.stat().st_size != entry["size"]:
            report.append(f"{rel} has {path.stat().st_size} bytes, the manifest says {entry['size']}")
        elif hashes and sha256_file(path) != entry.get("sha256"):
            report.append(f"{rel} differs from the manifest (hash)")
    return Completeness(not problems, problems, changed)
