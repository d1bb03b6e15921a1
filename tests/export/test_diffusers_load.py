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
    for expected in ("diffusers: every module loaded", "diffusers: hidden states = training",
                     "diffusers: set_adapters(0.5) = half merge", "diffusers: unload restores base", "sshs hashes"):
        assert expected in names
    assert not any(ORACLE_ADAPTER in getattr(m, "lora_A", {}) for _, e, _ in pipeline_text_encoders(tiny_pipe(family))
                   for m in e.modules())


def _diffusers_scaling(pipe: Any, path: Any, layer: int, module: str) -> float:
    """The LoRA scale diffusers gives one module of ``path`` (probe of diffusers' own reading, not the oracle's)."""
    pipe.load_lora_weights(str(path.parent), weight_name=path.name, adapter_name="tb_probe")
    try:
        root = getattr(pipe.text_encoder, "text_model", pipe.text_encoder)
        parent, child = module.split("_", 1)
        return float(getattr(getattr(root.encoder.layers[layer], parent), child).scaling["tb_probe"])
    finally:
        pipe.unload_lora_weights()


@pytest.mark.filterwarnings("ignore:The following alpha_pattern keys:RuntimeWarning")  # the very bug we expect
def test_oracle_catches_a_file_diffusers_reads_differently(tmp_path: Any, export_lora: Callable[..., Any],
                                                           tiny_pipe: Callable[[str], Any]) -> None:
    """Two alphas in one file: the static check fails, and the oracle tells whether diffusers' output is wrong.

    Recent diffusers (0.42) mis-scales a module whose alpha differs from the rest; older ones (0.32, used
    by sd-scripts' venv) read per-module alphas correctly. The oracle must agree with whichever is installed.
    """
    from safetensors.torch import load_file, save_file

    path, network, _ = export_lora("sd1")
    tensors = load_file(str(path))
    tensors["lora_te_text_model_encoder_layers_1_mlp_fc2.alpha"] = torch.tensor(16.0)
    bad = tmp_path / "twoalpha.safetensors"
    save_file(tensors, str(bad))
    static = {c.name: c for c in verify_file(bad, arch="sd1").checks}
    assert not static["one alpha"].ok and "16" in static["one alpha"].detail
    pipe = tiny_pipe("sd1")
    reads_per_module_alpha = _diffusers_scaling(pipe, bad, 1, "mlp_fc2") == pytest.approx(16.0 / network.rank)
    results = {c.name: c for c in diffusers_oracle(pipe, bad)}
    assert results["diffusers: unload restores base"].ok
    if reads_per_module_alpha:
        # this diffusers computes the right output: the oracle must not raise a false alarm
        assert results["diffusers: hidden states = training"].ok, results["diffusers: hidden states = training"].detail
        pytest.skip("installed diffusers reads per-module alphas correctly: no misread for the oracle to catch")
    assert not results["diffusers: hidden states = training"].ok
