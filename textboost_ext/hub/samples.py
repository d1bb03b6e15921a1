"""The sample-image index of an adapter: ``samples/index.json``, which image was made from which prompt.

Format (written by the trainer through ``record_sample``, read by the model card)::

    [{"file": "step000250_00.png", "prompt": "a photo of mycorgi dog on the beach", "step": 250}, ...]

``file`` is relative to ``samples/``; extra keys (``negative_prompt``, ``seed``, ``width``, ...) are allowed
and preserved. Without an index, a sidecar ``samples/<image stem>.txt`` holding
the prompt is accepted (step unknown: -1).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from textboost_ext.hub.errors import AdapterFormatError
from textboost_ext.hub.store import SAMPLES_SUBDIR

INDEX_NAME = "index.json"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


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
    samples_dir = Path(adapter_dir) / SAMPLES_SUBDIR
    if not (samples_dir / file).is_file():
        raise FileNotFoundError(f"record_sample: {samples_dir / file} does not exist; save the image first")
    index = samples_dir / INDEX_NAME
    entries: list = []
    if index.is_file():
        _read_index(index)  # validate before extending
        entries = json.loads(index.read_text(encoding="utf-8"))  # keep extra keys (seed, size, ...) as they are
    entries.append(asdict(SampleImage(file, prompt, int(step))))
    fd, tmp = tempfile.mkstemp(prefix=".index-", suffix=".json.tmp", dir=samples_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(entries, handle, indent=1, ensure_ascii=False)
        os.replace(tmp, index)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return index


def _read_index(index: Path) -> list[SampleImage]:
    try:
        data = json.loads(index.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise AdapterFormatError(f"{index}: not valid JSON ({err}); fix it or delete it") from err
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
