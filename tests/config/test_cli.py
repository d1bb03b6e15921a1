"""The schema-generated command line: flags, booleans, precedence, unknown flags, run options."""

from __future__ import annotations

import argparse
from dataclasses import fields

import pytest

from textboost_ext.config import ConfigError, RunOptions, TextBoostConfig, TrainConfig, build_arg_parser, parse_args

HEAD = 'pretrained_model_name_or_path = "builtin:tiny-sd1"\ntrain_data_dir = "data"\n'
TB = '[textboost]\nplaceholder_token = "tbmug"\ninitializer = "coffee mug"\nkpl_cache = true\n'


def test_every_config_field_is_a_flag() -> None:
    parser = build_arg_parser()
    for cls in (TrainConfig, TextBoostConfig):
        for f in fields(cls):
            if f.name != "textboost":
                ns = parser.parse_args([f"--{f.name}"] + ([] if f.type == "bool" else ["1"]))
                assert f.name in vars(ns), f.name


def test_only_given_flags_become_values() -> None:
    ns = build_arg_parser().parse_args(["--learning_rate", "1e-4"])
    assert vars(ns) == {"learning_rate": "1e-4"}


def test_abbreviations_are_not_accepted() -> None:
    _, unknown = build_arg_parser().parse_known_args(["--learning", "1e-4"])
    assert unknown == ["--learning", "1e-4"]


def test_cli_wins_over_toml_and_booleans_go_both_ways(write_toml) -> None:
    path = write_toml(HEAD + "learning_rate = 1e-4\nsample_at_first = true\nsample_prompts = \"p.txt\"\n" + TB)
    cfg, run = parse_args(["--config_file", str(path), "--learning_rate", "2e-5", "--no_sample_at_first",
                           "--no_kpl_cache", "--norm_clamp", "--resolution", "512", "768",
                           "--caption_templates", "{}", "a photo of {}", "--clip_skip", "2"], check_paths=False)
    assert cfg.learning_rate == 2e-5 and cfg.sample_at_first is False
    assert cfg.textboost.kpl_cache is False and cfg.textboost.norm_clamp is True
    assert cfg.resolution == [512, 768] and cfg.clip_skip == 2
    assert cfg.textboost.caption_templates == ["{}", "a photo of {}"]
    assert run == RunOptions(config_file=str(path), dry_run=False, sd_scripts_dir=None)


def test_run_options_and_config_file_without_suffix(write_toml) -> None:
    path = write_toml(HEAD + TB)
    cfg, run = parse_args(["--config_file", str(path.with_suffix("")), "--dry_run", "--sd_scripts_dir", "/sd"],
                          check_paths=False)
    assert run == RunOptions(config_file=str(path), dry_run=True, sd_scripts_dir="/sd")
    assert cfg.textboost.placeholder_token == "tbmug"


def test_unknown_flags_are_reported_with_the_config_errors(write_toml) -> None:
    path = write_toml(HEAD + "train_batch_size = 0\n" + TB)
    with pytest.raises(ConfigError) as info:
        parse_args(["--config_file", str(path), "--learning_rat", "1e-4", "--flip_aug", "--hf_token", "x"],
                   check_paths=False)
    errors = info.value.errors
    assert "command line: unknown option --learning_rat (did you mean --learning_rate?)" in errors
    assert any("--flip_aug is a kohya option this trainer does not implement" in e for e in errors)
    assert any("--hf_token is not accepted" in e and "HF_TOKEN" in e for e in errors)
    assert any("train_batch_size = 0 must be > 0" in e for e in errors)
    assert len(errors) == 4  # the value "1e-4" after the unknown flag is not a separate error


def test_bad_flag_value_names_the_flag(write_toml) -> None:
    with pytest.raises(ConfigError) as info:
        parse_args(["--config_file", str(write_toml(HEAD + TB)), "--max_train_steps", "lots"], check_paths=False)
    assert info.value.errors == [
        "command line (--max_train_steps): max_train_steps: must be a whole number; got 'lots'"]


def test_none_unsets_an_optional_number(write_toml) -> None:
    path = write_toml(HEAD + "clip_skip = 2\n" + TB)
    cfg, _ = parse_args(["--config_file", str(path), "--clip_skip", "none"], check_paths=False)
    assert cfg.clip_skip is None


def test_parse_args_checks_paths_by_default(write_toml) -> None:
    with pytest.raises(ConfigError, match="train_data_dir = 'data': no such folder"):
        parse_args(["--config_file", str(write_toml(HEAD + TB))])


def test_missing_value_is_an_argparse_error() -> None:
    with pytest.raises(SystemExit):
        build_arg_parser().parse_args(["--learning_rate"])


def test_help_lists_textboost_group() -> None:
    text = build_arg_parser("train").format_help()
    assert "[textboost] table" in text and "--kpl_weight" in text and "--no_kpl_cache" in text
    assert isinstance(build_arg_parser(), argparse.ArgumentParser)
