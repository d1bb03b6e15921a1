"""``TextEncoderLoRA`` refuses the same ``lora_targets`` the config checks refuse (one shared rule)."""

from __future__ import annotations

import pytest

from textboost_ext.config.options import lora_target_problems
from textboost_ext.network import KOHYA_MODULE_SUFFIX, LORA_TARGETS, validate_targets


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        (["q_proj", "v_proj"], "Add the missing ones or drop attention entirely"),
        (["fc1", "fc3"], "unknown module 'fc3'"),
        ([], "must not be empty"),
        (["fc1", "fc1"], "lists a module twice"),
    ],
)
def test_network_and_config_reject_the_same_targets(targets: list[str], message: str) -> None:
    assert any(message in problem for problem in lora_target_problems(targets))  # what the config check reports
    with pytest.raises(ValueError, match=message):
        validate_targets(targets)


def test_every_allowed_target_has_a_kohya_name() -> None:
    assert {kind.split(".")[1] for kind in KOHYA_MODULE_SUFFIX} == set(LORA_TARGETS)
    validate_targets(LORA_TARGETS)  # the default (everything) is valid
    validate_targets(["fc1", "fc2"])
