"""sd-scripts writes alpha in the save dtype; the adapter rewrites it in float32, equal to ss_network_alpha."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from textboost_ext.network import TextEncoderLoRA


def test_a_bf16_save_gets_float32_alphas_equal_to_the_metadata(tiny, tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    from textboost_ext.export.hashes import kohya_hashes
    from textboost_ext.export.metadata import TrainingInfo, build_metadata
    from textboost_ext.export.verify import verify_file
    from textboost_ext.kohya.lora_network import restore_float32_alphas

    # what sd-scripts' save_weights writes with --save_precision bf16 and --network_alpha 0.3
    state = {k: v.to(torch.bfloat16) for k, v in TextEncoderLoRA([tiny.text_encoder], 4, 0.3).kohya_state_dict().items()}
    metadata = build_metadata(TrainingInfo(output_name="tb", family="sd1", network_dim=4, network_alpha=0.3))
    metadata["sshs_model_hash"], metadata["sshs_legacy_hash"] = kohya_hashes(state, metadata)
    path = tmp_path / "tb.safetensors"
    save_file(state, str(path), metadata)
    assert float(state[next(k for k in state if k.endswith(".alpha"))].float()) == 0.30078125
    assert not verify_file(path, arch="sd1", spec=_spec_of(tiny)).ok  # alpha 0.26 % off ss_network_alpha

    assert restore_float32_alphas(path) is True
    alphas = {v for k, v in load_file(str(path)).items() if k.endswith(".alpha")}
    assert {(a.dtype, float(a)) for a in alphas} == {(torch.float32, float(torch.tensor(0.3)))}
    report = verify_file(path, arch="sd1", spec=_spec_of(tiny))
    assert report.ok, report.format_table()  # exact alpha, recomputed sshs hashes
    assert restore_float32_alphas(path) is False  # nothing left to do


def _spec_of(tiny: Any) -> Any:
    from textboost_ext.export.checklist import spec_from_text_encoders

    return spec_from_text_encoders("sd1", [tiny.text_encoder])
