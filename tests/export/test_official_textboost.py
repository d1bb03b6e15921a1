"""Official TextBoost output (PEFT adapter folder + <token>.bin) -> our kohya LoRA + embedding."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from textboost_ext.export import verify_file
from textboost_ext.export.official_textboost import convert_official_textboost
from textboost_ext.export.oracle import encode, prompt_ids
from textboost_ext.export.safetensors_io import read_header

# peft notes that it saves the resized embedding matrix: expected, that is what the official trainer does
pytestmark = pytest.mark.filterwarnings("ignore:Setting `save_embedding_layers`:UserWarning")


def make_official(root: Path, pipe: Any, *, use_rslora: bool = False, safe: bool = True, text_model_keys: bool = False,
                  token: str = "<mytok>") -> tuple[Any, torch.Tensor]:
    """What the official trainer leaves behind: text_encoder/ (PEFT, q/k/v only, alpha = r) and <token>.bin."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(3)
    config = LoraConfig(r=4, lora_alpha=4, target_modules=["q_proj", "k_proj", "v_proj"], init_lora_weights="gaussian",
                        use_rslora=use_rslora)
    encoder = copy.deepcopy(pipe.text_encoder)
    # like the official trainer: the placeholder token is added, so the embedding matrix grows and peft
    # saves it inside the adapter (save_embedding_layers="auto")
    encoder.resize_token_embeddings(encoder.config.vocab_size + 1)
    model = get_peft_model(encoder, config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0.0, 0.05)
    model.eval()
    adapter_dir = root / "text_encoder"
    model.save_pretrained(str(adapter_dir), safe_serialization=safe)
    if text_model_keys:  # transformers 4 era: CLIPTextModel still had the text_model level
        weights = torch.load(adapter_dir / "adapter_model.bin", weights_only=True)
        # under transformers 4 the keys already carry the level: insert it only where it is absent
        weights = {k if k.startswith("base_model.model.text_model.")
                   else k.replace("base_model.model.", "base_model.model.text_model.", 1): v for k, v in weights.items()}
        assert all(k.startswith("base_model.model.text_model.") for k in weights), sorted(weights)
        torch.save(weights, adapter_dir / "adapter_model.bin")
    vector = torch.randn(pipe.text_encoder.config.hidden_size)
    torch.save({token: vector}, root / f"{token.strip('<>')}.bin")
    (root / "validation_250.jpg").write_bytes(b"not an embedding")
    return model, vector


@pytest.mark.parametrize("variant", ["safetensors", "bin+text_model", "rslora"])
def test_official_output_converts_and_matches_peft(variant: str, tmp_path: Path, tiny_pipe: Callable[[str], Any]) -> None:
    pipe = tiny_pipe("sd1")
    src = tmp_path / "official"
    model, vector = make_official(src, pipe, use_rslora=variant == "rslora", safe=variant != "bin+text_model",
                                  text_model_keys=variant == "bin+text_model")
    out = tmp_path / "ours" / "mylora.safetensors"
    result = convert_official_textboost(src, out, "sd1", save_dtype=torch.float32)
    assert result.paths == [out, out.with_name("mytok.safetensors")]
    assert any("zero-filled 2 missing attention projection(s) (out_proj)" in n for n in result.notes)
    assert any("embeddings.token_embedding.weight" in n for n in result.notes)
    meta = read_header(out)[0]
    assert meta["ss_textboost_converted_from"] == "official-textboost"
    assert json.loads(meta["ss_textboost_zero_filled_modules"]) == [
        "lora_te_text_model_encoder_layers_0_self_attn_out_proj", "lora_te_text_model_encoder_layers_1_self_attn_out_proj"]
    assert meta["modelspec.trigger_phrase"] == "mytok"
    assert float(meta["ss_network_alpha"]) == (8.0 if variant == "rslora" else 4.0)  # rsLoRA: alpha/sqrt(r) scaling
    report = verify_file(out, pipeline=pipe)
    assert report.ok, report.format_table()
    # same encoder outputs as applying the PEFT adapter
    ids = prompt_ids(pipe.tokenizer, pipe.text_encoder)
    expected = encode(model, ids)[0]
    pipe.load_lora_weights(str(out.parent), weight_name=out.name, adapter_name="tb_official")
    try:
        got = encode(pipe.text_encoder, ids)[0]
    finally:
        pipe.unload_lora_weights()
    assert float((got - expected).abs().max()) <= 1e-5
    emb = load_file(str(out.with_name("mytok.safetensors")))
    assert torch.equal(emb["emb_params"], vector.unsqueeze(0))


def test_adapter_folder_as_source_and_fp16_default(tmp_path: Path, tiny_pipe: Callable[[str], Any]) -> None:
    src = tmp_path / "official"
    make_official(src, tiny_pipe("sd1"))
    out = tmp_path / "mylora.safetensors"
    convert_official_textboost(src / "text_encoder", out, "sd1")
    tensors = load_file(str(out))
    assert {v.dtype for k, v in tensors.items() if not k.endswith(".alpha")} == {torch.float16}
    assert {v.dtype for k, v in tensors.items() if k.endswith(".alpha")} == {torch.float32}
    assert (tmp_path / "mytok.safetensors").is_file()


def test_vocabulary_word_token_needs_a_rename(tmp_path: Path, tiny_pipe: Callable[[str], Any]) -> None:
    src = tmp_path / "official"
    make_official(src, tiny_pipe("sd1"), token="<dog>")
    out = tmp_path / "ours" / "mylora.safetensors"
    with pytest.raises(ValueError, match=r"--rename dog=NEWNAME"):
        convert_official_textboost(src, out, "sd1")
    assert not out.parent.exists() or list(out.parent.iterdir()) == []
    result = convert_official_textboost(src, out, "sd1", rename={"dog": "mydogtb"})
    assert out.with_name("mydogtb.safetensors") in result.paths
    result = convert_official_textboost(src, tmp_path / "skip" / "l.safetensors", "sd1", skip_tokens={"dog"})
    assert len(result.paths) == 1


def test_family_needs_arch_for_unknown_width(tmp_path: Path, tiny_pipe: Callable[[str], Any]) -> None:
    src = tmp_path / "official"
    make_official(src, tiny_pipe("sd1"))
    with pytest.raises(ValueError, match="pass --arch"):
        convert_official_textboost(src, tmp_path / "x.safetensors")
    with pytest.raises(FileNotFoundError, match="adapter_config.json"):
        convert_official_textboost(tmp_path, tmp_path / "x.safetensors", "sd1")


def test_dora_is_refused(tmp_path: Path, tiny_pipe: Callable[[str], Any]) -> None:
    src = tmp_path / "official"
    make_official(src, tiny_pipe("sd1"))
    config_path = src / "text_encoder" / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config["use_dora"] = True
    config_path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match="DoRA"):
        convert_official_textboost(src, tmp_path / "x.safetensors", "sd1")
