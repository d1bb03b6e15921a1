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
    with pytest.raises(sampling.PromptFileError, match=r"only \.txt"):
        sampling.parse_prompts_file(tmp_path / "p.toml")
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
