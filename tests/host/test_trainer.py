"""End-to-end training on the tiny models: what changes, what must not, families, optimizers, precision."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from textboost_ext.config import TrainConfig, load_config
from textboost_ext.host import train
from textboost_ext.host.optim import optimizer_state_dtypes
from textboost_ext.host.trainer import HostTrainer
from textboost_ext.models.load import load_base_model


def _base_weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A module's weights without LoRA tensors, under the names they had before injection."""
    return {
        k.replace(".base_layer", ""): v.detach().clone()
        for k, v in module.state_dict().items()
        if "lora_" not in k
    }


def test_plain_text_encoder_lora_end_to_end(make_config: Callable[..., TrainConfig], tmp_path: Path) -> None:
    cfg = make_config(output_dir=None, adapters_dir=str(tmp_path / "store"), max_train_steps=3)
    fresh = load_base_model(cfg.pretrained_model_name_or_path)
    trainer = HostTrainer(cfg)
    result = trainer.train()

    assert result.adapter_dir == (tmp_path / "store" / "adapter").absolute()
    assert result.lora_path == result.adapter_dir / "adapter.safetensors" and result.lora_path.is_file()
    assert result.steps == 3 and len(result.logs) == 3 and result.final_loss == result.logs[-1]["loss/total"]
    with safe_open(str(result.lora_path), "pt") as f:
        keys, meta = list(f.keys()), f.metadata()
        assert all(k.startswith("lora_te_text_model_encoder_layers_") for k in keys)
        ups = [f.get_tensor(k) for k in keys if k.endswith("lora_up.weight")]
    assert any(bool(u.abs().sum() > 0) for u in ups)  # B starts at zero: training moved it
    assert meta["ss_steps"] == "3" and meta["ss_output_name"] == "adapter" and meta["ss_base_model_version"] == "sd_v1"
    assert meta["ss_num_train_images"] == "1" and meta["ss_optimizer"] == "torch.optim.adamw.AdamW"
    sidecar = json.loads((result.adapter_dir / "adapter.json").read_text())
    assert sidecar["sd version"] == "SD1" and sidecar["activation text"] == ""
    assert load_config(result.adapter_dir / "training_config.toml").max_train_steps == 3  # round-trips

    # frozen parts are bit-identical; in the text encoder only LoRA tensors differ from the base
    model = trainer.model
    for name, module, base in (("unet", model.unet, fresh.unet), ("vae", model.vae, fresh.vae), ("te", model.text_encoders[0], fresh.text_encoders[0])):
        after, before = _base_weights(module), _base_weights(base)
        assert after.keys() == before.keys(), name
        assert all(torch.equal(after[k], before[k]) for k in before), f"{name} base weights changed"
    assert all(not p.requires_grad for p in model.unet.parameters()) and all(not p.requires_grad for p in model.vae.parameters())
    trained = {id(p) for p in trainer.network.trainable_parameters()}
    assert {id(p) for p in model.text_encoders[0].parameters() if p.requires_grad} == trained


def test_gradient_checkpointing_still_trains_the_lora(make_config: Callable[..., TrainConfig]) -> None:
    ckpt = HostTrainer(make_config(max_train_steps=1, gradient_checkpointing=True, output_name="ckpt"))
    ckpt.train()
    te = ckpt.model.text_encoders[0]
    assert any(getattr(m, "gradient_checkpointing", False) for m in te.modules())  # really enabled
    ups = [w for k, w in ckpt.network.kohya_state_dict().items() if k.endswith("lora_up.weight")]
    assert all(bool(u.abs().sum() > 0) for u in ups), "LoRA did not train under gradient checkpointing"
    # checkpointing trades memory for compute: the weights after the step are the same as without it
    plain = HostTrainer(make_config(max_train_steps=1, output_name="plain"))
    plain.train()
    for key, value in plain.network.kohya_state_dict().items():
        torch.testing.assert_close(ckpt.network.kohya_state_dict()[key], value, rtol=0, atol=1e-6)


def test_adamw8bit_keeps_uint8_state(make_config: Callable[..., TrainConfig]) -> None:
    trainer = HostTrainer(make_config(max_train_steps=1, optimizer_type="AdamW8bit", optimizer_args=["min_8bit_size=0"]))
    trainer.train()
    inner = trainer.optimizer.optimizer
    assert type(inner).__name__ == "AdamW8bit"
    assert torch.uint8 in optimizer_state_dtypes(inner)


def test_bitsandbytes_failure_stops_the_run_before_training(make_config: Callable[..., TrainConfig], monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "bitsandbytes", None)  # "import bitsandbytes" now raises ImportError
    with pytest.raises(RuntimeError, match=r'optimizer_type = "AdamW"'):
        train(make_config(optimizer_type="AdamW8bit"))


def test_unet_lora_request_is_refused(make_config: Callable[..., TrainConfig]) -> None:
    with pytest.raises(ValueError, match=r"UNet LoRA is not supported"):
        train(make_config(network_train_unet_only=True))


def test_sdxl_trains_both_encoders(make_config: Callable[..., TrainConfig]) -> None:
    result = train(make_config("sdxl", max_train_steps=2))
    with safe_open(str(result.lora_path), "pt") as f:
        keys, meta = list(f.keys()), f.metadata()
        ups = {k: f.get_tensor(k) for k in keys if k.endswith("lora_up.weight")}
    assert {k.split("_text_model")[0] for k in keys} == {"lora_te1", "lora_te2"}
    # SDXL conditions on the PENULTIMATE layer of encoder 1, so its last layer (layer 1 of the tiny
    # model) could get no gradient: it has no LoRA at all, and every module in the file trains.
    assert all(bool(u.abs().sum() > 0) for u in ups.values())
    assert not any(k.startswith("lora_te1_text_model_encoder_layers_1_") for k in ups)
    assert any(k.startswith("lora_te2_text_model_encoder_layers_1_") for k in ups)
    assert meta["ss_base_model_version"] == "sdxl_base_v1-0"


def test_bf16_autocast_keeps_lora_in_fp32(make_config: Callable[..., TrainConfig]) -> None:
    trainer = HostTrainer(make_config(max_train_steps=1, mixed_precision="bf16"))
    result = trainer.train()
    assert trainer.model.unet.dtype == torch.bfloat16 and trainer.model.vae.dtype == torch.bfloat16
    assert all(p.dtype == torch.float32 for p in trainer.network.trainable_parameters())
    assert result.final_loss is not None and torch.isfinite(torch.tensor(result.final_loss))


def test_network_weights_warm_start(make_config: Callable[..., TrainConfig]) -> None:
    first = train(make_config(max_train_steps=1, output_name="first"))
    trainer = HostTrainer(make_config(network_weights=str(first.lora_path), output_name="second"))
    try:
        trainer.setup()
        from safetensors.torch import load_file

        expected = load_file(str(first.lora_path))
        loaded = trainer.network.kohya_state_dict()
        assert all(torch.equal(loaded[k], expected[k]) for k in expected)
        assert trainer.start_step == 0  # a warm start is not a resume
    finally:
        trainer.cleanup()
