"""Unit tests of the kohya sd-scripts adapter that need no sd-scripts: the hooks over a fake NetworkTrainer.

The fakes (conftest.py) mirror sd-scripts where the adapter depends on it; the real loop is covered by
test_sd_scripts_integration.py when a checkout is available.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from textboost_ext.config.schema import TextBoostConfig
from textboost_ext.kohya import launch
from textboost_ext.kohya.args import (
    TextBoostArgumentError,
    add_textboost_arguments,
    textboost_config_from_args,
    wants_sdxl,
)
from textboost_ext.method import ExtendedTokenEmbedding

NEW_ID = 49408  # the first id after the CLIP vocabulary


def flatten_like_sd_scripts(toml_text: str) -> argparse.Namespace:
    """What sd-scripts' read_config_from_file feeds to parse_args: every table merged into one namespace."""
    import toml

    flat: dict[str, object] = {}
    for key, value in toml.loads(toml_text).items():
        flat.update(value if isinstance(value, dict) else {key: value})
    return argparse.Namespace(**flat)


# ---- the argument adapter ------------------------------------------------------------------------
def test_cli_textboost_options_become_a_textboost_config(fakes: SimpleNamespace) -> None:
    args = fakes.parser().parse_args([*fakes.required, "--kpl_weight", "0.25", "--caption_templates", "{}", "a photo of a {}",
                                      "--norm_clamp", "--kpl_cache", "false", "--timestep_sampling", "uniform"])
    config = textboost_config_from_args(args)
    assert config == TextBoostConfig(placeholder_token="tbdog", initializer="corgi dog", class_noun="dog", kpl_weight=0.25,
                                     caption_templates=["{}", "a photo of a {}"], norm_clamp=True, kpl_cache=False,
                                     timestep_sampling="uniform")
    assert args.extension == "textboost" and args.export_bundle is False and args.sdxl is False


def test_a_textboost_table_in_the_toml_works_and_the_cli_wins(fakes: SimpleNamespace) -> None:
    namespace = flatten_like_sd_scripts("""
learning_rate = 1e-4
[textboost]
placeholder_token = "tbdog"
initializer = "corgi dog"
kpl_weight = 0.5
norm_clamp = true
lora_targets = ["q_proj", "k_proj", "v_proj", "out_proj"]
augment = "style"
""")
    args = fakes.parser().parse_args(["--kpl_weight", "0.2"], namespace=namespace)
    config = textboost_config_from_args(args)
    assert (config.placeholder_token, config.initializer) == ("tbdog", "corgi dog")
    assert (config.norm_clamp, config.augment) == (True, "style")
    assert config.lora_targets == ["q_proj", "k_proj", "v_proj", "out_proj"]
    assert config.kpl_weight == 0.2  # command line over TOML
    assert config.kpl_mask_padding is False and config.emb_learning_rate == 1e-3  # untouched defaults


@pytest.mark.parametrize(("cli", "toml_text", "named"), [
    (["--kpl_type", "cosin"], "", "kpl_type"),
    (["--augment_p", "1.5"], "", "augment_p"),
    ([], "[textboost]\nnorm_clamp = \"yes\"", "norm_clamp"),
    ([], "[textboost]\nkpl_weight = \"lots\"", "kpl_weight"),
    (["--lora_targets", "q_proj"], "", "lora_targets"),  # attention projections go together
])
def test_bad_textboost_values_fail_naming_the_option(fakes: SimpleNamespace, cli: list[str], toml_text: str, named: str) -> None:
    args = fakes.parser().parse_args([*fakes.required, *cli], namespace=flatten_like_sd_scripts(toml_text))
    with pytest.raises(TextBoostArgumentError, match=named):
        textboost_config_from_args(args)


def test_textboost_option_clashing_with_the_host_parser_is_reported() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--augment")
    with pytest.raises(RuntimeError, match="--augment clashes"):
        add_textboost_arguments(parser)


