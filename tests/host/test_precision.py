"""mixed_precision against the device: fp16 refused on a CPU before anything loads, bf16 trains on a CPU
with every frozen weight stored in bf16 (cast once) and the LoRA / new embedding rows in fp32, and a
warning where the CPU has no native bf16."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from textboost_ext.host.precision import (
    cast_frozen_weights_,
    check_mixed_precision,
    cpu_flags,
    cpu_has_native_bf16,
)

REPO = Path(__file__).resolve().parents[2]


def _cpuinfo(tmp_path: Path, flags: str) -> set[str] | None:
    f = tmp_path / "cpuinfo"
    f.write_text(f"processor\t: 0\nmodel name\t: test\nflags\t\t: fpu sse2 {flags}\n\n")
    return cpu_flags(f)


def test_cpu_flags_detect_native_bf16(tmp_path):
    assert cpu_has_native_bf16(_cpuinfo(tmp_path, "avx2 fma")) is False
    assert cpu_has_native_bf16(_cpuinfo(tmp_path, "avx2 avx512f avx512_bf16")) is True
    assert cpu_has_native_bf16(_cpuinfo(tmp_path, "avx2 amx_bf16 amx_tile")) is True
    assert cpu_flags(tmp_path / "missing") is None and cpu_has_native_bf16(None) is None


def test_fp16_on_cpu_is_refused_naming_the_alternatives():
    with pytest.raises(ValueError) as err:
        check_mixed_precision("fp16", "cpu")
    assert 'mixed_precision = "fp16" needs a GPU' in str(err.value)
    assert '"bf16"' in str(err.value) and '"no"' in str(err.value)
    assert check_mixed_precision("fp16", "cuda") == []


def test_bf16_on_cpu_warns_only_without_native_bf16(tmp_path):
    slow = check_mixed_precision("bf16", "cpu", flags=_cpuinfo(tmp_path, "avx2"))
    assert len(slow) == 1 and "SLOWER than fp32" in slow[0] and "avx2" in slow[0]
    assert check_mixed_precision("bf16", "cpu", flags=_cpuinfo(tmp_path, "avx2 avx512_bf16")) == []
    assert check_mixed_precision("bf16", "cpu", flags=None) == []  # unknown CPU: no guess
    assert check_mixed_precision("no", "cpu", flags=_cpuinfo(tmp_path, "avx2")) == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU refusal")
def test_entry_script_refuses_fp16_on_cpu_before_loading(capsys):
    from train_network_textboost import main

    rc = main(["--config_file", str(REPO / "config_templates" / "tiny_demo.toml"), "--mixed_precision", "fp16", "--dry_run"])
    err = capsys.readouterr().err
    assert rc == 2 and "needs a GPU" in err and "--mixed_precision bf16" in err and "Traceback" not in err


def test_cast_frozen_weights_keeps_trainable_fp32():
    module = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4), torch.nn.Linear(4, 2))
    module.requires_grad_(False)
    module[2].weight.requires_grad_(True)
    assert cast_frozen_weights_(module, torch.bfloat16) == 5
    assert module[0].weight.dtype == torch.bfloat16 and module[1].bias.dtype == torch.bfloat16
    assert module[2].weight.dtype == torch.float32 and module[2].bias.dtype == torch.bfloat16
    assert cast_frozen_weights_(module, torch.float32) == 0
