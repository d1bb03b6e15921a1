"""builtin:tiny-* models: built once into the cache, atomically, then loaded as a diffusers folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from textboost_ext.models import builtin
from textboost_ext.models.load import load_base_model


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv(builtin.CACHE_ENV, str(root))
    return root


@pytest.mark.parametrize(("name", "family", "prediction"), [("tiny-sd2v", "sd2", "v_prediction")])
def test_builtin_is_built_once_and_loaded_as_a_folder(cache_dir: Path, name: str, family: str, prediction: str) -> None:
    model = load_base_model(f"builtin:{name}")
    assert (model.family, model.prediction_type) == (family, prediction)
    assert model.extra["format"] == "diffusers"
    assert model.source == f"builtin:{name}"
    folder = cache_dir / name
    assert (folder / "model_index.json").is_file()
    assert sorted(p.name for p in cache_dir.iterdir()) == [name]  # no temporary leftovers

    stamp = (folder / "unet" / "diffusion_pytorch_model.safetensors").stat().st_mtime_ns
    again = load_base_model(f"builtin:{name}")
    assert (folder / "unet" / "diffusion_pytorch_model.safetensors").stat().st_mtime_ns == stamp  # not rebuilt
    direct = load_base_model(str(folder))
    for a, b in zip(again.text_encoders[0].state_dict().values(), direct.text_encoders[0].state_dict().values()):
        assert torch.equal(a, b)


def test_interrupted_build_leaves_no_cache(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import textboost_ext.models.tiny as tiny

    def half_build(family: str, directory: Path, seed: int = 0) -> Path:
        Path(directory).mkdir(parents=True)
        (Path(directory) / "model_index.json").write_text("{}")  # looks finished, is not
        raise KeyboardInterrupt

    monkeypatch.setattr(tiny, "save_tiny_model", half_build)
    with pytest.raises(KeyboardInterrupt):
        builtin.builtin_model_dir("builtin:tiny-sd1")
    assert list(cache_dir.iterdir()) == []


def test_builtin_names_cover_every_tiny_family_and_the_toy_world() -> None:
    from textboost_ext.models.tiny import TINY_FAMILIES

    tiny = {name: family for name, family in builtin.BUILTIN_MODELS.items() if name != builtin.TOYWORLD}
    assert sorted(tiny.values()) == sorted(TINY_FAMILIES)
    assert all(name == f"tiny-{family}" for name, family in tiny.items())
    assert builtin.BUILTIN_MODELS[builtin.TOYWORLD] == "sd1"


def test_default_cache_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(builtin.CACHE_ENV, raising=False)
    assert builtin.cache_root() == Path.home() / ".cache" / "textboost_ext"
