"""Fixtures for the export tests: tiny diffusers pipelines and "trained" (random-up) LoRAs on them."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

# tiny family -> (export family, v-prediction)
FAMILY_OF = {"sd1": ("sd1", False), "sd2": ("sd2", False), "sd2v": ("sd2", True), "sdxl": ("sdxl", False)}


@pytest.fixture(scope="session")
def tiny_pipe(tiny_model_dir: Callable[[str], Path]) -> Callable[[str], Any]:
    """``tiny_pipe("sd1"|"sd2"|"sd2v"|"sdxl")`` -> a diffusers pipeline loaded from the saved tiny model (cached)."""
    cache: dict[str, Any] = {}

    def get(family: str) -> Any:
        if family not in cache:
            from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline
            from diffusers.utils import logging as diffusers_logging

            diffusers_logging.set_verbosity_error()
            diffusers_logging.disable_progress_bar()
            cls = StableDiffusionXLPipeline if family == "sdxl" else StableDiffusionPipeline
            pipe = cls.from_pretrained(str(tiny_model_dir(family)), local_files_only=True)
            pipe.set_progress_bar_config(disable=True)
            cache[family] = pipe
        return cache[family]

    return get


def pipe_encoders(pipe: Any) -> list[Any]:
    te2 = getattr(pipe, "text_encoder_2", None)
    return [pipe.text_encoder] + ([te2] if te2 is not None else [])


@pytest.fixture(scope="session")
def trained_lora() -> Callable[..., tuple[Any, list[Any]]]:
    """``trained_lora(pipe, rank=4, alpha=2.0, seed=0, targets=...)`` -> (TextEncoderLoRA, adapted encoder copies).

    lora_up is drawn at random (std 0.05) to stand in for training, so the LoRA changes the outputs.
    """
    from textboost_ext.network import TextEncoderLoRA

    def make(pipe: Any, rank: int = 4, alpha: float = 2.0, seed: int = 0,
             targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")) -> tuple[Any, list[Any]]:
        encoders = [copy.deepcopy(e) for e in pipe_encoders(pipe)]
        torch.manual_seed(seed)
        network = TextEncoderLoRA(encoders, rank=rank, alpha=alpha, targets=targets)
        with torch.no_grad():
            for param in network.lora_up.parameters():
                param.normal_(0.0, 0.05)
        return network, encoders

    return make


@pytest.fixture(scope="session")
def training_info() -> Callable[..., Any]:
    """``training_info(tiny_family, output_name, **overrides)`` -> TrainingInfo for that family."""
    from textboost_ext.export.metadata import TrainingInfo

    def make(tiny_family: str, output_name: str, **overrides: Any) -> Any:
        family, v_prediction = FAMILY_OF[tiny_family]
        fields: dict[str, Any] = dict(
            output_name=output_name, family=family, v_prediction=v_prediction,
            resolution=(1024, 1024) if family == "sdxl" else ((768, 768) if v_prediction else (512, 512)),
            network_dim=4, network_alpha=2.0, network_args={"targets": "q,k,v,out,fc1,fc2"},
            sd_model_name="tiny", training_started_at=1_700_000_000.0, training_finished_at=1_700_000_100.5,
            steps=250, seed=42, learning_rate=5e-5, text_encoder_lr=5e-5,
            optimizer="bitsandbytes.optim.AdamW8bit(weight_decay=0.01)", num_train_images=1, mixed_precision="fp16",
            tag_frequency={"img": {"mytok dog": 1}}, dataset_dirs={"img": {"n_repeats": 1, "img_count": 1}},
            training_comment=None, trigger_phrase="mytok", textboost={"kp_weight": 0.1, "augment": True},
        )
        fields.update(overrides)
        return TrainingInfo(**fields)

    return make


@pytest.fixture
def export_lora(tmp_path: Path, trained_lora: Callable[..., Any], training_info: Callable[..., Any],
                tiny_pipe: Callable[[str], Any]) -> Callable[..., tuple[Path, Any, list[Any]]]:
    """``export_lora(tiny_family, dtype=torch.float32, name="mylora")`` -> (file, network, adapted encoders)."""
    from textboost_ext.export import build_metadata, write_lora_file

    def make(tiny_family: str, dtype: torch.dtype = torch.float32, name: str = "mylora", **kwargs: Any) -> tuple[Path, Any, list[Any]]:
        network, encoders = trained_lora(tiny_pipe(tiny_family), **kwargs)
        path = tmp_path / f"{name}.safetensors"
        info = training_info(tiny_family, name, network_dim=network.rank, network_alpha=network.alpha)
        write_lora_file(path, network.kohya_state_dict(), build_metadata(info), save_dtype=dtype)
        return path, network, encoders

    return make


def _write_real_dims_sd1(path: Path, rank: int = 1) -> Path:
    """A full-size SD 1.x layout (12 layers, 768/3072) at rank 1: small, and valid without a base model."""
    from textboost_ext.export import build_metadata, write_lora_file
    from textboost_ext.export.metadata import TrainingInfo

    g = torch.Generator().manual_seed(0)
    sd = {}
    shapes = {"self_attn_q_proj": (768, 768), "self_attn_k_proj": (768, 768), "self_attn_v_proj": (768, 768),
              "self_attn_out_proj": (768, 768), "mlp_fc1": (768, 3072), "mlp_fc2": (3072, 768)}
    for i in range(12):
        for module, (n_in, n_out) in shapes.items():
            name = f"lora_te_text_model_encoder_layers_{i}_{module}"
            sd[f"{name}.lora_down.weight"] = torch.randn(rank, n_in, generator=g)
            sd[f"{name}.lora_up.weight"] = torch.randn(n_out, rank, generator=g) * 0.01
            sd[f"{name}.alpha"] = torch.tensor(1.0)
    write_lora_file(path, sd, build_metadata(TrainingInfo(output_name=path.stem, family="sd1", network_dim=rank, network_alpha=1.0)))
    return path


@pytest.fixture
def real_dims_sd1() -> Callable[..., Path]:
    """``real_dims_sd1(path, rank=1)`` writes a full-size SD 1.x LoRA file (no base model needed) and returns it."""
    return _write_real_dims_sd1
