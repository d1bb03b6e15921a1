"""The sample-image index of an adapter: ``samples/index.json``, which image was made from which prompt.

Format (written by the trainer through ``append_to_index``, read by the model card)::

    [{"file": "step000250_00.png", "prompt": "a photo of mycorgi dog on the beach", "step": 250}, ...]

``file`` is relative to ``samples/``; extra keys (``negative_prompt``, ``seed``, ``width``, ...) are allowed
and preserved. Without an index, a sidecar ``samples/<image stem>.txt`` holding
the prompt is accepted (step unknown: -1).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from textboost_ext.atomic_write import atomic_write_text
from textboost_ext.hub.errors import AdapterFormatError
from textboost_ext.hub.store import SAMPLES_SUBDIR, read_json

INDEX_NAME = "index.json"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
_INDEX_FIX = "fix it or delete it"


@dataclass(frozen=True)
class SampleImage:
    file: str  # relative to samples/
    prompt: str
    step: int  # -1 when unknown

    @property
    def repo_path(self) -> str:
        """Path of the image inside the adapter folder / Hub repo, e.g. ``samples/step000250_00.png``."""
        return f"{SAMPLES_SUBDIR}/{self.file}"


def read_samples(adapter_dir: str | Path) -> list[SampleImage]:
    """All samples of an adapter in index order ([] when it has none). Bad entries raise, naming the file."""
    samples_dir = Path(adapter_dir) / SAMPLES_SUBDIR
    index = samples_dir / INDEX_NAME
    if index.is_file():
        return _read_index(index)
    if not samples_dir.is_dir():
        return []
    found = []
    for image in sorted(p for p in samples_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        prompt_file = image.with_suffix(".txt")
        if prompt_file.is_file():
            found.append(SampleImage(image.name, prompt_file.read_text(encoding="utf-8").strip(), -1))
    return found


def final_samples(samples: list[SampleImage]) -> list[SampleImage]:
    """The samples of the last step (what the finished adapter does); all of them when steps are unknown."""
    if not samples:
        return []
    last = max(s.step for s in samples)
    return [s for s in samples if s.step == last]


def record_sample(adapter_dir: str | Path, file: str, prompt: str, step: int) -> Path:
    """Append one entry to ``samples/index.json`` (atomic rewrite). ``file`` must exist in ``samples/``."""
    return append_to_index(Path(adapter_dir) / SAMPLES_SUBDIR, [asdict(SampleImage(file, prompt, int(step)))])


def append_to_index(samples_dir: str | Path, entries: Sequence[Mapping[str, Any]]) -> Path:
    """Append ``entries`` (``file``/``prompt``/``step`` plus any extra keys) to ``<samples_dir>/index.json``.

    The one writer of the index (the host trainer calls it after sampling): each ``file`` must already
    exist in ``samples_dir``, an existing index is validated before it is extended (its extra keys are
    kept as they are), and the index is rewritten atomically.
    """
    samples_dir = Path(samples_dir)
    for entry in entries:
        if not (samples_dir / str(entry["file"])).is_file():
            raise FileNotFoundError(f"sample image {samples_dir / str(entry['file'])} does not exist; save the image first")
    index = samples_dir / INDEX_NAME
    existing: list[Any] = []
    if index.is_file():
        existing = read_json(index, _INDEX_FIX)
        _index_entries(index, existing)  # validate before extending; the raw entries keep their extra keys
    atomic_write_text(index, json.dumps(existing + [dict(e) for e in entries], indent=1, ensure_ascii=False) + "\n")
    return index


def _read_index(index: Path) -> list[SampleImage]:
    return _index_entries(index, read_json(index, _INDEX_FIX))


def _index_entries(index: Path, data: Any) -> list[SampleImage]:
    if not isinstance(data, list):
        raise AdapterFormatError(f'{index}: must be a JSON list of {{"file", "prompt", "step"}} objects')
    samples = []
    for i, entry in enumerate(data):
        ok = (
            isinstance(entry, dict)
            and isinstance(entry.get("file"), str)
            and isinstance(entry.get("prompt"), str)
            and isinstance(entry.get("step"), int)
            and not isinstance(entry.get("step"), bool)
        )
        if not ok:
            raise AdapterFormatError(f'{index}: entry {i} must be {{"file": str, "prompt": str, "step": int}}, got {entry!r}')
        file = entry["file"]
        if Path(file).is_absolute() or ".." in Path(file).parts:
            raise AdapterFormatError(f"{index}: entry {i}: file {file!r} must be a name inside samples/")
        if not (index.parent / file).is_file():
            raise AdapterFormatError(f"{index}: entry {i}: image {file!r} is missing from {index.parent}")
        samples.append(SampleImage(file, entry["prompt"], entry["step"]))
    return samples
