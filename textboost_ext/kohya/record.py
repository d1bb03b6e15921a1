"""Optional step record for diagnosing a run: ``TEXTBOOST_KOHYA_RECORD=<file.jsonl>``.

When the variable is set, the sd-scripts trainer appends one JSON object per event to that file: the
setup (tokens added, their ids, the timestep sampler), every training micro-batch (captions and token
ids as sd-scripts encoded them, the timesteps drawn by the extension and the ones the UNet got, the
loss terms) and every save (the files written). Off by default; the integration tests use it to see
inside sd-scripts' loop. Only the main process writes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

RECORD_ENV = "TEXTBOOST_KOHYA_RECORD"


def _plain(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().tolist()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class StepRecorder:
    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = Path(path) if path else None

    @classmethod
    def from_env(cls) -> StepRecorder:
        return cls(os.environ.get(RECORD_ENV) or None)

    @property
    def enabled(self) -> bool:
        return self.path is not None

    def write(self, event: str, is_main_process: bool = True, **fields: Any) -> None:
        if self.path is None or not is_main_process:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps({"event": event, **_plain(fields)}) + "\n")


def read_records(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
