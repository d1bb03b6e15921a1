"""vae=...: a replacement VAE from an A1111 VAE file or a diffusers folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from tests.helpers.ldm_export import vae_to_ldm
from textboost_ext.models.errors import BaseModelError, BaseModelNotFoundError
from textboost_ext.models.load import load_base_model


def _shifted_vae(model) -> dict[str, torch.Tensor]:  # noqa: ANN001
    """The base's VAE weights + 0.5: a different VAE with the same architecture."""
    return {k: (v + 0.5 if v.is_floating_point() else v) for k, v in model.vae.state_dict().items()}


def test_vae_from_a1111_file(folder_model, tiny_model_dir, tmp_path: Path) -> None:
    base = folder_model("sd1")
    shifted = _shifted_vae(base)
    path = tmp_path / "vae-ft-tiny.safetensors"
    hints = {"vae": {k: base.vae.config[k] for k in ("norm_num_groups", "sample_size")}}
    save_file(vae_to_ldm(shifted, len(base.vae.config.block_out_channels)), str(path), metadata={"textboost.architecture": json.dumps(hints)})

    model = load_base_model(str(tiny_model_dir("sd1")), vae=str(path))
    loaded = model.vae.state_dict()
    assert all(torch.equal(loaded[k], shifted[k]) for k in shifted)
    assert model.vae.config.scaling_factor == base.vae.config.scaling_factor
    assert model.extra["vae"] == str(path)


def test_vae_from_diffusers_folder(folder_model, tiny_model_dir, tmp_path: Path) -> None:
    base = folder_model("sdxl")
    vae = type(base.vae).from_config(base.vae.config)
    vae.load_state_dict(_shifted_vae(base))
    vae.save_pretrained(tmp_path / "my-vae")
    model = load_base_model(str(tiny_model_dir("sdxl")), vae=str(tmp_path / "my-vae"), torch_dtype=torch.bfloat16)
    assert next(model.vae.parameters()).dtype == torch.bfloat16
    assert torch.equal(model.vae.decoder.conv_out.bias, vae.decoder.conv_out.bias.to(torch.bfloat16))
    # a whole pipeline folder works too: its vae/ is used
    assert load_base_model(str(tiny_model_dir("sd1")), vae=str(tiny_model_dir("sdxl"))).vae.config.scaling_factor == base.vae.config.scaling_factor


def test_vae_from_a_whole_checkpoint(folder_model, tiny_model_dir, single_file) -> None:
    """An A1111 checkpoint's first_stage_model.* is a VAE too."""
    model = load_base_model(str(tiny_model_dir("sd2")), vae=str(single_file("sd1", ".safetensors")))
    reference = folder_model("sd1").vae.state_dict()
    assert all(torch.equal(v, reference[k]) for k, v in model.vae.state_dict().items())


def test_bad_vae_inputs(tiny_model_dir, single_file, tmp_path: Path) -> None:
    folder = str(tiny_model_dir("sd1"))
    with pytest.raises(BaseModelNotFoundError, match="no-such-vae.safetensors: no such file"):
        load_base_model(folder, vae=str(tmp_path / "no-such-vae.safetensors"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(BaseModelError, match="without config.json"):
        load_base_model(folder, vae=str(tmp_path / "empty"))
    lora = tmp_path / "lora.safetensors"
    save_file({"lora_unet_x.lora_down.weight": torch.zeros(1)}, str(lora))
    with pytest.raises(BaseModelError, match="not an LDM/A1111 VAE file"):
        load_base_model(folder, vae=str(lora))