def test_toml_resolution_numbers_become_what_sd_scripts_parses() -> None:
    from textboost_ext.kohya.args import normalise_for_sd_scripts

    for value, expected in ((512, "512"), ([512, 768], "512,768"), ("640", "640"), (None, None)):
        args = argparse.Namespace(resolution=value)
        normalise_for_sd_scripts(args)
        assert args.resolution == expected


def test_sdxl_is_chosen_by_flag_or_by_the_toml(tmp_path: Path) -> None:
    (tmp_path / "x.toml").write_text("[model]\nsdxl = true\n")
    (tmp_path / "y.toml").write_text("sdxl = false\n")
    assert wants_sdxl(["--sdxl"]) and wants_sdxl(["--config_file", str(tmp_path / "x.toml")])
    assert wants_sdxl(["--config_file", str(tmp_path / "x")])  # sd-scripts adds .toml itself
    assert not wants_sdxl(["--config_file", str(tmp_path / "y.toml")]) and not wants_sdxl([])
    assert not wants_sdxl(["--config_file", str(tmp_path / "missing.toml")])  # sd-scripts reports it


# ---- assert_extra_args -----------------------------------------------------------------------------
def test_assert_extra_args_forces_text_encoder_only_lora_and_defaults_to_adamw8bit(fakes: SimpleNamespace) -> None:
    args = fakes.parser().parse_args(fakes.required)
    trainer = fakes.Trainer()
    trainer.assert_extra_args(args, fakes.dataset_group(), None)
    assert args.network_train_text_encoder_only is True
    assert args.network_module == "networks.lora" and args.optimizer_type == "AdamW8bit"
    assert trainer.calls == ["assert_extra_args"]  # sd-scripts' own checks ran too
    assert trainer.config_view.min_timestep == 0 and trainer.config_view.max_timestep == 1000  # sd-scripts' None
    assert trainer.config_view.resolution == (64, 64)  # from the dataset when --resolution is not given
    assert trainer.config_view.output_name == "last"  # sd-scripts' file name without --output_name
    for chosen, expected in ((["--optimizer_type", "AdamW"], "AdamW"), (["--use_8bit_adam"], "")):
        args = fakes.parser().parse_args([*fakes.required, *chosen])
        fakes.Trainer().assert_extra_args(args, fakes.dataset_group(), None)
        assert args.optimizer_type == expected  # the user's choice stays


@pytest.mark.parametrize(("cli", "subset", "sdxl", "named"), [
    (["--network_train_unet_only"], {}, False, "network_train_unet_only"),
    (["--cache_latents"], {}, False, "cache_latents"),
    (["--cache_text_encoder_outputs"], {}, True, "cache_text_encoder_outputs"),
    (["--min_snr_gamma", "5"], {}, False, "min_snr_gamma"),
    (["--debiased_estimation_loss"], {}, False, "debiased_estimation_loss"),
    (["--save_model_as", "ckpt"], {}, False, "save_model_as"),
    (["--network_module", "lycoris.kohya"], {}, False, "network_module"),
    ([], {"flip_aug": True}, False, "flip_aug"),
    (["--placeholder_token", "dog"], {}, False, "placeholder_token"),  # a real word (and the class noun)
    (["--output_dir", ""], {}, False, "output_dir"),
])
def test_assert_extra_args_refuses_what_textboost_cannot_train_with(fakes: SimpleNamespace, cli: list[str], subset: dict,
                                                                     sdxl: bool, named: str) -> None:
    args = fakes.parser().parse_args([*fakes.required, *cli])
    trainer = fakes.Trainer()
    trainer.is_sdxl = sdxl
    with pytest.raises(TextBoostArgumentError, match=named):
        trainer.assert_extra_args(args, fakes.dataset_group(**subset), None)


