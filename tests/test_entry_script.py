"""The entry script as a user runs it: strict config errors, --dry_run, the demo config, clean errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SD_SCRIPTS_DIR"}  # the built-in host, not sd-scripts
    return subprocess.run([sys.executable, str(ROOT / "train_network_textboost.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_misspelt_key_names_key_file_and_suggestion(tmp_path: Path) -> None:
    demo = (ROOT / "config_templates" / "tiny_demo.toml").read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(demo.replace("learning_rate = 5e-5", "learning_rat = 5e-5").replace(
        '"../examples/demo_subject"', repr(str(ROOT / "examples" / "demo_subject")).replace("'", '"')))
    done = _run("--config_file", str(bad))
    assert done.returncode != 0
    assert "learning_rat" in done.stderr and "learning_rate" in done.stderr and "bad.toml" in done.stderr
    assert "Traceback" not in done.stderr


def test_dry_run_prints_resolved_config_and_exits_zero() -> None:
    done = _run("--config_file", "config_templates/tiny_demo.toml", "--dry_run", "--learning_rate", "1e-4")
    assert done.returncode == 0, done.stderr
    assert "learning_rate = 0.0001" in done.stdout  # the CLI override won
    assert "30 steps" in done.stdout and "demo_mug" in done.stdout


@pytest.mark.slow
def test_demo_config_trains_and_refuses_to_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "store"
    args = ("--config_file", "config_templates/tiny_demo.toml", "--output_dir", str(out), "--max_train_steps", "2",
            "--sample_every_n_steps", "2", "--no_sample_at_first")
    done = _run(*args)
    assert done.returncode == 0, done.stderr[-3000:]
    lora = out / "demo_mug" / "demo_mug.safetensors"
    assert lora.is_file() and (out / "demo_mug" / "embeddings" / "tbmug.safetensors").is_file()
    assert (out / "demo_mug" / "README.md").is_file()
    assert str(lora) in done.stdout and "<lora:demo_mug:1>" in done.stdout
    # the console: a start summary, an end summary with the TensorBoard hint, no third-party noise
    err = done.stderr
    assert "TextBoost training run" in err and "trainable  :" in err and "precision  : mixed_precision = 'no'" in err
    assert "device     : cpu" in err and "views at 64x64" in err
    assert "final loss" in err and "s/step" in err and f"tensorboard --logdir {out / 'demo_mug' / 'logs'}" in err
    assert "kernels" not in err and "Loading weights" not in err and "torchvision" not in err, err
    assert f"textboost-hub --adapters_dir {out.resolve()} push demo_mug" in done.stdout  # runs from any folder
    before = lora.read_bytes()
    again = _run(*args)
    assert again.returncode == 2 and "overwrite" in again.stderr and "Traceback" not in again.stderr
    assert lora.read_bytes() == before  # nothing already written is lost


def test_quiet_keeps_only_warnings_and_the_dry_run_has_no_library_noise() -> None:
    done = _run("--config_file", "config_templates/tiny_demo.toml", "--dry_run")
    assert done.returncode == 0 and "kernels" not in done.stderr and "Traceback" not in done.stderr, done.stderr
    quiet = _run("--config_file", "config_templates/tiny_demo.toml", "--dry_run", "--quiet", "--resolution", "1024")
    assert quiet.returncode == 2 and "training resolution is 1024x1024" in quiet.stderr
