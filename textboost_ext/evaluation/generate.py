"""Images from a base (+ adapter): one seed per image, batched, saved as PNGs that carry their settings.

Seeding: image ``i`` gets its own CPU ``torch.Generator`` seeded with its seed. Its starting noise is
drawn from that generator in fp32 on the CPU (then moved to the device and precision), and the same
generator feeds the sampler's per-step noise (ancestral samplers). So a seed means the same start on
every device and precision, and an fp32 image at batch size 1 is exactly what the training sampler
made for that seed (the host samples with the same generator and the same pipeline call). In larger
batches the UNet's matrix products may round differently (ULP-level changes, invisible at 8 bits in
practice but not guaranteed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from textboost_ext.atomic_write import atomic_output
from textboost_ext.evaluation.adapters import Adapter
from textboost_ext.evaluation.pipeline import BasePipeline, set_sampler
from textboost_ext.evaluation.pnginfo import png_metadata


@dataclass(frozen=True)
class ImageRequest:
    """Everything that decides one image's pixels, besides the model."""

    prompt: str
    negative_prompt: str
    seed: int
    steps: int
    cfg: float
    sampler: str
    width: int
    height: int

    def batch_key(self) -> tuple[Any, ...]:
        """Requests with equal keys can share one pipeline call."""
        return (self.steps, self.cfg, self.sampler, self.width, self.height)


def adapter_record(adapter: Adapter | None, weight: float) -> dict[str, Any] | None:
    """What the image record says about the adapter: name, LoRA hash, weight, embedding hashes."""
    if adapter is None:
        return None
    from textboost_ext.evaluation.adapters import file_sha256

    return {
        "name": adapter.name,
        "file": str(adapter.info.lora_file),
        "hash": adapter.short_hash,
        "weight": float(weight),
        "embeddings": {p.stem: file_sha256(p)[:12] for p in adapter.embedding_files},
    }


def image_record(request: ImageRequest, base: BasePipeline, adapter: dict[str, Any] | None) -> dict[str, Any]:
    """The JSON record stored in the PNG (``pnginfo``): request + base + precision + adapter."""
    record = asdict(request)
    record.update(base=base.source, precision=base.precision, adapter=adapter)
    return record


def same_pixels_expected(stored: dict[str, Any] | None, wanted: dict[str, Any]) -> bool:
    """Whether an image on disk with record ``stored`` was made with the settings in ``wanted``.

    The adapter's file path may differ (a moved store); its hashes and weight must not.
    """
    if stored is None:
        return False

    def comparable(record: dict[str, Any]) -> dict[str, Any]:
        out = dict(record)
        if isinstance(out.get("adapter"), dict):
            out["adapter"] = {k: v for k, v in out["adapter"].items() if k != "file"}
        return out

    return comparable(stored) == comparable(wanted)


def batches(requests: list[ImageRequest], batch_size: int) -> Iterator[list[int]]:
    """Indices of ``requests`` grouped into pipeline calls: consecutive, same settings, at most ``batch_size``."""
    if batch_size < 1:
        raise ValueError(f"--batch_size must be >= 1, got {batch_size}")
    group: list[int] = []
    for i, request in enumerate(requests):
        if group and (len(group) == batch_size or requests[group[0]].batch_key() != request.batch_key()):
            yield group
            group = []
        group.append(i)
    if group:
        yield group


def generate_images(
    base: BasePipeline, requests: list[ImageRequest], batch_size: int = 1, on_batch: Callable[[int], None] | None = None
) -> Iterator[tuple[int, Any]]:
    """Yield ``(index into requests, PIL image)`` as batches finish (``on_batch(n)`` after each)."""
    import torch

    pipe = base.pipe
    channels = int(pipe.unet.config.in_channels)
    scale = int(pipe.vae_scale_factor)
    for group in batches(requests, batch_size):
        first = requests[group[0]]
        set_sampler(pipe, first.sampler)
        generators = [torch.Generator("cpu").manual_seed(int(requests[i].seed)) for i in group]
        latents = torch.cat([torch.randn((1, channels, first.height // scale, first.width // scale), generator=g,
                                         dtype=torch.float32) for g in generators])
        with torch.no_grad():
            images = pipe(
                prompt=[requests[i].prompt for i in group],
                negative_prompt=[requests[i].negative_prompt for i in group],
                width=first.width, height=first.height,
                num_inference_steps=first.steps, guidance_scale=first.cfg,
                generator=generators, latents=latents.to(pipe.device, pipe.unet.dtype),
            ).images
        for i, image in zip(group, images):
            yield i, image
        if on_batch is not None:
            on_batch(len(group))


def save_png(path: Path, image: Any, record: dict[str, Any]) -> Path:
    """Write ``image`` with its ``parameters`` and ``textboost`` chunks; atomic (never a half PNG)."""
    with atomic_output(path) as tmp:
        image.save(tmp, format="PNG", pnginfo=png_metadata(record))
    return Path(path)
