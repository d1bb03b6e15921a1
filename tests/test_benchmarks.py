"""benchmarks/step_benchmark.py keeps working: one case per model kind, in its own process as the script runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "step_benchmark.py"
PARTS = {"data", "augmentation", "te_instance_fwd", "te_kp_fwd", "te_kp_frozen_fwd", "vae_encode", "unet_fwd", "unet_bwd",
         "te_bwd", "optimizer", "other"}


def _one(model: str, *args: str) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    done = subprocess.run([sys.executable, str(SCRIPT), "--one", model, "textboost", *args], env=env, capture_output=True,
                          text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_demo_case_reports_time_memory_and_where_the_step_goes() -> None:
    row = _one("demo", "--steps", "2", "--warmup", "1", "--kpl_mask_padding")
    assert row["clock"] == "cpu" and row["mixed_precision"] == "no +mask"
    assert set(row["parts"]) == PARTS
    named = sum(v for k, v in row["parts"].items() if k != "other")
    assert 0 < named <= row["s_per_step_median"] * 2 + 1e-3  # the parts are inside the steps
    for part in ("te_instance_fwd", "te_kp_fwd", "te_bwd", "unet_fwd", "unet_bwd", "vae_encode", "augmentation"):
        assert row["parts"][part] > 0, part
    assert row["projected_250_steps_s"] == pytest.approx(row["setup_s"] + 250 * row["s_per_step_median"])
    assert 0.1 < row["peak_rss_gb"] < 8
    assert "bf16" in row["device"]  # the CPU's bf16 capability is named


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("model", ["sd15", "sdxl"])
def test_real_size_gpu_case(model: str) -> None:
    """SD 1.5 layout at 512 px / SDXL at 1024 px, batch 8, random weights: runs and reports VRAM (numbers: README)."""
    row = _one(model, "--steps", "2", "--warmup", "1", "--mixed_precision", "bf16", "--gradient_checkpointing")
    print(json.dumps(row))
    assert row["clock"] == "wall" and row["peak_vram_gb"] > 0 and row["s_per_step_median"] > 0
