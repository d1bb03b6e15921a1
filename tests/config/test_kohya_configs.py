"""Real-world kohya configs carry over: a kohya_ss GUI SD 1.5 LoRA export is refused only for what
TextBoost does differently (all in one round, each message saying what it does instead), and trains once
those keys are removed; kohya keys at their off value are accepted; epochs become steps."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from textboost_ext.config import ConfigError, load_config, parse_args

FIXTURES = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).resolve().parents[2]
REFUSED = ("cache_latents", "enable_bucket", "unet_lr")  # what TextBoost does differently


def _fill(tmp_path: Path, model: Path, *, drop: tuple[str, ...] = (), extra: str = "") -> Path:
    data = tmp_path / "data" / "2_dog"
    data.mkdir(parents=True, exist_ok=True)
    (data / "dog.png").write_bytes((ROOT / "examples" / "demo_subject" / "1_mug" / "mug.png").read_bytes())
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a photo of tbdog dog --n blurry --w 64 --h 64 --s 2 --ss ddim --g 7\n")
    text = (FIXTURES / "kohya_ss_gui_sd15_lora.toml").read_text()
    text = (text.replace("@DATA@", str(data.parent)).replace("@OUT@", str(tmp_path / "out"))
            .replace("@MODEL@", str(model)).replace("@PROMPTS@", str(prompts)))
    lines = [line for line in text.splitlines() if line.split(" = ")[0] not in drop]
    path = tmp_path / "config_lora.toml"
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


def test_gui_export_is_refused_only_for_method_differences_in_one_round(tmp_path, tiny_model_dir):
    path = _fill(tmp_path, tiny_model_dir("sd1"))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    errors = err.value.errors
    # the three method differences, plus the two settings TextBoost needs that kohya has no key for
    assert len(errors) == len(REFUSED) + 2, errors
    assert sum("placeholder_token is required" in e or "initializer is required" in e for e in errors) == 2
    for key in REFUSED:
        (line,) = [e for e in errors if f"{key}" in e]
        assert "config_lora.toml" in line
    joined = "\n".join(errors)
    assert "every step augments the image anew" in joined  # cache_latents: what TextBoost does instead
    assert "trains the text encoder only" in joined  # unet_lr


def test_gui_export_trains_after_removing_the_refused_keys(tmp_path, tiny_model_dir, capsys):
    from train_network_textboost import main

    tb = '\n[textboost]\nplaceholder_token = "tbdog"\ninitializer = "shiba dog"\nclass_noun = "dog"\n'
    path = _fill(tmp_path, tiny_model_dir("sd1"), drop=REFUSED, extra=tb)
    cfg, _ = parse_args(["--config_file", str(path)])
    assert cfg.network_module == "networks.lora" and cfg.lr_scheduler_num_cycles == 3
    assert cfg.max_train_epochs == 2 and cfg.optimizer_type == "AdamW8bit"
    # CPU here: fp16 is refused for the device, not the config; the test machine trains in fp32 at 64 px
    args = ["--config_file", str(path), "--mixed_precision", "no", "--resolution", "64"]
    assert main([*args, "--dry_run"]) == 0
    out, err = capsys.readouterr()
    # one epoch = 1 image x 2 repeats / batch 1 = 2 steps
    assert "max_train_epochs 2 -> max_train_steps 4" in err and "save_every_n_epochs 1 -> save_every_n_steps 2" in err
    assert "max_train_steps = 4" in out and "max_train_epochs" not in out.split("[textboost]")[0].split("resolved")[-1]
    assert main(args) == 0, capsys.readouterr().err
    model_dir = tmp_path / "out" / "model" / "mydog"
    assert (model_dir / "mydog.safetensors").is_file()
    assert sorted(p.name for p in (model_dir / "samples").glob("*.png"))  # --ss/--g prompt rendered


@pytest.mark.parametrize("line", ["xformers = false", "cache_latents = false", "noise_offset = 0", "loss_type = \"l2\"",
                                  "max_token_length = 75", "network_args = []", "sdpa = true", "min_snr_gamma = 0",
                                  "full_fp16 = false", "shuffle_caption = false", "multires_noise_discount = 0.3"])
def test_kohya_keys_at_their_off_value_are_accepted(tmp_path, line):
    path = tmp_path / "c.toml"
    path.write_text(f'pretrained_model_name_or_path = "builtin:tiny-sd1"\ntrain_data_dir = "x"\n{line}\n'
                    '[textboost]\nplaceholder_token = "tbx"\ninitializer = "dog"\n')
    load_config(path)


@pytest.mark.parametrize(("line", "fragment"), [("xformers = true", "only false, its off value, is accepted"),
                                                ("noise_offset = 0.05", "plain diffusion loss"),
                                                ("cache_latents = 1", "only false")])
def test_kohya_keys_switched_on_are_refused_naming_the_off_value(tmp_path, line, fragment):
    path = tmp_path / "c.toml"
    path.write_text(f'pretrained_model_name_or_path = "builtin:tiny-sd1"\ntrain_data_dir = "x"\n{line}\n')
    with pytest.raises(ConfigError, match=fragment):
        load_config(path)


def _fill_text(name: str, **values: str) -> str:
    text = (FIXTURES / name).read_text()
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    return text


def _drop(text: str, keys: tuple[str, ...]) -> str:
    return "\n".join(line for line in text.splitlines() if line.split(" = ")[0].strip() not in keys) + "\n"


SDXL_REFUSED = ("cache_latents", "cache_latents_to_disk", "cache_text_encoder_outputs", "network_train_unet_only",
                "noise_offset", "max_token_length")
TI_REFUSED = ("token_string", "init_word", "num_vectors_per_token", "use_object_template")
TB = '\n[textboost]\nplaceholder_token = "tbdog"\ninitializer = "shiba dog"\nclass_noun = "dog"\n'


def _sdxl_files(tmp_path: Path, model: Path) -> Path:
    from PIL import Image

    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (1024, 1024), (120, 80, 40)).save(images / "dog.png")
    dataset = tmp_path / "dataset.toml"
    dataset.write_text(_fill_text("sd_scripts_output_config_sdxl_dataset.toml", IMAGES=str(images)))
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a photo of tbdog dog --w 1024 --h 1024\n")
    config = tmp_path / "sdxl.toml"
    config.write_text(_fill_text("sd_scripts_output_config_sdxl.toml", MODEL=str(model), DATASET=str(dataset),
                                 OUT=str(tmp_path / "out"), PROMPTS=str(prompts)))
    return config


def test_sd_scripts_sdxl_output_config_with_sections_and_dataset_toml(tmp_path, tiny_model_dir, capsys):
    from train_network_textboost import main

    config = _sdxl_files(tmp_path, tiny_model_dir("sdxl"))
    with pytest.raises(ConfigError) as err:
        load_config(config)
    errors = err.value.errors
    assert len(errors) == len(SDXL_REFUSED) + 2, errors  # + placeholder_token / initializer, TextBoost's own
    for key in SDXL_REFUSED:
        assert any(f"'{key}'" in e or f"{key} = " in e or f"{key}:" in e for e in errors), key
    assert any("[training_arguments]" in e for e in errors)  # the section is named
    config.write_text(_drop(config.read_text(), SDXL_REFUSED) + TB)
    assert main(["--config_file", str(config), "--dry_run"]) == 0, capsys.readouterr().err
    out, err = capsys.readouterr()
    assert "(sdxl)" in out and "sdxl = true" in out  # detected from the diffusers folder
    assert "batch 2" in out and "1024x1024" in out  # the dataset TOML's values, as training uses them
    assert "dataset.toml sets batch_size 2" in err


def test_textual_inversion_config_is_told_what_textboost_does_instead(tmp_path, tiny_model_dir, capsys):
    from train_network_textboost import main

    data = tmp_path / "data" / "5_dog"
    data.mkdir(parents=True)
    from PIL import Image

    Image.new("RGB", (512, 512), (10, 20, 30)).save(data / "dog.png")
    config = tmp_path / "ti.toml"
    config.write_text(_fill_text("textual_inversion_sd15.toml", MODEL=str(tiny_model_dir("sd1")),
                                 DATA=str(data.parent), OUT=str(tmp_path / "out")))
    with pytest.raises(ConfigError) as err:
        load_config(config)
    joined = "\n".join(err.value.errors)
    assert len(err.value.errors) == len(TI_REFUSED) + 2, err.value.errors
    assert "use [textboost] placeholder_token" in joined and "use [textboost] initializer" in joined
    assert "one vector per token of [textboost] initializer" in joined and "caption_templates" in joined
    config.write_text(_drop(config.read_text(), TI_REFUSED) + TB)
    assert main(["--config_file", str(config), "--dry_run", "--mixed_precision", "no"]) == 0, capsys.readouterr().err
    out, err = capsys.readouterr()
    assert "save_every_n_epochs 1 -> save_every_n_steps 5" in err  # 1 image x 5 repeats / batch 1
