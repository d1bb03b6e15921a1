"""The novel subjects' reference images: ONE photo each, as a user would give (kohya folder layout).

``examples/toyworld/<subject>/1_<shape>/<subject>.png`` (1 repeat, class token = the shape), 128 px, rendered
from the subject's reference scene with a fixed seed. Committed; ``textboost-toyworld references`` rewrites them.
"""

from __future__ import annotations

import random
from pathlib import Path

from textboost_ext.toyworld.render import render
from textboost_ext.toyworld.subjects import SUBJECTS, Subject

REFERENCE_SIZE = 128
REFERENCE_SEED = 1234


def reference_path(root: Path, subject: Subject) -> Path:
    return root / subject.name / f"1_{subject.shape}" / f"{subject.name}.png"


def write_references(root: Path) -> list[Path]:
    paths = []
    for subject in SUBJECTS.values():
        path = reference_path(root, subject)
        path.parent.mkdir(parents=True, exist_ok=True)
        render(subject.reference, random.Random(REFERENCE_SEED), size=REFERENCE_SIZE).save(path)
        paths.append(path)
    return paths
