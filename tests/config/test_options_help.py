"""--help and docs/options.md come from one table that describes every schema key."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from textboost_ext.config import ConfigError, parse_args
from textboost_ext.config.cli import build_arg_parser
from textboost_ext.config.options_help import CHOICES, HELP, HIDDEN_FROM_HELP, options_markdown
from textboost_ext.config.schema import TextBoostConfig, TrainConfig

ROOT = Path(__file__).resolve().parents[2]


def test_every_key_is_described_and_nothing_else():
    keys = {f.name for cls in (TrainConfig, TextBoostConfig) for f in fields(cls)} - {"textboost"}
    assert set(HELP) == keys
    assert set(CHOICES) <= keys


def test_docs_options_md_is_in_sync():
    assert (ROOT / "docs" / "options.md").read_text() == options_markdown(), (
        "regenerate: .venv/bin/python -m textboost_ext.config.options_help > docs/options.md")


def test_help_has_descriptions_and_allowed_values_and_hides_always_refused_options():
    text = " ".join(build_arg_parser().format_help().split())  # argparse wraps lines
    assert "LoRA rank" in text and "Allowed: no, fp16, bf16" in text and "Allowed: templates, files" in text
    assert "Lion8bit" in text and "--show_captions" in text and "--quiet" in text
    for name in HIDDEN_FROM_HELP:
        assert f"--{name} " not in text and f"--no_{name}" not in text
    with pytest.raises(ConfigError, match="unet_lr is set but UNet LoRA is not supported"):
        parse_args(["--pretrained_model_name_or_path", "builtin:tiny-sd1", "--train_data_dir", "x", "--unet_lr", "1e-4"],
                   check_paths=False)