def test_snr_weighting_flags_are_fine_with_uniform_sampling(fakes: SimpleNamespace) -> None:
    args = fakes.parser().parse_args([*fakes.required, "--min_snr_gamma", "5", "--timestep_sampling", "uniform"])
    fakes.Trainer().assert_extra_args(args, fakes.dataset_group(), None)


# ---- post_process_network: tokens, rows, the optimizer group -------------------------------------------
def test_tokens_go_into_the_strategy_tokenizer_and_rows_into_an_optimizer_group(trained_setup) -> None:
    import bitsandbytes as bnb

    run = trained_setup()
    tokenizer, encoder, network = run.tiny.tokenizer, run.tiny.text_encoder, run.network
    assert tokenizer.convert_tokens_to_ids(["tbdog", "tbdog_1"]) == [NEW_ID, NEW_ID + 1]
    embedding = encoder.get_input_embeddings()
    assert isinstance(embedding, ExtendedTokenEmbedding) and len(tokenizer) == embedding.num_embeddings
    rows = embedding.new_rows
    assert any(p is rows for p in network.parameters())  # registered on the network: trained, reduced, resumed
    params, descriptions = network.prepare_optimizer_params(None, None, 1e-4)
    assert descriptions == ["textencoder", "textboost_embedding"]
    assert params[-1]["params"] == [rows] and params[-1]["lr"] == 1e-3 and params[-1]["weight_decay"] == 0.0
    assert all(p is not rows for p in network.get_trainable_params())  # clipping: the LoRA only
    for optimizer_class in (torch.optim.AdamW, bnb.optim.AdamW8bit):
        optimizer = optimizer_class(params, lr=1e-4, weight_decay=0.1)
        # sd-scripts passes --optimizer_args weight_decay to the constructor; the embedding group keeps 0
        assert [g["weight_decay"] for g in optimizer.param_groups] == [0.1, 0.0]


def test_rows_frozen_or_cast_by_sd_scripts_are_trainable_fp32_again_at_the_step(trained_setup) -> None:
    run = trained_setup()
    rows = run.tiny.text_encoder.get_input_embeddings().new_rows
    run.tiny.text_encoder.requires_grad_(False)  # what train() does after building the optimizer
    rows.data = rows.data.half()  # what t_enc.to(fp16) does on a GPU
    batch = {"images": torch.zeros(2, 3, 64, 64), "captions": ["a", "b"], "input_ids_list": None}
    run.trainer.on_step_start(run.args, run.accelerator, run.network, [run.tiny.text_encoder], None, batch, torch.float32)
    assert rows.requires_grad and rows.dtype == torch.float32


# ---- every step ---------------------------------------------------------------------------------
def test_on_step_start_rewrites_images_captions_and_input_ids(trained_setup) -> None:
    run = trained_setup("--augment_p", "1.0")
    strategy = run.trainer.tokenize_strategy
    images = torch.rand(4, 3, 64, 64) * 2 - 1
    captions = ["a photo of sks dog"] * 4
    batch = {"images": images.clone(), "captions": list(captions), "input_ids_list": strategy.tokenize(captions)}
    run.trainer.on_step_start(run.args, run.accelerator, run.network, [run.tiny.text_encoder], None, batch, torch.float32)
    assert all("tbdog tbdog_1 dog" in c for c in batch["captions"])
    assert any(set(c.split()) & set(run.trainer.extension.augment_tokens) for c in batch["captions"])
    expected = strategy.tokenize(batch["captions"])
    assert len(batch["input_ids_list"]) == 1 and torch.equal(batch["input_ids_list"][0], expected[0])
    assert bool((batch["input_ids_list"][0] >= NEW_ID).any(dim=-1).all())  # the added tokens, tokenised as such
    assert batch["images"].shape == images.shape and not torch.equal(batch["images"], images)


