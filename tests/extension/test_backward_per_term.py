"""The host runs the diffusion loss's backward before the extension computes its terms (peak memory: the
instance pass + UNet graph is freed before the KP passes allocate theirs), with the gradients of one
backward of the total: same seed, same weights after a few steps."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from textboost_ext.extension import TextBoostExtension
from textboost_ext.hooks import HostContext, StepBatch
from textboost_ext.host.trainer import HostTrainer


class OneBackward(HostTrainer):
    """The previous order: every term computed, then one backward of the total."""

    def compute_loss(self, batch: StepBatch, step: int, backward: bool = False) -> dict[str, torch.Tensor]:
        terms = super().compute_loss(batch, step, backward=False)
        if backward:
            self.accelerator.backward(terms["loss/total"])
        return terms


class GradsAtKp(TextBoostExtension):
    """Records whether the LoRA already had gradients when the KP terms were computed."""

    def __init__(self) -> None:
        super().__init__()
        self.lora_had_grads: list[bool] = []

    def process_batch(self, ctx: HostContext, batch: StepBatch, step: int, generator: torch.Generator) -> Any:
        self.lora_had_grads.append(all(p.grad is not None for p in ctx.network.trainable_parameters()))
        return super().process_batch(ctx, batch, step, generator)


def _train(textboost_config, cls: type[HostTrainer], name: str) -> tuple[GradsAtKp, list[torch.Tensor], list[dict]]:
    ext = GradsAtKp()
    config = textboost_config(max_train_steps=3, train_batch_size=4, output_name=name, gradient_accumulation_steps=2,
                              textboost={"kpl_weight": 1.0})
    trainer = cls(config, ext)
    trainer.setup()
    try:
        gen = torch.Generator().manual_seed(5)
        with torch.no_grad():  # LoRA up-weights start at zero, where the KP gradient vanishes
            for p in trainer.trainable:
                p.add_(0.05 * torch.randn(p.shape, generator=gen))
        logs = [trainer.train_step(step) for step in range(3)]
        return ext, [p.detach().clone() for p in trainer.trainable], logs
    finally:
        trainer.cleanup()


def test_diffusion_backward_runs_first_and_the_weights_match_one_backward(textboost_config) -> None:
    split, split_weights, split_logs = _train(textboost_config, HostTrainer, "split")
    joint, joint_weights, joint_logs = _train(textboost_config, OneBackward, "joint")
    # first micro-batch of each step: the LoRA has gradients at KP time only if the diffusion backward ran
    assert split.lora_had_grads == [True] * 6 and not any(joint.lora_had_grads[::2])
    for a, b in zip(split_weights, joint_weights):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    for a, b in zip(split_logs, joint_logs):
        assert a["loss/total"] == pytest.approx(b["loss/total"], rel=1e-5) and a["loss/kp"] > 0
