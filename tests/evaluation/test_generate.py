"""``textboost-hub generate``: the diffusers-loaded adapter reproduces a training sample bit for bit,
PNGs carry WebUI parameters, a builtin base is found from the metadata, bad input fails clearly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from textboost_ext.evaluation.pnginfo import read_parameters, read_record
from textboost_ext.hub.cli import main


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def test_generate_reproduces_the_training_sample_bit_for_bit(store_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Training sampled through its own PEFT LoRA and extended embedding table; generate loads the saved
    files with load_lora_weights + load_textual_inversion. Same seed and settings (fp32 files, batch 1): same pixels."""
    samples = store_copy / "mug" / "samples"
    record = json.loads((samples / "index.json").read_text())[0]
    prompts = tmp_path / "prompts.txt"
    prompts.write_text(f"{record['prompt']} --n {record['negative_prompt']} --w {record['width']} --h {record['height']} "
                       f"--s {record['steps']} --l {record['scale']} --d {record['seed']}\n", encoding="utf-8")
    out = tmp_path / "out"
    code = main(["--adapters_dir", str(store_copy), "generate", "mug", "--prompts", str(prompts), "--n", "2",
                 "--sampler", record["sampler"], "--device", "cpu", "--output_dir", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    assert "base: builtin:tiny-sd1 (from the adapter's metadata ss_sd_model_name)" in printed
    assert record["sampler"] == "euler_a"  # ancestral: the per-step noise must come from the seed's generator too
    first = out / f"00000-{record['seed']}.png"
    assert np.array_equal(_pixels(first), _pixels(samples / record["file"]))
    assert not np.array_equal(_pixels(out / f"00001-{record['seed'] + 1}.png"), _pixels(first))  # the next seed differs

    lines = read_parameters(first).splitlines()
    assert lines[0] == f"{record['prompt']} <lora:mug:1>"
    assert lines[1] == f"Negative prompt: {record['negative_prompt']}"
    assert lines[2].startswith(f"Steps: {record['steps']}, Sampler: Euler a, CFG scale: {record['scale']:g}, Seed: {record['seed']}, "
                               f"Size: {record['width']}x{record['height']}, Model: builtin:tiny-sd1, Lora hashes: \"mug: ")
    assert "TI hashes: \"tbmug: " in lines[2] and "Version: textboost-ext" in lines[2]
    stored = read_record(first)
    assert stored["seed"] == record["seed"] and stored["adapter"]["weight"] == 1.0 and stored["precision"] == "fp32"
    with Image.open(out / "grid-00000.png") as grid:
        assert grid.size[0] > 2 * 64 and grid.size[1] >= 64  # one row: the label, then two tiles


def test_lora_weight_and_new_numbering(store_copy: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    common = ["--adapters_dir", str(store_copy), "generate", str(store_copy / "mug"), "--prompt", "a photo of tbmug mug --d 3",
              "--n", "1", "--steps", "3", "--device", "cpu", "--output_dir", str(out)]
    assert main(common) == 0
    assert main([*common, "--weight", "0"]) == 0  # a second run continues the numbering, never overwrites
    full, off = _pixels(out / "00000-3.png"), _pixels(out / "00001-3.png")
    assert not np.array_equal(full, off)
    assert read_record(out / "00001-3.png")["adapter"]["weight"] == 0.0
    assert "<lora:mug:0>" in read_parameters(out / "00001-3.png")


def test_unload_restores_the_base_exactly(store_copy: Path) -> None:
    from textboost_ext.evaluation.adapters import load_adapter, open_adapter, unload_adapter
    from textboost_ext.evaluation.pipeline import load_base

    base = load_base("builtin:tiny-sd1", "cpu", "fp32")
    pipe = base.pipe
    ids = pipe.tokenizer(["a photo of a mug"], padding="max_length", max_length=77, return_tensors="pt").input_ids
    with torch.no_grad():
        before = pipe.text_encoder(ids)[0]
    vocab = len(pipe.tokenizer)
    adapter = open_adapter(str(store_copy / "mug"))
    tokens = load_adapter(pipe, adapter)
    assert tokens == ["tbmug", "tbmug_1"]  # "coffee mug" -> two vectors
    with torch.no_grad():
        assert not torch.equal(pipe.text_encoder(ids)[0], before)  # the LoRA is live
    unload_adapter(pipe, tokens)
    with torch.no_grad():
        assert torch.equal(pipe.text_encoder(ids)[0], before)
    assert len(pipe.tokenizer) == vocab and pipe.text_encoder.get_input_embeddings().weight.shape[0] == vocab


def test_sdxl_pooled_output_is_read_at_the_end_of_text_after_loading(tiny_model_dir, tmp_path: Path) -> None:
    """Released SDXL configs say eos_token_id = 2: CLIP then pools at the HIGHEST id, i.e. the new token.
    ``load_adapter`` must switch both encoders to the real end-of-text token."""
    from safetensors.torch import save_file

    from tests.hub.adapter_factory import tiny_lora_state
    from textboost_ext.evaluation.adapters import load_adapter, open_adapter
    from textboost_ext.evaluation.pipeline import load_base

    folder = tmp_path / "xl"
    (folder / "embeddings").mkdir(parents=True)
    save_file(tiny_lora_state("sdxl"), str(folder / "xl.safetensors"), metadata={"ss_base_model_version": "sdxl_base_v1-0"})
    generator = torch.Generator().manual_seed(0)
    save_file({"clip_l": torch.randn(1, 32, generator=generator), "clip_g": torch.randn(1, 48, generator=generator)},
              str(folder / "embeddings" / "tbxl.safetensors"))
    pipe = load_base(str(tiny_model_dir("sdxl")), "cpu", "fp32").pipe
    for encoder in (pipe.text_encoder, pipe.text_encoder_2):
        encoder.config.eos_token_id = 2  # as in the released SDXL / SD 1.5 configs
    load_adapter(pipe, open_adapter(str(folder)))
    ids = pipe.tokenizer_2(["a photo of tbxl dog"], padding="max_length", max_length=77, return_tensors="pt").input_ids
    eos = int((ids[0] == pipe.tokenizer_2.eos_token_id).nonzero()[0])
    with torch.no_grad():
        out = pipe.text_encoder_2(ids, output_hidden_states=True)
        root = getattr(pipe.text_encoder_2, "text_model", pipe.text_encoder_2)
        expected = pipe.text_encoder_2.text_projection(root.final_layer_norm(out.hidden_states[-1])[0, eos])
    assert torch.allclose(out.text_embeds[0], expected, atol=1e-6)
    assert pipe.text_encoder_2.config.eos_token_id == pipe.tokenizer_2.eos_token_id


def _fake_adapter(folder: Path, base_name: str) -> Path:
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    save_file({"lora_te_text_model_encoder_layers_0_mlp_fc1.alpha": torch.tensor(1.0)}, str(folder / f"{folder.name}.safetensors"),
              metadata={"ss_sd_model_name": base_name})
    return folder


@pytest.mark.parametrize(("extra", "message"), [
    ([], "--base is required: the adapter(s) were trained on /models/sd15.safetensors"),
    (["--base", "builtin:tiny-sd1", "--precision", "fp16", "--device", "cpu"], "--precision fp16 does not run on the CPU"),
    (["--base", "builtin:tiny-sd1", "--sampler", "plms2"], "--sampler 'plms2' is not supported; choose one of: ddim"),
    (["--base", "builtin:tiny-sd1", "--width", "100"], "--width 100: must be a positive multiple of 8"),
])
def test_generate_refuses_bad_input_with_a_message(tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str) -> None:
    folder = _fake_adapter(tmp_path / "store" / "other", "/models/sd15.safetensors")
    code = main(["generate", str(folder), "--prompt", "a photo", *extra])
    assert code == 2
    assert message in capsys.readouterr().err


def test_generate_without_prompts_says_how_to_give_them(store_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--adapters_dir", str(store_copy), "generate", "mug"]) == 2
    assert 'give --prompt TEXT (repeatable) or --prompts FILE e.g. --prompt "a photo of tbmug mug"' in capsys.readouterr().err


def test_a_file_diffusers_cannot_load_fails_with_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _fake_adapter(tmp_path / "broken", "builtin:tiny-sd1")  # an alpha without down/up weights
    code = main(["generate", str(folder / "broken.safetensors"), "--prompt", "x", "--steps", "1", "--device", "cpu", "--output_dir", str(tmp_path / "o")])
    assert code == 1
    err = capsys.readouterr().err
    assert "broken.safetensors: diffusers could not load this LoRA into the base" in err and "textboost-hub verify" in err


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_fp16_batches_start_from_the_same_noise_as_the_cpu(store_copy: Path, tmp_path: Path) -> None:
    """Seeds are drawn on the CPU, so a GPU batch in fp16 gives the CPU's fp32 pictures up to rounding."""
    common = ["--adapters_dir", str(store_copy), "generate", "mug", "--prompt", "a photo of tbmug mug --d 20", "--n", "4", "--steps", "4"]
    assert main([*common, "--device", "cpu", "--output_dir", str(tmp_path / "cpu")]) == 0
    assert main([*common, "--device", "cuda", "--precision", "fp16", "--batch_size", "4", "--output_dir", str(tmp_path / "gpu")]) == 0
    for seed in range(20, 24):
        name = f"{seed - 20:05d}-{seed}.png"
        diff = np.abs(_pixels(tmp_path / "cpu" / name).astype(int) - _pixels(tmp_path / "gpu" / name).astype(int))
        assert diff.mean() < 4, (name, diff.mean())
