"""kohya <-> diffusers conversion: exact round trips, diffusers loads both, alpha handled."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

from textboost_ext.export import verify_file
from textboost_ext.export.convert import ALPHA_KEY, SCALE_KEY, convert_file, detect_format
from textboost_ext.export.oracle import encode, pipeline_text_encoders, prompt_ids
from textboost_ext.export.safetensors_io import read_header


@pytest.mark.parametrize("family, alpha, dtype", [("sd1", 2.0, torch.float32), ("sd2", 4.0, torch.float16), ("sdxl", 1.0, torch.float32)])
def test_kohya_diffusers_kohya_is_identical(family: str, alpha: float, dtype: torch.dtype, tmp_path: Path,
                                             export_lora: Callable[..., Any]) -> None:
    path, _, _ = export_lora(family, dtype=dtype, alpha=alpha)
    middle, back = tmp_path / "d" / "mid.safetensors", tmp_path / "k" / "mylora.safetensors"
    middle.parent.mkdir(), back.parent.mkdir()  # convert creates no folders
    convert_file(path, middle)
    assert detect_format(load_file(str(middle))) == "diffusers"
    convert_file(middle, back)
    a, b = load_file(str(path)), load_file(str(back))
    assert set(a) == set(b)
    for key in a:
        assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), key
    assert read_header(path)[0] == read_header(back)[0]


def test_diffusers_keys_and_metadata(tmp_path: Path, export_lora: Callable[..., Any]) -> None:
    path, _, _ = export_lora("sdxl", alpha=2.0)
    out = tmp_path / "d.safetensors"
    convert_file(path, out, to="diffusers")
    tensors = load_file(str(out))
    assert "text_encoder.text_model.encoder.layers.0.self_attn.q_proj.lora_A.weight" in tensors
    assert "text_encoder_2.text_model.encoder.layers.1.mlp.fc2.lora_B.weight" in tensors
    assert len(tensors) == 2 * 24 and not any(k.endswith("alpha") for k in tensors)
    meta = read_header(out)[0]
    assert meta[ALPHA_KEY] == "2.0" and meta[SCALE_KEY] == "0.5" and "lora_adapter_metadata" not in meta
    assert not any(k.startswith("sshs_") for k in meta)


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
def test_diffusers_file_gives_the_trained_outputs(family: str, tmp_path: Path, export_lora: Callable[..., Any],
                                                  tiny_pipe: Callable[[str], Any]) -> None:
    pipe = tiny_pipe(family)
    path, _, adapted = export_lora(family, alpha=3.0)
    out = tmp_path / "d.safetensors"
    convert_file(path, out, to="diffusers")
    entries = pipeline_text_encoders(pipe)
    ids = [prompt_ids(tok, enc) for _, enc, tok in entries]
    expected = [encode(enc, i)[0] for enc, i in zip(adapted, ids)]
    pipe.load_lora_weights(str(out.parent), weight_name=out.name, adapter_name="tb_conv")
    try:
        got = [encode(enc, i)[0] for (_, enc, _), i in zip(entries, ids)]
    finally:
        pipe.unload_lora_weights()
    assert max(float((g - e).abs().max()) for g, e in zip(got, expected)) <= 1e-5


def _peft_style(tensors: dict[str, torch.Tensor], drop_text_model: bool) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in tensors.items():
        out[key.replace("text_model.", "") if drop_text_model else key] = value
    return out


def test_foreign_diffusers_file_without_alpha_and_text_model(tmp_path: Path, export_lora: Callable[..., Any],
                                                            tiny_pipe: Callable[[str], Any]) -> None:
    """A transformers-5 style diffusers file (no text_model., no alpha, q/v only) -> valid kohya file, alpha = rank."""
    path, _, _ = export_lora("sd2")
    mid = tmp_path / "mid.safetensors"
    convert_file(path, mid, to="diffusers")
    tensors = {k: v for k, v in _peft_style(load_file(str(mid)), True).items() if ".q_proj." in k or ".v_proj." in k}
    foreign = tmp_path / "foreign.safetensors"
    save_file(tensors, str(foreign), metadata={"format": "pt"})
    out = tmp_path / "fromdiffusers.safetensors"
    result = convert_file(foreign, out, family="sd2")
    assert any("alpha = rank" in n for n in result.notes) and any("zero-filled" in n for n in result.notes)
    kohya = load_file(str(out))
    assert "lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight" in kohya
    assert float(kohya["lora_te_text_model_encoder_layers_0_self_attn_q_proj.alpha"]) == 4.0
    assert torch.count_nonzero(kohya["lora_te_text_model_encoder_layers_2_self_attn_out_proj.lora_up.weight"]) == 0
    report = verify_file(out, pipeline=tiny_pipe("sd2"))
    assert report.ok, report.format_table()


def test_convert_errors(tmp_path: Path, export_lora: Callable[..., Any]) -> None:
    path, _, _ = export_lora("sd1")
    with pytest.raises(ValueError, match="already in kohya"):
        convert_file(path, tmp_path / "x.safetensors", to="kohya")
    with pytest.raises(ValueError, match="same file"):
        convert_file(path, path)
    other = tmp_path / "unet.safetensors"
    save_file({"lora_unet_down.lora_down.weight": torch.zeros(1, 1)}, str(other))
    with pytest.raises(ValueError, match="neither a kohya"):
        convert_file(other, tmp_path / "y.safetensors")
    mid = tmp_path / "mid.safetensors"
    convert_file(path, mid)
    with pytest.raises(ValueError, match="metadata says sd1"):
        convert_file(mid, tmp_path / "z.safetensors", family="sd2")


def test_convert_writes_float32_alpha_equal_to_the_metadata(tmp_path: Path, export_lora: Callable[..., Any]) -> None:
    path, _, _ = export_lora("sd1", alpha=0.3)
    middle, back = tmp_path / "d" / "mid.safetensors", tmp_path / "k" / "back.safetensors"
    middle.parent.mkdir(), back.parent.mkdir()  # convert creates no folders
    convert_file(path, middle)
    convert_file(middle, back, save_dtype=torch.bfloat16)
    tensors = load_file(str(back))
    alphas = {(v.dtype, float(v)) for k, v in tensors.items() if k.endswith(".alpha")}
    assert alphas == {(torch.float32, float(torch.tensor(0.3)))}  # not bf16's 0.30078125
    assert {v.dtype for k, v in tensors.items() if not k.endswith(".alpha")} == {torch.bfloat16}
    assert read_header(back)[0]["ss_network_alpha"] == "0.3"  # carried over: exact in float32
