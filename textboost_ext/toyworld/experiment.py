"""Train a TextBoost adapter on a toy-world subject from Python (the ablation and the personalization test).

``TOY_SETTINGS`` are the demo's settings (``config_templates/demo.toml``; a test keeps the two equal). A run
writes an ordinary training TOML into its folder and trains through the same parser, extension and host as
``train_network_textboost.py``, so what is measured is what a user runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textboost_ext.toyworld.references import reference_path
from textboost_ext.toyworld.subjects import Subject

TOY_SETTINGS: dict[str, Any] = {
    "pretrained_model_name_or_path": "builtin:toyworld",
    "resolution": 32,
    "train_batch_size": 8,
    "max_train_steps": 250,
    "learning_rate": 5e-4,
    "optimizer_type": "AdamW8bit",
    "optimizer_args": ["weight_decay=0.01"],
    "mixed_precision": "no",
}
TOY_TEXTBOOST: dict[str, Any] = {
    "caption_templates": ["a photo of a {}", "a {}"],
    "emb_learning_rate": 5e-3,
    "kpl_weight": 1.0,
}


def write_config(subject: Subject, references: Path, preservation_prompts: Path, run_dir: Path, seed: int,
                 top: dict[str, Any] | None = None, textboost: dict[str, Any] | None = None) -> Path:
    import toml

    config = dict(TOY_SETTINGS, seed=seed, output_name=subject.name, output_dir=str(run_dir),
                  train_data_dir=str(reference_path(references, subject).parent.parent))
    config.update(top or {})
    config["textboost"] = dict(TOY_TEXTBOOST, placeholder_token=subject.placeholder, initializer=subject.class_noun,
                               class_noun=subject.class_noun, preservation_prompts=str(preservation_prompts))
    config["textboost"].update(textboost or {})
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "train.toml"
    path.write_text(toml.dumps(config))
    return path


def train_subject(config_file: Path) -> Path:
    """Train from ``config_file``; returns the adapter folder."""
    from textboost_ext.config import parse_args
    from textboost_ext.host import train
    from textboost_ext.registry import create_extension

    config, _ = parse_args(["--config_file", str(config_file), "--overwrite"])
    extension = create_extension(config.extension)
    extension.assert_extra_args(config)
    return Path(train(config, extension).adapter_dir)
