"""``TextEncoderLoRA`` refuses the same ``lora_targets`` the config checks refuse (one shared rule)."""

from __future__ import annotations

import pytest

from textboost_ext.config.options import lora_target_problems
from textboost_ext.network import KOHYA_MODULE_SUFFIX, LORA_TARGETS, validate_targets


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        (["q_proj", "v_proj"], "Add the missing ones or drop attention entirely"),
        (["fc1", "fc3"], "unknown module 'fc3'"),
        ([], "must not be empty"),
        (["fc1", "fc1"], "lists a module twice"),
    ],
)
def test_network_and_config_reject_the_same_targets(targets: list[str], message: str) -> None:
    assert any(message in problem for problem in lora_target_problems(targets))  # what the config check reports
    with pytest.raises(ValueError, match=message):
        validate_targets(targets)


def test_every_allowed_target_has_a_kohya_name() -> None:
    assert {kind.split(".")[1] for kind in KOHYA_MODULE_SUFFIX} == set(LORA_TARGETS)
    validate_targets(LORA_TARGETS)  # the default (everything) is valid
    validate_targets(["fc1", "fc2"])


def test_layer_counts_limit_the_adapted_layers_and_old_files_with_dead_layers_still_load() -> None:
    import torch

    from textboost_ext.models.tiny import build_tiny_pipeline
    from textboost_ext.network import TextEncoderLoRA

    pipe = build_tiny_pipeline("sdxl")
    full = TextEncoderLoRA([pipe.text_encoder, pipe.text_encoder_2])  # every layer, as files before the fix had
    pipe = build_tiny_pipeline("sdxl")
    live = TextEncoderLoRA([pipe.text_encoder, pipe.text_encoder_2], layer_counts=[1, 2])
    assert live.trained_layers() == {"lora_te1": [0], "lora_te2": [0, 1]}
    assert sorted(set(full.module_names()) - set(live.module_names())) == sorted(
        f"lora_te1_text_model_encoder_layers_1_{m}" for m in
        ("self_attn_q_proj", "self_attn_k_proj", "self_attn_v_proj", "self_attn_out_proj", "mlp_fc1", "mlp_fc2"))
    with torch.no_grad():  # trained modules move off zero; the dead layer's lora_up stays zero, as training leaves it
        for name, layer in full.named_lora_layers():
            if "_te1_" not in name or "_layers_1_" not in name:
                layer.lora_B["default"].weight.normal_()
    old = full.kohya_state_dict()
    live.load_kohya_state_dict(old, source="old.safetensors")  # the no-op modules are skipped
    for name, layer in live.named_lora_layers():
        assert torch.equal(layer.lora_B["default"].weight, old[f"{name}.lora_up.weight"])
    old["lora_te1_text_model_encoder_layers_1_mlp_fc1.lora_up.weight"].fill_(0.5)  # a module that does something
    with pytest.raises(ValueError, match="1 unexpected|unexpected"):
        live.load_kohya_state_dict(old, source="old.safetensors")
