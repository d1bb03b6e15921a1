"""caption_templates: every template set the method supports is selectable; no template names an augmentation."""

from __future__ import annotations

import pytest

from textboost_ext.config import ConfigError, load_config
from textboost_ext.method.captions import resolve_templates

HEAD = """
pretrained_model_name_or_path = "builtin:tiny-sd1"
train_data_dir = "data"
[textboost]
placeholder_token = "tbmug"
initializer = "coffee mug"
"""


@pytest.mark.parametrize("value", ['"textual_inversion"', '["textual_inversion"]', '"default"'])
def test_a_template_set_is_selectable_by_name(write_toml, value: str) -> None:
    config = load_config(write_toml(HEAD + f"caption_templates = {value}\n"), {})
    templates = resolve_templates(config.textboost.caption_templates)
    expected = 23 if "textual" in value else 5
    assert len(templates) == expected and all(t.count("{}") == 1 for t in templates)


def test_a_set_name_on_the_command_line(write_toml) -> None:
    from textboost_ext.config.cli import parse_args

    config, _ = parse_args(["--config_file", str(write_toml(HEAD)), "--caption_templates", "textual_inversion"],
                           check_paths=False)
    assert len(resolve_templates(config.textboost.caption_templates)) == 23


@pytest.mark.parametrize(("value", "fragment"), [
    ('"imagenet"', "or be the name of a template set (default, textual_inversion)"),
    ('["a cropped photo of a {}"]', "says 'cropped', which names the crop augmentation on every view"),
    ('["{}", "a close-up photo of the {}"]', "says 'close-up', which names the zoom-in augmentation"),
])
def test_bad_templates_are_config_errors(write_toml, value: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write_toml(HEAD + f"caption_templates = {value}\n"), {})
    assert any("caption_templates" in e and fragment in e for e in info.value.errors), info.value.errors
