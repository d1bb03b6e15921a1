"""Each [textboost] switch reaches the code it names: a test here fails if a switch were ignored."""

from __future__ import annotations

import pytest
import torch

from textboost_ext import extension as extension_module
from textboost_ext.extension import TextBoostExtension
from textboost_ext.host.trainer import HostTrainer
from textboost_ext.method import AUGMENT_TOKENS, apply_augmentations, augmentation_tokens


def _setup(config) -> HostTrainer:
    trainer = HostTrainer(config, TextBoostExtension())
    trainer.setup()
    return trainer


def test_emb_learning_rate_sets_the_embedding_group(textboost_config) -> None:
    trainer = _setup(textboost_config(textboost={"emb_learning_rate": 7e-3}))
    try:
        groups = {g["name"]: g for g in trainer.optimizer.param_groups}
        assert groups["embedding"]["lr"] == pytest.approx(7e-3) and groups["lora"]["lr"] == pytest.approx(1e-3)
    finally:
        trainer.cleanup()


def test_norm_clamp_keeps_new_rows_at_most_the_mean_norm(textboost_config) -> None:
    trainer = _setup(textboost_config(textboost={"norm_clamp": True, "emb_learning_rate": 1.0}))
    try:
        (emb,) = trainer.ext.embeddings
        with torch.no_grad():
            emb.new_rows.mul_(50.0)  # far above the vocabulary's mean norm
        trainer.train_step(0)
        assert emb.new_rows.detach().norm(dim=-1).max() <= emb.base_mean_row_norm() * (1 + 1e-5)
    finally:
        trainer.cleanup()


@pytest.mark.parametrize(("switch", "expected"), [({}, ("cosine", False)), ({"kpl_type": "mse", "kpl_mask_padding": True}, ("mse", True))])
def test_kp_type_and_mask_reach_the_loss(textboost_config, monkeypatch: pytest.MonkeyPatch, switch, expected) -> None:
    seen = []
    real = extension_module.kp_loss

    def spy(adapted, original, kind="cosine", mask=None):
        seen.append((kind, mask is not None))
        return real(adapted, original, kind=kind, mask=mask)

    monkeypatch.setattr(extension_module, "kp_loss", spy)
    trainer = _setup(textboost_config(textboost=switch))
    try:
        trainer.train_step(0)
        assert seen == [expected]
    finally:
        trainer.cleanup()


def test_kpl_cache_off_recomputes_every_time(textboost_config) -> None:
    trainer = _setup(textboost_config(max_train_steps=3, textboost={"kpl_cache": False, "kpl_empty_p": 1.0, "kpl_class_p": 0.0}))
    try:
        for step in range(3):
            trainer.train_step(step)
        assert trainer.ext.kp_cache.misses == 3  # the same (empty) prompt recomputed at every step
    finally:
        trainer.cleanup()
    on = _setup(textboost_config(max_train_steps=3, output_name="on", textboost={"kpl_empty_p": 1.0, "kpl_class_p": 0.0}))
    try:
        for step in range(3):
            on.train_step(step)
        assert on.ext.kp_cache.misses == 1  # computed once, then served from the cache
    finally:
        on.cleanup()


def test_text_mode_registers_no_augmentation_token(textboost_config) -> None:
    trainer = _setup(textboost_config(train_batch_size=8, textboost={"augment_mode": "text", "augment_p": 1.0}))
    try:
        assert trainer.ext.augment_tokens == []
        vocab = trainer.model.tokenizers[0].get_vocab()
        assert not any(token in vocab for token, _ in AUGMENT_TOKENS.values())
        batch = trainer._next_batch()
        trainer.ext.on_step_start(trainer.ctx, batch, 0, trainer.generator)
        assert all("<" not in c for c in batch.captions)
    finally:
        trainer.cleanup()


def test_style_set_only_flips_and_grayscale(textboost_config) -> None:
    trainer = _setup(textboost_config(train_batch_size=8, textboost={"augment": "style", "augment_p": 1.0}))
    try:
        assert sorted(trainer.ext.augment_tokens) == sorted([AUGMENT_TOKENS["hflip"][0], AUGMENT_TOKENS["grayscale"][0]])
    finally:
        trainer.cleanup()


def test_each_view_and_its_caption_name_the_same_augmentations(textboost_config, monkeypatch: pytest.MonkeyPatch) -> None:
    """Image and caption together: the caption's tokens are exactly the tags of the view it is paired with."""
    views = []
    real = extension_module.render_view  # the views are rendered from each photo at source resolution

    def recording(source, ops, size_hw):
        view = real(source, ops, size_hw)
        views.append((source.clone(), view))
        return view

    monkeypatch.setattr(extension_module, "render_view", recording)
    trainer = _setup(textboost_config(train_batch_size=8, textboost={"augment_p": 1.0, "augment_color_p": 0.5}))
    try:
        batch = trainer._next_batch()
        trainer.ext.on_step_start(trainer.ctx, batch, 0, trainer.generator)
        assert len(views) == len(batch.captions) == 8
        for (source, view), image, caption in zip(views, batch.images, batch.captions):
            assert torch.equal(image, view.image)
            assert sorted(w for w in caption.split() if w.startswith("<")) == sorted(augmentation_tokens(view.tags))
            assert view.tags  # p = 1: every view has a geometric augmentation
    finally:
        trainer.cleanup()
    assert apply_augmentations is not None