def test_validation_batches_keep_their_captions_with_the_name_expanded(trained_setup) -> None:
    run = trained_setup()
    strategy = run.trainer.tokenize_strategy
    batch = {"images": torch.zeros(1, 3, 64, 64), "captions": ["a photo of tbdog"], "input_ids_list": strategy.tokenize(["x"])}
    run.trainer.on_step_start(run.args, run.accelerator, run.network, [run.tiny.text_encoder], None, batch, torch.float32,
                              is_train=False)
    assert batch["captions"] == ["a photo of tbdog tbdog_1"]
    assert torch.equal(batch["input_ids_list"][0], strategy.tokenize(batch["captions"])[0])
    assert torch.equal(batch["images"], torch.zeros(1, 3, 64, 64))


def test_timesteps_come_from_the_extension_and_honour_min_equal_max(trained_setup) -> None:
    run = trained_setup()
    trainer, args = run.trainer, run.args
    host_draw = trainer.train_util.get_timesteps

    def draw(n: int, is_train: bool = True) -> torch.Tensor:
        out = trainer.get_noise_pred_and_target(args, run.accelerator, None, torch.zeros(n, 4, 8, 8), {}, [], None,
                                                run.network, torch.float32, False, is_train=is_train)
        assert trainer.train_util.get_timesteps is host_draw  # the swap is scoped to the call
        return out[2]

    timesteps = draw(4000)
    assert torch.equal(timesteps, trainer._drawn[0])  # what the host got is the extension's draw
    assert float(timesteps.float().mean()) > 550  # SNR weighting (uniform: 499.5)
    args.min_timestep = args.max_timestep = 400  # sd-scripts' validation pinning
    state = trainer.generator.get_state()
    assert draw(8, is_train=False).tolist() == [400] * 8
    assert torch.equal(trainer.generator.get_state(), state)  # validation leaves the training generator alone
    trainer.fail_after_draw = True
    with pytest.raises(RuntimeError, match="unet failed"):
        draw(2)
    assert trainer.train_util.get_timesteps is host_draw  # restored on errors too


def test_process_batch_adds_the_weighted_kp_term(trained_setup) -> None:
    run = trained_setup("--kpl_weight", "0.5")
    with torch.no_grad():
        for param in run.network.lora.trainable_parameters():
            param.add_(torch.randn_like(param) * 0.5)  # a LoRA that moved, so adapted != original
    batch = {"images": torch.zeros(4, 3, 64, 64), "captions": ["x"] * 4}
    call = (batch, [run.tiny.text_encoder], None, run.network, None, None, torch.float32, torch.float32, run.accelerator,
            run.args, None, None)
    loss = run.trainer.process_batch(*call, is_train=True)
    logs = run.trainer.generate_step_logs(run.args, float(loss.detach()), 0.0, None, None)
    assert logs["loss/kp"] > 1e-4 and logs["loss/diffusion"] == pytest.approx(1.0)
    assert float(loss.detach()) == pytest.approx(1.0 + logs["loss/kp"])
    assert logs["loss/kp"] == pytest.approx(0.5 * logs["loss/kp_raw"])  # kpl_weight applied
    assert "embedding/placeholder_norm" in logs and run.network.multiplier == 1.0  # the LoRA is on again
    loss.backward()
    assert run.network.lora.trainable_parameters()[0].grad is not None
    assert float(run.trainer.process_batch(*call, is_train=False).detach()) == pytest.approx(1.0)  # validation: no KP


