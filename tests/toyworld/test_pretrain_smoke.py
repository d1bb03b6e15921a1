"""A few steps of every pretraining stage: the output is a standard diffusers SD pipeline; t2i resumes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from textboost_ext.toyworld.pretrain import pretrain
from textboost_ext.toyworld.pretrain_t2i import T2iSettings, draw_timesteps, loss_weights


def test_a_few_steps_of_each_stage_make_a_loadable_pipeline(tmp_path: Path) -> None:
    from diffusers import StableDiffusionPipeline

    out = tmp_path / "run"
    pretrain(out, seed=0, stages=("oracle", "vae", "decoder"), vae_steps=2, oracle_steps=2, decoder_steps=2)
    assert_only_the_decoder_changed(out / "vae", out / "vae_decoder")
    pretrain(out, seed=0, stages=("t2i",), t2i_steps=1, quick_every=0, final_quality_n=2)
    assert torch.load(out / "t2i_checkpoint.pt", weights_only=False)["step"] == 1
    (out / "pipeline" / "model_index.json").unlink()  # pretend the run was killed after step 1 of 2
    pretrain(out, seed=0, stages=("t2i",), t2i_steps=2, quick_every=0, final_quality_n=2)
    assert "t2i resumed from step 1" in (out / "pretrain.log").read_text()
    record = json.loads((out / "record.json").read_text())
    assert {"oracle", "vae", "vae_decoder", "t2i", "quality", "quality_sampling"} <= set(record) and record["seed"] == 0
    assert same_file(out / "pipeline" / "vae", out / "vae_decoder")  # the pipeline ships the fine-tuned decoder
    pipe = StableDiffusionPipeline.from_pretrained(str(out / "pipeline"), local_files_only=True)
    assert pipe.unet.config.cross_attention_dim == pipe.text_encoder.config.hidden_size == 64
    assert pipe.vae.config.scaling_factor != 0.18215  # measured on the toy latents
    assert len(pipe.tokenizer) == 49408

    # a second base started from this one's weights, trained on the velocity (as SD 2's v model was made)
    v_run = tmp_path / "v_run"
    v_run.mkdir()
    shutil.copy(out / "oracle.safetensors", v_run)
    shutil.copytree(out / "vae", v_run / "vae")
    pretrain(v_run, seed=0, stages=("t2i",), t2i_steps=1, quick_every=0, final_quality_n=2,
             t2i_recipe={"prediction_type": "v_prediction", "snr_floor": 1.0}, init_from=out / "pipeline")
    v_pipe = StableDiffusionPipeline.from_pretrained(str(v_run / "pipeline"), local_files_only=True)
    assert v_pipe.scheduler.config.prediction_type == "v_prediction"
    source, started = pipe.unet.state_dict(), v_pipe.unet.state_dict()
    assert max((source[k] - started[k]).abs().max().item() for k in source) < 1e-3  # the EMA of one step from there
    assert json.loads((v_run / "record.json").read_text())["t2i_init_from"]["pipeline"] == str(out / "pipeline")

    # the decoder stage on a finished run: fine-tunes, swaps the pipeline's VAE for it, measures again
    assert same_file(v_run / "pipeline" / "vae", v_run / "vae")
    quality_before = json.loads((v_run / "record.json").read_text())["quality"]
    pretrain(v_run, seed=0, stages=("decoder",), decoder_steps=2, final_quality_n=3)
    assert same_file(v_run / "pipeline" / "vae", v_run / "vae_decoder")
    record = json.loads((v_run / "record.json").read_text())
    assert quality_before["n"] == 2 and record["quality"]["n"] == 3 and "vae_decoder" in record
    assert len(record["commands"]) == 2  # the run's own command is kept beside the decoder's

    # shipping it: fp16 files the record's checksums cover, configs without the build machine's paths, and a
    # folder that loads as the builtin base does
    from textboost_ext.toyworld.shipped import materialize, read_record, sha256, ship

    shipped = ship(v_run, tmp_path / "assets")
    record = read_record(shipped)
    assert all(sha256(shipped / name) == digest for name, digest in record["sha256"].items())
    assert not any("_name_or_path" in json.loads((shipped / f"{c}_config.json").read_text()) for c in ("vae", "text_encoder", "unet"))
    loaded = StableDiffusionPipeline.from_pretrained(str(materialize(tmp_path / "model", folder=shipped)), local_files_only=True)
    assert loaded.scheduler.config.prediction_type == "v_prediction"


def same_file(a: Path, b: Path) -> bool:
    name = "diffusion_pytorch_model.safetensors"
    return (a / name).read_bytes() == (b / name).read_bytes()


def assert_only_the_decoder_changed(vae_dir: Path, decoder_dir: Path) -> None:
    """The latent space the UNet learns in is the encoder's: fine-tuning the decoder must not touch it."""
    from safetensors.torch import load_file

    name = "diffusion_pytorch_model.safetensors"
    before, after = load_file(str(vae_dir / name)), load_file(str(decoder_dir / name))
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith(("decoder.", "post_quant_conv.")) for k in changed), sorted(changed)[:5]


def test_shipped_recipe_is_v_prediction_with_the_image_error_weight_clamped_to_1_5() -> None:
    from textboost_ext.toyworld.models import build_scheduler

    settings = T2iSettings()
    assert settings.prediction_type == "v_prediction"
    t = draw_timesteps(20_000, settings, torch.Generator().manual_seed(0))
    assert 0.35 < (t >= 600).float().mean() < 0.45  # uniform timesteps
    alphas = build_scheduler().alphas_cumprod
    snr = alphas / (1 - alphas)
    assert torch.allclose(loss_weights(torch.arange(1000), alphas, settings) * (snr + 1), snr.clamp(1, 5))


