"""TextBoost personalizes the toy base from ONE photo, and the prompt still steers the image.

One run with the demo's settings on the yellow square (training seed 0, image seeds 0 and 1: the ablation's
"textboost" run, README "Ablation"). Thresholds set on base B3's ablation (guidance 4); on the shipped base
(fine-tuned decoder, guidance 2) the same ablation gives:
- subject fidelity: base 0.167, TextBoost 0.792 (seed 1: 0.583) -> must exceed the base by 0.25 (6 of 24 images);
- new-background prompts: TextBoost obeys 1.000 (both seeds) and copies the reference's background 0.000
  (both seeds) -> obedience >= 0.75 and copy rate <= 0.07 (at most 1 of 14 images). A run with the
  safeguards off obeys new backgrounds too (1.000 on this subject), so what the safeguards keep is measured
  by the drift test below, where such a run moves 3-4.5x further (λ = 0 alone: 6-8x).
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
SUBJECT_MARGIN = 0.25  # adapter subject fidelity - base subject fidelity
BACKGROUND_FLOOR = 0.75  # background obeyed on new-background prompts
COPY_CEILING = 0.07  # the reference's background shown on new-background prompts


@pytest.fixture(scope="module")
def yellow_square(tmp_path_factory: pytest.TempPathFactory, toy_pipe: Any, oracle: Any) -> Comparison:
    """One demo-settings run on the yellow square, scored once (base and adapter, image seeds 0 and 1); both tests
    read it, so the module trains once."""
    from accelerate.state import AcceleratorState, GradientState

    subject = SUBJECTS["yellow_square"]
    run = tmp_path_factory.mktemp("yellow_square") / "run"
    config = write_config(subject, REPO / "examples" / "toyworld", REPO / "config_templates" / "toyworld_preservation_prompts.txt",
                          run, seed=0, top={"overwrite": True})
    try:
        adapter = train_subject(config)
    finally:
        # training builds an Accelerator (process-wide singletons)
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
    return compare(adapter, subject, seeds=(0, 1), pipe=toy_pipe, oracle=oracle, ordinary=False)


def test_textboost_learns_the_yellow_square_and_keeps_new_backgrounds(yellow_square: Comparison) -> None:
    assert yellow_square.base is not None
    base, tuned = yellow_square.base.summary["subject_fidelity"], yellow_square.adapter.summary["subject_fidelity"]
    assert tuned >= base + SUBJECT_MARGIN, (base, tuned)
    assert background_obedience(yellow_square.adapter.scores) >= BACKGROUND_FLOOR, yellow_square.adapter.summary
    assert yellow_square.adapter.summary["copy_rate"] <= COPY_CEILING, yellow_square.adapter.summary


DRIFT_CEILING = 0.03  # shipped base's ablation, yellow square: TextBoost 0.017 / 0.014, λ=0 0.108 / 0.116, all safeguards off 0.076 / 0.043


def test_textboost_keeps_the_language_the_base_speaks(yellow_square: Comparison) -> None:
    """Knowledge preservation, measured where it acts: after one demo run on the yellow square, the encoder's
    outputs on 24 ordinary toy-world prompts move at most 0.03 (cosine distance), where a run with every
    safeguard off moves 0.043-0.076 and one without knowledge preservation 0.108-0.116."""
    assert yellow_square.drift <= DRIFT_CEILING, yellow_square.drift
