"""Training images and captions for the built-in host (kohya DreamBooth-style folders, no buckets).

Every image is opened, decoded and size-checked up front (:func:`collect_images`), before any model
loads, so a bad file fails in seconds with its path and the fix. Captions follow kohya: the
``<stem><caption_extension>`` file beside the image, else the subset's ``class_tokens``; then
``caption_prefix``/``caption_suffix`` joined with a space.

Data order is a pure function of ``(seed, position)``: the item stream is a concatenation of epochs,
each a permutation drawn from a ``torch.Generator`` seeded from (seed, epoch). A resumed run therefore
reproduces the order from the step count alone, and a batch larger than the dataset (one-shot:
batch 8 from one image) simply runs through several epochs, repeating the image within the batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from textboost_ext.source_images import SourceCache

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


class DatasetError(ValueError):
    """Training data that cannot be used; the message names the file and the fix."""


@dataclass(frozen=True)
class ImageItem:
    """One training image (repeats are separate items) with its final caption."""

    path: Path
    caption: str
    size_wh: tuple[int, int]  # the file's own size, for SDXL's original-size conditioning
    shuffle_caption: bool = False
    keep_tokens: int = 0
    caption_file: Path | None = None  # the caption file the caption came from; None: the class tokens
    caption_options: tuple[str, ...] = ()  # the subset's caption options that are set (caption_prefix, ...)
    class_tokens: str | None = None


def caption_options(subset: Any) -> tuple[str, ...]:
    """Names of the kohya caption options a subset sets (for the notice that templates ignore them)."""
    names = [n for n in ("caption_prefix", "caption_suffix") if (getattr(subset, n, None) or "").strip()]
    names += [n for n in ("shuffle_caption", "keep_tokens") if getattr(subset, n, None)]
    return tuple(names)


def _caption_file(image: Path, subset: Any) -> Path | None:
    caption_file = image.with_suffix(subset.caption_extension)
    if not caption_file.is_file():
        return None
    try:
        raw = caption_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return caption_file  # _read_caption reports it
    return caption_file if any(line.strip() for line in raw.splitlines()) else None


def _read_caption(image: Path, subset: Any) -> str:
    caption_file = image.with_suffix(subset.caption_extension)
    text = ""
    if caption_file.is_file():
        try:
            raw = caption_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise DatasetError(f"{caption_file}: cannot read caption file ({exc}); save it as UTF-8 text") from None
        # kohya uses the first line of a caption file (other lines are wildcard alternatives)
        text = next((line.strip() for line in raw.splitlines() if line.strip()), "")
    if not text:
        text = (subset.class_tokens or "").strip()
    if not text:
        missing = "is empty" if caption_file.is_file() else "does not exist"
        raise DatasetError(
            f"{image}: no caption: {caption_file} {missing} and the subset has no class_tokens; "
            f"write a caption into {caption_file.name} or set class_tokens for {subset.image_dir}"
        )
    parts = [(subset.caption_prefix or "").strip(), text, (subset.caption_suffix or "").strip()]
    return " ".join(p for p in parts if p)


def _check_image(path: Path, resolution_wh: tuple[int, int]) -> tuple[int, int]:
    """Decode the whole file (a truncated file fails here, not at step 100) and check its size."""
    from textboost_ext.images import ImageTooLargeError, open_checked, upright_size

    try:
        with open_checked(path) as img:
            img.load()
            size = upright_size(img)  # a phone portrait is stored sideways with an EXIF orientation
    except ImageTooLargeError as exc:
        raise DatasetError(str(exc)) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise DatasetError(f"{path}: cannot read this image ({exc}); re-save it as PNG or JPEG, or remove it") from None
    width, height = resolution_wh
    if size[0] < width or size[1] < height:
        raise DatasetError(
            f"{path}: image is {size[0]}x{size[1]} but the training resolution is {width}x{height}; "
            f"use a larger image or set a lower resolution (e.g. resolution = {min(size)})"
        )
    return size


def list_subset_images(subset: Any) -> list[Path]:
    folder = Path(subset.image_dir)
    if not folder.is_dir():
        raise DatasetError(f"image folder {folder} does not exist; fix image_dir (or train_data_dir) to point at your images")
    images = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not images:
        raise DatasetError(
            f"image folder {folder} holds no images ({', '.join(IMAGE_EXTENSIONS)}); add at least one, or fix image_dir"
        )
    return images


def collect_images(spec: Any, resolution_wh: tuple[int, int]) -> list[ImageItem]:
    """All items of a ``DatasetSpec`` (each image ``num_repeats`` times), every file validated."""
    items: list[ImageItem] = []
    for subset in spec.subsets:
        if subset.num_repeats < 1:
            raise DatasetError(f"{subset.image_dir}: num_repeats = {subset.num_repeats} must be >= 1")
        for path in list_subset_images(subset):
            item = ImageItem(
                path=path, caption=_read_caption(path, subset), size_wh=_check_image(path, resolution_wh),
                shuffle_caption=bool(getattr(subset, "shuffle_caption", False)), keep_tokens=int(getattr(subset, "keep_tokens", 0)),
                caption_file=_caption_file(path, subset), caption_options=caption_options(subset),
                class_tokens=(subset.class_tokens or "").strip() or None,
            )
            items.extend([item] * subset.num_repeats)
    if not items:
        raise DatasetError("the dataset has no subsets; set train_data_dir or add [[datasets.subsets]] to dataset_config")
    return items


def load_image(path: Path, resolution_wh: tuple[int, int]) -> tuple[torch.Tensor, tuple[int, int]]:
    """RGB image resized so it covers the resolution (short side fits) and center-cropped.

    Returns ``([3, H, W] float32 in [-1, 1], crop_top_left)`` with the crop offset in resized pixels
    (SDXL conditions on it).
    """
    from textboost_ext.images import load_rgb

    width, height = resolution_wh
    img = load_rgb(path, cover_wh=(width, height))  # upright, 8-bit RGB whatever the file's mode
    scale = max(width / img.width, height / img.height)
    resized_wh = (max(width, round(img.width * scale)), max(height, round(img.height * scale)))
    img = img.resize(resized_wh, Image.Resampling.LANCZOS, reducing_gap=3.0)  # drops the big decode at once
    left, top = (resized_wh[0] - width) // 2, (resized_wh[1] - height) // 2
    img = img.crop((left, top, left + width, top + height))
    array = np.asarray(img, dtype=np.float32)
    tensor = torch.from_numpy(array).permute(2, 0, 1).contiguous() / 127.5 - 1.0
    return tensor, (top, left)


def shuffle_caption(caption: str, keep_tokens: int, generator: torch.Generator) -> str:
    """kohya's ``shuffle_caption``: comma-separated tags after the first ``keep_tokens`` are shuffled."""
    tags = [t.strip() for t in caption.split(",") if t.strip()]
    fixed, rest = tags[:keep_tokens], tags[keep_tokens:]
    order = torch.randperm(len(rest), generator=generator).tolist()
    return ", ".join(fixed + [rest[i] for i in order])