def test_step_end_runs_once_per_optimizer_step(trained_setup) -> None:
    run = trained_setup("--norm_clamp", "--kpl_weight", "0")
    rows = run.tiny.text_encoder.get_input_embeddings().new_rows
    batch = {"images": torch.zeros(1, 3, 64, 64), "captions": ["x"]}

    def micro_batch(sync: bool) -> None:
        with torch.no_grad():
            rows.mul_(0).add_(100.0)
        run.trainer.process_batch(batch, [run.tiny.text_encoder], None, run.network, None, None, torch.float32, torch.float32,
                                  run.accelerator.__class__(**{**vars(run.accelerator), "sync_gradients": sync}), run.args,
                                  None, None)

    micro_batch(sync=False)  # gradient accumulation: no optimizer step after this micro-batch
    run.trainer.sample_images(run.accelerator, run.args, None, 1)
    assert run.trainer.optimizer_steps == 0 and float(rows.detach().norm(dim=1).max()) > 100
    micro_batch(sync=True)
    assert float(rows.detach().norm(dim=1).max()) > 100  # not before the optimizer step...
    run.trainer.sample_images(run.accelerator, run.args, None, 1)  # ...sd-scripts calls this right after it
    limit = run.tiny.text_encoder.get_input_embeddings().base_mean_row_norm()
    assert run.trainer.optimizer_steps == 1 and float(rows.detach().norm(dim=1).max()) <= limit * 1.0001
    run.trainer.sample_images(run.accelerator, run.args, None, 1)
    assert run.trainer.optimizer_steps == 1


def test_sample_prompt_files_get_the_name_expanded(trained_setup, tmp_path: Path) -> None:
    run = trained_setup()
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("photo of tbdog on a beach --n blurry\n# tbdog_1 stays\n")
    run.args.sample_prompts = str(prompts)
    run.trainer.sample_images(run.accelerator, run.args, None, 0)
    assert run.trainer.sample_prompt_texts == ["photo of tbdog tbdog_1 on a beach --n blurry\n# tbdog_1 stays\n"]
    assert run.args.sample_prompts == str(prompts)  # the user's path again after the call


# ---- saving and metadata ----------------------------------------------------------------------------
def test_every_save_writes_the_embedding_and_sidecar_and_no_extra_keys(trained_setup) -> None:
    from safetensors import safe_open

    run = trained_setup("--export_bundle")
    out = run.out
    metadata = {"ss_output_name": "tb", "ss_base_model_version": "sd_v1", "ss_v2": "False", "ss_network_dim": "4",
                "ss_network_alpha": "4.0", "modelspec.architecture": "stable-diffusion-v1/lora"}  # as sd-scripts writes them
    run.trainer.update_metadata(metadata, run.args)
    assert metadata["ss_host"] == "fake" and metadata["ss_textboost_placeholder_token"] == "tbdog"
    assert any(k.startswith("textboost_embedding.") for k in run.network.state_dict())  # what would leak into the file
    run.network.save_weights(str(out / "tb.safetensors"), None, metadata)
    with safe_open(str(out / "tb.safetensors"), "pt") as f:
        assert all(k.startswith("lora_te_") for k in f.keys()) and f.metadata()["ss_output_name"] == "tb"
    assert any(k.startswith("textboost_embedding.") for k in run.network.state_dict())  # re-attached after the save
    with safe_open(str(out / "embeddings" / "tbdog.safetensors"), "pt") as f:
        assert list(f.keys()) == ["emb_params"] and tuple(f.get_tensor("emb_params").shape) == (2, 32)
    with safe_open(str(out / "tb_a1111_bundle.safetensors"), "pt") as f:
        assert "bundle_emb.tbdog.string_to_param.*" in f.keys()
    assert '"activation text": "tbdog dog"' in (out / "tb.json").read_text()

    checkpoint = out / "tb-step00000002.safetensors"
    run.network.save_weights(str(checkpoint), torch.float16, metadata)
    with safe_open(str(checkpoint), "pt") as f:
        assert f.metadata()["ss_output_name"] == "tb-step00000002"  # each checkpoint its own A1111 alias
        assert {f.get_tensor(k).dtype for k in f.keys() if not k.endswith(".alpha")} == {torch.float16}
        assert {f.get_tensor(k).dtype for k in f.keys() if k.endswith(".alpha")} == {torch.float32}  # rewritten
    assert metadata["ss_output_name"] == "tb"  # sd-scripts' dict is not changed
    extras = [out / "tb-step00000002_embeddings" / "tbdog.safetensors", out / "tb-step00000002.json"]
    assert all(p.is_file() for p in extras)
    checkpoint.unlink()  # sd-scripts' --save_last_n_steps removes old checkpoints
    run.network.save_weights(str(out / "tb.safetensors"), None, metadata)
    assert not any(p.exists() for p in extras) and not (out / "tb-step00000002_embeddings").exists()
    assert (out / "embeddings" / "tbdog.safetensors").is_file()


