"""``textboost-hub eval``: two adapters and the base side by side, scored by tiny CLIP/DINO stand-ins;
eval.json holds every score, the summaries follow from them, reruns reuse images, and eval.html
renders in a real headless Chromium with every image loaded and no console errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from statistics import mean

import pytest

from tests.helpers.headless_chromium import find_chromium, inspect_page
from textboost_ext.hub.cli import main

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
PROMPTS = "a photo of tbmug mug on a beach --s 2\n{} in the snow, watercolor --n blurry\n"


def _stronger_copy(store: Path) -> None:
    """``mug_x3``: the same run with its LoRA tripled, as a second run to compare with."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    source = store / "mug"
    target = Path(shutil.copytree(source, store / "mug_x3", ignore=shutil.ignore_patterns("samples", "eval", "generated")))
    (target / "mug.safetensors").unlink()
    with safe_open(str(source / "mug.safetensors"), "pt") as f:
        metadata = {k: v for k, v in f.metadata().items() if not k.startswith("sshs_")}
        tensors = {k: f.get_tensor(k) * (3 if k.endswith("lora_up.weight") else 1) for k in f.keys()}
    metadata["ss_output_name"] = "mug_x3"
    save_file(tensors, str(target / "mug_x3.safetensors"), metadata=metadata)
    (target / "mug.json").rename(target / "mug_x3.json")


@pytest.fixture(scope="module")
def evaluated(trained_store: Path, tmp_path_factory: pytest.TempPathFactory, tiny_clip_dir: Path, tiny_dino_dir: Path) -> dict:
    root = tmp_path_factory.mktemp("eval_run")
    store = Path(shutil.copytree(trained_store, root / "store"))
    _stronger_copy(store)
    prompts = root / "prompts.txt"
    prompts.write_text(PROMPTS, encoding="utf-8")
    reference = trained_store.parent / "train" / "1_mug" / "mug.png"
    argv = ["--adapters_dir", str(store), "eval", "mug", "mug_x3", "--reference", str(reference), "--prompts", str(prompts),
            "--n", "2", "--steps", "3", "--device", "cpu", "--clip_model", str(tiny_clip_dir), "--dino_model", str(tiny_dino_dir)]
    assert main(argv) == 0
    out = store / "mug" / "eval" / "vs-mug_x3"
    return {"argv": argv, "out": out, "store": store, "report": json.loads((out / "eval.json").read_text())}


def test_every_image_is_scored_and_the_summary_follows_from_the_scores(evaluated: dict) -> None:
    report = evaluated["report"]
    assert [m["label"] for m in report["models"]] == ["base", "mug", "mug_x3"]
    assert [m["subject"] for m in report["models"]] == ["mug", "tbmug mug", "tbmug mug"]
    assert report["metrics"] == ["clip_t", "clip_i", "dino"]
    images = report["images"]
    assert len(images) == 3 * 2 * 2
    assert all((evaluated["out"] / im["file"]).is_file() for im in images)
    for label in ("base", "mug", "mug_x3"):
        mine = [im for im in images if im["model"] == label]
        for metric in report["metrics"]:
            values = [im["scores"][metric] for im in mine]
            assert all(isinstance(v, float) and -1.0 <= v <= 1.0 for v in values)
            assert report["summary"][label][metric] == pytest.approx(mean(values))
            per_prompt = report["per_prompt"][label]
            assert per_prompt[1][metric] == pytest.approx(mean(im["scores"][metric] for im in mine if im["prompt"] == 1))
        if label != "base":
            assert report["delta_vs_base"][label]["dino"] == pytest.approx(report["summary"][label]["dino"] - report["summary"]["base"]["dino"])
    # The base is prompted with the class noun, the adapters with the trigger; CLIP-T reads the class noun.
    texts = {im["model"]: im["text"] for im in images if im["prompt"] == 0}
    assert texts == {"base": "a photo of mug on a beach", "mug": "a photo of tbmug mug on a beach", "mug_x3": "a photo of tbmug mug on a beach"}
    assert [p["scoring_text"] for p in report["prompts"]] == ["a photo of mug on a beach", "mug in the snow, watercolor"]
    # The two adapters really differ (the tripled LoRA changes the pictures).
    first = {im["model"]: im["scores"]["clip_i"] for im in images if im["prompt"] == 0 and im["seed"] == 0}
    assert first["mug"] != first["mug_x3"]


