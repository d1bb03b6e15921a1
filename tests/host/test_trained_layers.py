"""LoRA only on layers whose output reaches the conditioning: no all-zero module is exported, the metadata
says which layers were trained, and verify warns about any all-zero module it finds."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from textboost_ext.config import TrainConfig
from textboost_ext.export.metadata import LORA_LAYERS_KEY
from textboost_ext.export.safetensors_io import read_header
from textboost_ext.export.verify import verify_file
from textboost_ext.host.trainer import HostTrainer


@pytest.mark.parametrize(("family", "overrides", "layers"), [
    ("sdxl", {}, {"lora_te1": "0", "lora_te2": "0-1"}),  # tiny SDXL: 2 + 2 layers; encoder 1 read at layer 0
    ("sd1", {"clip_skip": 2}, {"lora_te": "0"}),  # tiny SD 1.x: 2 layers, clip_skip 2 reads layer 0's output
    ("sd1", {}, {"lora_te": "0-1"}),
])
def test_every_exported_module_trained_and_the_layers_are_recorded(make_config: Callable[..., TrainConfig], family: str,
                                                                    overrides: dict, layers: dict[str, str]) -> None:
    result = HostTrainer(make_config(family, **overrides)).train()
    tensors = load_file(str(result.lora_path))
    ups = {k: v for k, v in tensors.items() if k.endswith(".lora_up.weight")}
    assert ups and all(bool(v.abs().sum()) for v in ups.values()), [k for k, v in ups.items() if not bool(v.abs().sum())]
    exported = {k.split("_text_model")[0] + ":" + k.split("_layers_")[1].split("_")[0] for k in ups}
    assert exported == {f"{p}:{i}" for p, span in layers.items() for i in range(int(span[0]), int(span[-1]) + 1)}
    assert json.loads(read_header(result.lora_path)[0][LORA_LAYERS_KEY]) == layers
    report = verify_file(result.lora_path, arch="sdxl" if family == "sdxl" else "sd1", base=make_config(family).pretrained_model_name_or_path)
    assert report.ok and not report.warnings(), report.format_table()


def test_verify_warns_naming_an_all_zero_module(make_config: Callable[..., TrainConfig], tmp_path: Path) -> None:
    result = HostTrainer(make_config("sd1")).train()
    tensors = load_file(str(result.lora_path))
    dead = "lora_te_text_model_encoder_layers_1_mlp_fc2"
    tensors[f"{dead}.lora_up.weight"] = torch.zeros_like(tensors[f"{dead}.lora_up.weight"])
    metadata = {k: v for k, v in read_header(result.lora_path)[0].items() if not k.startswith("sshs_")}
    path = tmp_path / "adapter.safetensors"
    save_file(tensors, str(path), metadata)
    report = verify_file(path, arch="sd1", base=make_config("sd1").pretrained_model_name_or_path)
    assert report.ok, report.format_table()  # a warning, not a failure: every client still loads the file
    (warning,) = report.warnings()
    assert dead in warning.detail and "1 module(s) are all zero" in warning.detail
    assert "WARN  no all-zero modules" in report.format_table() and "(1 warning(s)" in report.format_table()
