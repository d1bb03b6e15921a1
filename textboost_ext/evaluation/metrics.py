"""The scores ``eval`` reports: display name, what they measure, and which direction is better."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    label: str
    meaning: str
    higher_is_better: bool = True


METRICS: dict[str, Metric] = {
    "clip_t": Metric("CLIP-T", "CLIP cosine of the image and its prompt (subject written as the class noun): prompt fidelity"),
    "clip_i": Metric("CLIP-I", "CLIP image-embedding cosine with the reference image(s): subject fidelity"),
    "dino": Metric("DINO", "DINOv2 CLS-feature cosine with the reference image(s): subject fidelity"),
    "subject_fidelity": Metric("subject fidelity", "share of images the toy-world oracle reads as the subject (shape and colour)"),
    "prompt_fidelity": Metric("prompt fidelity", "share of the requested background/position/size/style the image obeys"),
    "copy_rate": Metric("copy rate", "share of new-background prompts that show the reference's background anyway",
                        higher_is_better=False),
}


def metric_label(name: str) -> str:
    return METRICS[name].label if name in METRICS else name
