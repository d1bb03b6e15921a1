"""What a loaded base model looks like to the rest of the package."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Family = Literal["sd1", "sd2", "sdxl"]

# kohya's ss_base_model_version strings, by (family, v-prediction)
BASE_MODEL_VERSION = {
    ("sd1", False): "sd_v1",
    ("sd2", False): "sd_v2",
    ("sd2", True): "sd_v2_v",
    ("sdxl", False): "sdxl_base_v1-0",
}


@dataclass
class LoadedModel:
    """A Stable Diffusion base ready for text-encoder training.

    ``text_encoders``/``tokenizers`` have one entry for SD 1.x/2.x and two for SDXL (CLIP-L, then
    OpenCLIP-bigG with projection). ``noise_scheduler`` is a diffusers ``DDPMScheduler`` configured
    for training (its ``config.prediction_type`` is "epsilon" or "v_prediction").
    """

    family: Family
    tokenizers: list[Any]
    text_encoders: list[Any]
    unet: Any
    vae: Any
    noise_scheduler: Any
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def prediction_type(self) -> str:
        return str(self.noise_scheduler.config.prediction_type)

    @property
    def is_v_prediction(self) -> bool:
        return self.prediction_type == "v_prediction"

    @property
    def base_model_version(self) -> str:
        return BASE_MODEL_VERSION[(self.family, self.is_v_prediction and self.family == "sd2")]
