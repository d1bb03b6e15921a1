"""The built-in host hands TextBoost each photo at source resolution; views are rendered from it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from textboost_ext.config import TrainConfig
from textboost_ext.extension import TextBoostExtension
from textboost_ext.host.trainer import HostTrainer


def _wide_photo_dataset(tmp_path: Path) -> Path:
    folder = tmp_path / "wide" / "1_mug"
    folder.mkdir(parents=True)
    pixels = np.random.default_rng(0).integers(60, 200, (384, 768, 3), dtype=np.uint8)  # 6x the 64 px training size
    pixels[:, :150] = (255, 0, 0)  # pure red only well left of the centre square (columns 192..575)
    Image.fromarray(pixels).save(folder / "mug.png")
    return folder.parent


def test_views_come_from_the_bounded_photo_and_reach_outside_the_centre(textboost_config: Callable[..., TrainConfig],
                                                                       tmp_path: Path) -> None:
    config = textboost_config(train_data_dir=str(_wide_photo_dataset(tmp_path)), train_batch_size=4,
                              textboost={"augment_p": 1.0})
    trainer = HostTrainer(config, TextBoostExtension())
    trainer.setup()
    try:
        red_views = 0
        for step in range(10):
            batch = trainer._next_batch()
            assert batch.sources is not None and [tuple(s.shape) for s in batch.sources] == [(3, 128, 256)] * 4
            centre = batch.images.clone()  # the host's own centre crop: never red
            assert not bool(((centre[:, 0] > 0.8) & (centre[:, 1] < -0.8)).any())
            trainer.ext.on_step_start(trainer.ctx, batch, step, trainer.generator)
            red = (batch.images[:, 0] > 0.8) & (batch.images[:, 1] < -0.8) & (batch.images[:, 2] < -0.8)
            red_views += int(red.flatten(1).any(dim=1).sum())
            assert all(isinstance(v, int) for crop in batch.extra["crop_top_lefts"] for v in crop)
        assert red_views > 0
    finally:
        trainer.cleanup()


def test_sdxl_crop_conditioning_follows_the_views(textboost_config: Callable[..., TrainConfig], tmp_path: Path) -> None:
    config = textboost_config("sdxl", train_data_dir=str(_wide_photo_dataset(tmp_path)), train_batch_size=4,
                              textboost={"augment_p": 1.0})
    trainer = HostTrainer(config, TextBoostExtension())
    trainer.setup()
    try:
        seen = set()
        for step in range(6):
            batch = trainer._next_batch()
            assert batch.extra["crop_top_lefts"] == [(0, 32)] * 4  # the host's centre crop of the 128x64 resize
            trainer.ext.on_step_start(trainer.ctx, batch, step, trainer.generator)
            seen |= set(batch.extra["crop_top_lefts"])
            trainer.compute_loss(batch, step)  # the time ids take the views' crops
        assert len(seen) > 1 and (0, 32) in seen
    finally:
        trainer.cleanup()
