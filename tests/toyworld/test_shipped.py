"""The shipped base and oracle: checksums, size, loading as builtin:toyworld, and that they actually work."""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import pytest

from textboost_ext.toyworld.shipped import ShippedFileError, assets_dir, checked_file, materialize, read_record

MAX_SHIPPED_BYTES = 25 * 1024 * 1024


def test_every_shipped_file_matches_its_record_and_they_fit_the_budget() -> None:
    record = read_record()
    assert set(record["sha256"]) >= {"vae.safetensors", "text_encoder.safetensors", "unet.safetensors", "oracle.safetensors"}
    total = sum(checked_file(name).stat().st_size for name in record["sha256"])
    assert total <= MAX_SHIPPED_BYTES


def test_the_record_says_how_the_base_was_built_and_measured() -> None:
    record = read_record()
    assert record["seed"] == 0 and "pretrain" in record["command"]
    assert record["quality"]["n"] >= 500
    assert set(record["quality"]) >= {"background", "colour", "shape", "position", "size", "style"}


def test_a_damaged_file_is_refused_by_name(tmp_path: Path) -> None:
    copy = tmp_path / "assets"
    shutil.copytree(assets_dir(), copy)
    data = bytearray((copy / "unet.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (copy / "unet.safetensors").write_bytes(bytes(data))
    with pytest.raises(ShippedFileError, match="unet.safetensors"):
        materialize(tmp_path / "model", folder=copy)
    assert not (tmp_path / "model").exists()


def test_builtin_toyworld_is_an_sd1_diffusers_folder(toy_cache: Path) -> None:
    from textboost_ext.models.load import load_base_model
    from textboost_ext.toyworld.shipped import record_digest

    model = load_base_model("builtin:toyworld")
    trained_for = read_record()["t2i"]["settings"].get("prediction_type", "epsilon")  # older records: epsilon
    assert (model.family, model.prediction_type, model.extra["format"]) == ("sd1", trained_for, "diffusers")
    assert (toy_cache / f"toyworld-{record_digest()}" / "model_index.json").is_file()


def test_the_shipped_oracle_reads_fresh_renders(oracle: Any) -> None:
    from textboost_ext.toyworld.oracle import oracle_accuracy
    from textboost_ext.toyworld.world import all_scenes

    accuracy = oracle_accuracy(oracle, all_scenes(), seed=99, n=300)
    assert min(accuracy.values()) >= 0.97, accuracy


def test_the_shipped_base_is_the_one_its_record_measured(toy_pipe: Any, oracle: Any) -> None:
    """A fresh sample of held-out captions agrees with the recorded quality table, and the base is not random
    (a random-weight base reads at chance: background 1/8)."""
    from textboost_ext.toyworld.quality import measure_quality

    recorded = read_record()["quality"]
    by_shape: dict[str, float] = {}
    q = measure_quality(toy_pipe, oracle, n=64, seed=5, by_shape=by_shape)
    assert q["background"] >= 0.9, q
    assert len(by_shape) >= 5 and min(by_shape.values()) <= q["shape"] <= max(by_shape.values()), (by_shape, q)
    for name in ("background", "colour", "shape", "position", "size", "style"):
        assert abs(q[name] - recorded[name]) <= 0.2, (name, q[name], recorded[name])


def test_ship_refuses_an_unfinished_run_without_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from textboost_ext.toyworld.cli import main

    (tmp_path / "run").mkdir()
    assert main(["ship", str(tmp_path / "run"), "--target", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "not a finished pretraining run" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_a_missing_install_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from textboost_ext.models.builtin import builtin_model_dir
    from textboost_ext.models.errors import BaseModelError
    from textboost_ext.toyworld import shipped

    monkeypatch.setattr(shipped, "assets_dir", lambda: tmp_path / "nothing")
    with pytest.raises(BaseModelError, match="not installed"):
        builtin_model_dir("builtin:toyworld")
