"""Every shipped config template validates (globbed: a new template is tested automatically)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from textboost_ext.config import check_paths, config_to_toml, load_config, model_family, resolve_dataset
from textboost_ext.config.dataset import load_dataset_config
from textboost_ext.config.options import BUILTIN_MODELS

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = REPO / "config_templates"
DATASET_TEMPLATES = sorted(TEMPLATES.glob("dataset*.toml"))
TRAIN_TEMPLATES = sorted(p for p in TEMPLATES.glob("*.toml") if p not in DATASET_TEMPLATES)
EXPECTED_FAMILY = {"demo": "sd1", "tiny_demo": "sd1", "sd15": "sd1", "sd21": "sd2", "sd21-768": "sd2v", "sdxl": "sdxl"}
EXPECTED_RESOLUTION = {"demo": 32, "tiny_demo": 64, "sd15": 512, "sd21": 512, "sd21-768": 768, "sdxl": 1024}


def test_templates_exist() -> None:
    assert {p.stem for p in TRAIN_TEMPLATES} >= set(EXPECTED_FAMILY)
    assert DATASET_TEMPLATES


@pytest.mark.parametrize("template", TRAIN_TEMPLATES, ids=lambda p: p.name)
def test_training_template_validates_and_round_trips(template: Path, tmp_path: Path) -> None:
    cfg = load_config(template, {})
    if template.stem in EXPECTED_FAMILY:
        assert model_family(cfg) == EXPECTED_FAMILY[template.stem]
        assert cfg.resolution == [EXPECTED_RESOLUTION[template.stem]] * 2
    saved = tmp_path / "config.toml"
    saved.write_text(config_to_toml(cfg), encoding="utf-8")
    assert load_config(saved, {}) == cfg


@pytest.mark.parametrize("template", TRAIN_TEMPLATES, ids=lambda p: p.name)
def test_sample_prompts_exist_and_use_the_token(template: Path) -> None:
    cfg = load_config(template, {})
    if cfg.sample_prompts is None:
        return
    lines = Path(cfg.sample_prompts).read_text().splitlines()
    prompts = [line for line in lines if line.strip() and not line.startswith("#")]
    assert len(prompts) >= 3
    size = cfg.resolution[0]
    for prompt in prompts:
        assert cfg.textboost.placeholder_token in prompt.split(" --")[0], prompt
        assert f"--w {size} --h {size}" in prompt, prompt  # sample at the training resolution
    from textboost_ext.host.sampling import parse_prompts_file

    parsed = parse_prompts_file(cfg.sample_prompts)  # the trainer's own parser accepts every option
    assert len(parsed) == len(prompts)


@pytest.mark.parametrize("template", sorted(TEMPLATES.glob("sd*.toml")), ids=lambda p: p.name)
def test_real_family_templates_use_the_paper_recipe(template: Path) -> None:
    cfg = load_config(template, {})
    tb = cfg.textboost
    assert (cfg.max_train_steps, cfg.train_batch_size, cfg.learning_rate, tb.emb_learning_rate) == (250, 8, 5e-5, 1e-3)
    assert (cfg.network_dim, cfg.network_alpha, tb.kpl_weight, cfg.optimizer_type) == (4, 4.0, 0.1, "AdamW8bit")
    assert (cfg.mixed_precision, cfg.save_precision, tb.timestep_sampling) == ("fp16", "fp16", "snr")


def test_demo_template_trains_the_toy_world_from_one_reference() -> None:
    cfg = load_config(TEMPLATES / "demo.toml", {}, check_paths=True)
    assert cfg.pretrained_model_name_or_path == "builtin:toyworld"
    assert (cfg.max_train_steps, cfg.train_batch_size, cfg.resolution, cfg.mixed_precision) == (250, 8, [32, 32], "no")
    (subset,) = resolve_dataset(cfg).subsets
    assert (subset.class_tokens, subset.num_repeats) == ("square", 1)
    (image,) = subset.image_paths()
    assert image.name == "yellow_square.png"
    assert cfg.textboost.placeholder_token == "tbsquare" and Path(cfg.textboost.preservation_prompts).is_file()


def test_tiny_demo_template_resolves_completely() -> None:
    cfg = load_config(TEMPLATES / "tiny_demo.toml", {}, check_paths=True)
    assert cfg.pretrained_model_name_or_path in BUILTIN_MODELS
    assert (cfg.max_train_steps, cfg.train_batch_size, cfg.mixed_precision) == (30, 4, "no")
    (subset,) = resolve_dataset(cfg).subsets
    assert (subset.class_tokens, subset.num_repeats) == ("mug", 1)
    (image,) = subset.image_paths()
    with Image.open(image) as img:
        assert img.size == (256, 256) and img.mode == "RGB"
    check_paths(cfg)


@pytest.mark.parametrize("template", DATASET_TEMPLATES, ids=lambda p: p.name)
def test_dataset_template_loads(template: Path) -> None:
    spec = load_dataset_config(template, load_config(TEMPLATES / "tiny_demo.toml", {}))
    assert spec.subsets and all(s.image_paths() for s in spec.subsets)


def test_builtin_model_names_match_the_tiny_families_and_the_toy_world() -> None:
    from textboost_ext.models.tiny import TINY_FAMILIES

    from textboost_ext.models import builtin

    tiny = {name: family for name, family in BUILTIN_MODELS.items() if name != "builtin:toyworld"}
    assert sorted(tiny.values()) == sorted(TINY_FAMILIES)
    assert all(name == f"builtin:tiny-{family}" for name, family in tiny.items())
    assert BUILTIN_MODELS["builtin:toyworld"] == "sd1"
    # The model loader's table (names without the prefix) must accept exactly what the config accepts.
    assert {builtin.BUILTIN_PREFIX + n: f for n, f in builtin.BUILTIN_MODELS.items()} == BUILTIN_MODELS
