"""The demo's TOML and the settings the ablation/personalization test use are the same run."""

from __future__ import annotations

from pathlib import Path

from textboost_ext.config import load_config
from textboost_ext.toyworld.experiment import TOY_SETTINGS, TOY_TEXTBOOST

REPO = Path(__file__).resolve().parents[2]


def test_demo_toml_uses_the_toy_settings() -> None:
    cfg = load_config(REPO / "config_templates" / "demo.toml", {})
    for key, value in TOY_SETTINGS.items():
        expected = [value, value] if key == "resolution" else value
        assert getattr(cfg, key) == expected, key
    for key, value in TOY_TEXTBOOST.items():
        assert getattr(cfg.textboost, key) == value, key
    assert (cfg.textboost.placeholder_token, cfg.textboost.class_noun, cfg.textboost.initializer) == ("tbsquare", "square", "square")
