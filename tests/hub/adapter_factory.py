"""Build realistic adapter folders for the hub tests.

The LoRA is a real kohya-format file with the keys, shapes and fp16 dtype ``TextEncoderLoRA`` exports for
the tiny CLIP encoders of ``models/tiny.py`` (pinned by a test), non-zero up weights, and the
``ss_*``/``modelspec.*``/``sshs_*`` metadata the export writes. The folder has every part of the store layout, including the training-only
folders that must never be uploaded.
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
from pathlib import Path

import torch
from safetensors.torch import save, save_file

SECRET = "hf_TEST_SECRET_123"
_ARCH = {"sd1": "stable-diffusion-v1/lora", "sd2v": "stable-diffusion-v2-768-v/lora", "sdxl": "stable-diffusion-xl-v1-base/lora"}
_VERSION = {"sd1": "sd_v1", "sd2v": "sd_v2_v", "sdxl": "sdxl_base_v1-0"}
_BASE_NAME = {"sd1": "runwayml/stable-diffusion-v1-5", "sd2v": "/models/sd21-768.safetensors", "sdxl": "sd_xl_base_1.0.safetensors"}


# (prefix, hidden, mlp, layers) of the tiny encoders in models/tiny.py (intermediate = hidden + 5)
TINY_ENCODERS = {
    "sd1": [("lora_te", 32, 37, 2)],
    "sd2v": [("lora_te", 40, 45, 3)],
    "sdxl": [("lora_te1", 32, 37, 2), ("lora_te2", 48, 53, 2)],
}


def tiny_lora_state(family: str, rank: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    """kohya LoRA for the tiny encoders, built from shapes (fast: no transformers import).

    ``test_factory_matches_textboost_network`` pins it to what ``TextEncoderLoRA`` exports.
    """
    from textboost_ext.network import KOHYA_MODULE_SUFFIX, kohya_module_name

    gen = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {}
    for prefix, hidden, mlp, layers in TINY_ENCODERS[family]:
        shapes = {kind: (hidden, hidden) for kind in KOHYA_MODULE_SUFFIX if kind.startswith("self_attn")}
        shapes.update({"mlp.fc1": (hidden, mlp), "mlp.fc2": (mlp, hidden)})
        for layer in range(layers):
            for kind, (d_in, d_out) in shapes.items():
                name = kohya_module_name(prefix, layer, kind)
                sd[f"{name}.lora_down.weight"] = (torch.randn(rank, d_in, generator=gen) / rank).half()
                sd[f"{name}.lora_up.weight"] = (torch.randn(d_out, rank, generator=gen) * 0.02).half()
                sd[f"{name}.alpha"] = torch.tensor(float(rank))  # float32, as every exported file has it
    return sd


def textboost_lora_state(family: str) -> dict[str, torch.Tensor]:
    """The same file made the real way: ``TextEncoderLoRA`` on the tiny CLIP encoders."""
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    from textboost_ext.models.tiny import _clip_config
    from textboost_ext.network import TextEncoderLoRA

    torch.manual_seed(0)
    if family == "sdxl":
        encoders = [CLIPTextModel(_clip_config(32, 2, 49407)),
                    CLIPTextModelWithProjection(_clip_config(48, 2, 0, projection_dim=48, act="gelu"))]
    elif family == "sd2v":
        encoders = [CLIPTextModel(_clip_config(40, 3, 0, act="gelu"))]
    else:
        encoders = [CLIPTextModel(_clip_config(32, 2, 49407))]
    return TextEncoderLoRA(encoders, rank=4, alpha=4.0).kohya_state_dict(torch.float16)


def real_dims_sd1_state(rank: int = 4, seed: int = 0) -> dict[str, torch.Tensor]:
    """A LoRA with SD 1.x CLIP-L shapes (12 layers, 768/3072), built from shapes alone (no model)."""
    gen = torch.Generator().manual_seed(seed)
    dims = {"self_attn_q_proj": (768, 768), "self_attn_k_proj": (768, 768), "self_attn_v_proj": (768, 768),
            "self_attn_out_proj": (768, 768), "mlp_fc1": (768, 3072), "mlp_fc2": (3072, 768)}
    sd = {}
    for layer in range(12):
        for mod, (d_in, d_out) in dims.items():
            name = f"lora_te_text_model_encoder_layers_{layer}_{mod}"
            sd[f"{name}.lora_down.weight"] = (torch.randn(rank, d_in, generator=gen) / rank).half()
            sd[f"{name}.lora_up.weight"] = (torch.randn(d_out, rank, generator=gen) * 0.01).half()
            sd[f"{name}.alpha"] = torch.tensor(float(rank))
    return sd


def lora_metadata(family: str, name: str, token: str, **extra: str) -> dict[str, str]:
    meta = {
        "ss_network_module": "textboost_ext.network", "ss_network_dim": "4", "ss_network_alpha": "4.0",
        "ss_base_model_version": _VERSION[family], "ss_v2": str(family.startswith("sd2")),
        "ss_v_parameterization": str(family == "sd2v"), "ss_output_name": name, "ss_sd_model_name": _BASE_NAME[family],
        "ss_training_started_at": "1764065000.0", "ss_training_finished_at": "1764066000.0",
        "ss_steps": "250", "ss_seed": "42", "ss_learning_rate": "5e-05", "ss_text_encoder_lr": "5e-05",
        "ss_optimizer": "bitsandbytes.optim.adamw.AdamW8bit", "ss_num_train_images": "1", "ss_resolution": "(512, 512)",
        "ss_mixed_precision": "fp16", "ss_total_batch_size": "8",
        "ss_tag_frequency": json.dumps({"1_img": {token: 8, "dog": 5, "grass": 2}}),
        "ss_dataset_dirs": json.dumps({"1_img": {"n_repeats": 1, "img_count": 1}}),
        "ss_textboost_kpl_weight": "0.1", "ss_textboost_timestep_sampling": "snr", "ss_textboost_augment": "object",
        "ss_textboost_emb_learning_rate": "0.001", "ss_textboost_placeholder_token": token,
        "modelspec.sai_model_spec": "1.0.0", "modelspec.architecture": _ARCH[family],
        "modelspec.implementation": "diffusers", "modelspec.title": name, "modelspec.resolution": "512x512",
        "modelspec.date": "2025-11-25T10:20:00", "modelspec.trigger_phrase": token,
    }
    meta.update(extra)
    return meta


def write_lora(path: Path, state: dict[str, torch.Tensor], metadata: dict[str, str]) -> Path:
    """Save with an exact ``sshs_model_hash`` (SHA-256 of the bytes after the header)."""
    blob = save(state, metadata=metadata)
    (n,) = struct.unpack("<Q", blob[:8])
    metadata = {**metadata, "sshs_model_hash": hashlib.sha256(blob[8 + n:]).hexdigest()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata=metadata)
    return path


def png_bytes(color: tuple[int, int, int]) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buffer, format="PNG")
    return buffer.getvalue()


def make_adapter(root: Path, lora_state: dict[str, torch.Tensor], *, name: str = "corgi", family: str = "sd1",
                 token: str = "mycorgi", metadata: dict[str, str] | None = None, emb_width: int | None = None) -> Path:
    folder = root / name
    (folder / "embeddings").mkdir(parents=True, exist_ok=True)
    write_lora(folder / f"{name}.safetensors", lora_state, metadata or lora_metadata(family, name, token))
    if family == "sdxl":
        save_file({"clip_l": torch.randn(2, 32).half(), "clip_g": torch.randn(2, 48).half()}, str(folder / "embeddings" / f"{token}.safetensors"))
    else:
        width = emb_width or (40 if family == "sd2v" else 32)
        save_file({"emb_params": torch.randn(2, width).half()}, str(folder / "embeddings" / f"{token}.safetensors"))
    (folder / f"{name}.json").write_text(json.dumps({"description": "test adapter", "sd version": "SD1",
                                                       "activation text": token, "preferred weight": 1}))
    (folder / f"{name}.preview.png").write_bytes(png_bytes((200, 120, 40)))
    (folder / "training_config.toml").write_text(f'output_name = "{name}"\nmax_train_steps = 250\n[textboost]\nplaceholder_token = "{token}"\n')
    samples = folder / "samples"
    samples.mkdir()
    index = []
    for step, i, prompt in [(0, 0, f"a photo of {token}"), (250, 0, f"a photo of {token} on the beach"),
                            (250, 1, f'{token}: a "watercolor" painting, #1')]:
        file = f"step{step:06d}_{i:02d}.png"
        (samples / file).write_bytes(png_bytes((step % 256, 40 * i, 90)))
        index.append({"file": file, "prompt": prompt, "step": step})
    (samples / "index.json").write_text(json.dumps(index, indent=1))
    # training-only material: must never leave the machine (one file even holds the token)
    (folder / "state").mkdir()
    (folder / "state" / "optimizer.pt").write_bytes(b"\x00optimizer state" * 10)
    (folder / "state" / "resolved_env.json").write_text(json.dumps({"HF_TOKEN": SECRET}))
    (folder / "logs").mkdir()
    (folder / "logs" / "events.out.tfevents.1764065000.host").write_bytes(b"tensorboard")
    (folder / "checkpoints").mkdir()
    write_lora(folder / "checkpoints" / f"{name}-000100.safetensors", lora_state, lora_metadata(family, f"{name}-000100", token))
    (folder / ".env").write_text(f"HF_TOKEN={SECRET}\n")
    from textboost_ext.hub.manifest import write_manifest

    write_manifest(folder)  # a finished adapter, as a completed run leaves it
    return folder


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes (to prove a folder was left untouched)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


EXPECTED_UPLOAD = {
    "corgi.safetensors", "corgi.json", "corgi.preview.png", "embeddings/mycorgi.safetensors", "training_config.toml",
    "README.md", "samples/index.json", "samples/step000000_00.png", "samples/step000250_00.png", "samples/step000250_01.png",
}