def test_settings_are_recorded(evaluated: dict) -> None:
    settings = evaluated["report"]["settings"]
    assert settings["base"] == "builtin:tiny-sd1" and settings["steps"] == 3 and settings["sampler"] == "ddim"
    assert settings["size"] == "64x64" and settings["class_noun"] == "mug" and settings["metrics"] == "clip,dino"
    assert settings["references"] == ["references/00-mug.png"]
    assert (evaluated["out"] / "references" / "00-mug.png").is_file()
    assert len({im["file"] for im in evaluated["report"]["images"]}) == 12  # one file per model, prompt and seed


def test_a_rerun_reuses_images_and_more_seeds_add_only_the_missing_ones(evaluated: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = Path(shutil.copytree(evaluated["store"], tmp_path / "store"))
    argv = [a if a != str(evaluated["store"]) else str(store) for a in evaluated["argv"]]
    out = store / "mug" / "eval" / "vs-mug_x3"
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("p*.png")}
    capsys.readouterr()
    assert main(argv) == 0
    assert "12 images (3 models x 2 prompts x 2 seeds): 12 reused, 0 to generate" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in out.rglob("p*.png")} == stamps
    assert main([*argv, "--n", "3"]) == 0
    assert "18 images (3 models x 2 prompts x 3 seeds): 12 reused, 6 to generate" in capsys.readouterr().out


def test_eval_html_renders_in_headless_chromium(evaluated: dict) -> None:
    browser = find_chromium()
    if browser is None:
        pytest.skip("Chromium is not installed: `make test` installs Debian's chromium package when it runs as root "
                    "with apt-get; elsewhere install chromium (or set CHROMIUM=/path/to/chrome) to run this test")
    screenshot = ARTIFACTS / "eval_report.png"
    page = inspect_page(evaluated["out"] / "eval.html", screenshot=screenshot, binary=browser)
    assert page.errors == []
    report = evaluated["report"]
    assert len(page.images) == len(report["images"]) + len(report["settings"]["references"])
    assert [im["src"] for im in page.images if not im["loaded"]] == []
    assert "TextBoost evaluation: base vs mug vs mug_x3" == page.title
    for text in ("Summary", "Scores per prompt", "CLIP-T", "CLIP-I", "DINO", "mug_x3", "a photo of mug on a beach"):
        assert text in page.text
    from PIL import Image

    with Image.open(screenshot) as shot:
        assert shot.size[0] == 1280 and shot.size[1] > 800  # the full page, grid included


def test_eval_refuses_unusable_models_before_generating(evaluated: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = Path(shutil.copytree(evaluated["store"] / "mug", tmp_path / "store" / "mug", ignore=shutil.ignore_patterns("eval")))
    reference = evaluated["out"] / "references" / "00-mug.png"
    code = main(["eval", str(store), "--reference", str(reference), "--clip_model", "someone/no-such-clip", "--device", "cpu",
                 "--output_dir", str(tmp_path / "out")])
    assert code == 1
    assert "--clip_model someone/no-such-clip: not available offline" in capsys.readouterr().err
    assert not (tmp_path / "out" / "images").exists()
    assert main(["eval", str(store), "--reference", str(tmp_path / "missing.png"), "--output_dir", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err
    assert "--reference" in err and "missing.png: not a readable image" in err


def test_an_image_is_reused_only_when_every_setting_matches(evaluated: dict) -> None:
    from textboost_ext.evaluation.generate import same_pixels_expected
    from textboost_ext.evaluation.pnginfo import read_record

    image = next(im for im in evaluated["report"]["images"] if im["model"] == "mug")
    stored = read_record(evaluated["out"] / image["file"])
    assert same_pixels_expected(stored, dict(stored))
    moved = {**stored, "adapter": {**stored["adapter"], "file": "/elsewhere/mug.safetensors"}}
    assert same_pixels_expected(stored, moved)  # a moved store still matches: the hashes decide
    for key, value in (("cfg", 3.0), ("seed", 99), ("steps", 5), ("precision", "bf16"), ("base", "other")):
        assert not same_pixels_expected(stored, {**stored, key: value}), key
    assert not same_pixels_expected(stored, {**stored, "adapter": {**stored["adapter"], "weight": 0.5}})
    assert not same_pixels_expected(stored, {**stored, "adapter": {**stored["adapter"], "hash": "0" * 12}})
    assert not same_pixels_expected(None, stored)
