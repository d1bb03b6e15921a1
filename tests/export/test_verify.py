"""verify_file: good files pass; each broken file fails exactly the checklist item that describes it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

from textboost_ext.export import build_metadata, spec_from_text_encoders, verify_file
from textboost_ext.export.checklist import FAMILY_SPECS
from textboost_ext.export.hashes import kohya_hashes
from textboost_ext.export.safetensors_io import read_header

ATTN = ("self_attn_q_proj", "self_attn_k_proj", "self_attn_v_proj", "self_attn_out_proj")


def tiny_spec(pipe: Any, family: str) -> Any:
    te2 = getattr(pipe, "text_encoder_2", None)
    return spec_from_text_encoders(family, [pipe.text_encoder] + ([te2] if te2 is not None else []))


def write_raw(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str], rehash: bool = True) -> Path:
    """Write without any checks (what a careless exporter would produce), with correct hashes by default."""
    meta = dict(metadata)
    if rehash:
        meta = {k: v for k, v in metadata.items() if not k.startswith("sshs_")}
        meta["sshs_model_hash"], meta["sshs_legacy_hash"] = kohya_hashes(tensors, meta)
    save_file(tensors, str(path), metadata=meta)
    return path


def _good_file(export_lora: Callable[..., Any], family: str) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    path, _, _ = export_lora(family, name="src")
    meta, _ = read_header(path)
    return load_file(str(path)), meta


def _drop_modules(sd: dict, modules: tuple[str, ...]) -> dict:
    return {k: v for k, v in sd.items() if not any(f"_{m}." in k for m in modules)}


def _mixed_ranks(sd: dict) -> dict:
    out = dict(sd)
    name = "lora_te_text_model_encoder_layers_0_mlp_fc1"
    out[f"{name}.lora_down.weight"] = torch.cat([sd[f"{name}.lora_down.weight"]] * 2)
    out[f"{name}.lora_up.weight"] = torch.cat([sd[f"{name}.lora_up.weight"]] * 2, dim=1)
    return out


def _nan(sd: dict) -> dict:
    out = dict(sd)
    key = "lora_te_text_model_encoder_layers_1_self_attn_k_proj.lora_down.weight"
    out[key] = sd[key].clone()
    out[key][0, 0] = float("nan")
    return out


CASES: dict[str, tuple[str, Callable[[dict, dict], tuple[dict, dict]], set[str]]] = {
    # name: (family, mutate(tensors, metadata), the checks that must fail)
    "qkv-only": ("sd2", lambda t, m: (_drop_modules(t, ("self_attn_out_proj",)), m), {"attention q/k/v/out together"}),
    "qv-only": ("sd2", lambda t, m: (_drop_modules(t, ("self_attn_k_proj", "self_attn_out_proj")), m), {"attention q/k/v/out together"}),
    "lora_te_ on sdxl": ("sdxl", lambda t, m: ({k.replace("lora_te1_", "lora_te_"): v for k, v in t.items()}, m), {"prefix fits family"}),
    "lora_te1_ on sd2": ("sd2", lambda t, m: ({k.replace("lora_te_", "lora_te1_"): v for k, v in t.items()}, m), {"prefix fits family"}),
    "transformers-5 names": ("sd1", lambda t, m: ({k.replace("lora_te_text_model_", "lora_te_"): v for k, v in t.items()}, m),
                             {"key names"}),
    "mixed ranks": ("sd1", lambda t, m: (_mixed_ranks(t), m), {"one rank"}),
    "non-scalar alpha": ("sd1", lambda t, m: ({**t, "lora_te_text_model_encoder_layers_0_mlp_fc2.alpha": torch.tensor([2.0])}, m),
                         {"alpha scalar"}),
    "missing alpha": ("sd1", lambda t, m: ({k: v for k, v in t.items() if k != "lora_te_text_model_encoder_layers_0_mlp_fc2.alpha"}, m),
                      {"down/up/alpha per module"}),
    "NaN": ("sd1", lambda t, m: (_nan(t), m), {"finite values"}),
    "bad ss_output_name": ("sd1", lambda t, m: (t, {**m, "ss_output_name": "something_else"}), {"ss_output_name = stem"}),
    "version keys disagree": ("sdxl", lambda t, m: (t, {**m, "modelspec.architecture": "stable-diffusion-v1/lora"}),
                              {"version keys"}),
    "layer out of range": ("sd1", lambda t, m: ({k.replace("layers_1_", "layers_12_"): v for k, v in t.items()}, m),
                           {"layer indices"}),
    "lora_adapter_metadata": ("sd1", lambda t, m: (t, {**m, "lora_adapter_metadata": "{}"}), {"no diffusers metadata key"}),
    "bundle in main file": ("sd1", lambda t, m: ({**t, "bundle_emb.mytok.string_to_param.*": torch.zeros(1, 32)}, m), {"bundle keys"}),
    "unknown key": ("sd1", lambda t, m: ({**t, "lora_unet_down_blocks_0.alpha": torch.tensor(1.0)}, m), {"key names"}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_broken_file_fails_its_item(case: str, tmp_path: Path, export_lora: Callable[..., Any], tiny_pipe: Callable[[str], Any]) -> None:
    family, mutate, expected = CASES[case]
    tensors, meta = mutate(*_good_file(export_lora, family))
    path = write_raw(tmp_path / "lora.safetensors", tensors, {**meta, "ss_output_name": meta["ss_output_name"].replace("src", "lora")})
    pipe = tiny_pipe(family)
    report = verify_file(path, spec=tiny_spec(pipe, "sd2" if family == "sd2" else family))
    failed = {c.name for c in report.failures()}
    assert not report.ok
    assert failed == expected, report.format_table()
    table = report.format_table()
    assert all(f"FAIL  {name}" in table for name in expected) and "FAILED:" in table


def test_good_file_passes_static_checks(export_lora: Callable[..., Any], tiny_pipe: Callable[[str], Any]) -> None:
    path, _, _ = export_lora("sdxl")
    report = verify_file(path, spec=tiny_spec(tiny_pipe("sdxl"), "sdxl"))
    assert report.ok and report.family == "sdxl" and report.kind == "lora", report.format_table()
    assert report.format_table().splitlines()[-1].startswith("OK: all")


def test_tiny_dims_fail_against_the_real_family_table(export_lora: Callable[..., Any]) -> None:
    path, _, _ = export_lora("sd1")
    report = verify_file(path)
    assert {c.name for c in report.failures()} == {"shapes"}
    assert "expected (4, 768)" in next(c.detail for c in report.failures())


def test_stale_hash_fails(tmp_path: Path, export_lora: Callable[..., Any], tiny_pipe: Callable[[str], Any]) -> None:
    tensors, meta = _good_file(export_lora, "sd1")
    tensors["lora_te_text_model_encoder_layers_0_mlp_fc1.lora_up.weight"] *= 2  # edited after hashing
    path = write_raw(tmp_path / "src.safetensors", tensors, meta, rehash=False)
    report = verify_file(path, spec=tiny_spec(tiny_pipe("sd1"), "sd1"))
    assert {c.name for c in report.failures()} == {"sshs hashes"}
    # hashes are optional: absent is fine
    path = write_raw(tmp_path / "src.safetensors", tensors, {k: v for k, v in meta.items() if not k.startswith("sshs_")}, rehash=False)
    assert verify_file(path, spec=tiny_spec(tiny_pipe("sd1"), "sd1")).ok


def test_arch_mismatch_is_a_failure(export_lora: Callable[..., Any], tiny_pipe: Callable[[str], Any]) -> None:
    path, _, _ = export_lora("sd2")
    report = verify_file(path, arch="sd1", spec=tiny_spec(tiny_pipe("sd2"), "sd2"))
    family_check = next(c for c in report.checks if c.name == "family")
    assert not family_check.ok and "--arch says sd1" in family_check.detail and "file says sd2" in family_check.detail
    assert verify_file(path, arch="sd2", spec=tiny_spec(tiny_pipe("sd2"), "sd2")).ok


def test_oracle_not_run_on_a_statically_broken_file(tmp_path: Path, export_lora: Callable[..., Any], tiny_pipe: Callable[[str], Any]) -> None:
    tensors, meta = _good_file(export_lora, "sd2")
    path = write_raw(tmp_path / "src.safetensors", _drop_modules(tensors, ("self_attn_out_proj",)), meta)
    report = verify_file(path, pipeline=tiny_pipe("sd2"))
    assert {c.name for c in report.failures()} == {"attention q/k/v/out together", "diffusers oracle"}


def test_not_a_safetensors_file(tmp_path: Path) -> None:
    path = tmp_path / "x.safetensors"
    path.write_bytes(b"garbage!garbage")
    report = verify_file(path)
    assert not report.ok and report.failures()[0].name == "loads with safetensors"


def test_family_unknown_without_metadata(tmp_path: Path, export_lora: Callable[..., Any]) -> None:
    tensors, _ = _good_file(export_lora, "sd1")
    path = write_raw(tmp_path / "src.safetensors", tensors, {}, rehash=False)
    report = verify_file(path)
    assert [c.name for c in report.failures()] == ["family"] and "--arch" in report.failures()[0].detail


def test_real_dims_file_passes_without_a_base(tmp_path: Path) -> None:
    """A full-size SD 1.x layout (rank 4) against the lora-format.md table, no base model needed."""
    from textboost_ext.export import write_lora_file
    from textboost_ext.export.metadata import TrainingInfo

    spec = FAMILY_SPECS["sd1"].encoders[0]
    g = torch.Generator().manual_seed(0)
    sd = {}
    for i in range(spec.n_layers):
        for module, (n_in, n_out) in {**{m: (768, 768) for m in ATTN}, "mlp_fc1": (768, 3072), "mlp_fc2": (3072, 768)}.items():
            name = f"lora_te_text_model_encoder_layers_{i}_{module}"
            sd[f"{name}.lora_down.weight"] = torch.randn(4, n_in, generator=g) * 0.25
            sd[f"{name}.lora_up.weight"] = torch.randn(n_out, 4, generator=g) * 0.01
            sd[f"{name}.alpha"] = torch.tensor(4.0)
    path = tmp_path / "full.safetensors"
    write_lora_file(path, sd, build_metadata(TrainingInfo(output_name="full", family="sd1", network_dim=4, network_alpha=4.0)))
    assert path.stat().st_size > 0x110000  # the legacy hash window holds tensor data
    report = verify_file(path, arch="sd1")
    assert report.ok, report.format_table()


def test_base_of_another_family(export_lora: Callable[..., Any], tiny_pipe: Callable[[str], Any]) -> None:
    path, _, _ = export_lora("sdxl")
    report = verify_file(path, pipeline=tiny_pipe("sd1"))
    check = next(c for c in report.checks if c.name == "family")
    assert not check.ok and "file says sdxl" in check.detail and "base says sd1/sd2" in check.detail
    assert not any(c.name.startswith("diffusers") for c in report.checks)  # no oracle on a base of another family
    path, _, _ = export_lora("sd1", name="other")
    report = verify_file(path, pipeline=tiny_pipe("sd1"))
    assert report.ok and report.family == "sd1", report.format_table()
