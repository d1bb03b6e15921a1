"""The eval prompt set: the shipped templates, and a user's kohya prompts file turned into templates."""

from __future__ import annotations

from pathlib import Path

import pytest

from textboost_ext.evaluation.prompts import EvalPrompt, PromptSetError, prompts_from_file, shipped_prompts, template_of


def test_shipped_set_has_25_plus_prompts_in_the_four_categories() -> None:
    prompts = shipped_prompts()
    assert len(prompts) >= 25
    assert {p.category for p in prompts} == {"recontextualization", "accessorization", "property", "style"}
    assert all(p.template.count("{}") == 1 for p in prompts)
    assert len({p.template for p in prompts}) == len(prompts)


def test_subject_slot_takes_the_trigger_or_the_class_noun_with_the_right_article() -> None:
    prompt = EvalPrompt("a photo of a {} on a beach")
    assert prompt.text("tbmug mug") == "a photo of a tbmug mug on a beach"
    assert prompt.text("mug") == "a photo of a mug on a beach"
    assert prompt.text("apple") == "a photo of an apple on a beach"
    assert EvalPrompt("A {} in the snow").text("owl") == "An owl in the snow"
    assert EvalPrompt("a blue {}").text("apple") == "a blue apple"  # only "a {}" itself changes


def test_user_prompts_name_the_subject_by_trigger_token_or_braces(tmp_path: Path) -> None:
    path = tmp_path / "p.txt"
    path.write_text(
        "# comment\n"
        "a photo of tbmug mug on a beach --n blurry --s 12 --d 5\n"
        "tbmug in the snow --l 3.5 --w 64 --h 48\n"
        "a watercolor of a {} --n ugly\n",
        encoding="utf-8",
    )
    prompts = prompts_from_file(path, ["tbmug mug", "tbmug"])
    assert [p.template for p in prompts] == ["a photo of {} on a beach", "{} in the snow", "a watercolor of a {}"]
    assert [p.text("mug") for p in prompts] == ["a photo of mug on a beach", "mug in the snow", "a watercolor of a mug"]
    first, second, _ = prompts
    assert (first.negative, first.steps, first.scale, first.seed) == ("blurry", 12, None, 5)  # --l not given: None
    assert (second.steps, second.scale, second.width, second.height) == (None, 3.5, 64, 48)


def test_a_prompt_without_the_subject_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "p.txt"
    path.write_text("a photo of tbmug mug\n\na photo of a dog --s 3\n", encoding="utf-8")
    with pytest.raises(PromptSetError, match=r"p\.txt:3: .*does not mention the subject.*'tbmug'"):
        prompts_from_file(path, ["tbmug mug", "tbmug"])


def test_the_token_is_matched_as_a_whole_word_only() -> None:
    with pytest.raises(PromptSetError):
        template_of("a tbmugs collection", ["tbmug"], "x")
    assert template_of("tbmug, tbmug!", ["tbmug"], "x") == "{}, {}!"