def test_saves_copy_the_newest_sample_image_of_this_run_as_the_preview(trained_setup) -> None:
    import os

    from PIL import Image

    run = trained_setup()
    out = run.out
    run.args.output_dir = str(out)  # sd-scripts saves the LoRA and draws samples under --output_dir
    metadata = {"ss_output_name": "tb", "ss_base_model_version": "sd_v1", "ss_v2": "False", "ss_network_dim": "4",
                "ss_network_alpha": "4.0", "modelspec.architecture": "stable-diffusion-v1/lora"}
    run.trainer.update_metadata(metadata, run.args)
    run.network.save_weights(str(out / "tb.safetensors"), None, metadata)
    assert not (out / "tb.preview.png").exists()  # no sample drawn yet: no preview

    sample_dir = out / "sample"
    sample_dir.mkdir()
    started = run.trainer._started

    def draw(name: str, colour: tuple[int, int, int], mtime: float) -> None:
        Image.new("RGB", (8, 8), colour).save(sample_dir / name)
        os.utime(sample_dir / name, (mtime, mtime))

    draw("tb_000000_00_20250101000000.png", (255, 0, 0), started - 3600)  # an earlier run's sample
    run.network.save_weights(str(out / "tb.safetensors"), None, metadata)
    assert not (out / "tb.preview.png").exists()

    draw("tb_000001_00_20260101000000.png", (0, 0, 255), started + 1)
    draw("tb_000002_00_20260101000001_7.png", (0, 255, 0), started + 2)  # the newest of this run
    draw("other_000002_00_20260101000002.png", (9, 9, 9), started + 3)  # another --output_name
    (sample_dir / "tb_000003_00_20260101000003.txt").write_text("not an image")
    checkpoint = out / "tb-step00000002.safetensors"
    run.network.save_weights(str(checkpoint), torch.float16, metadata)
    run.network.save_weights(str(out / "tb.safetensors"), None, metadata)
    for preview in (out / "tb-step00000002.preview.png", out / "tb.preview.png"):
        with Image.open(preview) as image:
            assert image.format == "PNG" and image.getpixel((3, 3)) == (0, 255, 0)
    checkpoint.unlink()  # sd-scripts removes old checkpoints; their preview goes with their other files
    run.network.save_weights(str(out / "tb.safetensors"), None, metadata)
    assert not (out / "tb-step00000002.preview.png").exists() and (out / "tb.preview.png").is_file()
    assert len(list(sample_dir.iterdir())) == 5  # sd-scripts' samples are copied, never moved


def test_other_extensions_and_no_extension_keep_sd_scripts_behaviour(tiny, fakes: SimpleNamespace) -> None:
    args = fakes.parser().parse_args(["--extension", "none", "--output_dir", "out"])
    trainer = fakes.Trainer()
    trainer.tokenize_strategy = fakes.TokenizeStrategy(tiny.tokenizer)
    trainer.assert_extra_args(args, fakes.dataset_group(flip_aug=True), None)  # no TextBoost augmentation to clash with
    network = fakes.LoRANetwork([tiny.text_encoder])
    trainer.post_process_network(args, fakes.accelerator(), network, [tiny.text_encoder], tiny.unet)
    assert len(tiny.tokenizer) == NEW_ID and trainer.embedding_rows == []
    params, descriptions = network.prepare_optimizer_params(None, None, 1e-4)
    assert descriptions == ["textencoder"]
    out = trainer.get_noise_pred_and_target(args, fakes.accelerator(), None, torch.zeros(3, 4, 8, 8), {}, [], None, network,
                                            torch.float32, False)
    assert out[2].shape == (3,) and trainer._drawn == []  # sd-scripts' uniform draw


