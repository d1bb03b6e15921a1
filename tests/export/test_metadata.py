"""kohya ss_* / ss_textboost_* / modelspec.* metadata: all strings, version keys agree per family."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from textboost_ext.export.metadata_checks import check_version_keys, family_from_metadata
from textboost_ext.export.metadata import TrainingInfo, build_metadata

KOHYA_KEYS = {
    "ss_network_module", "ss_network_dim", "ss_network_alpha", "ss_network_args", "ss_base_model_version", "ss_v2",
    "ss_output_name", "ss_sd_model_name", "ss_training_started_at", "ss_training_finished_at", "ss_steps", "ss_seed",
    "ss_learning_rate", "ss_text_encoder_lr", "ss_optimizer", "ss_num_train_images", "ss_resolution",
    "ss_mixed_precision", "ss_tag_frequency", "ss_dataset_dirs", "ss_training_comment",
}
MODELSPEC_KEYS = {"modelspec.sai_model_spec", "modelspec.architecture", "modelspec.implementation", "modelspec.title",
                  "modelspec.resolution", "modelspec.prediction_type", "modelspec.date", "modelspec.trigger_phrase"}
EXPECTED = {
    # tiny family: (ss_base_model_version, ss_v2, architecture, implementation, prediction, resolution)
    "sd1": ("sd_v1", "False", "stable-diffusion-v1/lora", "diffusers", "epsilon", "512x512"),
    "sd2": ("sd_v2", "True", "stable-diffusion-v2-512/lora", "diffusers", "epsilon", "512x512"),
    "sd2v": ("sd_v2_v", "True", "stable-diffusion-v2-768-v/lora", "diffusers", "v", "768x768"),
    "sdxl": ("sdxl_base_v1-0", "False", "stable-diffusion-xl-v1-base/lora", "https://github.com/Stability-AI/generative-models",
             "epsilon", "1024x1024"),
}


@pytest.mark.parametrize("tiny_family", sorted(EXPECTED))
def test_metadata_per_family(tiny_family: str, training_info: Callable[..., Any]) -> None:
    info = training_info(tiny_family, "mylora")
    meta = build_metadata(info)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items())
    assert KOHYA_KEYS | MODELSPEC_KEYS <= set(meta)
    version, v2, arch, impl, prediction, resolution = EXPECTED[tiny_family]
    assert meta["ss_base_model_version"] == version and meta["ss_v2"] == v2
    assert meta["modelspec.architecture"] == arch and meta["modelspec.implementation"] == impl
    assert meta["modelspec.prediction_type"] == prediction and meta["modelspec.resolution"] == resolution
    assert meta["modelspec.sai_model_spec"] == "1.0.0"
    assert meta["ss_network_module"] == "networks.lora"
    assert meta["ss_output_name"] == "mylora" and meta["modelspec.title"] == "mylora"
    assert meta["ss_network_dim"] == "4" and meta["ss_network_alpha"] == "2.0"
    assert json.loads(meta["ss_network_args"]) == {"targets": "q,k,v,out,fc1,fc2"}
    assert json.loads(meta["ss_tag_frequency"]) == {"img": {"mytok dog": 1}}
    assert json.loads(meta["ss_dataset_dirs"]) == {"img": {"n_repeats": 1, "img_count": 1}}
    assert meta["ss_optimizer"] == "bitsandbytes.optim.AdamW8bit(weight_decay=0.01)"
    assert meta["ss_training_comment"] == "None" and meta["ss_seed"] == "42"
    assert meta["modelspec.date"] == "2023-11-14T22:15:00+00:00"  # from training_finished_at, UTC
    assert meta["modelspec.trigger_phrase"] == "mytok"
    assert meta["ss_textboost_kp_weight"] == "0.1" and meta["ss_textboost_augment"] == "True"
    assert "lora_adapter_metadata" not in meta
    # the checklist's reading of these keys agrees
    family = info.family
    assert set(family_from_metadata(meta).values()) == {family}
    assert check_version_keys(meta, family).ok


def test_a1111_version_detection_rules(training_info: Callable[..., Any]) -> None:
    """A1111: SDXL iff ss_base_model_version starts with sdxl_, SD2 iff ss_v2 == "True", else SD1."""
    def a1111(meta: dict[str, str]) -> str:
        if meta.get("ss_base_model_version", "").startswith("sdxl_"):
            return "SDXL"
        return "SD2" if meta.get("ss_v2") == "True" else "SD1"

    assert [a1111(build_metadata(training_info(f, "x"))) for f in ("sd1", "sd2", "sd2v", "sdxl")] == ["SD1", "SD2", "SD2", "SDXL"]


def test_minimal_info_has_every_key() -> None:
    meta = build_metadata(TrainingInfo(output_name="x", family="sd1"))
    assert KOHYA_KEYS <= set(meta) and "modelspec.trigger_phrase" not in meta
    assert all(isinstance(v, str) for v in meta.values())


@pytest.mark.parametrize("family, version, architecture", [
    ("sd1", "sd_v1", "stable-diffusion-v1/lora"), ("sdxl", "sdxl_base_v1-0", "stable-diffusion-xl-v1-base/lora"),
])
def test_v_prediction_outside_sd2_says_so_in_the_model_spec(family: str, version: str, architecture: str) -> None:
    """As kohya writes a v-prediction SD 1.x/SDXL LoRA: the A1111 version keys stay the family's (they have no
    v variant outside SD 2), the SAI model spec's prediction_type says "v"."""
    meta = build_metadata(TrainingInfo(output_name="x", family=family, v_prediction=True))
    assert (meta["ss_base_model_version"], meta["ss_v2"]) == (version, "False")
    assert (meta["modelspec.architecture"], meta["modelspec.prediction_type"]) == (architecture, "v")
    assert check_version_keys(meta, family).ok


@pytest.mark.parametrize("kwargs, match", [
    (dict(family="sd3"), "unknown base family"),
    (dict(output_name="a/b"), "file stem"),
    (dict(network_dim=0), "network_dim"),
    (dict(textboost={"Bad-Key": 1}), "Bad-Key"),
])
def test_bad_info_is_rejected(kwargs: dict[str, Any], match: str) -> None:
    fields: dict[str, Any] = dict(output_name="x", family="sd1")
    fields.update(kwargs)
    with pytest.raises(ValueError, match=match):
        build_metadata(TrainingInfo(**fields))


def test_version_key_disagreement_is_reported(training_info: Callable[..., Any]) -> None:
    meta = build_metadata(training_info("sd1", "x"))
    meta["ss_v2"] = "True"
    result = check_version_keys(meta, "sd1")
    assert not result.ok and "ss_v2" in result.detail
    meta = build_metadata(training_info("sd2v", "x"))
    meta["modelspec.architecture"] = "stable-diffusion-v2-512/lora"
    assert not check_version_keys(meta, "sd2").ok