def epoch_permutation(num_items: int, seed: int, epoch: int) -> torch.Tensor:
    """The item order of one epoch; depends only on (seed, epoch)."""
    generator = torch.Generator().manual_seed((seed * 1_000_003 + epoch) % (2**63))
    return torch.randperm(num_items, generator=generator)


class StreamBatchSampler:
    """Endless batches of item indices, starting at micro-batch ``start_micro_batch``.

    Micro-batch ``m`` of process ``rank`` takes stream positions ``[(m * world + rank) * B, ... + B)``,
    so processes see disjoint items and the order is the same whatever the number of restarts.
    """

    def __init__(self, num_items: int, batch_size: int, seed: int, start_micro_batch: int = 0, rank: int = 0, world_size: int = 1) -> None:
        self.num_items, self.batch_size, self.seed = num_items, batch_size, seed
        self.start_micro_batch, self.rank, self.world_size = start_micro_batch, rank, world_size
        self._cache: tuple[int, torch.Tensor] | None = None

    def indices_at(self, position: int, count: int) -> list[int]:
        out: list[int] = []
        for p in range(position, position + count):
            epoch, offset = divmod(p, self.num_items)
            if self._cache is None or self._cache[0] != epoch:
                self._cache = (epoch, epoch_permutation(self.num_items, self.seed, epoch))
            out.append(int(self._cache[1][offset]))
        return out

    def __iter__(self) -> Iterator[list[int]]:
        micro = self.start_micro_batch
        while True:
            yield self.indices_at((micro * self.world_size + self.rank) * self.batch_size, self.batch_size)
            micro += 1


