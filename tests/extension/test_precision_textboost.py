"""bf16 TextBoost on a CPU: frozen weights stored in bf16 once, LoRA and the new embedding rows fp32."""

from __future__ import annotations

import pytest
import torch

from textboost_ext.host.trainer import HostTrainer


@pytest.mark.skipif(torch.cuda.is_available(), reason="CPU bf16 path")
def test_bf16_textboost_on_cpu_stores_frozen_weights_in_bf16(textboost_config) -> None:
    trainer = HostTrainer(textboost_config(max_train_steps=2, mixed_precision="bf16"))
    trainer.setup()
    try:
        te = trainer.model.text_encoders[0]
        trainable = {id(p) for p in trainer.trainable}
        frozen = [p for p in te.parameters() if id(p) not in trainable]
        assert frozen and all(p.dtype == torch.bfloat16 for p in frozen if p.is_floating_point())
        assert trainer.trainable and all(p.dtype == torch.float32 for p in trainer.trainable)
        # cast once at setup: a step re-creates no frozen weight (same storage before and after)
        before = {id(p): p.data_ptr() for p in frozen}
        lora_before = [p.detach().clone() for p in trainer.network.trainable_parameters()]
        trainer.loop()
        assert {id(p): p.data_ptr() for p in frozen} == before
        assert all(p.dtype == torch.bfloat16 for p in frozen if p.is_floating_point())
        assert all(torch.isfinite(torch.tensor(h["loss/total"])) for h in trainer.history)
        changed = [not torch.equal(a, b) for a, b in zip(lora_before, trainer.network.trainable_parameters())]
        assert any(changed)
    finally:
        trainer.cleanup()
