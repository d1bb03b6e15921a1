"""The config reader is a strict TOML 1.0 parser: invalid TOML is an error at FILE:LINE:COLUMN that never
echoes the file, absurd values fail before any model loads, and token-looking text is refused anywhere."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from textboost_ext.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[2]
HEAD = 'pretrained_model_name_or_path = "builtin:tiny-sd1"\ntrain_data_dir = "data"\n'
TB = '[textboost]\nplaceholder_token = "tbmug"\ninitializer = "coffee mug"\n'
SECRET_LOOKING = "password = 'correct horse'  # must never be printed back\n"


def _errors(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    return info.value.errors


@pytest.mark.parametrize(("body", "where"), [
    (HEAD + 'output_name = "mug"\\\n' + TB, ":4:"),  # the old reader read this as mug"
    (HEAD + "[textboost]\nkpl_weight = 0.1\n[textboost]\nclass_noun = 'mug'\n", ":6:"),  # duplicated table
    (HEAD + "learning_rate = 1e-4\nlearning_rate = 2e-4\n" + TB, ":5:"),  # duplicated key
    (HEAD + "max_train_steps = 250 250\n" + TB, ":4:"),
    (HEAD + 'sample_prompts = "unterminated\n' + TB, ":4:"),
    (HEAD + "optimizer_args = [\n" + TB, ":"),
    (HEAD + "seed = 07\n" + TB, ":4:"),  # leading zeros are not TOML
])
def test_invalid_toml_names_the_place_and_never_echoes_the_file(tmp_path: Path, body: str, where: str) -> None:
    path = tmp_path / "train.toml"
    path.write_text(SECRET_LOOKING + body, encoding="utf-8")
    (error,) = _errors(path)
    assert error.startswith(f"{path}{where}") and "invalid TOML" in error
    assert "correct horse" not in error and "mug" not in error.split("invalid TOML", 1)[1]


@pytest.mark.parametrize(("line", "key"), [
    ("learning_rate = 1e308", "learning_rate"), ("network_dim = 1000000000", "network_dim"),
    ("train_batch_size = 1000000000", "train_batch_size"), ("learning_rate = nan", "learning_rate"),
    ("max_grad_norm = inf", "max_grad_norm"), ("max_train_steps = 100000000000", "max_train_steps"),
])
def test_absurd_values_fail_at_config_time(tmp_path: Path, line: str, key: str) -> None:
    path = tmp_path / "train.toml"
    path.write_text(HEAD + line + "\n" + TB, encoding="utf-8")
    errors = _errors(path)
    assert any(key in e and ("absurdly large" in e or "finite" in e or "must be" in e) for e in errors), errors


def test_a_token_in_a_comment_is_refused_without_showing_it(tmp_path: Path) -> None:
    secret = "hf_" + "Zq9" * 12
    path = tmp_path / "train.toml"
    path.write_text(HEAD + f"# my token: {secret}\n" + TB, encoding="utf-8")
    (error,) = _errors(path)
    assert f"{path}:3: this looks like a Hugging Face token" in error and secret not in error and "HF_TOKEN" in error


def test_entry_script_prints_no_traceback_for_bad_toml(tmp_path: Path) -> None:
    path = tmp_path / "train.toml"
    path.write_text(SECRET_LOOKING + HEAD + "[textboost]\n[textboost]\n", encoding="utf-8")
    done = subprocess.run([sys.executable, str(ROOT / "train_network_textboost.py"), "--config_file", str(path)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 2 and "Traceback" not in done.stderr and "correct horse" not in done.stderr
    assert f"{path}:5:" in done.stderr
