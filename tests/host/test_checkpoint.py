"""Training-state folders: atomic writes, retention, resolving `resume`, RNG round trips."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from textboost_ext.host import checkpoint as ck


def _save(directory: Path, step: int, keep_last: int = 1) -> Path:
    gen = torch.Generator().manual_seed(3)
    return ck.save_state(
        directory, step, {"x.lora_down.weight": torch.ones(2, 3)}, {"state": {}, "param_groups": []}, {"last_epoch": step},
        {"emb": torch.zeros(2)}, [ck.capture_rng_state({"train": gen})], {"micro_batches_seen": step}, keep_last=keep_last,
    )


def test_round_trip_and_rng_restore(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(5)
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    snapshot = ck.capture_rng_state({"train": gen})
    expected = (random.random(), float(np.random.rand()), float(torch.rand(1)), float(torch.rand(1, generator=gen)))
    path = ck.save_state(tmp_path / "state", 7, {"a.alpha": torch.tensor(4.0)}, {"o": 1}, {"s": 2}, {"e": torch.arange(3)}, [snapshot], {"micro_batches_seen": 14})
    assert path == tmp_path / "state" / "step-000007"
    state = ck.load_state(tmp_path / "state")
    assert state.step == 7 and state.data_state == {"micro_batches_seen": 14}
    assert torch.equal(state.extension["e"], torch.arange(3)) and float(state.network["a.alpha"]) == 4.0
    torch.rand(5), random.random(), np.random.rand()  # move every RNG on
    gen2 = torch.Generator()
    ck.restore_rng_state(state.rng_states[0], {"train": gen2})
    assert (random.random(), float(np.random.rand()), float(torch.rand(1)), float(torch.rand(1, generator=gen2))) == expected


def test_keeps_only_newest_and_leaves_no_temp_folders(tmp_path: Path) -> None:
    for step in (2, 4, 6):
        _save(tmp_path, step, keep_last=2)
    assert [p.name for p in ck.list_states(tmp_path)] == ["step-000004", "step-000006"]
    _save(tmp_path, 6, keep_last=2)  # re-saving a step replaces it whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-000004", "step-000006"]


def test_resume_accepts_step_state_or_adapter_folder(tmp_path: Path) -> None:
    adapter = tmp_path / "adapter"
    _save(adapter / "state", 3, keep_last=5)
    _save(adapter / "state", 10, keep_last=5)
    for given in (adapter, adapter / "state", adapter / "state" / "step-000010"):
        assert ck.resolve_state_dir(given).name == "step-000010"
    assert ck.resolve_state_dir(adapter / "state" / "step-000003").name == "step-000003"
    with pytest.raises(FileNotFoundError, match=r"no saved training state.*save_state = true"):
        ck.resolve_state_dir(tmp_path / "elsewhere")
