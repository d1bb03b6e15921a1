"""The encoder's quick-GELU keeps one tensor for the backward instead of two (peak memory of the two
gradient passes per step), and training is the same: same values, same gradients, same weights after steps."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from textboost_ext.extension import TextBoostExtension
from textboost_ext.host.trainer import HostTrainer
from textboost_ext.models.lean_activations import LeanQuickGELU, use_lean_quick_gelu


def _saved_bytes(fn: Any, x: torch.Tensor) -> int:
    """Bytes autograd keeps for the backward of ``fn(x)`` (distinct tensors)."""
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved[t.data_ptr()] = t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(x)
    return sum(saved.values())


def test_same_values_and_gradients_half_the_saved_activations() -> None:
    from transformers.activations import QuickGELUActivation

    x = (3 * torch.randn(4, 77, 96, generator=torch.Generator().manual_seed(0), dtype=torch.float64)).requires_grad_()
    grad = torch.randn(x.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    reference, lean = QuickGELUActivation(), LeanQuickGELU()
    assert torch.equal(lean(x), reference(x))
    (g_ref,) = torch.autograd.grad(reference(x), x, grad)
    (g_lean,) = torch.autograd.grad(lean(x), x, grad)
    torch.testing.assert_close(g_lean, g_ref, rtol=1e-12, atol=1e-12)
    torch.autograd.gradcheck(lean, (x[:1, :3, :5].detach().clone().requires_grad_(),))
    assert _saved_bytes(lean, x) * 2 == _saved_bytes(reference, x)


def test_only_quick_gelu_is_swapped() -> None:
    from transformers import CLIPTextConfig, CLIPTextModel

    def encoder(act: str) -> CLIPTextModel:
        return CLIPTextModel(CLIPTextConfig(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=3,
                                            vocab_size=100, max_position_embeddings=16, hidden_act=act))

    quick = encoder("quick_gelu")
    ids = torch.tensor([[0, 5, 7, 9, 1]])
    before = quick(ids)[0]
    assert use_lean_quick_gelu(quick) == 3
    assert torch.equal(quick(ids)[0], before)
    assert use_lean_quick_gelu(quick) == 0  # already lean
    assert use_lean_quick_gelu(encoder("gelu")) == 0  # OpenCLIP's exact GELU saves only its input already


def _weights_after_steps(textboost_config: Any, name: str) -> list[torch.Tensor]:
    config = textboost_config(max_train_steps=3, train_batch_size=2, output_name=name, textboost={"kpl_weight": 1.0})
    trainer = HostTrainer(config, TextBoostExtension())
    trainer.setup()
    try:
        kinds = {type(m).__name__ for te in trainer.model.text_encoders for m in te.modules()}
        assert ("LeanQuickGELU" in kinds) == (name == "lean") and ("QuickGELUActivation" in kinds) == (name != "lean"), kinds
        gen = torch.Generator().manual_seed(5)
        with torch.no_grad():  # LoRA up-weights start at zero, where the KP gradient vanishes
            for p in trainer.trainable:
                p.add_(0.05 * torch.randn(p.shape, generator=gen))
        for step in range(3):
            trainer.train_step(step)
        return [p.detach().clone() for p in trainer.trainable]
    finally:
        trainer.cleanup()


def test_training_with_the_lean_activation_matches(textboost_config: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    lean = _weights_after_steps(textboost_config, "lean")
    monkeypatch.setattr("textboost_ext.extension.use_lean_quick_gelu", lambda encoder: 0)
    reference = _weights_after_steps(textboost_config, "reference")
    for a, b in zip(lean, reference):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
