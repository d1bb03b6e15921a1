"""The photo behind each image of an sd-scripts training batch, so TextBoost can augment the source.

sd-scripts hands the hooks images already resized and cropped to the bucket size. Its datasets add
``batch["image_keys"]`` when their ``debug_dataset`` attribute is set (that attribute does nothing
else in ``BaseDataset.__getitem__``; the ``--debug_dataset`` option, which only shows the dataset and
exits, stays off), and ``dataset.image_data[key].absolute_path`` is the file. :class:`BatchSources`
turns that into one bounded source tensor per image (``textboost_ext.source_images``).
"""

from __future__ import annotations

from typing import Any

import torch

from textboost_ext.source_images import SourceCache


class BatchSources:
    """``enable(dataset_group)`` before sd-scripts builds its DataLoader; ``for_batch(batch)`` per step."""

    def __init__(self) -> None:
        self.paths: dict[str, str] = {}
        self.cache = SourceCache()

    def enable(self, dataset_group: Any) -> None:
        for dataset in getattr(dataset_group, "datasets", []) or []:
            image_data = getattr(dataset, "image_data", None)
            if not isinstance(image_data, dict):
                continue
            dataset.debug_dataset = True  # makes __getitem__ add "image_keys"
            for key, info in image_data.items():
                path = str(getattr(info, "absolute_path", "") or "")
                if self.paths.get(key, path) != path:
                    raise ValueError(f"two datasets use the image key {key!r} for different files ({self.paths[key]}, "
                                     f"{path}); give the images distinct names")
                self.paths[key] = path

    def for_batch(self, batch: dict[str, Any]) -> list[torch.Tensor] | None:
        """One uint8 [3, h, w] source per image of ``batch``, bounded for its size; None if the batch does
        not name its images (then the hooks augment the bucket-size images)."""
        keys, images = batch.get("image_keys"), batch.get("images")
        if not keys or images is None or len(keys) != len(images) or any(k not in self.paths for k in keys):
            return None
        width_height = (int(images.shape[-1]), int(images.shape[-2]))
        return [self.cache.get(self.paths[k], width_height) for k in keys]
