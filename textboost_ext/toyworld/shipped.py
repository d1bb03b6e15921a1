"""The shipped toy base and oracle: fp16 safetensors in ``textboost_ext/assets/toyworld`` with their record.

``ship`` (run once by a maintainer after ``pretrain``) writes the files and a ``record.json`` holding the
pretraining command, seed, measured quality and every file's sha256. ``materialize`` turns them into a
standard fp32 diffusers folder (``builtin:toyworld`` is that folder, cached), refusing files whose checksum
differs from the record. CPUs compute fp16 slowly or not at all, so everything is loaded as fp32.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from importlib import resources
from pathlib import Path
from typing import Any

COMPONENTS = ("vae", "text_encoder", "unet")
ORACLE_FILE = "oracle.safetensors"
RECORD_FILE = "record.json"


class ShippedFileError(RuntimeError):
    """A shipped toy-world file is missing or differs from its record (a damaged install or checkout)."""


def assets_dir() -> Path:
    return Path(str(resources.files("textboost_ext.assets").joinpath("toyworld")))


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_record(folder: Path | None = None) -> dict[str, Any]:
    path = (folder or assets_dir()) / RECORD_FILE
    if not path.is_file():
        raise ShippedFileError(f"{path} is missing: the toy world's weights are not installed "
                               "(reinstall textboost-ext, or build them with `textboost-toyworld pretrain` and `ship`)")
    return json.loads(path.read_text())


def record_digest(folder: Path | None = None) -> str:
    """Names the cache folder of this shipped version, so a new base is never served from an old cache."""
    read_record(folder)  # a clear error when the toy world is not installed
    return hashlib.sha256(((folder or assets_dir()) / RECORD_FILE).read_bytes()).hexdigest()[:12]


def checked_file(name: str, folder: Path | None = None) -> Path:
    """The shipped file ``name`` after its sha256 was compared with the record."""
    folder = folder or assets_dir()
    expected = read_record(folder).get("sha256", {}).get(name)
    path = folder / name
    if expected is None or not path.is_file():
        raise ShippedFileError(f"{path}: missing from the shipped toy world or its record; reinstall textboost-ext")
    actual = sha256(path)
    if actual != expected:
        raise ShippedFileError(f"{path}: sha256 {actual[:16]}... differs from the record's {expected[:16]}...; "
                               "the file is damaged (a Git LFS pointer or a partial checkout?) — reinstall textboost-ext")
    return path


def ship(run_dir: Path, target: Path | None = None) -> Path:
    """Copy a finished pretraining run's EMA pipeline and oracle into ``target`` as fp16, with the record."""
    from safetensors.torch import load_file, save_file

    target = target or assets_dir()
    pipeline = run_dir / "pipeline"
    record = json.loads((run_dir / "record.json").read_text())
    if "quality" not in record:
        raise ShippedFileError(f"{run_dir}/record.json has no measured quality; finish `pretrain` first")
    target.mkdir(parents=True, exist_ok=True)
    for component in COMPONENTS:
        state = load_file(str(pipeline / component / _weights_name(pipeline / component)))
        save_file({k: v.half().contiguous() for k, v in state.items()}, str(target / f"{component}.safetensors"))
        config = json.loads((pipeline / component / "config.json").read_text())
        config.pop("_name_or_path", None)  # the folder on the machine that built it: nothing a user can load
        (target / f"{component}_config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    shutil.copyfile(pipeline / "scheduler" / "scheduler_config.json", target / "scheduler_config.json")
    shutil.copyfile(run_dir / ORACLE_FILE, target / ORACLE_FILE)
    files = [f"{c}.safetensors" for c in COMPONENTS] + [f"{c}_config.json" for c in COMPONENTS] + ["scheduler_config.json", ORACLE_FILE]
    record["sha256"] = {name: sha256(target / name) for name in files}
    (target / RECORD_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return target


def _weights_name(folder: Path) -> str:
    for name in ("diffusion_pytorch_model.safetensors", "model.safetensors"):
        if (folder / name).is_file():
            return name
    raise ShippedFileError(f"{folder}: no safetensors weights")


def materialize(directory: Path, folder: Path | None = None) -> Path:
    """Write the shipped base as an fp32 diffusers StableDiffusionPipeline folder at ``directory``."""
    import torch
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from safetensors.torch import load_file
    from transformers import CLIPTextConfig, CLIPTextModel

    from textboost_ext.toyworld.models import assemble_pipeline, build_tokenizer

    folder = folder or assets_dir()

    def weights(component: str) -> dict[str, torch.Tensor]:
        return {k: v.float() for k, v in load_file(str(checked_file(f"{component}.safetensors", folder))).items()}

    def config(component: str) -> dict[str, Any]:
        return json.loads(checked_file(f"{component}_config.json", folder).read_text())

    vae = AutoencoderKL.from_config(config("vae"))
    vae.load_state_dict(weights("vae"))
    unet = UNet2DConditionModel.from_config(config("unet"))
    unet.load_state_dict(weights("unet"))
    te_config = {k: v for k, v in config("text_encoder").items() if k not in ("architectures", "transformers_version")}
    text_encoder = CLIPTextModel(CLIPTextConfig(**te_config))
    result = text_encoder.load_state_dict(weights("text_encoder"), strict=False)
    wrong = [k for k in result.missing_keys + result.unexpected_keys if not k.endswith("position_ids")]  # a buffer some versions save
    if wrong:
        raise ShippedFileError(f"{folder}/text_encoder.safetensors does not match its config: {', '.join(wrong[:5])}")
    pipe = assemble_pipeline(vae, text_encoder, unet, build_tokenizer(directory.parent / f".{directory.name}_tok" / "tokenizer"))
    pipe.scheduler = DDPMScheduler.from_config(json.loads(checked_file("scheduler_config.json", folder).read_text()))
    pipe.save_pretrained(str(directory), safe_serialization=True)
    return directory


def load_shipped_oracle() -> Any:
    from textboost_ext.toyworld.oracle import load_oracle

    return load_oracle(checked_file(ORACLE_FILE))
