"""verify loads a TextBoost adapter's embedding, prompts with the trigger, and compares hidden states AND the
SDXL pooled output with what training computed, the way the docs tell diffusers users to load it."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from textboost_ext.config import TrainConfig
from textboost_ext import diffusers_lines
from textboost_ext.export.verify import verify_file
from textboost_ext.extension import TextBoostExtension
from textboost_ext.host.trainer import HostTrainer


@pytest.fixture(scope="module")
def sdxl_adapter(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir) -> tuple:  # noqa: ANN001
    """A TextBoost adapter trained 2 steps on the tiny SDXL (its encoder 2 pools at the highest id, as released)."""
    from accelerate.state import AcceleratorState, GradientState
    from PIL import Image

    root = tmp_path_factory.mktemp("xl")
    (root / "data" / "1_mug").mkdir(parents=True)
    Image.new("RGB", (64, 64), (200, 40, 40)).save(root / "data" / "1_mug" / "mug.png")
    from textboost_ext.config import TextBoostConfig

    config = TrainConfig(pretrained_model_name_or_path=str(tiny_model_dir("sdxl")), sdxl=True, train_data_dir=str(root / "data"),
                         resolution=[64, 64], train_batch_size=2, max_train_steps=2, optimizer_type="AdamW", learning_rate=1e-2,
                         output_dir=str(root / "out"), output_name="xl", log_with="none", save_precision="float", seed=3,
                         textboost=TextBoostConfig(placeholder_token="tbmug", initializer="coffee mug", class_noun="mug",
                                                   emb_learning_rate=5e-2))
    try:
        result = HostTrainer(config, TextBoostExtension()).train()
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
    return result.lora_path, str(tiny_model_dir("sdxl"))


def test_sdxl_adapter_passes_with_the_documented_line(sdxl_adapter: tuple) -> None:
    lora, base = sdxl_adapter
    report = verify_file(lora, base=base)
    assert report.ok, report.format_table()
    checks = {c.name: c for c in report.checks}
    assert "embeddings/tbmug.safetensors" in checks["diffusers: embedding file"].detail
    assert "'tbmug mug'" in checks["diffusers: embedding file"].detail  # the trigger phrase is in the prompt
    assert checks["diffusers: trigger tokenizes as in training"].ok
    pooled = checks["diffusers: pooled output = training"].detail
    without = float(pooled.rsplit("; ", 1)[1].split()[0])
    assert without > 1e-3, pooled  # without the line diffusers pools at the placeholder: a real difference


def test_sdxl_adapter_fails_without_the_pooling_line(sdxl_adapter: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    lora, base = sdxl_adapter
    monkeypatch.setattr(diffusers_lines, "SDXL_POOLING_LINE", "pass")  # docs that forgot the line
    report = verify_file(lora, base=base)
    failed = [c.name for c in report.failures()]
    assert "diffusers: pooled output = training" in failed, report.format_table()
    assert "diffusers: hidden states = training" not in failed  # only the pooled output is off


def test_a_missing_embedding_fails_and_an_explicit_one_is_used(sdxl_adapter: tuple, tmp_path) -> None:  # noqa: ANN001
    import shutil

    lora, base = sdxl_adapter
    alone = tmp_path / lora.name
    shutil.copy(lora, alone)
    report = verify_file(alone, base=base)
    (failure,) = report.failures()
    assert failure.name == "diffusers: embedding file" and "--embedding" in failure.detail
    assert verify_file(alone, base=base, embedding=lora.parent / "embeddings" / "tbmug.safetensors").ok


def test_sd1_adapter_is_checked_with_its_trigger(textboost_config: Callable[..., TrainConfig]) -> None:
    config = textboost_config(max_train_steps=2)
    result = HostTrainer(config, TextBoostExtension()).train()
    report = verify_file(result.lora_path, base=config.pretrained_model_name_or_path)
    assert report.ok, report.format_table()
    names = [c.name for c in report.checks]
    assert "diffusers: trigger tokenizes as in training" in names and "diffusers: pooled output = training" not in names
