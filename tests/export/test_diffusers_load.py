"""Checklist item 8 on every family: diffusers loads our file and computes the trained encoder's outputs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from textboost_ext.export.oracle import ORACLE_ADAPTER, diffusers_oracle, encode, pipeline_text_encoders, prompt_ids
from textboost_ext.export.verify import verify_file

TOLERANCE = {torch.float32: 1e-5, torch.float16: 1e-3}


def _outputs(encoders: list[Any], ids: list[torch.Tensor]) -> list[torch.Tensor]:
    return [t for enc, i in zip(encoders, ids) for t in encode(enc, i)]


def _max_diff(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return max(float((x - y).abs().max()) for x, y in zip(a, b))


@pytest.mark.parametrize("family", ["sd1", "sd2", "sdxl"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_diffusers_equals_trained_encoder(family: str, dtype: torch.dtype, export_lora: Callable[..., Any],
                                          tiny_pipe: Callable[[str], Any]) -> None:
    pipe = tiny_pipe(family)
    path, network, adapted = export_lora(family, dtype=dtype)
    entries = pipeline_text_encoders(pipe)
    ids = [prompt_ids(tok, enc) for _, enc, tok in entries]
    base_encoders = [enc for _, enc, _ in entries]
    base = _outputs(base_encoders, ids)
    trained = _outputs(adapted, ids)
    network.set_multiplier(0.5)
    trained_half = _outputs(adapted, ids)
    network.set_multiplier(1.0)
    assert _max_diff(trained, base) > 1e-2, "the LoRA must change the outputs for this test to mean anything"
    pipe.load_lora_weights(str(path.parent), weight_name=path.name, adapter_name="tb_test")
    try:
        assert _max_diff(_outputs(base_encoders, ids), trained) <= TOLERANCE[dtype]
        pipe.set_adapters(["tb_test"], [0.5])
        assert _max_diff(_outputs(base_encoders, ids), trained_half) <= TOLERANCE[dtype]
    finally:
        pipe.unload_lora_weights()
    assert _max_diff(_outputs(base_encoders, ids), base) == 0.0


@pytest.mark.parametrize("family", ["sd1", "sd2v", "sdxl"])
def test_verify_with_pipeline_runs_the_oracle(family: str, export_lora: Callable[..., Any],
                                              tiny_pipe: Callable[[str], Any]) -> None:
    path, _, _ = export_lora(family, dtype=torch.float16)
    report = verify_file(path, pipeline=tiny_pipe(family))
    assert report.ok, report.format_table()
    names = [c.name for c in report.checks]
    for expected in ("diffusers: every module loaded", "diffusers: output = merged weights",
                     "diffusers: set_adapters(0.5) = half merge", "diffusers: unload restores base", "sshs hashes"):
        assert expected in names
    assert not any(ORACLE_ADAPTER in getattr(m, "lora_A", {}) for _, e, _ in pipeline_text_encoders(tiny_pipe(family))
                   for m in e.modules())


@pytest.mark.filterwarnings("ignore:The following alpha_pattern keys:RuntimeWarning")  # the very bug we expect
def test_oracle_catches_a_file_diffusers_reads_differently(tmp_path: Any, export_lora: Callable[..., Any],
                                                           tiny_pipe: Callable[[str], Any]) -> None:
    """Two alphas in one file: the static check fails, and the oracle shows the output is really wrong."""
    from safetensors.torch import load_file, save_file

    path, _, _ = export_lora("sd1")
    tensors = load_file(str(path))
    tensors["lora_te_text_model_encoder_layers_1_mlp_fc2.alpha"] = torch.tensor(16.0)
    bad = tmp_path / "twoalpha.safetensors"
    save_file(tensors, str(bad))
    results = {c.name: c for c in diffusers_oracle(tiny_pipe("sd1"), bad)}
    assert not results["diffusers: output = merged weights"].ok
    assert results["diffusers: unload restores base"].ok
