"""End to end: kohya sd-scripts' own ``train_network`` loop driven by ``train_network_textboost.py --sd_scripts_dir``.

Needs an sd-scripts checkout and its environment (docs/sd-scripts.md):

    SD_SCRIPTS_DIR=/path/to/sd-scripts SD_SCRIPTS_PYTHON=/path/to/venv/bin/python pytest tests/kohya

One tiny SD 1.x run (batch 4, 64 px, 4 steps, a validation image) in a subprocess of the sd-scripts
Python, with ``TEXTBOOST_TEST_PATCH_UNET_LAYOUT=1`` (sd-scripts' UNet class loads the tiny UNet) and
``TEXTBOOST_KOHYA_RECORD`` (what the hooks saw). The files it writes are then checked with our verifier
here and loaded by sd-scripts' ``networks.lora`` there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from textboost_ext.kohya.launch import is_sd_scripts_checkout
from textboost_ext.kohya.record import read_records

SD_SCRIPTS_DIR = os.environ.get("SD_SCRIPTS_DIR", "")
SD_SCRIPTS_PYTHON = os.environ.get("SD_SCRIPTS_PYTHON", "")


def _skip_reason() -> str | None:
    if not SD_SCRIPTS_DIR or not SD_SCRIPTS_PYTHON:
        return ("sd-scripts integration: set SD_SCRIPTS_DIR (an sd-scripts checkout) and SD_SCRIPTS_PYTHON (its venv's "
                "python); see docs/sd-scripts.md")
    if not is_sd_scripts_checkout(Path(SD_SCRIPTS_DIR)):
        return f"sd-scripts integration: SD_SCRIPTS_DIR={SD_SCRIPTS_DIR} is not an sd-scripts checkout"
    if not Path(SD_SCRIPTS_PYTHON).is_file():
        return f"sd-scripts integration: SD_SCRIPTS_PYTHON={SD_SCRIPTS_PYTHON} does not exist"
    return None


SKIP_REASON = _skip_reason()
pytestmark = [pytest.mark.sd_scripts, pytest.mark.skipif(SKIP_REASON is not None, reason=SKIP_REASON or "")]

REPO = Path(__file__).resolve().parents[2]
SUPPORT = Path(__file__).resolve().parent / "support"
STEPS, BATCH = 4, 4
TEMPLATES = ["{}", "a photo of a {}"]


def _sd_scripts(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    environment = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HF_HUB_OFFLINE="1", **env)
    return subprocess.run([SD_SCRIPTS_PYTHON, *args], capture_output=True, text=True, timeout=600, env=environment)


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sd_scripts_fixtures")
    done = _sd_scripts([str(SUPPORT / "make_fixtures.py"), str(root)])
    assert done.returncode == 0, done.stderr[-3000:]
    return root


@pytest.fixture(scope="module")
def run(fixtures: Path, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    work = tmp_path_factory.mktemp("sd_scripts_run")
    out, logs, record = work / "out", work / "logs", work / "record.jsonl"
    config, prompts = work / "train.toml", work / "prompts.txt"
    prompts.write_text("a photo of tbdog on a beach --w 64 --h 64 --s 2 --d 1\n", encoding="utf-8")
    config.write_text("\n".join([
        f'pretrained_model_name_or_path = "{fixtures / "model"}"',
        f'tokenizer_cache_dir = "{fixtures / "tokenizers"}"',
        f'train_data_dir = "{fixtures / "data"}"',
        'caption_extension = ".txt"', "resolution = 64", f"train_batch_size = {BATCH}",  # an int, as our templates write it
        "network_dim = 4", "network_alpha = 4.0", "learning_rate = 0.01", f"max_train_steps = {STEPS}", "seed = 0",
        "max_data_loader_n_workers = 0", f'output_dir = "{out}"', 'output_name = "tb"', "save_every_n_steps = 2",
        f'logging_dir = "{logs}"', "validation_split = 0.2", f'sample_prompts = "{prompts}"', "sample_every_n_steps = 4",
        "", "[textboost]", 'placeholder_token = "tbdog"', 'initializer = "corgi dog"', 'class_noun = "dog"',
        "kpl_weight = 0.5", f"caption_templates = {json.dumps(TEMPLATES)}", "",
    ]), encoding="utf-8")
    done = _sd_scripts([str(REPO / "train_network_textboost.py"), "--sd_scripts_dir", SD_SCRIPTS_DIR,
                        "--config_file", str(config), "--kpl_weight", "1.0", "--export_bundle"],
                       TEXTBOOST_TEST_PATCH_UNET_LAYOUT="1", TEXTBOOST_KOHYA_RECORD=str(record))
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-4000:])
    records = read_records(record)
    return SimpleNamespace(out=out, logs=logs, fixtures=fixtures, records=records, output=done.stdout + done.stderr,
                           setup=next(r for r in records if r["event"] == "setup"),
                           steps=[r for r in records if r["event"] == "step"])


def _tiny_spec(fixtures: Path) -> Any:
    from textboost_ext.export.checklist import EncoderSpec, FamilySpec

    cfg = json.loads((fixtures / "model" / "text_encoder" / "config.json").read_text())
    return FamilySpec("sd1", (EncoderSpec("lora_te", cfg["num_hidden_layers"], cfg["hidden_size"], cfg["intermediate_size"]),))


def test_the_run_used_textboost_options_from_the_toml_table_and_the_command_line(run: SimpleNamespace) -> None:
    from safetensors import safe_open

    with safe_open(str(run.out / "tb.safetensors"), "pt") as f:
        metadata = f.metadata()
    assert metadata["ss_textboost_kpl_weight"] == "1.0"  # the command line beats the TOML
    assert metadata["ss_textboost_placeholder_token"] == "tbdog" and metadata["ss_textboost_num_vectors"] == "2"
    assert metadata["modelspec.trigger_phrase"] == "tbdog dog"
    assert metadata["ss_optimizer"] == "bitsandbytes.optim.adamw.AdamW8bit"  # TextBoost's default, not sd-scripts' AdamW
    assert metadata["ss_network_module"] == "networks.lora" and metadata["ss_base_model_version"] == "sd_v1"
    assert len(run.steps) == STEPS and all(len(s["captions"]) == BATCH for s in run.steps)


def test_sample_images_use_the_trained_tokens_with_the_name_expanded(run: SimpleNamespace) -> None:
    assert len(list((run.out / "sample").glob("tb_000004_*.png"))) == 1
    assert "prompt: a photo of tbdog tbdog_1" in run.output  # sd-scripts read our expanded copy of the prompt file


def test_the_newest_sample_becomes_the_preview_of_the_files_saved_after_it(run: SimpleNamespace) -> None:
    from PIL import Image, ImageChops

    (sample,) = (run.out / "sample").glob("tb_000004_*.png")
    with Image.open(run.out / "tb.preview.png") as preview, Image.open(sample) as drawn:
        assert preview.format == "PNG" and ImageChops.difference(preview.convert("RGB"), drawn.convert("RGB")).getbbox() is None
    assert not (run.out / "tb-step00000002.preview.png").exists()  # saved at step 2, before the first sample (step 4)


def test_sd_scripts_tokenised_the_augmented_captions_with_the_added_tokens(run: SimpleNamespace) -> None:
    setup = run.setup
    assert setup["vector_tokens"] == ["tbdog", "tbdog_1"] and len(setup["augment_tokens"]) > 0
    added = dict(zip(setup["vector_tokens"] + setup["augment_tokens"], setup["token_ids"][0]))
    assert sorted(added.values()) == list(range(49408, 49408 + len(added)))  # new ids after the CLIP vocabulary
    assert setup["tokenizer_lengths"] == [49408 + len(added)]
    seen_augment = set()
    for step in run.steps:
        for caption, ids in zip(step["captions"], step["input_ids"]):
            # a template of the TOML's [textboost] table around the placeholder, plus augmentation tokens
            words = " ".join(w for w in caption.split() if w not in setup["augment_tokens"])
            assert words in {t.format("tbdog tbdog_1 dog") for t in TEMPLATES}, caption
            in_caption = {token for token in caption.split() if token in added}
            # exactly the added tokens of the caption are in the ids sd-scripts encoded
            assert {i for i in ids if i >= 49408} == {added[t] for t in in_caption}, caption
            seen_augment |= in_caption & set(setup["augment_tokens"])
    assert seen_augment, "no augmentation token in any caption"


def test_timesteps_were_drawn_by_the_snr_sampler_and_pinned_for_validation(run: SimpleNamespace) -> None:
    assert run.setup["sampler_mean"] > 560  # SNR weighting on SD's schedule (uniform would be 499.5)
    for step in run.steps:
        assert step["timesteps_drawn"] == [step["timesteps_used"]]  # the UNet got the extension's draw
        assert all(0 <= t < 1000 for t in step["timesteps_used"])
    validation = [r["timesteps"] for r in run.records if r["event"] == "validation"]
    assert len(validation) == 4 * STEPS  # 4 pinned timesteps per epoch; one step per epoch here
    assert {tuple(t) for t in validation} == {(200,), (400,), (600,), (800,)}  # sd-scripts' min == max pinning


def test_kp_term_is_part_of_the_logged_loss(run: SimpleNamespace) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = sorted(run.logs.rglob("events.out.tfevents.*"))
    assert events, f"no tensorboard file under {run.logs}"
    acc = EventAccumulator(str(events[0]))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"loss/kp", "loss/diffusion", "timestep/mean", "embedding/placeholder_norm", "lr/textboost_embedding"} <= tags
    scalars = {tag: [e.value for e in acc.Scalars(tag)] for tag in ("loss/current", "loss/diffusion", "loss/kp", "timestep/mean")}
    for current, diffusion, kp in zip(scalars["loss/current"], scalars["loss/diffusion"], scalars["loss/kp"]):
        assert current == pytest.approx(diffusion + kp, rel=1e-5, abs=1e-7)
    assert max(scalars["loss/kp"][1:]) > 1e-5  # the LoRA moved after step 1, so its outputs drift
    for step, logged in zip(run.steps, scalars["timestep/mean"]):
        assert logged == pytest.approx(sum(step["timesteps_used"]) / BATCH)


def test_files_pass_the_compatibility_checklist(run: SimpleNamespace) -> None:
    from safetensors import safe_open

    from textboost_ext.export.verify import verify_file

    spec = _tiny_spec(run.fixtures)
    lora = run.out / "tb.safetensors"
    for path in (lora, run.out / "tb-step00000002.safetensors", run.out / "embeddings" / "tbdog.safetensors",
                 run.out / "tb-step00000002_embeddings" / "tbdog.safetensors", run.out / "tb_a1111_bundle.safetensors"):
        report = verify_file(path, spec=spec)
        assert report.ok, report.format_table()
    with safe_open(str(lora), "pt") as f:
        keys = list(f.keys())
    assert keys and all(k.startswith("lora_te_") for k in keys)  # no embedding rows in the main file
    sidecar = json.loads((run.out / "tb.json").read_text())
    assert sidecar["activation text"] == "tbdog dog" and sidecar["sd version"] == "SD1"


def test_sd_scripts_applies_the_file_like_our_loader_and_the_embedding_trained(run: SimpleNamespace) -> None:
    done = _sd_scripts([str(SUPPORT / "check_in_sd_scripts.py"), SD_SCRIPTS_DIR, str(run.fixtures / "model"),
                        str(run.fixtures / "tokenizers" / "openai_clip-vit-large-patch14"), str(run.out / "tb.safetensors"),
                        str(run.out / "embeddings" / "tbdog.safetensors"), "corgi dog"])
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["sd_scripts_modules"] == result["our_modules"] == 12
    assert result["missing_keys"] == [] and result["unexpected_keys"] == []
    assert result["lora_effect"] > 1e-3  # the trained LoRA changes the encoder
    assert result["sd_scripts_vs_ours"] < 1e-5
    assert result["embedding_shape"] == [2, 32] and result["embedding_moved"] > 1e-4  # sd-scripts did not freeze the rows


def test_options_textboost_cannot_train_with_fail_cleanly_inside_sd_scripts(fixtures: Path, tmp_path: Path) -> None:
    done = _sd_scripts([str(REPO / "train_network_textboost.py"), "--sd_scripts_dir", SD_SCRIPTS_DIR,
                        "--pretrained_model_name_or_path", str(fixtures / "model"), "--tokenizer_cache_dir",
                        str(fixtures / "tokenizers"), "--train_data_dir", str(fixtures / "data"), "--resolution", "64",
                        "--output_dir", str(tmp_path), "--placeholder_token", "tbdog", "--initializer", "dog",
                        "--cache_latents", "--min_snr_gamma", "5"], TEXTBOOST_TEST_PATCH_UNET_LAYOUT="1")
    assert done.returncode == 2, done.stderr[-3000:]
    assert "--cache_latents" in done.stderr and "--min_snr_gamma" in done.stderr and "Traceback" not in done.stderr
    assert not list(tmp_path.iterdir())  # refused before anything was written


def test_sdxl_trainer_hooks_around_the_unet(tmp_path: Path) -> None:
    """SDXL short of a UNet step (sd-scripts' SDXL UNet class cannot be made tiny): support/sdxl_smoke.py."""
    from textboost_ext.export.checklist import EncoderSpec, FamilySpec
    from textboost_ext.export.verify import verify_file

    done = _sd_scripts([str(SUPPORT / "sdxl_smoke.py"), SD_SCRIPTS_DIR, str(tmp_path)])
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["trainer"] == "TextBoostSdxlNetworkTrainer" and result["is_sdxl_trainer"]
    assert result["cache_te_outputs_refused"] and result["optimizer_type"] == "AdamW8bit"
    assert result["tokenizer_lengths"] == [49418, 49418] and result["placeholder_ids"] == [[49408, 49409]] * 2
    assert result["descriptions"] == ["textencoder", "textboost_embedding"] and result["embedding_group_sizes"] == [2, 0.0]
    assert all("tbdog tbdog_1 dog" in c for c in result["captions"]) and result["placeholder_in_both_id_lists"] == [True, True]
    assert result["conditioning_shapes"] == [[2, 77, 32], [2, 77, 48], [2, 48]]  # sd-scripts' [h1, h2, pool2]
    assert result["kp"] > 1e-4 and result["multiplier_after_kp"] == 1.0
    assert result["sidecar"]["sd version"] == "SDXL" and result["sidecar"]["activation text"] == "tbdog dog"
    spec = FamilySpec("sdxl", tuple(EncoderSpec(p, *dims) for p, dims in zip(("lora_te1", "lora_te2"), result["te_dims"])))
    for path in (result["lora_file"], result["embedding_file"]):
        report = verify_file(path, spec=spec)
        assert report.ok, report.format_table()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-v"]))
