"""The sd-scripts host renders each view from the photo behind the batch image, as the built-in host does."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from textboost_ext.config.schema import TextBoostConfig
from textboost_ext.kohya.args import dataset_augmentation_problems
from textboost_ext.kohya.sources import BatchSources


def _wide_photo(path: Path) -> Path:
    pixels = np.random.default_rng(0).integers(60, 200, (192, 384, 3), dtype=np.uint8)
    pixels[:, :80] = (255, 0, 0)  # pure red only left of the centre square
    Image.fromarray(pixels).save(path)
    return path


def _group(photo: Path) -> SimpleNamespace:
    subset = SimpleNamespace(flip_aug=False, color_aug=False, random_crop=False, face_crop_aug_range=None)
    dataset = SimpleNamespace(width=64, height=64, subsets=[subset], debug_dataset=False,
                              image_data={str(photo): SimpleNamespace(absolute_path=str(photo))})
    return SimpleNamespace(datasets=[dataset])


def test_enable_makes_batches_name_their_images_and_maps_keys_to_files(tmp_path: Path) -> None:
    photo = _wide_photo(tmp_path / "dog.png")
    group, sources = _group(photo), BatchSources()
    sources.enable(group)
    assert group.datasets[0].debug_dataset is True
    batch = {"image_keys": [str(photo)] * 2, "images": torch.zeros(2, 3, 64, 64)}
    loaded = sources.for_batch(batch)
    assert loaded is not None and len(loaded) == 2 and loaded[0].dtype == torch.uint8
    assert tuple(loaded[0].shape) == (3, 128, 256)  # bounded: covers the 64 px canvas twice
    assert sources.for_batch({"images": torch.zeros(1, 3, 64, 64)}) is None  # no keys: augment the given images
    assert sources.for_batch({"image_keys": ["other.png"], "images": torch.zeros(1, 3, 64, 64)}) is None


def test_views_come_from_the_photo_and_crop_conditioning_follows(trained_setup, tmp_path: Path) -> None:
    photo = _wide_photo(tmp_path / "dog.png")
    run = trained_setup("--augment_p", "1.0", dataset_group=_group(photo))
    strategy = run.trainer.tokenize_strategy
    red_views = 0
    for _ in range(12):
        captions = ["sks dog"] * 4
        batch = {"images": torch.zeros(4, 3, 64, 64), "captions": list(captions), "image_keys": [str(photo)] * 4,
                 "input_ids_list": strategy.tokenize(captions), "crop_top_lefts": torch.zeros(4, 2, dtype=torch.long)}
        run.trainer.on_step_start(run.args, run.accelerator, run.network, [run.tiny.text_encoder], None, batch, torch.float32)
        images = batch["images"]
        assert images.shape == (4, 3, 64, 64) and float(images.abs().sum()) > 0  # rendered, not the zeros given
        red = (images[:, 0] > 0.8) & (images[:, 1] < -0.8) & (images[:, 2] < -0.8)
        red_views += int(red.flatten(1).any(dim=1).sum())
        assert batch["crop_top_lefts"].dtype == torch.long and batch["crop_top_lefts"].shape == (4, 2)
    assert red_views > 0  # crop and shift views reach beyond the centre square of the wide photo


@pytest.mark.parametrize(("subset", "named"), [({"random_crop": True}, "random_crop"),
                                               ({"face_crop_aug_range": (2.0, 4.0)}, "face_crop_aug_range")])
def test_sd_scripts_crops_are_refused_since_views_come_from_the_whole_photo(subset: dict, named: str) -> None:
    flags = {"flip_aug": False, "color_aug": False, "random_crop": False, "face_crop_aug_range": None, **subset}
    group = SimpleNamespace(datasets=[SimpleNamespace(subsets=[SimpleNamespace(**flags)])])
    (problem,) = dataset_augmentation_problems(group, TextBoostConfig(), "textboost")
    assert named in problem and "--enable_bucket" in problem
    assert dataset_augmentation_problems(group, TextBoostConfig(augment="none"), "textboost") == []
