"""Standalone embedding files and the optional A1111 bundle."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from textboost_ext.export import build_metadata, bundle_embedding_keys, spec_from_text_encoders, verify_file
from textboost_ext.export.embeddings import bundled_path, write_bundled_lora, write_embedding_file
from textboost_ext.export.safetensors_io import read_header


def test_sd1_embedding_file(tmp_path: Path) -> None:
    vectors = torch.randn(2, 32)
    path = write_embedding_file(tmp_path / "mytok.safetensors", {"emb_params": vectors}, "mytok", "sd1")
    loaded = load_file(str(path))
    assert set(loaded) == {"emb_params"} and torch.equal(loaded["emb_params"], vectors)
    meta, _ = read_header(path)
    assert meta["modelspec.architecture"] == "stable-diffusion-v1/textual-inversion"
    assert meta["modelspec.title"] == "mytok" and not any(k.startswith("ss_") for k in meta)


def test_sdxl_embedding_file_and_one_d_vectors(tmp_path: Path) -> None:
    path = write_embedding_file(tmp_path / "mytok.safetensors", {"clip_l": torch.randn(32), "clip_g": torch.randn(48)},
                                "mytok", "sdxl", dtype=torch.float16)
    loaded = load_file(str(path))
    assert loaded["clip_l"].shape == (1, 32) and loaded["clip_g"].shape == (1, 48) and loaded["clip_l"].dtype == torch.float16
    assert read_header(path)[0]["modelspec.architecture"] == "stable-diffusion-xl-v1-base/textual-inversion"


@pytest.mark.parametrize("path_name, token, vectors, match", [
    ("other.safetensors", "mytok", {"emb_params": torch.zeros(1, 32)}, "must be named mytok.safetensors"),
    ("mytok.pt", "mytok", {"emb_params": torch.zeros(1, 32)}, "must be named mytok.safetensors"),
    ("<mytok>.safetensors", "<mytok>", {"emb_params": torch.zeros(1, 32)}, "letters and digits"),
    ("dog.safetensors", "dog", {"emb_params": torch.zeros(1, 32)}, "existing CLIP word"),
    ("mytok.safetensors", "mytok", {"clip_l": torch.zeros(1, 32)}, "exactly the keys"),
    ("mytok.safetensors", "mytok", {"emb_params": torch.zeros(1, 2, 32)}, r"\[n_vectors, dim\]"),
    ("mytok.safetensors", "mytok", {"emb_params": torch.full((1, 32), float("nan"))}, "NaN"),
])
def test_embedding_refusals(tmp_path: Path, path_name: str, token: str, vectors: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        write_embedding_file(tmp_path / path_name, vectors, token, "sd1")
    assert list(tmp_path.iterdir()) == []


def test_sdxl_row_counts_must_agree(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="same number of vectors"):
        write_embedding_file(tmp_path / "mytok.safetensors", {"clip_l": torch.zeros(2, 32), "clip_g": torch.zeros(1, 48)}, "mytok", "sdxl")


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
def test_verify_embedding_file(family: str, tmp_path: Path, tiny_pipe: Callable[[str], Any]) -> None:
    pipe = tiny_pipe(family)
    vectors = {"emb_params": torch.randn(2, 32)} if family == "sd1" else {"clip_l": torch.randn(2, 32), "clip_g": torch.randn(2, 48)}
    path = write_embedding_file(tmp_path / "mytok.safetensors", vectors, "mytok", family)
    encoders = [pipe.text_encoder] + ([pipe.text_encoder_2] if family == "sdxl" else [])
    report = verify_file(path, spec=spec_from_text_encoders(family, encoders))
    assert report.ok and report.kind == "embedding", report.format_table()
    renamed = path.rename(tmp_path / "dog.safetensors")
    failed = {c.name for c in verify_file(renamed, spec=spec_from_text_encoders(family, encoders)).failures()}
    assert failed == {"embedding name"}


def test_diffusers_loads_our_embedding(tmp_path: Path, tiny_model_dir: Callable[[str], Path]) -> None:
    from diffusers import StableDiffusionPipeline

    # a private pipeline: load_textual_inversion resizes the embedding table
    pipe = StableDiffusionPipeline.from_pretrained(str(tiny_model_dir("sd1")), local_files_only=True)
    vectors = torch.randn(2, 32)
    path = write_embedding_file(tmp_path / "mytok.safetensors", {"emb_params": vectors}, "mytok", "sd1")
    pipe.load_textual_inversion(str(path), token="mytok")
    ids = pipe.tokenizer.convert_tokens_to_ids(["mytok", "mytok_1"])
    table = pipe.text_encoder.get_input_embeddings().weight
    assert torch.equal(table[ids].detach(), vectors)


def test_bundle_keys() -> None:
    sd1 = bundle_embedding_keys("mytok", {"emb_params": torch.zeros(2, 32)}, "sd1")
    assert list(sd1) == ["bundle_emb.mytok.string_to_param.*"] and sd1["bundle_emb.mytok.string_to_param.*"].shape == (2, 32)
    xl = bundle_embedding_keys("mytok", {"clip_l": torch.zeros(1, 32), "clip_g": torch.zeros(1, 48)}, "sdxl")
    assert set(xl) == {"bundle_emb.mytok.clip_l", "bundle_emb.mytok.clip_g"}
    with pytest.raises(ValueError, match="letters and digits"):
        bundle_embedding_keys("my.tok", {"emb_params": torch.zeros(1, 32)}, "sd1")


@pytest.mark.parametrize("family", ["sd1", "sdxl"])
def test_bundled_variant(family: str, tmp_path: Path, trained_lora: Callable[..., Any], training_info: Callable[..., Any],
                         tiny_pipe: Callable[[str], Any]) -> None:
    pipe = tiny_pipe(family)
    network, _ = trained_lora(pipe)
    meta = build_metadata(training_info(family, "mylora", network_alpha=network.alpha))
    main = tmp_path / "mylora.safetensors"
    from textboost_ext.export import write_lora_file

    write_lora_file(main, network.kohya_state_dict(), meta)
    vectors = {"emb_params": torch.randn(1, 32)} if family == "sd1" else {"clip_l": torch.randn(1, 32), "clip_g": torch.randn(1, 48)}
    out = write_bundled_lora(main, network.kohya_state_dict(), {"mytok": vectors}, meta)
    assert out == bundled_path(main) == tmp_path / "mylora_a1111_bundle.safetensors"
    assert not any(k.startswith("bundle_emb") for k in load_file(str(main)))
    bundle = load_file(str(out))
    assert any(k.startswith("bundle_emb.mytok.") for k in bundle)
    assert read_header(out)[0]["ss_output_name"] == "mylora_a1111_bundle"
    encoders = [pipe.text_encoder] + ([pipe.text_encoder_2] if family == "sdxl" else [])
    report = verify_file(out, pipeline=pipe)
    assert report.ok, report.format_table()
    assert "not applicable" in next(c.detail for c in report.checks if c.name == "diffusers oracle")
    # the same tensors under the main file's name are rejected (bundle keys only in the *_a1111_bundle file)
    copy = tmp_path / "mylora_a1111_bundle_copy.safetensors"
    copy.write_bytes(out.read_bytes())
    failed = {c.name for c in verify_file(copy, spec=spec_from_text_encoders(family, encoders)).failures()}
    assert "bundle keys" in failed
    # a bundled name must be a usable embedding name too
    tensors = load_file(str(out))
    renamed = {k.replace("bundle_emb.mytok.", "bundle_emb.dog."): v for k, v in tensors.items()}
    from safetensors.torch import save_file

    bad = tmp_path / "bad_a1111_bundle.safetensors"
    save_file(renamed, str(bad), metadata={**read_header(out)[0], "ss_output_name": "bad_a1111_bundle"})
    failed = {c.name for c in verify_file(bad, spec=spec_from_text_encoders(family, encoders)).failures()}
    assert failed == {"embedding name"}
