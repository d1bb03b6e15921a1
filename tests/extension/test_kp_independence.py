"""λ changes only λ: the KP prompt draws have their own generator, so a λ = 0 and a λ = 0.1 run see the same
views, captions, noise and timesteps at every step (they differ only through the trained weights)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from textboost_ext.extension import TextBoostExtension, stream_seed
from textboost_ext.hooks import HostContext, StepBatch
from textboost_ext.host import diffusion
from textboost_ext.host.trainer import HostTrainer


class Recording(TextBoostExtension):
    """Records what the diffusion loss sees: each view and caption, and each timestep draw."""

    def __init__(self) -> None:
        super().__init__()
        self.views: list[tuple[torch.Tensor, list[str]]] = []
        self.timesteps: list[torch.Tensor] = []

    def on_step_start(self, ctx: HostContext, batch: StepBatch, step: int, generator: torch.Generator) -> None:
        super().on_step_start(ctx, batch, step, generator)
        self.views.append((batch.images.clone(), list(batch.captions)))

    def sample_timesteps(self, ctx: HostContext, batch_size: int, low: int, high: int, generator: torch.Generator) -> Any:
        drawn = super().sample_timesteps(ctx, batch_size, low, high, generator)
        self.timesteps.append(drawn.clone())
        return drawn


def _run(textboost_config, monkeypatch: pytest.MonkeyPatch, kpl_weight: float) -> tuple[Recording, list[torch.Tensor], list]:
    noisy_inputs: list[torch.Tensor] = []
    predict = diffusion.predict

    def recording_predict(unet: Any, noisy: torch.Tensor, *args: Any) -> torch.Tensor:
        noisy_inputs.append(noisy.detach().clone())  # = sqrt(ab)·latents + sqrt(1-ab)·noise at the drawn t
        return predict(unet, noisy, *args)

    monkeypatch.setattr(diffusion, "predict", recording_predict)
    ext = Recording()
    config = textboost_config(max_train_steps=3, train_batch_size=4, output_name=f"kp{kpl_weight}",
                              textboost={"kpl_weight": kpl_weight, "augment_p": 1.0})
    result = HostTrainer(config, ext).train()
    return ext, noisy_inputs, result.logs


def test_lambda_zero_and_lambda_positive_see_the_same_images_captions_noise_and_timesteps(
        textboost_config, monkeypatch: pytest.MonkeyPatch) -> None:
    off, noisy_off, logs_off = _run(textboost_config, monkeypatch, 0.0)
    on, noisy_on, logs_on = _run(textboost_config, monkeypatch, 0.1)
    assert len(off.views) == len(on.views) == 3
    for (images_a, captions_a), (images_b, captions_b) in zip(off.views, on.views):
        assert torch.equal(images_a, images_b) and captions_a == captions_b
    for a, b in zip(off.timesteps, on.timesteps):
        assert torch.equal(a, b)
    for a, b in zip(noisy_off, noisy_on):  # same latents (VAE sample) and the same noise
        assert torch.equal(a, b)
    # λ really did something: the KP term was computed and trained on in one run only
    assert all(log["loss/kp_raw"] == 0.0 for log in logs_off)
    assert logs_on[-1]["loss/kp"] > 0.0 and on.kp_cache is not None and on.kp_cache.misses > 0


def test_kp_stream_is_seeded_per_run_and_process() -> None:
    assert stream_seed(1234, 0, "kp") == stream_seed(1234, 0, "kp")
    seeds = {stream_seed(1234, 0, "kp"), stream_seed(1234, 1, "kp"), stream_seed(1235, 0, "kp"), 1234}
    assert len(seeds) == 4  # another process, another seed, and never the host's own seed + rank
