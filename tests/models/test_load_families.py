"""Every family loads from a diffusers folder and from A1111 single files, with identical weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from textboost_ext.models.conditioning import encode_prompt_conditioning, tokenize
from textboost_ext.models.load import load_base_model

EXPECTED = {  # family -> (LoadedModel.family, prediction type, pad tokens)
    "sd1": ("sd1", "epsilon", ["<|endoftext|>"]),
    "sd2": ("sd2", "epsilon", ["!"]),
    "sd2v": ("sd2", "v_prediction", ["!"]),
    "sdxl": ("sdxl", "epsilon", ["<|endoftext|>", "!"]),
}
PROMPTS = ["a photo of a sks dog", ""]


def _public(config: dict) -> dict:
    return {k: v for k, v in dict(config).items() if not k.startswith("_")}


def _assert_same_weights(a: torch.nn.Module, b: torch.nn.Module, what: str) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert set(sa) == set(sb), f"{what}: key sets differ: {sorted(set(sa) ^ set(sb))[:5]}"
    different = [k for k in sa if not torch.equal(sa[k], sb[k])]
    assert not different, f"{what}: tensors differ: {different[:5]}"


@pytest.mark.parametrize("family", list(EXPECTED))
def test_diffusers_folder(folder_model, tiny_model_dir, family: str) -> None:
    model = folder_model(family)
    fam, prediction, pads = EXPECTED[family]
    assert model.family == fam
    assert model.prediction_type == prediction
    assert [t.pad_token for t in model.tokenizers] == pads
    assert len(model.text_encoders) == len(pads)
    assert model.source == str(tiny_model_dir(family))
    assert type(model.noise_scheduler).__name__ == "DDPMScheduler"
    assert model.noise_scheduler.config.num_train_timesteps == 1000
    assert model.noise_scheduler.config.beta_schedule == "scaled_linear"
    assert not any(m.training for m in [model.unet, model.vae, *model.text_encoders])


@pytest.mark.parametrize("suffix", [".safetensors", ".ckpt"])
@pytest.mark.parametrize("family", list(EXPECTED))
def test_single_file_matches_folder(folder_model, single_file, family: str, suffix: str) -> None:
    reference = folder_model(family)
    model = load_base_model(str(single_file(family, suffix)), v_parameterization=family == "sd2v")
    fam, prediction, pads = EXPECTED[family]
    assert (model.family, model.prediction_type) == (fam, prediction)
    assert [t.pad_token for t in model.tokenizers] == pads
    assert model.extra["format"] == "single_file"

    for i, (ours, ref) in enumerate(zip(model.text_encoders, reference.text_encoders, strict=True)):
        assert type(ours) is type(ref)
        _assert_same_weights(ours, ref, f"text encoder {i}")
        assert ours.config.num_hidden_layers == ref.config.num_hidden_layers
        assert ours.config.num_attention_heads == ref.config.num_attention_heads
    _assert_same_weights(model.unet, reference.unet, "unet")
    _assert_same_weights(model.vae, reference.vae, "vae")
    assert _public(model.unet.config) == _public(reference.unet.config)
    assert _public(model.vae.config) == _public(reference.vae.config)
    assert torch.equal(model.noise_scheduler.alphas_cumprod, reference.noise_scheduler.alphas_cumprod)

    # same conditioning, computed from the same prompts: the loaded encoders behave identically
    with torch.no_grad():
        ours = encode_prompt_conditioning(model, tokenize(model, PROMPTS), clip_skip=None)
        ref = encode_prompt_conditioning(reference, tokenize(reference, PROMPTS), clip_skip=None)
    for a, b in zip(ours, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_sd2_single_file_drops_the_last_open_clip_layer(single_file, tiny_model_dir) -> None:
    """A1111 SD 2.x files hold the full OpenCLIP tower; the loaded encoder is cut to the penultimate layer."""
    from safetensors import safe_open

    path = single_file("sd2", ".safetensors")
    with safe_open(str(path), "pt") as f:
        file_layers = {k.split(".")[4] for k in f.keys() if k.startswith("cond_stage_model.model.transformer.resblocks.")}
    folder_layers = json.loads((tiny_model_dir("sd2") / "text_encoder" / "config.json").read_text())["num_hidden_layers"]
    model = load_base_model(str(path))
    assert len(file_layers) == folder_layers + 1
    assert model.text_encoders[0].config.num_hidden_layers == folder_layers


def test_v_prediction_from_a1111_sidecar_yaml(single_file, tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(single_file("sd2v", ".safetensors").read_bytes())
    assert load_base_model(str(path)).prediction_type == "epsilon"  # a single file doesn't say
    path.with_suffix(".yaml").write_text('model:\n  params:\n    parameterization: "v"\n')
    model = load_base_model(str(path))
    assert model.prediction_type == "v_prediction"
    assert model.base_model_version == "sd_v2_v"


def test_v_parameterization_overrides_folder_scheduler(tiny_model_dir) -> None:
    model = load_base_model(str(tiny_model_dir("sd2")), v_parameterization=True)
    assert (model.family, model.prediction_type) == ("sd2", "v_prediction")


def test_v2_flag_forces_sd2_for_a_folder(tiny_model_dir) -> None:
    assert load_base_model(str(tiny_model_dir("sd1")), v2=True).family == "sd2"


def test_torch_dtype(single_file) -> None:
    model = load_base_model(str(single_file("sd1", ".safetensors")), torch_dtype=torch.bfloat16)
    for module in [model.unet, model.vae, *model.text_encoders]:
        assert {p.dtype for p in module.parameters()} == {torch.bfloat16}


def test_half_precision_file_loads_as_float32(tiny_model_dir, tmp_path: Path) -> None:
    """Released files are usually fp16; torch_dtype decides what we train with."""
    from tests.helpers.ldm_export import export_single_file

    path = export_single_file(tiny_model_dir("sdxl"), tmp_path / "half.safetensors", dtype=torch.float16)
    model = load_base_model(str(path))
    for module in [model.unet, model.vae, *model.text_encoders]:
        assert {p.dtype for p in module.parameters()} == {torch.float32}
