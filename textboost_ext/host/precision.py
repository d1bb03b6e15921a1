"""``mixed_precision`` against the device the run will use: refuse what cannot work, warn what will be slow.

Checked before any model loads (the entry script, ``--dry_run`` and the trainer's setup), because the
alternative is a raw "expected Float but found Half" traceback minutes into a run:

- fp16 needs a GPU. CPU kernels for half-precision matmuls are missing or emulated, and a LoRA trained
  against fp16 CPU rounding is not worth having: refused, naming ``bf16`` and ``no``.
- bf16 runs everywhere, but on a CPU it is fast only with native bf16 instructions (AVX-512-bf16 or AMX):
  measured here, an AVX2-only CPU ran a CLIP-L forward 7x SLOWER in bf16 than in fp32 (README,
  Benchmarks), while AVX-512-bf16 machines run bf16 matmuls about 2x faster than fp32. So a warning.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

FP16_ON_CPU = ('mixed_precision = "fp16" needs a GPU, and this run would train on the CPU (no CUDA device '
               'found{why}). Use mixed_precision = "bf16" (fast on CPUs with AVX-512-bf16 or AMX) or "no" (fp32); '
               'on the command line: --mixed_precision bf16')
BF16_SLOW_CPU = ('mixed_precision = "bf16" on a CPU without native bf16 instructions ({flags}): bf16 is emulated '
                 'and several times SLOWER than fp32 here (a CLIP-L forward measured 7x slower on an AVX2 CPU). '
                 'Use mixed_precision = "no" on this machine unless you need the memory saving')

# /proc/cpuinfo flags that give native bf16 matmuls (AVX-512-bf16 on Cooper Lake / Zen 4+, AMX on Sapphire Rapids+)
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str] | None:
    """The CPU feature flags (Linux), or None where they cannot be read (macOS, Windows)."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags") and ":" in line:
            return set(line.split(":", 1)[1].split())
    return None


def cpu_has_native_bf16(flags: set[str] | None) -> bool | None:
    """True/False from the flags; None when unknown."""
    if flags is None:
        return None
    return any(f in flags for f in NATIVE_BF16_FLAGS)


def describe_cpu_simd(flags: set[str] | None) -> str:
    if flags is None:
        return "CPU features unknown"
    found = [f for f in ("amx_bf16", "avx512_bf16", "avx512f", "avx2") if f in flags]
    return "CPU has " + (", ".join(found) if found else "none of AVX2/AVX-512/AMX")


def training_device_type() -> tuple[str, str]:
    """("cuda" | "mps" | "cpu", why) for the device accelerate will pick, without building an Accelerator."""
    import torch

    if os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes"):
        return "cpu", "ACCELERATE_USE_CPU is set"
    if torch.cuda.is_available():
        return "cuda", ""
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps", ""
    return "cpu", ""


def check_mixed_precision(mixed_precision: str, device_type: str | None = None, why: str = "",
                          flags: set[str] | None | bool = False) -> list[str]:
    """Raise ValueError for a precision the device cannot train in; return warnings (to log) otherwise.

    ``device_type`` None: detect it. ``flags`` False: read this machine's CPU flags.
    """
    if device_type is None:
        device_type, why = training_device_type()
    if device_type != "cpu" or mixed_precision == "no":
        return []
    if mixed_precision == "fp16":
        raise ValueError(FP16_ON_CPU.format(why=f"; {why}" if why else ""))
    cpu = cpu_flags() if flags is False else flags
    if mixed_precision == "bf16" and cpu_has_native_bf16(cpu) is False:  # type: ignore[arg-type]
        return [BF16_SLOW_CPU.format(flags=describe_cpu_simd(cpu))]  # type: ignore[arg-type]
    return []


def cast_frozen_weights_(module: Any, dtype: Any) -> int:
    """Cast every floating-point parameter and buffer that does not train to ``dtype``, in place; returns
    how many tensors changed. Trainable parameters (LoRA, new embedding rows) keep their dtype (fp32)."""
    import torch

    if dtype == torch.float32:
        return 0
    changed = 0
    with torch.no_grad():
        for param in module.parameters():
            if not param.requires_grad and param.is_floating_point() and param.dtype != dtype:
                param.data = param.data.to(dtype)
                changed += 1
        for sub in module.modules():
            for name, buf in list(sub.named_buffers(recurse=False)):
                if buf is not None and buf.is_floating_point() and buf.dtype != dtype:
                    sub._buffers[name] = buf.to(dtype)
                    changed += 1
    return changed
