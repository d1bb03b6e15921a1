"""The base a user generates with: loaded like a training base, on a device, in a precision.

The base is read by ``textboost_ext.models.load.load_base_model`` (builtin, diffusers folder, A1111
single file or Hub id: the same loader training uses) and wrapped in a plain diffusers
``StableDiffusionPipeline`` / ``StableDiffusionXLPipeline``. Samplers are the training sampler names
(kohya's ``--sample_sampler``), built from the base's own noise schedule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textboost_ext.toyworld import sampling as toyworld_sampling

PRECISIONS = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
# Defaults when the command line leaves them out: kohya's sample defaults, except for the toy world's base,
# which is sampled as its quality table was measured (textboost_ext.toyworld.sampling).
DEFAULT_SAMPLING = {"steps": 30, "cfg": 7.5, "sampler": "ddim"}
BASE_SAMPLING = {"builtin:toyworld": {"steps": toyworld_sampling.STEPS, "cfg": toyworld_sampling.GUIDANCE,
                                      "sampler": toyworld_sampling.SAMPLER}}


class GenerationSetupError(ValueError):
    """A device/precision/sampler choice that cannot work; the message says what to pick instead."""


@dataclass
class BasePipeline:
    """A loaded base: the diffusers pipeline plus what reports and PNG metadata say about it."""

    pipe: Any
    source: str  # what the user passed (``builtin:tiny-sd1``, a folder, a file, a Hub id)
    family: str
    device: str
    precision: str

    @property
    def default_size(self) -> tuple[int, int]:
        """(width, height) the pipeline uses when none is given: the UNet's native size."""
        size = int(self.pipe.unet.config.sample_size) * int(self.pipe.vae_scale_factor)
        return size, size


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise GenerationSetupError(f"--device {device}: torch sees no CUDA GPU here (torch {torch.__version__}); "
                                   "use --device cpu or install a CUDA build of torch")
    if device not in ("cpu", "mps") and not device.startswith("cuda"):
        raise GenerationSetupError(f"--device {device!r}: choose auto, cpu, cuda, cuda:N or mps")
    return device


def resolve_precision(precision: str, device: str) -> str:
    if precision == "auto":
        return "fp32" if device == "cpu" else "fp16"
    if precision not in PRECISIONS:
        raise GenerationSetupError(f"--precision {precision!r}: choose auto, {', '.join(PRECISIONS)}")
    if precision == "fp16" and device == "cpu":
        raise GenerationSetupError("--precision fp16 does not run on the CPU (half-precision convolutions are missing "
                                   "there); use fp32, or bf16 on a CPU with bf16 support")
    return precision


def sampling_defaults(base: str) -> dict[str, Any]:
    return dict(BASE_SAMPLING.get(base, DEFAULT_SAMPLING))


def load_base(base: str, device: str = "auto", precision: str = "auto") -> BasePipeline:
    """Load ``base`` for inference on ``device`` in ``precision`` (progress bars of diffusers off)."""
    import torch

    from textboost_ext.export.verify import pipeline_from_loaded
    from textboost_ext.models.load import load_base_model

    device = resolve_device(device)
    precision = resolve_precision(precision, device)
    loaded = load_base_model(base, torch_dtype=getattr(torch, PRECISIONS[precision]))
    pipe = pipeline_from_loaded(loaded).to(device)
    pipe.set_progress_bar_config(disable=True)
    return BasePipeline(pipe, base, loaded.family, device, precision)


def set_sampler(pipe: Any, sampler: str) -> None:
    """Give ``pipe`` the inference scheduler ``sampler`` (a kohya sampler name) on its own schedule."""
    from textboost_ext.host.sampling import SAMPLERS, make_sample_scheduler

    if sampler not in SAMPLERS:
        raise GenerationSetupError(f"--sampler {sampler!r} is not supported; choose one of: {', '.join(SAMPLERS)}")
    pipe.scheduler = make_sample_scheduler(sampler, _training_schedule(pipe))


def _training_schedule(pipe: Any) -> Any:
    """The base's training schedule, kept across sampler changes (a new sampler must not inherit an old one's options)."""
    if not hasattr(pipe, "_textboost_training_schedule"):
        pipe._textboost_training_schedule = pipe.scheduler
    return pipe._textboost_training_schedule
