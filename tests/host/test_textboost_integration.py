"""The host with the real TextBoost extension: a resumed run equals an uninterrupted one.

The extension draws augmentations, templates and timesteps from the host's generator, KP prompts from
its own (saved with the host's RNG state), and keeps trained embedding rows in its own state, so this
checks every part of the resume contract together (with 8-bit AdamW and gradient checkpointing, as
recommended for real runs).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from textboost_ext.config import TextBoostConfig, TrainConfig
from textboost_ext.extension import TextBoostExtension
from textboost_ext.hooks import HostContext, StepBatch
from textboost_ext.host.trainer import HostTrainer


class Stop(Exception):
    pass


class StoppingTextBoost(TextBoostExtension):
    def on_step_start(self, ctx: HostContext, batch: StepBatch, step: int, generator: torch.Generator) -> None:
        if step == 2:
            raise Stop
        super().on_step_start(ctx, batch, step, generator)


def test_textboost_resume_matches_uninterrupted_run(make_config: Callable[..., TrainConfig], tmp_path: Path) -> None:
    def config(name: str, **kw: object) -> TrainConfig:
        return make_config(
            extension="textboost", output_name=name, max_train_steps=3, save_every_n_steps=2, save_state=True,
            optimizer_type="AdamW8bit", optimizer_args=["min_8bit_size=0"], gradient_checkpointing=True,
            textboost=TextBoostConfig(placeholder_token="mysksdog", initializer="dog", class_noun="dog"), **kw,
        )

    straight = HostTrainer(config("straight"), TextBoostExtension())
    result = straight.train()
    assert (result.adapter_dir / "embeddings" / "mysksdog.safetensors").is_file()
    with pytest.raises(Stop):
        HostTrainer(config("resumed"), StoppingTextBoost()).train()
    resumed = HostTrainer(config("resumed", resume=str(tmp_path / "out" / "resumed")), TextBoostExtension())
    resumed.train()
    expected, got = straight.network.kohya_state_dict(), resumed.network.kohya_state_dict()
    for key in expected:  # bit-exact here; the KP cache may batch differently after a resume (ULP-level)
        torch.testing.assert_close(got[key], expected[key], rtol=0, atol=1e-6)
    for a, b in zip(straight.ext.embeddings, resumed.ext.embeddings):
        torch.testing.assert_close(b.new_rows, a.new_rows, rtol=0, atol=1e-6)
