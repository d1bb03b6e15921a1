"""samples/index.json: the trainer's writer, the card's reader, the sidecar fallback, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from textboost_ext.hub.errors import AdapterFormatError
from textboost_ext.hub.samples import SampleImage, final_samples, read_samples, record_sample


def test_record_then_read(tmp_path: Path) -> None:
    (tmp_path / "samples").mkdir()
    for step, name in ((0, "a.png"), (10, "b.png"), (10, "c.png")):
        (tmp_path / "samples" / name).write_bytes(b"png")
        record_sample(tmp_path, name, f"prompt {name}", step)
    samples = read_samples(tmp_path)
    assert samples == [SampleImage("a.png", "prompt a.png", 0), SampleImage("b.png", "prompt b.png", 10),
                       SampleImage("c.png", "prompt c.png", 10)]
    assert [s.repo_path for s in final_samples(samples)] == ["samples/b.png", "samples/c.png"]
    assert [p.name for p in (tmp_path / "samples").iterdir() if p.name.startswith(".")] == []  # no temp left
    # entries written by the host trainer carry more keys: they are read and kept when appending
    index = tmp_path / "samples" / "index.json"
    index.write_text(index.read_text().replace('"step": 0', '"step": 0, "seed": 7, "negative_prompt": "blurry"'))
    (tmp_path / "samples" / "d.png").write_bytes(b"png")
    record_sample(tmp_path, "d.png", "prompt d", 20)
    assert '"seed": 7' in index.read_text() and read_samples(tmp_path)[-1] == SampleImage("d.png", "prompt d", 20)
    with pytest.raises(FileNotFoundError, match="save the image first"):
        record_sample(tmp_path, "missing.png", "p", 1)


def test_sidecar_txt_fallback(tmp_path: Path) -> None:
    samples = tmp_path / "samples"
    samples.mkdir()
    (samples / "x.png").write_bytes(b"png")
    (samples / "x.txt").write_text("a photo of tok\n")
    (samples / "no_prompt.png").write_bytes(b"png")
    assert read_samples(tmp_path) == [SampleImage("x.png", "a photo of tok", -1)]
    assert read_samples(tmp_path / "nothing") == []


@pytest.mark.parametrize(
    ("index", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"file": "x.png"}', "must be a JSON list"),
        ('[{"file": "x.png", "prompt": "p"}]', "entry 0 must be"),
        ('[{"file": "x.png", "prompt": "p", "step": true}]', "entry 0 must be"),
        ('[{"file": "../x.png", "prompt": "p", "step": 1}]', "must be a name inside samples/"),
        ('[{"file": "gone.png", "prompt": "p", "step": 1}]', "is missing"),
    ],
)
def test_bad_index_is_named(tmp_path: Path, index: str, message: str) -> None:
    samples = tmp_path / "samples"
    samples.mkdir()
    (samples / "x.png").write_bytes(b"png")
    (samples / "index.json").write_text(index)
    with pytest.raises(AdapterFormatError, match=message) as err:
        read_samples(tmp_path)
    assert "index.json" in str(err.value)
