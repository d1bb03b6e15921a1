"""Bad input to load_base_model gets an error that names the input and the fix."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from textboost_ext.models.errors import BaseModelError, BaseModelNotFoundError, HubDownloadError
from textboost_ext.models.load import load_base_model, looks_like_hub_id


def test_missing_path_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "modles" / "sd15.safetensors"
    with pytest.raises(BaseModelNotFoundError, match=re.escape(str(missing)) + ".*check the spelling"):
        load_base_model(str(missing))
    with pytest.raises(FileNotFoundError):  # also a FileNotFoundError for callers that catch that
        load_base_model(str(missing))


def test_unsupported_extension(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(b"\0" * 16)
    with pytest.raises(BaseModelError, match=r"model\.bin: unsupported file type '\.bin'.*\.safetensors / \.ckpt"):
        load_base_model(str(path))


def test_folder_without_model_index(tmp_path: Path) -> None:
    (tmp_path / "unet").mkdir()
    with pytest.raises(BaseModelError, match=re.escape(str(tmp_path)) + ".*without model_index.json"):
        load_base_model(str(tmp_path))


def test_not_a_stable_diffusion_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "classifier.safetensors"
    save_file({"fc.weight": torch.zeros(2, 2)}, str(path))
    with pytest.raises(BaseModelError) as info:
        load_base_model(str(path))
    message = str(info.value)
    assert str(path) in message
    assert "model.diffusion_model." in message and "cond_stage_model.transformer." in message
    assert "conditioner.embedders.1.model." in message


@pytest.mark.parametrize(
    ("keys", "hint"),
    [
        (["lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight"], "LoRA"),
        (["encoder.down.0.block.0.conv1.weight", "decoder.up.0.block.0.conv1.weight"], "VAE"),
        (["emb_params"], "textual-inversion"),
    ],
)
def test_other_kinds_of_file_are_recognised(tmp_path: Path, keys: list[str], hint: str) -> None:
    path = tmp_path / "thing.safetensors"
    save_file({k: torch.zeros(1) for k in keys}, str(path))
    with pytest.raises(BaseModelError, match=hint):
        load_base_model(str(path))


def test_corrupt_safetensors(single_file, tmp_path: Path) -> None:
    good = single_file("sd1", ".safetensors").read_bytes()
    path = tmp_path / "broken.safetensors"
    path.write_bytes(good[: len(good) // 2])  # an interrupted download
    with pytest.raises(BaseModelError, match=re.escape(str(path)) + ".*corrupt.*download it again"):
        load_base_model(str(path))
    path.write_bytes(b"not a safetensors file at all")
    with pytest.raises(BaseModelError, match="not a readable .safetensors file"):
        load_base_model(str(path))


def test_corrupt_ckpt(tmp_path: Path) -> None:
    path = tmp_path / "broken.ckpt"
    path.write_bytes(b"PK\x03\x04 truncated zip")
    with pytest.raises(BaseModelError, match=re.escape(str(path)) + ".*not a readable .ckpt"):
        load_base_model(str(path))


def test_ckpt_with_python_objects_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pickled.ckpt"
    torch.save({"state_dict": {}, "callback": Path("x")}, str(path))
    with pytest.raises(BaseModelError, match=r"weights_only=True\) refused it.*convert it to .safetensors"):
        load_base_model(str(path))


def _read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()


def test_missing_weights_are_not_silently_random(single_file, tmp_path: Path) -> None:
    """diffusers' from_single_file leaves absent weights on the meta device; we refuse that."""
    sd, metadata = _read(single_file("sd1", ".safetensors"))
    del sd["model.diffusion_model.middle_block.2.out_layers.3.weight"]
    path = tmp_path / "truncated.safetensors"
    save_file(sd, str(path), metadata=metadata)
    with pytest.raises(BaseModelError, match=r"unet of .*truncated\.safetensors lacks 1 weights.*mid_block\.resnets\.1\.conv2\.weight"):
        load_base_model(str(path))
    del sd["model.diffusion_model.out.2.weight"]
    save_file(sd, str(path), metadata=metadata)
    with pytest.raises(BaseModelError, match=r"truncated\.safetensors: the UNet .* is incomplete: key 'out\.2\.weight' is missing"):
        load_base_model(str(path))


