"""kohya prompts-file parsing and the sampler map."""

from __future__ import annotations

from pathlib import Path

import pytest

from textboost_ext.host import sampling


def test_parses_prompts_comments_and_options(tmp_path: Path) -> None:
    path = tmp_path / "prompts.txt"
    path.write_text(
        "# sample prompts\n"
        "\n"
        "a photo of mycorgi dog --n blurry, low quality --w 512 --h 768 --s 20 --l 6.5 --d 1234\n"
        "   mycorgi dog in a bucket   \n"
        "a --- dash prompt --d 5\n",
        encoding="utf-8",
    )
    first, second, third = sampling.parse_prompts_file(path)
    assert first == sampling.SamplePrompt("a photo of mycorgi dog", "blurry, low quality", 512, 768, 20, 6.5, 1234)
    assert second == sampling.SamplePrompt("mycorgi dog in a bucket")
    assert second.steps == sampling.DEFAULT_STEPS and second.scale == sampling.DEFAULT_SCALE and second.seed is None
    assert third.prompt == "a --- dash prompt" and third.seed == 5


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("a dog --x 3", r"prompts\.txt:2: unknown option --x"),
        ("a dog --w 500", r"prompts\.txt:2: --w 500 must be a positive multiple of 8"),
        ("a dog --s ten", r"prompts\.txt:2: --s 'ten' is not a valid int"),
        ("a dog --s 0", r"prompts\.txt:2: --s 0 must be >= 1"),
        ("--n blurry", r"prompts\.txt:2: the line has options but no prompt"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "prompts.txt"
    path.write_text(f"a fine prompt\n{line}\n", encoding="utf-8")
    with pytest.raises(sampling.PromptFileError, match=message):
        sampling.parse_prompts_file(path)


def test_file_level_errors(tmp_path: Path) -> None:
    with pytest.raises(sampling.PromptFileError, match=r"use a \.txt .*\.toml or \.json"):
        sampling.parse_prompts_file(tmp_path / "p.yaml")
    with pytest.raises(sampling.PromptFileError, match=r"cannot read it"):
        sampling.parse_prompts_file(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("# nothing\n\n", encoding="utf-8")
    with pytest.raises(sampling.PromptFileError, match=r"no prompts"):
        sampling.parse_prompts_file(tmp_path / "empty.txt")


def test_sampler_map_keeps_training_schedule() -> None:
    from diffusers import DDPMScheduler

    train = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", prediction_type="v_prediction")
    for name in ("ddim", "euler_a", "dpmsolver++", "k_euler"):
        sched = sampling.make_sample_scheduler(name, train)
        assert sched.config.prediction_type == "v_prediction" and sched.config.beta_end == 0.012
    assert sampling.make_sample_scheduler("dpmsolver++", train).config.algorithm_type == "dpmsolver++"
    with pytest.raises(ValueError, match=r"sample_sampler = 'plms'"):
        sampling.make_sample_scheduler("plms", train)


def test_kohya_sampler_and_guidance_options(tmp_path: Path) -> None:
    path = tmp_path / "prompts.txt"
    path.write_text("a dog --ss euler_a --g 5.5 --s 12\na cat --l 3\n", encoding="utf-8")
    first, second = sampling.parse_prompts_file(path)
    assert (first.sampler, first.scale, first.steps) == ("euler_a", 5.5, 12)
    assert (second.sampler, second.scale) == (None, 3.0)
    path.write_text("a dog --ss warp_drive\n", encoding="utf-8")
    with pytest.raises(sampling.PromptFileError, match=r"prompts\.txt:1: --ss 'warp_drive' is not a sampler"):
        sampling.parse_prompts_file(path)


def test_kohya_toml_and_json_prompt_files(tmp_path: Path) -> None:
    toml_file = tmp_path / "prompts.toml"
    toml_file.write_text("""[prompt]
width = 512
height = 512
sample_steps = 20
scale = 6.0

[[prompt.subset]]
prompt = "a photo of tbmug mug on a beach"
negative_prompt = "blurry"
seed = 7

[[prompt.subset]]
prompt = "a watercolor of tbmug mug"
sample_sampler = "dpmsolver++"
width = 768
""", encoding="utf-8")
    a, b = sampling.parse_prompts_file(toml_file)
    assert (a.prompt, a.negative_prompt, a.width, a.height, a.steps, a.scale, a.seed) == (
        "a photo of tbmug mug on a beach", "blurry", 512, 512, 20, 6.0, 7)
    assert (b.width, b.sampler, b.steps) == (768, "dpmsolver++", 20)
    json_file = tmp_path / "prompts.json"
    json_file.write_text('[{"prompt": "tbmug mug", "sample_steps": 5, "guidance_scale": 4}, {"prompt": "x", "widht": 64}]')
    with pytest.raises(sampling.PromptFileError, match=r"prompts\.json entry 2: unknown key\(s\) \['widht'\]"):
        sampling.parse_prompts_file(json_file)
    json_file.write_text('[{"prompt": "tbmug mug", "sample_steps": 5, "guidance_scale": 4}]')
    (only,) = sampling.parse_prompts_file(json_file)
    assert (only.steps, only.scale) == (5, 4.0)
