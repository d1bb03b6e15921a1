"""Dataset TOML and kohya folder-convention parsing: inheritance, strict keys, path-level checks."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from textboost_ext.config import ConfigError, TrainConfig, resolve_dataset
from textboost_ext.config.dataset import DatasetSpec, load_dataset_config, scan_train_data_dir

CFG = TrainConfig(pretrained_model_name_or_path="builtin:tiny-sd1", train_batch_size=4, resolution=[64, 64])


def dataset_errors(path: Path, cfg: TrainConfig = CFG) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_dataset_config(path, cfg)
    return info.value.errors


def test_dataset_toml_with_inheritance(write_toml, image_folder, tmp_path) -> None:
    image_folder("imgs/a")
    image_folder("imgs/b", count=2)
    path = write_toml("""
        [general]
        caption_extension = ".caption"
        shuffle_caption = true

        [[datasets]]
        resolution = "512,768"
        batch_size = 2
        keep_tokens = 1

          [[datasets.subsets]]
          image_dir = "../imgs/a"
          class_tokens = "sks dog"
          num_repeats = 10
          caption_prefix = "photo, "

          [[datasets.subsets]]
          image_dir = "../imgs/b"
          caption_extension = ".txt"
          flip_aug = false          # kohya's "off" value: accepted
        """, "ds/dataset.toml")
    spec = load_dataset_config(path, CFG)
    assert isinstance(spec, DatasetSpec)
    assert spec.batch_size == 2 and spec.resolution == (512, 768)
    a, b = spec.subsets
    assert a.image_dir == tmp_path / "imgs" / "a"
    assert (a.class_tokens, a.num_repeats, a.caption_prefix) == ("sks dog", 10, "photo, ")
    assert a.caption_extension == ".caption"
    assert a.shuffle_caption and a.keep_tokens == 1
    assert (b.class_tokens, b.num_repeats, b.caption_extension) == (None, 1, ".txt")
    assert len(b.image_paths()) == 2
    assert "[[datasets]] #1 > [[datasets.subsets]] #2" in b.source


def test_image_dir_relative_to_the_dataset_toml(write_toml, image_folder, tmp_path, monkeypatch) -> None:
    image_folder("ds/imgs")
    monkeypatch.chdir(tmp_path)  # "imgs" does not exist here, only beside the TOML
    path = write_toml('[[datasets]]\n[[datasets.subsets]]\nimage_dir = "imgs"\n', "ds/dataset.toml")
    (subset,) = load_dataset_config(path, CFG).subsets
    assert subset.image_dir == tmp_path / "ds" / "imgs"


def test_defaults_come_from_the_training_config(write_toml, image_folder) -> None:
    folder = image_folder("imgs")
    path = write_toml(f'[[datasets]]\n[[datasets.subsets]]\nimage_dir = "{folder}"\n')
    spec = load_dataset_config(path, replace(CFG, caption_extension=".cap"))
    assert (spec.batch_size, spec.resolution, spec.subsets[0].caption_extension) == (4, (64, 64), ".cap")


def test_misspelt_key_in_a_subset(write_toml, image_folder) -> None:
    folder = image_folder("imgs")
    path = write_toml(f'[[datasets]]\n[[datasets.subsets]]\nimage_dir = "{folder}"\nnum_repeat = 3\n')
    assert dataset_errors(path) == [
        f"{path} [[datasets]] #1 > [[datasets.subsets]] #1: unknown key 'num_repeat' (did you mean 'num_repeats'?)"]


def test_unimplemented_kohya_keys_are_explained(write_toml, image_folder) -> None:
    folder = image_folder("imgs")
    path = write_toml(f"""
        [general]
        enable_bucket = true
        [[datasets]]
        [[datasets.subsets]]
        image_dir = "{folder}"
        flip_aug = true
        is_reg = true
        """)
    errors = dataset_errors(path)
    assert (f"{path} [[datasets]] #1 > [[datasets.subsets]] #1: `flip_aug` is a kohya dataset option this trainer "
            "does not implement; TextBoost's own augmentation is set in [textboost] augment "
            "(remove it, or set it to false)") in errors
    assert any("`is_reg`" in e and "knowledge-preservation" in e for e in errors)
    assert any(e.startswith(f"{path} [general]: `enable_bucket`") for e in errors)
    assert len(errors) == 3


def test_keys_at_the_wrong_level_and_bad_values(write_toml, image_folder) -> None:
    folder = image_folder("imgs")
    path = write_toml(f"""
        [general]
        image_dir = "{folder}"
        [[datasets]]
        batch_size = 0
        resolution = 100
          [[datasets.subsets]]
          image_dir = "{folder}"
          batch_size = 2
          num_repeats = "3"
          keep_tokens = 2
          caption_extension = "txt"
        [[datasets]]
          [[datasets.subsets]]
        """)
    errors = dataset_errors(path)
    expected = ["'image_dir' belongs in a [[datasets.subsets]] table", "batch_size = 0 must be >= 1",
                "resolution: 100 is not a positive multiple of 8", "'batch_size' is a dataset-level key",
                "num_repeats: must be a whole number", "keep_tokens only matters with shuffle_caption",
                "caption_extension = 'txt' must start with a dot",
                "#2 > [[datasets.subsets]] #1: image_dir is required"]
    for fragment in expected:
        assert any(fragment in e for e in errors), (fragment, errors)


def test_missing_folders_and_empty_folders(write_toml, image_folder, tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    path = write_toml(f'[[datasets]]\n[[datasets.subsets]]\nimage_dir = "nope"\n'
                      f'[[datasets.subsets]]\nimage_dir = "{tmp_path / "empty"}"\n')
    errors = dataset_errors(path)
    assert any("image_dir 'nope': no such folder" in e for e in errors)
    assert any("holds no images" in e for e in errors)


def test_top_level_structure_errors(write_toml) -> None:
    errors = dataset_errors(write_toml("[dataset]\nx = 1\n"))
    assert any("unknown key 'dataset' (did you mean 'datasets'?)" in e for e in errors)
    assert any("no [[datasets]] table" in e for e in dataset_errors(write_toml("[general]\nnum_repeats = 1\n")))


def test_datasets_must_share_batch_and_resolution(write_toml, image_folder) -> None:
    folder = image_folder("imgs")
    sub = f'[[datasets.subsets]]\nimage_dir = "{folder}"\n'
    path = write_toml("[[datasets]]\nresolution = 512\n" + sub + "[[datasets]]\nresolution = 768\n" + sub)
    assert any("must share one batch_size and resolution" in e for e in dataset_errors(path))


def test_folder_convention(image_folder, tmp_path) -> None:
    image_folder("train/10_sks dog", count=3)
    image_folder("train/1_mug")
    (tmp_path / "train" / ".cache").mkdir()  # hidden folders are skipped
    (tmp_path / "train" / "notes.md").write_text("not an image\n")
    spec = scan_train_data_dir(tmp_path / "train", CFG)
    found = [(s.num_repeats, s.class_tokens, len(s.image_paths())) for s in spec.subsets]
    assert found == [(10, "sks dog", 3), (1, "mug", 1)]
    assert spec.batch_size == 4 and spec.resolution == (64, 64)
    assert spec.subsets[0].caption_extension == ".txt"


@pytest.mark.parametrize("name", ["dog", "x_", "0_dog", "ten_dog"])
def test_bad_folder_names_are_named(image_folder, tmp_path, name: str) -> None:
    image_folder("train/1_ok")
    image_folder(f"train/{name}")
    with pytest.raises(ConfigError) as info:
        scan_train_data_dir(tmp_path / "train", CFG)
    (error,) = info.value.errors
    assert repr(name) in error and ("<repeats>_<class tokens>" in error or "0 times" in error)


def test_loose_images_and_no_subfolders(image_folder, tmp_path) -> None:
    image_folder("train")
    with pytest.raises(ConfigError, match="holds images directly"):
        scan_train_data_dir(tmp_path / "train", CFG)
    (tmp_path / "bare").mkdir()
    with pytest.raises(ConfigError, match="has no <repeats>_<class tokens> subfolders"):
        scan_train_data_dir(tmp_path / "bare", CFG)


def test_resolve_dataset_picks_the_source(image_folder, tmp_path, write_toml) -> None:
    image_folder("train/2_cat")
    spec = resolve_dataset(replace(CFG, train_data_dir=str(tmp_path / "train")))
    assert spec.subsets[0].num_repeats == 2
    toml_path = write_toml(f'[[datasets]]\n[[datasets.subsets]]\nimage_dir = "{tmp_path / "train" / "2_cat"}"\n')
    assert resolve_dataset(replace(CFG, dataset_config=str(toml_path))).subsets[0].num_repeats == 1
    for bad in (CFG, replace(CFG, train_data_dir="a", dataset_config="b")):
        with pytest.raises(ConfigError, match="exactly one of dataset_config"):
            resolve_dataset(bad)
