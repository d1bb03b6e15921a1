"""kpl_mask_padding: both KP passes stop at the longest prompt's end-of-text token, exactly.

CLIP's attention is causal, so the positions the masked loss reads are the same whether the encoder saw 77
tokens or only the prefix. Tested against the full-length computation: the same loss and gradients for one
batch, and the same weights after a few training steps (cache misses computed on prefixes, hits padded).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from textboost_ext.extension import TextBoostExtension
from textboost_ext.hooks import StepBatch
from textboost_ext.host.trainer import HostTrainer
from textboost_ext.method import kp_loss, padding_mask
from textboost_ext.models.conditioning import tokenize

PROMPTS = ["a dog", "a watercolor painting of a lighthouse on a rocky coast at dawn", "red car", "a photo of a cat on a sofa"]


def _trainer(textboost_config, tmp_path: Path, family: str, name: str, steps: int = 1) -> HostTrainer:
    prompts = tmp_path / "kp.txt"
    prompts.write_text("\n".join(PROMPTS) + "\n")
    config = textboost_config(family, max_train_steps=steps, train_batch_size=4, output_name=name,
                              textboost={"kpl_mask_padding": True, "kpl_weight": 1.0, "preservation_prompts": str(prompts),
                                         "kpl_empty_p": 0.25, "kpl_class_p": 0.25})
    trainer = HostTrainer(config, TextBoostExtension())
    trainer.setup()
    return trainer


def _perturb(trainer: HostTrainer) -> None:
    """LoRA up-weights start at zero (adapted == original, zero KP gradient): move every trained weight."""
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in trainer.trainable:
            p.add_(0.05 * torch.randn(p.shape, generator=gen))


def _lengths_seen(trainer: HostTrainer) -> list[int]:
    seen: list[int] = []
    prefix = trainer.ctx.encode_prompt_prefix

    def spy(captions: list[str], length: int) -> list[torch.Tensor]:
        seen.append(length)
        return prefix(captions, length)

    trainer.ctx.encode_prompt_prefix = spy
    return seen


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
def test_prefix_passes_give_the_full_length_loss_and_gradients(textboost_config, tmp_path: Path, family: str) -> None:
    trainer = _trainer(textboost_config, tmp_path, family, f"prefix_{family}")
    try:
        ext, ctx = trainer.ext, trainer.ctx
        _perturb(trainer)
        seen = _lengths_seen(trainer)
        state = ext.kp_generator.get_state()
        batch = StepBatch(images=torch.zeros(4, 3, 8, 8), captions=["x"] * 4, extra={})
        loss = ext.process_batch(ctx, batch, 0, torch.Generator())["kp"]
        loss.backward()
        grads = [p.grad.clone() for p in trainer.trainable]
        assert seen and max(seen) < 77  # the passes really were cut (adapted with grad, frozen targets)

        for p in trainer.trainable:
            p.grad = None
        ext.kp_generator.set_state(state)
        prompts = ext.kp_prompts.sample(4, ext.kp_generator)
        assert 2 <= len(set(prompts))
        ids = tokenize(trainer.model, prompts)[0]
        mask = padding_mask(ids, trainer.model.tokenizers[0].eos_token_id)
        trainer.network.set_multiplier(0.0)
        with torch.no_grad():
            original = trainer.encode_prompts(prompts)
        trainer.network.set_multiplier(1.0)
        reference = kp_loss(trainer.encode_prompts(prompts), original, kind="cosine", mask=mask)
        reference.backward()
        assert float(loss.detach()) > 1e-4
        torch.testing.assert_close(loss.detach(), reference.detach(), rtol=1e-5, atol=1e-7)
        for p, g in zip(trainer.trainable, grads):
            torch.testing.assert_close(g, p.grad, rtol=1e-4, atol=1e-8)
    finally:
        trainer.cleanup()


def test_training_with_prefix_passes_matches_full_length_passes(textboost_config, tmp_path: Path) -> None:
    """Same seed, 4 steps: the prefix run (misses on prefixes, hits cut or zero-padded) vs full passes sliced."""
    weights = []
    for name, prefix in (("cut", True), ("full", False)):
        trainer = _trainer(textboost_config, tmp_path, "sd1", name, steps=4)
        try:
            _perturb(trainer)
            seen = _lengths_seen(trainer)
            if not prefix:
                trainer.ctx.encode_prompt_prefix = None  # the extension then encodes 77 positions and slices
            for step in range(4):
                trainer.train_step(step)
            assert bool(seen) == prefix and all(n < 77 for n in seen)
            assert trainer.ext.kp_cache.hits > 0
            weights.append([p.detach().clone() for p in trainer.trainable])
        finally:
            trainer.cleanup()
    for a, b in zip(*weights):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
