"""caption_mode: "templates" (default) says once which dataset captions it leaves unused; "files" trains
on the dataset's captions (which must name the placeholder) plus each view's augmentation tokens;
ss_tag_frequency counts the words of the captions actually trained; --dry_run / --show_captions show them."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors import safe_open

from textboost_ext.host.trainer import HostTrainer

ROOT = Path(__file__).resolve().parents[2]


def _captioned(subject_dir: Path, text: str) -> Path:
    (subject_dir / "1_mug" / "mug.txt").write_text(text + "\n", encoding="utf-8")
    return subject_dir


def _tag_frequency(path: Path) -> dict:
    import json

    with safe_open(str(path), "pt") as f:
        return json.loads(f.metadata()["ss_tag_frequency"])


def test_templates_mode_notices_unused_caption_file_once_and_trains_the_trigger(textboost_config, subject_dir, caplog):
    _captioned(subject_dir, "sks mug, on a wooden table")
    trainer = HostTrainer(textboost_config(max_train_steps=2))
    with caplog.at_level(logging.INFO, logger="textboost_ext"):
        result = trainer.train()
    notices = [r.getMessage() for r in caplog.records if "caption_mode" in r.getMessage()]
    assert len(notices) == 1
    assert '"templates"' in notices[0] and "1 caption file(s) (*.txt)" in notices[0] and 'caption_mode = "files"' in notices[0]
    words = _tag_frequency(result.lora_path)["1_mug"]
    assert words["tbmug"] == 4 and words["mug"] == 4  # 2 steps x batch 2, each caption names the trigger
    assert "sks" not in words and "wooden" not in words  # the caption file did not train


def test_files_mode_trains_on_the_caption_file_with_augmentation_tokens(textboost_config, subject_dir):
    _captioned(subject_dir, "tbmug mug, on a wooden table")
    trainer = HostTrainer(textboost_config(max_train_steps=2, textboost={"caption_mode": "files", "augment_p": 1.0}))
    result = trainer.train()
    words = _tag_frequency(result.lora_path)["1_mug"]
    assert words["wooden"] == 4 and words["tbmug"] == 4 and words["tbmug_1"] == 4  # both vector tokens
    assert any(w.startswith("<") for w in words)  # augmentation tokens beside the placeholder


def test_files_mode_refuses_captions_without_the_placeholder(textboost_config, subject_dir):
    _captioned(subject_dir, "a mug on a table")
    trainer = HostTrainer(textboost_config(textboost={"caption_mode": "files"}))
    with pytest.raises(ValueError, match=r"does not contain the placeholder 'tbmug'") as err:
        trainer.train()
    assert "mug.txt" in str(err.value)


def test_example_captions_follow_the_mode(textboost_config, subject_dir):
    from textboost_ext.config import resolve_dataset
    from textboost_ext.extension import TextBoostExtension
    from textboost_ext.host.dataset import collect_images

    _captioned(subject_dir, "tbmug mug, red, on a table")
    for mode, expect in (("templates", "tbmug tbmug_1 mug"), ("files", "on a table")):
        cfg = textboost_config(textboost={"caption_mode": mode, "augment_p": 1.0})
        ext = TextBoostExtension()
        ext.assert_extra_args(cfg)
        items = collect_images(resolve_dataset(cfg), (64, 64))
        captions = ext.example_captions(items, 5, seed=1)
        assert len(captions) == 5 and all(expect in c for c in captions), captions
        assert any("<" in c for c in captions)  # augmentation tokens
        if mode == "templates":
            assert not any("table" in c for c in captions)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SD_SCRIPTS_DIR"}
    return subprocess.run([sys.executable, str(ROOT / "train_network_textboost.py"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_dry_run_and_show_captions_print_training_captions(tmp_path):
    data = tmp_path / "data" / "1_mug"
    data.mkdir(parents=True)
    (data / "mug.png").write_bytes((ROOT / "examples" / "demo_subject" / "1_mug" / "mug.png").read_bytes())
    (data / "mug.txt").write_text("a mug on a table\n")
    common = ("--config_file", "config_templates/tiny_demo.toml", "--train_data_dir", str(data.parent),
              "--output_dir", str(tmp_path / "out"))
    done = _run(*common, "--dry_run")
    assert done.returncode == 0, done.stderr
    assert "example training captions:" in done.stdout and done.stdout.count("tbmug tbmug_1 mug") >= 5
    assert "captions from caption_templates (caption files unused)" in done.stdout  # not "captions *.txt"
    assert "note: captions: caption_mode = \"templates\"" in done.stderr and "1 caption file(s)" in done.stderr
    shown = _run(*common, "--show_captions", "3")
    assert shown.returncode == 0 and len(shown.stdout.strip().splitlines()) == 3, shown.stdout + shown.stderr
    refused = _run(*common, "--dry_run", "--caption_mode", "files")
    assert refused.returncode == 2 and "does not contain the placeholder 'tbmug'" in refused.stderr
