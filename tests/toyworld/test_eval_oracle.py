"""`textboost-hub eval` on builtin:toyworld: the oracle is the default scorer, over the subject's own prompts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from textboost_ext.toyworld.experiment import train_subject, write_config
from textboost_ext.toyworld.subjects import SUBJECTS, personalization_prompts

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _fresh_accelerate_state(fresh_accelerate_state: None) -> None:
    """Training builds an Accelerator (process-wide singletons)."""


def test_eval_scores_base_and_adapter_with_the_oracle(tmp_path: Path, toy_cache: Path) -> None:
    from textboost_ext.hub.cli import main

    subject = SUBJECTS["red_ring"]
    reference = REPO / "examples" / "toyworld" / "red_ring" / "1_ring" / "red_ring.png"
    config = write_config(subject, REPO / "examples" / "toyworld", REPO / "config_templates" / "toyworld_preservation_prompts.txt",
                          tmp_path / "run", seed=0, top={"overwrite": True, "max_train_steps": 4})
    adapter = train_subject(config)
    out = tmp_path / "eval"
    assert main(["eval", str(adapter), "--reference", str(reference), "--n", "1", "--output_dir", str(out)]) == 0
    report: dict[str, Any] = json.loads((out / "eval.json").read_text())
    assert report["settings"]["base"] == "builtin:toyworld" and report["settings"]["metrics"] == "oracle"
    assert (report["settings"]["steps"], report["settings"]["cfg"]) == (25, 2.0)  # the toy base's own (README), not 30 / 7.5
    assert len(report["summary"]) == 2  # the base and the adapter
    for scores in report["summary"].values():
        assert set(scores) >= {"subject_fidelity", "prompt_fidelity", "copy_rate"}
        assert all(0.0 <= v <= 1.0 for v in scores.values() if v is not None)
    assert len(list((out / "images").rglob("*.png"))) == 2 * len(personalization_prompts(subject))
