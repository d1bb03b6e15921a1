"""Images, captions, validation errors and the deterministic data order of the host's dataset."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from textboost_ext.host import dataset as data


@dataclass
class Subset:  # the fields the host reads from config.dataset.SubsetSpec
    image_dir: str
    caption_extension: str = ".txt"
    class_tokens: str | None = None
    num_repeats: int = 1
    caption_prefix: str | None = None
    caption_suffix: str | None = None


@dataclass
class Spec:
    subsets: list[Subset]


def write_image(path: Path, size_wh: tuple[int, int], color: tuple[int, int, int] = (200, 30, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size_wh, color).save(path)
    return path


def test_collects_images_with_repeats_captions_prefix_suffix(tmp_path: Path) -> None:
    write_image(tmp_path / "a.png", (64, 64))
    (tmp_path / "a.txt").write_text("a red square\nsecond line ignored\n", encoding="utf-8")
    write_image(tmp_path / "b.jpg", (80, 64))
    (tmp_path / "notes.md").write_text("not an image")
    spec = Spec([Subset(str(tmp_path), class_tokens="sks box", num_repeats=3, caption_prefix="photo,", caption_suffix="!")])
    items = data.collect_images(spec, (64, 64))
    assert len(items) == 6
    captions = sorted({(i.path.name, i.caption) for i in items})
    assert captions == [("a.png", "photo, a red square !"), ("b.jpg", "photo, sks box !")]
    assert {i.size_wh for i in items if i.path.name == "b.jpg"} == {(80, 64)}
    assert data.dataset_summary(items) == {tmp_path.name: {"n_repeats": 3, "img_count": 2}}


def test_load_image_resizes_short_side_and_center_crops(tmp_path: Path) -> None:
    # 128x64: left half black, right half white -> short side 64 fits, crop the middle 64 columns
    img = np.zeros((64, 128, 3), dtype=np.uint8)
    img[:, 64:] = 255
    path = tmp_path / "wide.png"
    Image.fromarray(img).save(path)
    tensor, crop_top_left = data.load_image(path, (64, 64))
    assert tensor.shape == (3, 64, 64) and tensor.dtype == torch.float32
    assert crop_top_left == (0, 32)
    assert tensor.min() >= -1.0 and tensor.max() <= 1.0
    assert torch.allclose(tensor[:, :, :20], torch.full_like(tensor[:, :, :20], -1.0))
    assert torch.allclose(tensor[:, :, -20:], torch.full_like(tensor[:, :, -20:], 1.0))
    # a larger image is downscaled: 256x128 -> 128x64 -> crop 64x64
    write_image(tmp_path / "big.png", (256, 128))
    assert data.load_image(tmp_path / "big.png", (64, 64))[0].shape == (3, 64, 64)


def test_missing_and_empty_image_folder(tmp_path: Path) -> None:
    with pytest.raises(data.DatasetError, match=r"does not exist; fix image_dir"):
        data.collect_images(Spec([Subset(str(tmp_path / "nope"))]), (64, 64))
    (tmp_path / "empty").mkdir()
    with pytest.raises(data.DatasetError, match=r"holds no images.*add at least one"):
        data.collect_images(Spec([Subset(str(tmp_path / "empty"))]), (64, 64))


def test_corrupt_and_truncated_images_are_named(tmp_path: Path) -> None:
    (tmp_path / "bad.png").write_bytes(b"this is not a png")
    with pytest.raises(data.DatasetError, match=r"bad\.png: cannot read this image"):
        data.collect_images(Spec([Subset(str(tmp_path), class_tokens="x")]), (64, 64))
    (tmp_path / "bad.png").unlink()
    good = write_image(tmp_path / "trunc.jpg", (64, 64))
    good.write_bytes(good.read_bytes()[:200])  # header intact, pixel data cut off
    with pytest.raises(data.DatasetError, match=r"trunc\.jpg: cannot read this image"):
        data.collect_images(Spec([Subset(str(tmp_path), class_tokens="x")]), (64, 64))


def test_image_smaller_than_resolution_names_both_sizes(tmp_path: Path) -> None:
    write_image(tmp_path / "small.png", (100, 48))
    with pytest.raises(data.DatasetError, match=r"small\.png: image is 100x48 but the training resolution is 64x64.*lower resolution"):
        data.collect_images(Spec([Subset(str(tmp_path), class_tokens="x")]), (64, 64))


def test_missing_caption_without_class_tokens(tmp_path: Path) -> None:
    write_image(tmp_path / "a.png", (64, 64))
    with pytest.raises(data.DatasetError, match=r"a\.png: no caption: .*a\.caption does not exist.*class_tokens"):
        data.collect_images(Spec([Subset(str(tmp_path), caption_extension=".caption")]), (64, 64))
    (tmp_path / "a.caption").write_text("  \n", encoding="utf-8")
    with pytest.raises(data.DatasetError, match=r"a\.caption is empty"):
        data.collect_images(Spec([Subset(str(tmp_path), caption_extension=".caption")]), (64, 64))


def test_all_images_are_validated_up_front(tmp_path: Path) -> None:
    write_image(tmp_path / "a.png", (64, 64))
    write_image(tmp_path / "z.png", (32, 32))  # the last file is the bad one
    with pytest.raises(data.DatasetError, match=r"z\.png"):
        data.collect_images(Spec([Subset(str(tmp_path), class_tokens="x")]), (64, 64))


def test_data_order_is_a_function_of_seed_and_position() -> None:
    sampler = data.StreamBatchSampler(num_items=5, batch_size=3, seed=7)
    batches = [b for _, b in zip(range(10), sampler)]
    # every epoch (5 consecutive positions) is a permutation of all items
    flat = [i for b in batches for i in b]
    for epoch in range(6):
        assert sorted(flat[epoch * 5 : epoch * 5 + 5]) == list(range(5))
    # restarting at micro-batch 4 continues exactly where the stream was
    restarted = data.StreamBatchSampler(num_items=5, batch_size=3, seed=7, start_micro_batch=4)
    assert [b for _, b in zip(range(6), restarted)] == batches[4:]
    assert flat != [i for _, b in zip(range(10), data.StreamBatchSampler(5, 3, seed=8)) for i in b]


def test_batch_larger_than_dataset_cycles_one_image(tmp_path: Path) -> None:
    write_image(tmp_path / "one.png", (64, 64))
    items = data.collect_images(Spec([Subset(str(tmp_path), class_tokens="sks dog")]), (64, 64))
    batch = next(data.make_batches(items, (64, 64), batch_size=8, seed=0))
    assert batch["images"].shape == (8, 3, 64, 64)
    assert batch["captions"] == ["sks dog"] * 8
    assert batch["original_sizes_hw"] == [(64, 64)] * 8


def test_processes_take_disjoint_positions() -> None:
    r0 = next(iter(data.StreamBatchSampler(8, 2, seed=1, rank=0, world_size=2)))
    r1 = next(iter(data.StreamBatchSampler(8, 2, seed=1, rank=1, world_size=2)))
    single = next(iter(data.StreamBatchSampler(8, 4, seed=1)))
    assert r0 + r1 == single
