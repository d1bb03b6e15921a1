"""load_config: strict keys with suggestions, types, collected errors, overrides, paths, secrets, round trip."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from textboost_ext.config import (
    ConfigError,
    TextBoostConfig,
    TrainConfig,
    check_paths,
    config_to_toml,
    load_config,
)
from textboost_ext.config.load import format_resolved_config

HEAD = """
pretrained_model_name_or_path = "builtin:tiny-sd1"
train_data_dir = "data"
"""
TB = """
[textboost]
placeholder_token = "tbmug"
initializer = "coffee mug"
"""


def errors_of(path: Path | None, overrides: dict[str, object] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides or {})
    return info.value.errors


def test_minimal_config_gets_schema_defaults(write_toml) -> None:
    cfg = load_config(write_toml(HEAD + TB), {})
    assert cfg.learning_rate == 5e-5 and cfg.max_train_steps == 250 and cfg.train_batch_size == 8
    assert cfg.textboost.kpl_weight == 0.1 and cfg.textboost.placeholder_token == "tbmug"
    assert cfg.resolution == [512, 512]


def test_misspelt_top_level_key_names_key_file_and_suggestion(write_toml) -> None:
    path = write_toml(HEAD + "learning_rat = 1e-4\n" + TB)
    (error,) = errors_of(path)
    assert error == f"{path}: unknown key 'learning_rat' (did you mean 'learning_rate'?)"


def test_misspelt_key_in_textboost_table(write_toml) -> None:
    path = write_toml(HEAD + TB + "kpl_wieght = 0.2\n")
    (error,) = errors_of(path)
    assert error == f"{path} [textboost]: unknown key 'kpl_wieght' (did you mean 'kpl_weight'?)"


def test_misspelt_key_in_grouping_table(write_toml) -> None:
    path = write_toml(TB + '[model]\npretrained_model_name_or_path = "builtin:tiny-sd1"\n'
                      '[training]\ntrain_data_dir = "data"\nmax_train_step = 10\n')
    (error,) = errors_of(path)
    assert error == f"{path} [training]: unknown key 'max_train_step' (did you mean 'max_train_steps'?)"


def test_grouping_tables_are_flattened(write_toml) -> None:
    path = write_toml(TB + '[model]\npretrained_model_name_or_path = "builtin:tiny-sd1"\n'
                      '[training]\ntrain_data_dir = "data"\nmax_train_steps = 10\nlearning_rate = 1e-4\n')
    cfg = load_config(path, {})
    assert cfg.max_train_steps == 10 and cfg.learning_rate == 1e-4


def test_key_set_twice_across_tables_is_an_error(write_toml) -> None:
    path = write_toml(HEAD + "max_train_steps = 5\n" + TB + "[training]\nmax_train_steps = 10\n")
    (error,) = errors_of(path)
    assert "max_train_steps is set twice" in error and "[training]" in error


def test_keys_in_the_wrong_table_say_where_they_belong(write_toml) -> None:
    path = write_toml(HEAD + "kpl_weight = 0.2\n" + TB + "learning_rate = 1e-4\n")
    errors = errors_of(path)
    assert any("'kpl_weight' is a [textboost] setting" in e for e in errors)
    assert any("'learning_rate' is a top-level setting" in e for e in errors)


def test_misspelt_textboost_table_name(write_toml) -> None:
    path = write_toml(HEAD + TB.replace("[textboost]", "[TextBoost]"))
    errors = errors_of(path)
    assert f"{path} [TextBoost]: unknown table (did you mean [textboost]?)" in errors


def test_kohya_option_we_do_not_implement_is_explained(write_toml) -> None:
    path = write_toml(HEAD + "min_snr_gamma = 5\ncache_latents = true\n" + TB)
    errors = errors_of(path)
    assert any("'min_snr_gamma' is a kohya option this trainer does not implement" in e
               and "timestep_sampling" in e for e in errors)
    assert any("'cache_latents'" in e for e in errors)


@pytest.mark.parametrize(("line", "expected"), [
    ('learning_rate = "1e-4"', "learning_rate: must be a number; got '1e-4' (write numbers without quotes)"),
    ("max_train_steps = 2.5", "max_train_steps: must be a whole number; got 2.5"),
    ('sample_at_first = "yes"', "sample_at_first: must be true or false"),
    ("output_name = 12", "output_name: must be a string; got 12"),
    ('optimizer_args = "weight_decay=0.01"', "optimizer_args: must be a list of strings"),
    ("max_train_steps = true", "max_train_steps: must be a whole number; got True"),
    ("resolution = 500", "resolution: 500 is not a positive multiple of 8"),
])
def test_wrong_types(write_toml, line: str, expected: str) -> None:
    path = write_toml(HEAD + line + "\n" + TB)
    (error,) = errors_of(path)
    assert error.startswith(f"{path}: {expected}"), error


def test_ints_are_accepted_for_floats(write_toml) -> None:
    cfg = load_config(write_toml(HEAD + "network_alpha = 8\nlearning_rate = 1\n" + TB), {})
    assert cfg.network_alpha == 8.0 and isinstance(cfg.network_alpha, float)


@pytest.mark.parametrize(("line", "fragment"), [
    ("learning_rate = -1e-4", "learning_rate = -0.0001 must be > 0"),
    ("train_batch_size = 0", "train_batch_size = 0 must be > 0"),
    ('mixed_precision = "fp8"', "mixed_precision = 'fp8' is not supported"),
    ('save_precision = "int8"', "save_precision = 'int8' is not supported"),
    ('optimizer_type = "AdamW9bit"', "optimizer_type = 'AdamW9bit' is not supported"),
    ('optimizer_type = "adamw_8bit"', "(did you mean 'AdamW8bit'?)"),
    ('optimizer_args = ["weight_decay"]', "is not key=value"),
    ('optimizer_args = ["weight_decy=0.1"]', "(did you mean 'weight_decay'?)"),
    ("min_timestep = 500\nmax_timestep = 500", "min_timestep = 500 must be less than max_timestep = 500"),
    ("max_timestep = 1001", "max_timestep = 1001 must be in [1, 1000]"),
    ("network_train_unet_only = true", "UNet LoRA is not supported; TextBoost trains the text encoder only"),
    ("unet_lr = 1e-4", "unet_lr is set but UNet LoRA is not supported"),
    ('log_with = "mlflow"', "log_with = 'mlflow' is not supported"),
    ('save_model_as = "ckpt"', "only \"safetensors\""),
    ("push_to_hub = true", "push_to_hub = true needs hub_repo_id"),
    ('dataset_config = "ds.toml"', "dataset_config and train_data_dir are both set"),
    ('pretrained_model_name_or_path = "builtin:tiny-sd3"', "unknown built-in model 'builtin:tiny-sd3'"),
    ("sdxl = true", "builtin:tiny-sd1 is a sd1 model but the flags say sdxl"),
    ("lr_warmup_steps = 10", "use lr_scheduler = \"constant_with_warmup\""),
    ("save_last_n_steps = 10", "save_last_n_steps needs save_every_n_steps"),
    ("sample_every_n_steps = 10", "sample_every_n_steps is set but sample_prompts is not"),
    ('output_name = "x.safetensors"', "must not carry the extension; use 'x'"),
    ('extension = "textbost"', "(did you mean 'textboost'?)"),
    ('network_module = "lycoris.kohya"', "network_module = \"textboost_ext.network\""),
])
def test_impossible_top_level_values(write_toml, line: str, fragment: str) -> None:
    body = HEAD.replace('pretrained_model_name_or_path = "builtin:tiny-sd1"\n', "") if "pretrained" in line else HEAD
    errors = errors_of(write_toml(body + line + "\n" + TB))
    assert any(fragment in e for e in errors), errors


@pytest.mark.parametrize(("line", "fragment"), [
    ("kpl_empty_p = 1.5", "kpl_empty_p = 1.5 is a probability and must be between 0 and 1"),
    ("augment_p = -0.1", "augment_p = -0.1 is a probability"),
    ('kpl_type = "l1"', "kpl_type = 'l1' is not supported"),
    ('timestep_sampling = "logit"', "timestep_sampling = 'logit' is not supported"),
    ('augment = "heavy"', "augment = 'heavy' is not supported"),
    ('augment_mode = "tokens"', "(did you mean 'token'?)"),
    ('lora_targets = ["q_proj", "v_proj"]', "attention projections go together"),
    ('lora_targets = ["fc1", "fc3"]', "unknown module 'fc3'"),
    ('caption_templates = ["a photo"]', "must contain exactly one {}"),
    ("emb_learning_rate = 0", "emb_learning_rate = 0.0 must be > 0"),
    ('preservation_prompts = "prompts.csv"', "must be a .txt"),
])
def test_impossible_textboost_values(write_toml, line: str, fragment: str) -> None:
    path = write_toml(HEAD + TB + line + "\n")
    errors = errors_of(path)
    assert any(e.startswith(f"{path} [textboost]: ") and fragment in e for e in errors), errors


def test_placeholder_token_must_be_a_webui_embedding_name(write_toml) -> None:
    errors = errors_of(write_toml(HEAD + TB.replace('"tbmug"', '"<tbmug>"')))
    assert any("A1111/Forge embedding name" in e for e in errors)
    errors = errors_of(write_toml(HEAD + TB.replace('"tbmug"', '"mug"') + 'class_noun = "mug"\n'))
    assert any("must differ from class_noun" in e for e in errors)


def test_textboost_requires_a_token(write_toml) -> None:
    errors = errors_of(write_toml(HEAD))
    assert any("placeholder_token is required" in e for e in errors)
    assert any("initializer is required" in e for e in errors)


def test_textboost_settings_with_extension_none_are_rejected(write_toml) -> None:
    with_none = write_toml(HEAD + 'extension = "none"\n' + TB)
    errors = errors_of(with_none)
    assert any("would have no effect: placeholder_token, initializer" in e for e in errors)
    plain = load_config(write_toml(HEAD + 'extension = "none"\n[textboost]\nlora_targets = ["fc1", "fc2"]\n'), {})
    assert plain.textboost.lora_targets == ["fc1", "fc2"]


def test_all_errors_are_collected_at_once(write_toml) -> None:
    path = write_toml(HEAD + 'learning_rat = 1e-4\ntrain_batch_size = 0\nmixed_precision = "fp8"\n'
                      'max_train_steps = "ten"\n' + TB + "kpl_wieght = 0.2\naugment_p = 2.0\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    assert len(info.value.errors) == 6
    text = str(info.value)
    assert text.startswith("6 config problems:")
    for fragment in ("learning_rat", "train_batch_size = 0", "fp8", "max_train_steps", "kpl_wieght", "augment_p"):
        assert fragment in text


def test_unparseable_value_does_not_cause_follow_on_errors(write_toml) -> None:
    # sample_prompts has the wrong type: the rule "sample_every_n_steps needs sample_prompts" stays quiet.
    errors = errors_of(write_toml(HEAD + "sample_prompts = 3\nsample_every_n_steps = 10\n" + TB))
    assert len(errors) == 1 and "sample_prompts: must be a string" in errors[0]


def test_choices_are_case_insensitive_and_normalised(write_toml) -> None:
    cfg = load_config(write_toml(HEAD + 'optimizer_type = "adamw8BIT"\nmixed_precision = "BF16"\n'
                                 'save_precision = "fp32"\n' + TB + 'kpl_type = "MSE"\n'), {})
    assert (cfg.optimizer_type, cfg.mixed_precision, cfg.save_precision) == ("AdamW8bit", "bf16", "float")
    assert cfg.textboost.kpl_type == "mse"


def test_cli_overrides_win_over_the_file(write_toml) -> None:
    path = write_toml(HEAD + "learning_rate = 1e-4\nmax_train_steps = 100\n" + TB + "kpl_weight = 0.2\n")
    cfg = load_config(path, {"learning_rate": "3e-5", "kpl_weight": 0.5, "sample_at_first": False,
                             "resolution": ["768"], "optimizer_args": ["weight_decay=0.0"]})
    assert cfg.learning_rate == 3e-5 and cfg.max_train_steps == 100
    assert cfg.textboost.kpl_weight == 0.5 and cfg.resolution == [768, 768]
    assert cfg.optimizer_args == ["weight_decay=0.0"]


def test_cli_override_errors_name_the_flag(write_toml) -> None:
    errors = errors_of(write_toml(HEAD + TB), {"learning_rate": "fast", "kpl_wieght": 1})
    assert "command line (--learning_rate): learning_rate: must be a number; got 'fast'" in errors
    assert "command line: unknown option --kpl_wieght (did you mean 'kpl_weight'?)" in errors


def test_no_file_only_overrides() -> None:
    cfg = load_config(None, {"pretrained_model_name_or_path": "builtin:tiny-sd1", "train_data_dir": "x",
                             "extension": "none"})
    assert cfg.extension == "none" and cfg.train_data_dir == "x"
    assert any("pretrained_model_name_or_path is required" in e for e in errors_of(None, {"train_data_dir": "x"}))


@pytest.mark.parametrize(("value", "expected"), [
    ("512", [512, 512]), ("[512, 768]", [512, 768]), ('"512,768"', [512, 768]), ('"640"', [640, 640]),
    ("[1024]", [1024, 1024]),
])
def test_resolution_forms(write_toml, value: str, expected: list[int]) -> None:
    assert load_config(write_toml(HEAD + f"resolution = {value}\n" + TB), {}).resolution == expected


@pytest.mark.parametrize("value", ["[512, 512, 512]", '"512x512"', "0", "[512, 510]", '"big"'])
def test_bad_resolutions(write_toml, value: str) -> None:
    path = write_toml(HEAD + f"resolution = {value}\n" + TB)
    (error,) = errors_of(path)
    assert error.startswith(f"{path}: resolution: ")


@pytest.mark.parametrize("key", ["hub_token", "token", "hf_token", "wandb_api_key"])
def test_secret_keys_are_rejected_without_echoing_the_value(write_toml, key: str) -> None:
    secret = "hf_" + "a" * 34
    for text in (HEAD + f'{key} = "{secret}"\n' + TB, HEAD + TB + f'{key} = "{secret}"\n',
                 HEAD + TB + f'[hub]\n{key} = "{secret}"\n'):
        (error,) = errors_of(write_toml(text))
        assert "HF_TOKEN" in error and "hf auth login" in error and secret not in error


def test_secret_override_is_rejected_without_echoing_the_value(write_toml) -> None:
    secret = "hf_" + "b" * 34
    (error,) = errors_of(write_toml(HEAD + TB), {"hub_token": secret})
    assert "--hub_token is not accepted" in error and "HF_TOKEN" in error and secret not in error


def test_token_pasted_into_a_value_is_rejected(write_toml) -> None:
    secret = "hf_" + "Ab3" * 12
    (error,) = errors_of(write_toml(HEAD + f'training_comment = "my token {secret}"\n' + TB))
    assert "train.toml:4: this looks like a Hugging Face token" in error and secret not in error


def test_relative_paths_prefer_cwd_then_the_toml_folder(tmp_path, write_toml, monkeypatch) -> None:
    (tmp_path / "cfg" / "data").mkdir(parents=True)
    (tmp_path / "cfg" / "prompts.txt").write_text("a photo of tbmug mug\n")
    (tmp_path / "work" / "data").mkdir(parents=True)
    path = write_toml(HEAD + 'sample_prompts = "prompts.txt"\nsample_at_first = true\noutput_dir = "out"\n' + TB,
                      "cfg/train.toml")
    monkeypatch.chdir(tmp_path / "work")
    cfg = load_config(path, {}, check_paths=True)
    assert cfg.train_data_dir == str(tmp_path / "work" / "data")  # exists in the current folder: kohya's rule
    assert cfg.sample_prompts == str(tmp_path / "cfg" / "prompts.txt")  # found beside the TOML
    assert cfg.output_dir == "out"  # outputs stay relative to the current folder
    assert load_config(path, {}).pretrained_model_name_or_path == "builtin:tiny-sd1"


def test_check_paths_lists_every_missing_input(write_toml, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = write_toml(HEAD.replace("builtin:tiny-sd1", "models/sd15.safetensors")
                      + 'sample_prompts = "missing.txt"\nsample_at_first = true\n' + TB)
    load_config(path, {})  # schema validation alone does not touch the disk
    with pytest.raises(ConfigError) as info:
        load_config(path, {}, check_paths=True)
    assert len(info.value.errors) == 3
    for fragment in ("pretrained_model_name_or_path = 'models/sd15.safetensors': no such file",
                     "train_data_dir = 'data': no such folder", "sample_prompts = 'missing.txt': no such file"):
        assert any(fragment in e for e in info.value.errors), fragment


def test_check_paths_model_kinds(tmp_path) -> None:
    (tmp_path / "data").mkdir()
    base = TrainConfig(train_data_dir=str(tmp_path / "data"))
    check_paths(replace(base, pretrained_model_name_or_path="stabilityai/stable-diffusion-2-1-base"))  # a Hub id
    check_paths(replace(base, pretrained_model_name_or_path="builtin:tiny-sd1"))
    (tmp_path / "not_a_model").mkdir()
    with pytest.raises(ConfigError, match="folder without model_index.json"):
        check_paths(replace(base, pretrained_model_name_or_path=str(tmp_path / "not_a_model")))
    (tmp_path / "model.bin").write_bytes(b"x")
    with pytest.raises(ConfigError, match="must be .safetensors or .ckpt"):
        check_paths(replace(base, pretrained_model_name_or_path=str(tmp_path / "model.bin")))
    with pytest.raises(ConfigError, match="is a file; it must be a folder"):
        check_paths(replace(base, train_data_dir=str(tmp_path / "model.bin"), pretrained_model_name_or_path="a/b"))


def test_toml_syntax_error_names_file_and_line(write_toml) -> None:
    path = write_toml(HEAD + "learning_rate = = 1\n")
    (error,) = errors_of(path)
    assert error.startswith(f"{path}:4:17: invalid TOML")  # file:line:column, the file's text not echoed
    assert errors_of(path.parent / "nope.toml") == [f"{path.parent / 'nope.toml'}: no such config file"]


def test_config_to_toml_round_trips(write_toml, tmp_path) -> None:
    cfg = load_config(write_toml(HEAD + 'optimizer_type = "adamw"\nresolution = "512,768"\nclip_skip = 2\n'
                                 'training_comment = "quote \\" and \\\\ and ünicode"\nlog_with = "none"\n'
                                 'vae = ""\n' + TB + 'caption_templates = ["{}", "a photo of {}"]\n'), {})
    assert cfg.vae is None and cfg.clip_skip == 2
    text = config_to_toml(cfg)
    again = load_config(write_toml(text, "saved/config.toml"), {})
    assert again == cfg
    assert "[textboost]" in text and "None" not in text


def test_config_to_toml_round_trips_every_field_changed(write_toml) -> None:
    # Non-default values everywhere that validation allows, so no field is left untested by the writer.
    tb = TextBoostConfig(placeholder_token="sksx1", initializer="dog", class_noun="dog", caption_templates=["{}"],
                         emb_learning_rate=2e-3, norm_clamp=True, lora_targets=["fc1"], kpl_weight=0.0,
                         kpl_type="mse", kpl_mask_padding=True, kpl_cache=False, kpl_empty_p=0.0, kpl_class_p=0.5,
                         preservation_prompts="kp.jsonl", timestep_sampling="uniform", augment="style",
                         augment_mode="text", augment_p=1.0, augment_color_p=0.0)
    cfg = TrainConfig(pretrained_model_name_or_path="m.safetensors", v2=True, v_parameterization=True, vae="v.pt",
                      clip_skip=2, dataset_config="d.toml", caption_extension=".caption", resolution=[768, 512],
                      max_data_loader_n_workers=2, network_dim=8, network_alpha=1.5, network_weights="w.safetensors",
                      learning_rate=1e-4, text_encoder_lr=2e-4, optimizer_type="AdamW",
                      optimizer_args=["betas=(0.9, 0.99)"], lr_scheduler="cosine", lr_warmup_steps=5,
                      max_train_steps=100, train_batch_size=2, gradient_accumulation_steps=2, max_grad_norm=0.0,
                      seed=7, mixed_precision="bf16", gradient_checkpointing=True, min_timestep=10, max_timestep=900,
                      output_dir="o", adapters_dir="a", output_name="n", overwrite=True, save_precision="bf16",
                      save_every_n_steps=10, save_last_n_steps=20, save_state=True, export_bundle=True,
                      training_comment="c", sample_prompts="p.txt", sample_every_n_steps=5, sample_at_first=True,
                      sample_sampler="euler_a", logging_dir="l", log_with="none", log_prefix="x", push_to_hub=True,
                      hub_repo_id="me/n", hub_private=True, textboost=tb)
    assert load_config(write_toml(config_to_toml(cfg)), {}) == cfg
    resumed = replace(cfg, network_weights=None, resume="state_dir")
    assert load_config(write_toml(config_to_toml(resumed)), {}) == resumed


def test_config_to_toml_refuses_tokens() -> None:
    cfg = TrainConfig(training_comment="hf_" + "x" * 34)
    with pytest.raises(ValueError, match="looks like a Hugging Face token"):
        config_to_toml(cfg)


def test_format_resolved_config_shows_summary_and_toml(write_toml) -> None:
    cfg = load_config(write_toml(HEAD + TB), {})
    text = format_resolved_config(cfg)
    assert "250 steps x batch 8" in text and "tbmug" in text and text.rstrip().endswith("augment_color_p = 0.2")


def test_every_schema_field_has_a_supported_type() -> None:
    # A field added to schema.py with a type the loader cannot check would fail only when someone sets it.
    from textboost_ext.config.coerce import describe, textboost_fields, train_fields

    for name, hint in {**train_fields(), **textboost_fields()}.items():
        assert describe(hint), name


@pytest.mark.parametrize("value", ["a\x7fb", "tab\there", "line\nbreak", "ctl\x01", "é ü 中", 'back\\slash "q"',
                                   5e-5, 1e-3, 4.0, 1e20, 2.5e-300, 7, True, ["a", "b"], [512, 768], []])
def test_toml_value_round_trips(value: object) -> None:
    import toml

    from textboost_ext.config.tomlio import tomllib, toml_value

    assert tomllib.loads(f"k = {toml_value(value)}")["k"] == value
    assert toml.loads(f"k = {toml_value(value)}")["k"] == value  # sd-scripts' reader


def test_tracker_without_its_package_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from textboost_ext.config import ConfigError, TrainConfig, validate_config

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(ConfigError) as err:
        validate_config(TrainConfig(pretrained_model_name_or_path="builtin:tiny-sd1", train_data_dir="d",
                                    log_with="wandb", textboost=TrainConfig().textboost.__class__(placeholder_token="tbx1", initializer="cat")))
    assert "log_with" in str(err.value) and "wandb" in str(err.value)


def test_vocabulary_word_as_placeholder_fails_before_any_model_loads() -> None:
    from textboost_ext.config import ConfigError, TextBoostConfig, TrainConfig, validate_config

    cfg = TrainConfig(pretrained_model_name_or_path="builtin:tiny-sd1", train_data_dir="d",
                      textboost=TextBoostConfig(placeholder_token="dog", initializer="corgi dog"))
    with pytest.raises(ConfigError) as err:
        validate_config(cfg)
    assert "'dog' is already a word" in str(err.value) and "dog1" in str(err.value)