def test_missing_vae_weights(single_file, tmp_path: Path) -> None:
    sd = {k: v for k, v in load_file(str(single_file("sd1", ".safetensors"))).items() if not k.startswith("first_stage_model.")}
    path = tmp_path / "no_vae.safetensors"
    save_file(sd, str(path))
    with pytest.raises(BaseModelError, match=r"no weights under \['first_stage_model.'\]"):
        load_base_model(str(path))


def test_non_standard_width_without_hints_is_an_error_not_a_guess(tiny_model_dir, tmp_path: Path) -> None:
    from tests.helpers.ldm_export import export_single_file

    path = export_single_file(tiny_model_dir("sd1"), tmp_path / "nohints.safetensors", hints=False)
    with pytest.raises(BaseModelError, match=r"32 wide.*textboost\.architecture.*num_attention_heads"):
        load_base_model(str(path))


def test_bad_architecture_hints(single_file, tmp_path: Path) -> None:
    sd = load_file(str(single_file("sd1", ".safetensors")))
    path = tmp_path / "badhints.safetensors"
    save_file(sd, str(path), metadata={"textboost.architecture": json.dumps({"unet": {"block_out_channels": [1]}})})
    with pytest.raises(BaseModelError, match=r"sets \['block_out_channels'\], which are read from the tensor shapes"):
        load_base_model(str(path))
    save_file(sd, str(path), metadata={"textboost.architecture": "{not json"})
    with pytest.raises(BaseModelError, match="is not valid JSON"):
        load_base_model(str(path))


def test_flags_that_contradict_the_checkpoint(single_file, tiny_model_dir) -> None:
    with pytest.raises(BaseModelError, match="v2=True but the checkpoint holds an SD 1.x text encoder"):
        load_base_model(str(single_file("sd1", ".safetensors")), v2=True)
    with pytest.raises(BaseModelError, match="sdxl=True but this is an SD 2.x model"):
        load_base_model(str(single_file("sd2", ".safetensors")), sdxl=True)
    with pytest.raises(BaseModelError, match="v2=True but this is an SDXL model"):
        load_base_model(str(tiny_model_dir("sdxl")), v2=True)
    with pytest.raises(BaseModelError, match="sdxl=True but this is an SD 1.x model"):
        load_base_model(str(tiny_model_dir("sd1")), sdxl=True)


def test_sdxl_refiner_is_refused(single_file, tmp_path: Path) -> None:
    sd = {k: v for k, v in load_file(str(single_file("sdxl", ".safetensors"))).items() if not k.startswith("conditioner.embedders.0.")}
    path = tmp_path / "refiner.safetensors"
    save_file(sd, str(path))
    with pytest.raises(BaseModelError, match="refiner"):
        load_base_model(str(path))


def test_hub_id_offline_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no local folder of that name
    with pytest.raises(HubDownloadError) as info:
        load_base_model("someone/sd-model-that-is-not-cached")
    assert str(info.value).startswith(
        "could not download 'someone/sd-model-that-is-not-cached' from the Hugging Face Hub (offline?). Download it "
        "first or point pretrained_model_name_or_path at a local diffusers folder or .safetensors/.ckpt file"
    )
    assert isinstance(info.value, ConnectionError)


def test_hub_id_recognition(tmp_path: Path) -> None:
    assert looks_like_hub_id("stabilityai/stable-diffusion-2-1")
    assert looks_like_hub_id("stable-diffusion-v1-5/stable-diffusion-v1-5")
    assert not looks_like_hub_id("models/sd15.safetensors")
    assert not looks_like_hub_id("/abs/path")
    assert not looks_like_hub_id("a/b/c")
    assert not looks_like_hub_id("../x")


def test_unknown_builtin() -> None:
    with pytest.raises(BaseModelError, match="unknown built-in model 'builtin:tiny-sd3'.*builtin:tiny-sd1"):
        load_base_model("builtin:tiny-sd3")
