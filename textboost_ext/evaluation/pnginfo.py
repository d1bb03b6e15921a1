"""Generation parameters inside the PNG, as the WebUIs write them, plus an exact record of our own.

Two ``tEXt`` chunks:

- ``parameters``: the AUTOMATIC1111/Forge "infotext" (what their PNG Info tab reads and "Send to
  txt2img" applies)::

      a photo of tbmug mug on a beach <lora:demo_mug:1>
      Negative prompt: blurry
      Steps: 30, Sampler: DDIM, CFG scale: 7.5, Seed: 1, Size: 512x512, Model: v1-5-pruned, Lora hashes: "demo_mug: 0123456789ab", TI hashes: "tbmug: ba9876543210", Version: textboost-ext 0.1.0

  The ``<lora:NAME:W>`` tag is how those WebUIs activate a LoRA from a prompt, so it is appended to
  the prompt here; the hashes are the short hashes they compute themselves.
- ``textboost``: JSON of every setting that determines the pixels (prompt as given to diffusers, seed,
  steps, scale, sampler, size, precision, base, adapter file hash, weight). ``eval`` compares it to
  decide whether an image on disk can be reused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PARAMETERS_KEY = "parameters"
RECORD_KEY = "textboost"

# kohya sampler name -> the name A1111 shows for the same method
A1111_SAMPLER_NAMES = {
    "ddim": "DDIM", "pndm": "PLMS", "lms": "LMS", "k_lms": "LMS", "euler": "Euler", "k_euler": "Euler",
    "euler_a": "Euler a", "k_euler_a": "Euler a", "heun": "Heun", "dpm_2": "DPM2", "k_dpm_2": "DPM2",
    "dpm_2_a": "DPM2 a", "k_dpm_2_a": "DPM2 a", "dpmsolver++": "DPM++ 2M", "dpmsingle": "DPM++ SDE",
}


def _quoted(value: str) -> str:
    """An infotext value: quoted (JSON-style) when it contains a separator, as A1111 does."""
    return json.dumps(value) if any(c in value for c in ',:"\n') else value


def infotext(record: dict[str, Any]) -> str:
    """The A1111 ``parameters`` text of one image's record (see ``generate.image_record``)."""
    prompt = record["prompt"]
    adapter = record.get("adapter")
    if adapter:
        prompt = f"{prompt} <lora:{adapter['name']}:{adapter['weight']:g}>"
    lines = [prompt]
    if record.get("negative_prompt"):
        lines.append(f"Negative prompt: {record['negative_prompt']}")
    fields = {
        "Steps": str(record["steps"]),
        "Sampler": A1111_SAMPLER_NAMES.get(record["sampler"], record["sampler"]),
        "CFG scale": f"{record['cfg']:g}",
        "Seed": str(record["seed"]),
        "Size": f"{record['width']}x{record['height']}",
        "Model": Path(record["base"]).stem if not record["base"].startswith("builtin:") else record["base"],
    }
    if adapter:
        fields["Lora hashes"] = _quoted(f"{adapter['name']}: {adapter['hash']}")
        if adapter.get("embeddings"):
            fields["TI hashes"] = _quoted(", ".join(f"{k}: {v}" for k, v in adapter["embeddings"].items()))
    fields["Version"] = f"textboost-ext {_version()}"
    lines.append(", ".join(f"{k}: {v}" for k, v in fields.items()))
    return "\n".join(lines)


def png_metadata(record: dict[str, Any]) -> Any:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text(PARAMETERS_KEY, infotext(record))
    info.add_text(RECORD_KEY, json.dumps(record, sort_keys=True))
    return info


def read_record(path: Path) -> dict[str, Any] | None:
    """The ``textboost`` record of a PNG we wrote; None for any other (or unreadable) file."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            text = getattr(image, "text", {}).get(RECORD_KEY)
    except (OSError, UnidentifiedImageError):
        return None
    try:
        return json.loads(text) if text else None
    except json.JSONDecodeError:
        return None


def read_parameters(path: Path) -> str | None:
    from PIL import Image

    with Image.open(path) as image:
        return getattr(image, "text", {}).get(PARAMETERS_KEY)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("textboost-ext")
    except PackageNotFoundError:
        return "dev"