def test_the_earlier_recipe_is_min_snr_5_epsilon() -> None:
    from textboost_ext.toyworld.models import build_scheduler

    settings = T2iSettings(prediction_type="epsilon", snr_floor=0.0)
    alphas = build_scheduler().alphas_cumprod
    snr = alphas / (1 - alphas)
    assert torch.allclose(loss_weights(torch.arange(1000), alphas, settings), snr.clamp(max=5) / snr)


def test_high_noise_knobs() -> None:
    """The experiment's knobs: half the draws at t >= 600, image-error weight floor 1."""
    from textboost_ext.toyworld.models import build_scheduler

    settings = T2iSettings(high_noise_share=0.5, snr_floor=1.0, prediction_type="epsilon")
    t = draw_timesteps(20_000, settings, torch.Generator().manual_seed(0))
    assert 0.65 < (t >= 600).float().mean() < 0.75  # 0.5 + 0.5 * 0.4
    alphas = build_scheduler().alphas_cumprod
    w = loss_weights(torch.tensor([10, 500, 999]), alphas, settings)
    snr = alphas[[10, 500, 999]] / (1 - alphas[[10, 500, 999]])
    assert torch.allclose(w * snr, snr.clamp(1, 5))  # the weight on the implied x0 error
    assert w[2] > 1  # at high noise the floor raises the epsilon weight above plain MSE


def test_v_prediction_weights_the_same_image_error() -> None:
    """A velocity error is an image error times sqrt(SNR + 1): the v weights give the same image-error weight
    clamp(SNR, floor, gamma) as the epsilon weights, and the target is the scheduler's velocity."""
    from textboost_ext.host.diffusion import diffusion_target
    from textboost_ext.toyworld.models import build_scheduler

    t = torch.tensor([10, 500, 999])
    alphas = build_scheduler().alphas_cumprod
    snr = alphas[t] / (1 - alphas[t])
    v = T2iSettings(prediction_type="v_prediction", snr_floor=1.0)
    assert torch.allclose(loss_weights(t, alphas, v) * (snr + 1), snr.clamp(1, 5))
    scheduler = build_scheduler("v_prediction")
    assert scheduler.config.prediction_type == "v_prediction"
    latents, noise = torch.ones(3, 4, 8, 8), torch.zeros(3, 4, 8, 8)
    target = diffusion_target(scheduler, latents, noise, t)
    assert torch.allclose(target[:, 0, 0, 0], -(1 - alphas[t]).sqrt())  # v = sqrt(a) eps - sqrt(1 - a) x0


def test_multires_noise_hides_coarse_structure() -> None:
    """Unit variance per sample like plain noise, but far more of its power at the coarsest scale (where an
    8x8 latent keeps the object's place), and reproducible from the generator."""
    from textboost_ext.toyworld.pretrain_t2i import multires_noise

    shape = torch.Size((256, 4, 8, 8))
    plain = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    multi = multires_noise(shape, 3, 0.8, torch.Generator().manual_seed(0))
    assert torch.allclose(multi.std(dim=(1, 2, 3)), torch.ones(256), atol=1e-4)

    def quadrant_power(x: torch.Tensor) -> float:  # variance of the 2x2 block means: what says "top left"
        return torch.nn.functional.avg_pool2d(x, 4).var().item()

    assert quadrant_power(multi) > 5 * quadrant_power(plain)
    assert torch.equal(multi, multires_noise(shape, 3, 0.8, torch.Generator().manual_seed(0)))
    assert torch.equal(multires_noise(shape, 0, 0.8, torch.Generator().manual_seed(0)), plain / plain.std(dim=(1, 2, 3), keepdim=True))


def test_build_runs_the_shipped_chain_and_resumes(tmp_path: Path) -> None:
    """``build``: a first run, then continuations that start from the last one's weights and reuse its oracle,
    VAE and decoder; started again, it finds everything done and trains nothing."""
    from textboost_ext.toyworld.build import Chain, build

    options = {"vae_steps": 2, "oracle_steps": 2, "decoder_steps": 2, "quick_every": 0, "final_quality_n": 2}
    last = build(tmp_path, seed=0, chain=Chain(first_steps=2, continuations=2, continuation_steps=1), **options)
    assert last == tmp_path / "run2" and (last / "pipeline" / "model_index.json").is_file()
    record = json.loads((last / "record.json").read_text())
    assert record["t2i_init_from"]["pipeline"] == str(tmp_path / "run1" / "pipeline")
    assert record["t2i_init_from"]["record"]["t2i_init_from"]["pipeline"] == str(tmp_path / "run0" / "pipeline")
    assert record["t2i"]["settings"]["learning_rate"] == 3e-4 and record["t2i"]["settings"]["steps"] == 1
    assert same_file(last / "pipeline" / "vae", tmp_path / "run0" / "vae_decoder")
    assert (last / "oracle.safetensors").read_bytes() == (tmp_path / "run0" / "oracle.safetensors").read_bytes()

    logs = {run: (tmp_path / run / "pretrain.log").read_text() for run in ("run0", "run1", "run2")}
    build(tmp_path, seed=0, chain=Chain(first_steps=2, continuations=2, continuation_steps=1), **options)
    assert all((tmp_path / run / "pretrain.log").read_text() == text for run, text in logs.items())
