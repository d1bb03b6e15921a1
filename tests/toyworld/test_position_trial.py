"""benchmarks/toyworld_position_trial.py keeps working (two steps; the measurement, not the result)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "toyworld_position_trial.py"


def test_position_trial_trains_and_reads_positions(toy_cache: Path) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    done = subprocess.run([sys.executable, str(SCRIPT), "--steps", "2", "--every", "2", "--prediction_type", "v_prediction",
                           "--snr_floor", "1"], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    match = re.search(r"step 2: position (\d\.\d\d) \((\d+)/60\)", done.stdout)
    assert match is not None, done.stdout[-2000:]
    assert abs(int(match.group(2)) / 60 - float(match.group(1))) < 0.01
