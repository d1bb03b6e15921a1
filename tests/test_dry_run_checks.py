"""--dry_run shows and checks what the run will use: the dataset TOML's batch/resolution, image sizes, the
prompt file (and whether its prompts name the placeholder), a missing class_noun."""

from __future__ import annotations

from pathlib import Path

import torch

from train_network_textboost import main

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "config_templates" / "tiny_demo.toml"
MUG = ROOT / "examples" / "demo_subject" / "1_mug" / "mug.png"


def _dataset_toml(tmp_path: Path, resolution: int = 64, batch: int = 2) -> Path:
    (tmp_path / "img").mkdir(exist_ok=True)
    (tmp_path / "img" / "mug.png").write_bytes(MUG.read_bytes())
    path = tmp_path / "dataset.toml"
    path.write_text(f'[[datasets]]\nresolution = {resolution}\nbatch_size = {batch}\n'
                    f'  [[datasets.subsets]]\n  image_dir = "{tmp_path / "img"}"\n  class_tokens = "mug"\n')
    return path


def _common(tmp_path: Path) -> list[str]:
    return ["--config_file", str(DEMO), "--output_dir", str(tmp_path / "out"), "--dry_run"]


def test_dataset_toml_batch_and_resolution_are_what_the_dry_run_shows(tmp_path, capsys):
    ds = _dataset_toml(tmp_path, resolution=48, batch=2)
    cfg = tmp_path / "c.toml"
    cfg.write_text(DEMO.read_text().replace('train_data_dir = "../examples/demo_subject"', f'dataset_config = "{ds}"')
                   .replace('"tiny_demo_prompts.txt"', f'"{ROOT / "config_templates" / "tiny_demo_prompts.txt"}"'))
    assert main(["--config_file", str(cfg), "--output_dir", str(tmp_path / "out"), "--dry_run"]) == 0
    out, err = capsys.readouterr()
    assert "batch 2" in out and "48x48" in out
    assert "train_batch_size = 2" in out and "resolution = [48, 48]" in out  # the resolved TOML, saved alike
    assert "replace the top-level train_batch_size 4" in err


def test_dry_run_refuses_images_smaller_than_the_resolution(tmp_path, capsys):
    assert main([*_common(tmp_path), "--resolution", "1024"]) == 2
    err = capsys.readouterr().err
    assert "mug.png" in err and "training resolution is 1024x1024" in err


def test_dry_run_checks_the_prompt_file_and_the_placeholder(tmp_path, capsys):
    bad = tmp_path / "p.txt"
    bad.write_text("a photo of a mug --q 3\n")
    assert main([*_common(tmp_path), "--sample_prompts", str(bad)]) == 2
    assert "p.txt:1: unknown option --q" in capsys.readouterr().err
    bad.write_text("a photo of a mug\na mug on a beach\n")
    assert main([*_common(tmp_path), "--sample_prompts", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "no prompt contains the placeholder 'tbmug'" in err and "allow_prompts_without_placeholder" in err
    assert main([*_common(tmp_path), "--sample_prompts", str(bad), "--allow_prompts_without_placeholder"]) == 0
    assert "warning: sample_prompts: no prompt contains" in capsys.readouterr().err
    bad.write_text("a photo of tbmug mug\na mug on a beach\n")
    assert main([*_common(tmp_path), "--sample_prompts", str(bad)]) == 0
    assert "1 of 2 prompt(s) do not contain 'tbmug'" in capsys.readouterr().err


def test_missing_class_noun_is_a_notice_naming_the_trigger(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text(DEMO.read_text().replace('class_noun = "mug"', "")
                   .replace('"../examples/demo_subject"', f'"{ROOT / "examples" / "demo_subject"}"')
                   .replace('"tiny_demo_prompts.txt"', f'"{ROOT / "config_templates" / "tiny_demo_prompts.txt"}"'))
    assert main(["--config_file", str(cfg), "--output_dir", str(tmp_path / "out"), "--dry_run"]) == 0
    out = capsys.readouterr().err
    assert "class_noun is not set: the trigger is just 'tbmug'" in out and "class tokens say 'mug'" in out


def test_an_sdxl_single_file_is_shown_and_saved_as_sdxl(tmp_path, capsys):
    import torch
    from safetensors.torch import save_file

    keys = ["conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight",
            "conditioner.embedders.1.model.token_embedding.weight", "model.diffusion_model.input_blocks.0.0.weight",
            "first_stage_model.encoder.conv_in.weight"]
    model = tmp_path / "my_sdxl_finetune.safetensors"
    save_file({k: torch.zeros(1) for k in keys}, str(model))
    assert main([*_common(tmp_path), "--pretrained_model_name_or_path", str(model)]) == 0
    out, err = capsys.readouterr()
    assert "my_sdxl_finetune.safetensors (sdxl)" in out and "sdxl = true" in out
    assert "is an SDXL model (read from the file)" in err


def test_problems_of_several_kinds_come_in_one_round(tmp_path, capsys):
    bad_prompts = tmp_path / "p.txt"
    bad_prompts.write_text("a photo --q 1\n")
    rc = main([*_common(tmp_path), "--resolution", "1024", "--sample_prompts", str(bad_prompts),
               "--optimizer_type", "Prodigy", "--mixed_precision", "fp16", "--caption_mode", "files"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "p.txt:1: unknown option --q" in err  # the prompt file
    assert "pip install prodigyopt" in err  # the optimizer
    assert "training resolution is 1024x1024" in err  # the images
    if not torch.cuda.is_available():
        assert "needs a GPU" in err  # the precision, on a CPU
