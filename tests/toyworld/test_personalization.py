"""TextBoost personalizes the toy base from ONE photo, and the prompt still steers the image.

One run with the demo's settings on the green star (training seed 0, image seeds 0 and 1: the ablation's
"textboost" run, README "Ablation"). Thresholds from that ablation on the shipped base:
- subject fidelity: base 0.000, TextBoost 0.208 -> must exceed the base by 0.10 (3 of 24 images);
- new-background prompts: TextBoost obeys 0.857 and copies the reference's background 0.000; naming the
  augmentations in words instead of tokens obeys 0.000; all safeguards off (λ = 0, no augmentation) still
  obeys 0.857 but copies 0.143 -> obedience >= 0.75 and copy rate <= 0.07 (at most 1 of 14 images).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from textboost_ext.toyworld.evaluate import Comparison, compare
from textboost_ext.toyworld.experiment import train_subject, write_config
from textboost_ext.toyworld.scoring import background_obedience
from textboost_ext.toyworld.subjects import SUBJECTS

REPO = Path(__file__).resolve().parents[2]
SUBJECT_MARGIN = 0.10  # adapter subject fidelity - base subject fidelity
BACKGROUND_FLOOR = 0.75  # background obeyed on new-background prompts
COPY_CEILING = 0.07  # the reference's background shown on new-background prompts


@pytest.fixture(scope="module")
def green_star(tmp_path_factory: pytest.TempPathFactory, toy_pipe: Any, oracle: Any) -> Comparison:
    """One demo-settings run on the green star, scored once (base and adapter, image seeds 0 and 1); both tests
    read it, so the module trains once."""
    from accelerate.state import AcceleratorState, GradientState

    subject = SUBJECTS["green_star"]
    run = tmp_path_factory.mktemp("green_star") / "run"
    config = write_config(subject, REPO / "examples" / "toyworld", REPO / "config_templates" / "toyworld_preservation_prompts.txt",
                          run, seed=0, top={"overwrite": True})
    try:
        adapter = train_subject(config)
    finally:
        # training builds an Accelerator (process-wide singletons)
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
    return compare(adapter, subject, seeds=(0, 1), pipe=toy_pipe, oracle=oracle, ordinary=False)


def test_textboost_learns_the_green_star_and_keeps_new_backgrounds(green_star: Comparison) -> None:
    assert green_star.base is not None
    base, tuned = green_star.base.summary["subject_fidelity"], green_star.adapter.summary["subject_fidelity"]
    assert tuned >= base + SUBJECT_MARGIN, (base, tuned)
    assert background_obedience(green_star.adapter.scores) >= BACKGROUND_FLOOR, green_star.adapter.summary
    assert green_star.adapter.summary["copy_rate"] <= COPY_CEILING, green_star.adapter.summary


DRIFT_CEILING = 0.01  # ablation on the shipped base, green star: TextBoost 0.002, λ=0 0.036, all safeguards off 0.071


def test_textboost_keeps_the_language_the_base_speaks(green_star: Comparison) -> None:
    """Knowledge preservation, measured where it acts: after one demo run on the green star, the encoder's
    outputs on 24 ordinary toy-world prompts move less than a tenth of what a run without safeguards moves."""
    assert green_star.drift <= DRIFT_CEILING, green_star.drift