# ---- launching ------------------------------------------------------------------------------------
def _checkout(folder: Path, train_network_source: str = "") -> Path:
    (folder / "library").mkdir(parents=True)
    (folder / "library" / "train_util.py").write_text("")
    (folder / "train_network.py").write_text(train_network_source)
    return folder


def test_sd_scripts_is_requested_by_flag_env_var_or_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SD_SCRIPTS_DIR", raising=False)
    checkout = _checkout(tmp_path / "sd-scripts")
    assert launch.sd_scripts_requested(["--sd_scripts_dir", "/x/sd"], cwd=tmp_path) == Path("/x/sd")
    assert launch.sd_scripts_requested(["--sd_scripts_dir=/y"], cwd=tmp_path) == Path("/y")
    assert launch.sd_scripts_requested(["--config_file", "a.toml"], cwd=tmp_path) is None
    assert launch.sd_scripts_requested([], cwd=checkout) == checkout  # run from inside a checkout
    monkeypatch.setenv("SD_SCRIPTS_DIR", str(checkout))
    assert launch.sd_scripts_requested([], cwd=tmp_path) == checkout


def test_a_folder_that_is_not_a_checkout_fails_clearly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(launch.SdScriptsUnavailable, match="does not exist"):
        launch.check_sd_scripts(tmp_path / "nowhere")
    assert launch.run_sd_scripts(tmp_path, ["--config_file", "x.toml"]) == 2
    err = capsys.readouterr().err
    assert "not an sd-scripts checkout" in err and "git clone https://github.com/kohya-ss/sd-scripts" in err
    assert launch.SUPPORTED_COMMIT in err and "Traceback" not in err


def test_a_missing_dependency_of_sd_scripts_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from textboost_ext.kohya import trainer

    checkout = _checkout(tmp_path / "sd-scripts", "import textboost_absent_dependency_xyz\n")
    (checkout / "venv" / "bin").mkdir(parents=True)
    (checkout / "venv" / "bin" / "python").write_text("")
    monkeypatch.delenv("SD_SCRIPTS_PYTHON", raising=False)
    monkeypatch.setattr(sys, "path", list(sys.path))  # import_sd_scripts puts the checkout first
    assert trainer.main(checkout, ["--placeholder_token", "tbdog"]) == 2
    err = capsys.readouterr().err
    assert "'textboost_absent_dependency_xyz' is missing" in err and sys.executable in err
    assert str(checkout / "venv" / "bin" / "python") in err and "setup_sd_scripts.sh" in err


# ---- test support -------------------------------------------------------------------------------------
def test_tiny_unet_patch_sets_the_layout_constants(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from textboost_ext.kohya import tiny_unet

    (tmp_path / "unet").mkdir()
    (tmp_path / "unet" / "config.json").write_text(json.dumps({
        "block_out_channels": [32, 64], "norm_num_groups": 8, "layers_per_block": 1,
        "down_block_types": ["A", "B"], "up_block_types": ["C", "D"]}))
    module = SimpleNamespace()
    tiny_unet.patch_for_model(tmp_path, is_sdxl=False, module=module)
    assert (module.BLOCK_OUT_CHANNELS, module.TIME_EMBED_DIM) == ((32, 64), 128)
    assert (module.NORM_GROUPS, module.LAYERS_PER_BLOCK_UP, module.DOWN_BLOCK_TYPES) == (8, 2, ["A", "B"])
    with pytest.raises(ValueError, match="SDXL"):
        tiny_unet.patch_for_model(tmp_path, is_sdxl=True, module=module)
    monkeypatch.delenv(tiny_unet.PATCH_ENV, raising=False)
    assert not tiny_unet.patch_requested()
    monkeypatch.setenv(tiny_unet.PATCH_ENV, "1")
    assert tiny_unet.patch_requested()
