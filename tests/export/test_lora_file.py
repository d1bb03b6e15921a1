"""write_lora_file: golden key sets per family, casting, exact hashes, refusal of non-compliant state dicts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from textboost_ext.export import build_metadata, model_hash, read_header, save_precision_dtype, write_lora_file
from textboost_ext.export.hashes import kohya_hashes

MODULES = ("self_attn_q_proj", "self_attn_k_proj", "self_attn_v_proj", "self_attn_out_proj", "mlp_fc1", "mlp_fc2")
PARTS = ("lora_down.weight", "lora_up.weight", "alpha")


def golden_keys(prefix: str, n_layers: int) -> set[str]:
    # Literal segment "text_model_encoder_layers_": never derived from module paths (transformers 5 trap)
    return {f"{prefix}_text_model_encoder_layers_{i}_{m}.{p}" for i in range(n_layers) for m in MODULES for p in PARTS}


GOLDEN = {
    "sd1": golden_keys("lora_te", 2),
    "sd2": golden_keys("lora_te", 3),
    "sdxl": golden_keys("lora_te1", 2) | golden_keys("lora_te2", 2),
}


@pytest.mark.parametrize("family", ["sd1", "sd2", "sdxl"])
def test_golden_key_set(family: str, export_lora: Callable[..., Any]) -> None:
    path, network, _ = export_lora(family)
    keys = set(load_file(str(path)))
    assert keys == GOLDEN[family]
    assert len(keys) == {"sd1": 36, "sd2": 54, "sdxl": 72}[family]
    assert not any(k.startswith("bundle_emb") for k in keys)


def test_sd1_key_list_is_literal(export_lora: Callable[..., Any]) -> None:
    path, _, _ = export_lora("sd1")
    keys = sorted(load_file(str(path)))
    assert keys[:3] == [
        "lora_te_text_model_encoder_layers_0_mlp_fc1.alpha",
        "lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight",
        "lora_te_text_model_encoder_layers_0_mlp_fc1.lora_up.weight",
    ]


@pytest.mark.parametrize("name, dtype", [("fp16", torch.float16), (None, torch.float16), ("float", torch.float32),
                                         ("fp32", torch.float32), ("bf16", torch.bfloat16)])
def test_save_precision_dtype(name: str | None, dtype: torch.dtype) -> None:
    assert save_precision_dtype(name) == dtype


def test_save_precision_rejects_unknown() -> None:
    with pytest.raises(ValueError, match="fp8"):
        save_precision_dtype("fp8")


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.bfloat16])
def test_weights_cast_alpha_float32_and_values(dtype: torch.dtype, export_lora: Callable[..., Any]) -> None:
    path, network, _ = export_lora("sd1", dtype=dtype)
    loaded = load_file(str(path))
    assert {v.dtype for k, v in loaded.items() if not k.endswith(".alpha")} == {dtype}
    reference = network.kohya_state_dict()
    for key, value in loaded.items():
        if key.endswith(".alpha"):
            assert value.dim() == 0 and value.dtype == torch.float32 and float(value) == 2.0
        else:
            assert torch.equal(value, reference[key].to(dtype)), key


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_alpha_equals_ss_network_alpha_exactly_in_any_precision(dtype: torch.dtype, export_lora: Callable[..., Any]) -> None:
    path, _, _ = export_lora("sd1", dtype=dtype, alpha=0.3)  # bf16 would round 0.3 to 0.30078125
    alphas = {float(v) for k, v in load_file(str(path)).items() if k.endswith(".alpha")}
    metadata, _ = read_header(path)
    assert alphas == {float(torch.tensor(float(metadata["ss_network_alpha"]), dtype=torch.float32))}
    assert metadata["ss_network_alpha"] == "0.3"


def test_writer_refuses_an_alpha_that_is_not_the_stated_one(tmp_path: Path, export_lora: Callable[..., Any]) -> None:
    path, network, _ = export_lora("sd1", alpha=0.3)
    metadata, _ = read_header(path)
    state = network.kohya_state_dict()
    state = {k: v.to(torch.bfloat16) if k.endswith(".alpha") else v for k, v in state.items()}
    from textboost_ext.export.lora_file import write_checked_safetensors

    with pytest.raises(ValueError, match=r"ss_network_alpha=0.3 but the alpha tensors hold 0.30078125 \(bfloat16\)"):
        write_checked_safetensors(tmp_path / "x.safetensors", state, {**metadata, "ss_output_name": "x"})


def test_metadata_returned_and_hashes_exact(export_lora: Callable[..., Any]) -> None:
    path, _, _ = export_lora("sdxl", dtype=torch.float16, name="hashme")
    metadata, _ = read_header(path)
    assert metadata["sshs_model_hash"] == model_hash(path)
    tensors = load_file(str(path))
    assert (metadata["sshs_model_hash"], metadata["sshs_legacy_hash"]) == kohya_hashes(tensors, metadata)
    assert metadata["ss_output_name"] == "hashme"
    assert all(isinstance(v, str) for v in metadata.values())


def test_transformers4_naming_gives_the_same_keys(tiny_pipe: Callable[[str], Any]) -> None:
    """Keys do not depend on whether the module paths carry a ``text_model.`` level.

    CLIPTextModelWithProjection keeps that level in every transformers version; CLIPTextModel has
    it in transformers 4 only. The level-free variant is built explicitly so both layouts are
    exercised whichever transformers is installed: transformers 5's CLIPTextModel, or the inner
    ``text_model`` transformer of transformers 4's CLIPTextModel.
    """
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    from textboost_ext.network import TextEncoderLoRA

    te = tiny_pipe("sd1").text_encoder
    with_level = CLIPTextModelWithProjection(te.config)
    plain = CLIPTextModel(te.config)
    without_level = plain.text_model if hasattr(plain, "text_model") else plain
    assert any(n.startswith("text_model.encoder.layers.0") for n, _ in with_level.named_modules())
    assert not any(n.startswith("text_model.") for n, _ in without_level.named_modules())
    a = TextEncoderLoRA([with_level], rank=2, alpha=2.0).kohya_state_dict()
    b = TextEncoderLoRA([without_level], rank=2, alpha=2.0).kohya_state_dict()
    assert set(a) == set(b) == golden_keys("lora_te", 2)


def _good(network: Any, training_info: Callable[..., Any], family: str = "sd2", name: str = "bad") -> tuple[dict, dict]:
    sd = network.kohya_state_dict()
    return sd, build_metadata(training_info(family, name, network_dim=network.rank, network_alpha=network.alpha))


def _drop(sd: dict, module: str) -> dict:
    return {k: v for k, v in sd.items() if f"_{module}." not in k}


REFUSALS: dict[str, tuple[Callable[[dict, dict], tuple[dict, dict]], str]] = {
    "qkv only": (lambda sd, m: (_drop(sd, "self_attn_out_proj"), m), "attention q/k/v/out together"),
    "missing alpha": (lambda sd, m: ({k: v for k, v in sd.items() if k != "lora_te_text_model_encoder_layers_1_mlp_fc1.alpha"}, m),
                      "down/up/alpha per module"),
    "vector alpha": (lambda sd, m: ({**sd, "lora_te_text_model_encoder_layers_0_mlp_fc2.alpha": torch.tensor([2.0])}, m), "alpha scalar"),
    "two alphas": (lambda sd, m: ({**sd, "lora_te_text_model_encoder_layers_0_mlp_fc2.alpha": torch.tensor(3.0)}, m), "one alpha"),
    "te1 prefix on sd2": (lambda sd, m: ({k.replace("lora_te_", "lora_te1_"): v for k, v in sd.items()}, m), "prefix fits family"),
    "transformers 5 names": (lambda sd, m: ({k.replace("text_model_", ""): v for k, v in sd.items()}, m), "key names"),
    "output name": (lambda sd, m: (sd, {**m, "ss_output_name": "other"}), "ss_output_name = stem"),
    "diffusers metadata": (lambda sd, m: (sd, {**m, "lora_adapter_metadata": "{}"}), "no diffusers metadata key"),
    "version keys": (lambda sd, m: (sd, {**m, "ss_v2": "False"}), "version keys"),
    "dim mismatch": (lambda sd, m: (sd, {**m, "ss_network_dim": "8"}), "ss_network_dim/alpha match tensors"),
    "bundle in main file": (lambda sd, m: ({**sd, "bundle_emb.mytok.string_to_param.*": torch.zeros(1, 40)}, m), "bundle keys"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_refuses_to_write_a_file_that_would_fail(case: str, tmp_path: Path, trained_lora: Callable[..., Any],
                                                training_info: Callable[..., Any], tiny_pipe: Callable[[str], Any]) -> None:
    network, _ = trained_lora(tiny_pipe("sd2"))
    mutate, check_name = REFUSALS[case]
    sd, meta = mutate(*_good(network, training_info))
    path = tmp_path / "bad.safetensors"
    with pytest.raises(ValueError, match=check_name.replace("/", "/")) as info:
        write_lora_file(path, sd, meta)
    assert "refusing to write" in str(info.value)
    assert not path.exists() and list(tmp_path.iterdir()) == []


def test_refuses_nan_and_non_string_metadata(tmp_path: Path, trained_lora: Callable[..., Any],
                                             training_info: Callable[..., Any], tiny_pipe: Callable[[str], Any]) -> None:
    network, _ = trained_lora(tiny_pipe("sd1"))
    sd, meta = _good(network, training_info, "sd1")
    key = "lora_te_text_model_encoder_layers_1_self_attn_v_proj.lora_up.weight"
    sd[key] = sd[key].clone()
    sd[key][0, 0] = float("nan")
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        write_lora_file(tmp_path / "bad.safetensors", sd, meta)
    sd, meta = _good(network, training_info, "sd1")
    with pytest.raises(ValueError, match="ss_steps"):
        write_lora_file(tmp_path / "bad.safetensors", sd, {**meta, "ss_steps": 250})
    with pytest.raises(ValueError, match=r"\.safetensors"):
        write_lora_file(tmp_path / "bad.pt", sd, meta)
    assert list(tmp_path.iterdir()) == []


def test_missing_output_name_is_filled_in(tmp_path: Path, trained_lora: Callable[..., Any],
                                          training_info: Callable[..., Any], tiny_pipe: Callable[[str], Any]) -> None:
    network, _ = trained_lora(tiny_pipe("sd1"))
    sd, meta = _good(network, training_info, "sd1")
    del meta["ss_output_name"]
    final = write_lora_file(tmp_path / "filled.safetensors", sd, meta)
    assert final["ss_output_name"] == "filled"