class ImageCaptionDataset(torch.utils.data.Dataset):
    """Index -> ``{"image", "caption", "shuffle_keep_tokens", "original_size_hw", "crop_top_left", "path"}``,
    plus ``"source"`` (the photo at bounded source resolution, ``source_images``) when ``with_sources``.

    ``shuffle_keep_tokens`` is None, or the keep_tokens of a subset with shuffle_caption: the host
    shuffles in the main process with its saved generator, so workers stay free of randomness.
    """

    def __init__(self, items: Sequence[ImageItem], resolution_wh: tuple[int, int], with_sources: bool = False) -> None:
        self.items, self.resolution_wh, self.with_sources = list(items), resolution_wh, with_sources
        self.sources = SourceCache()  # per worker process; a one-shot batch repeats one photo

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.items[index]
        image, crop_top_left = load_image(item.path, self.resolution_wh)
        sample = {
            "image": image,
            "caption": item.caption,
            "shuffle_keep_tokens": item.keep_tokens if item.shuffle_caption else None,
            "original_size_hw": (item.size_wh[1], item.size_wh[0]),
            "crop_top_left": crop_top_left,
            "path": str(item.path),
        }
        if self.with_sources:
            sample["source"] = self.sources.get(item.path, self.resolution_wh)
        return sample


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "images": torch.stack([s["image"] for s in samples]),
        "sources": [s["source"] for s in samples] if "source" in samples[0] else None,  # sizes differ: a list
        "captions": [s["caption"] for s in samples],
        "shuffle_keep_tokens": [s["shuffle_keep_tokens"] for s in samples],
        "original_sizes_hw": [s["original_size_hw"] for s in samples],
        "crop_top_lefts": [s["crop_top_left"] for s in samples],
        "paths": [s["path"] for s in samples],
    }


def make_batches(
    items: Sequence[ImageItem],
    resolution_wh: tuple[int, int],
    batch_size: int,
    seed: int,
    start_micro_batch: int = 0,
    num_workers: int = 0,
    rank: int = 0,
    world_size: int = 1,
    with_sources: bool = False,
) -> Iterator[dict[str, Any]]:
    """Endless iterator of collated batches (see :class:`StreamBatchSampler` for the order)."""
    sampler = StreamBatchSampler(len(items), batch_size, seed, start_micro_batch, rank, world_size)
    loader = torch.utils.data.DataLoader(
        ImageCaptionDataset(items, resolution_wh, with_sources),
        batch_sampler=sampler,  # type: ignore[arg-type]  # an endless iterable of index lists
        collate_fn=collate,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
    )
    return iter(loader)


def dataset_summary(items: Sequence[ImageItem]) -> dict[str, dict[str, int]]:
    """kohya's ``ss_dataset_dirs``: ``{folder name: {"n_repeats": r, "img_count": unique images}}``."""
    per_dir: dict[str, dict[Path, int]] = {}
    for item in items:
        counts = per_dir.setdefault(item.path.parent.name, {})
        counts[item.path] = counts.get(item.path, 0) + 1
    return {name: {"n_repeats": max(c.values()), "img_count": len(c)} for name, c in per_dir.items()}


def tag_frequency(items: Sequence[ImageItem]) -> dict[str, dict[str, int]]:
    """kohya's ``ss_tag_frequency``: comma-separated caption tags counted per folder (unique images)."""
    seen: set[Path] = set()
    freq: dict[str, dict[str, int]] = {}
    for item in items:
        if item.path in seen:
            continue
        seen.add(item.path)
        tags = freq.setdefault(item.path.parent.name, {})
        for tag in (t.strip() for t in item.caption.split(",")):
            if tag:
                tags[tag] = tags.get(tag, 0) + 1
    return freq
