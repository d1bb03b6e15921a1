"""The sd-scripts host keeps LoRA modules only on layers whose output reaches the conditioning."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from textboost_ext.kohya.lora_network import keep_conditioning_layers

MODULES = ("self_attn_q_proj", "self_attn_k_proj", "self_attn_v_proj", "self_attn_out_proj", "mlp_fc1", "mlp_fc2")


def _network(prefixes_layers: dict[str, int]) -> SimpleNamespace:
    names = [f"{p}_text_model_encoder_layers_{i}_{m}" for p, n in prefixes_layers.items() for i in range(n) for m in MODULES]
    return SimpleNamespace(text_encoder_loras=[SimpleNamespace(lora_name=n) for n in names])


def test_sdxl_drops_the_six_modules_of_encoder_1s_last_layer() -> None:
    network = _network({"lora_te1": 12, "lora_te2": 32})
    assert keep_conditioning_layers(network, [11, 32]) == 6  # clients reported 258/264 modules applied before
    names = [lora.lora_name for lora in network.text_encoder_loras]
    assert len(names) == 258 and not any(n.startswith("lora_te1_text_model_encoder_layers_11_") for n in names)


def test_clip_skip_drops_the_layers_after_the_read_one() -> None:
    network = _network({"lora_te": 12})
    assert keep_conditioning_layers(network, [11]) == 6
    assert max(int(l.lora_name.split("_layers_")[1].split("_")[0]) for l in network.text_encoder_loras) == 10


def test_a_module_of_an_unknown_encoder_is_an_error() -> None:
    with pytest.raises(ValueError, match="prefix lora_te2_"):
        keep_conditioning_layers(_network({"lora_te2": 2}), [2])


def test_post_process_network_applies_the_rule_and_records_the_layers(trained_setup) -> None:
    run = trained_setup("--clip_skip", "2")  # tiny SD 1.x: 2 layers, the conditioning reads layer 0's output
    names = [lora.lora_name for lora in run.network.text_encoder_loras]
    assert names and all("_layers_0_" in n for n in names)
    metadata: dict[str, str] = {}
    run.trainer.update_metadata(metadata, run.args)
    assert metadata["ss_textboost_lora_layers"] == '{"lora_te": "0"}'
