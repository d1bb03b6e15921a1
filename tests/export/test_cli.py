"""``verify`` / ``convert`` subcommands: exit codes, printed tables, mounting into another CLI."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from textboost_ext.export.cli import main, register_subcommands

REPO = Path(__file__).resolve().parents[2]


def test_verify_exit_codes_and_table(tmp_path: Path, capsys: pytest.CaptureFixture[str], export_lora: Callable[..., Any],
                                     real_dims_sd1: Callable[..., Path]) -> None:
    good = real_dims_sd1(tmp_path / "real.safetensors")
    assert main(["verify", str(good)]) == 0
    out = capsys.readouterr().out
    assert "OK: all" in out and "PASS  attention q/k/v/out together" in out
    assert main(["verify", str(good), "--arch", "sdxl"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  family" in out and "--arch says sdxl" in out
    tiny, _, _ = export_lora("sd1")
    assert main(["verify", str(tiny)]) == 1  # tiny dims are not SD 1.x dims
    out = capsys.readouterr().out
    assert "FAIL  shapes" in out and "FAILED: 1 of" in out


def test_verify_with_base_runs_the_oracle(tiny_model_dir: Callable[[str], Path], export_lora: Callable[..., Any],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    path, _, _ = export_lora("sd1")
    assert main(["verify", str(path), "--base", str(tiny_model_dir("sd1"))]) == 0, capsys.readouterr().out
    out = capsys.readouterr().out
    assert "PASS  diffusers: hidden states = training" in out and "PASS  diffusers: unload restores base" in out


def test_convert_round_trip(tmp_path: Path, export_lora: Callable[..., Any], capsys: pytest.CaptureFixture[str]) -> None:
    path, _, _ = export_lora("sd1")
    mid, back = tmp_path / "mid.safetensors", tmp_path / "k" / "mylora.safetensors"
    assert main(["convert", str(path), str(mid)]) == 0
    assert main(["convert", str(mid), str(back), "--to", "kohya"]) == 1  # no folder is created for the user
    assert "k does not exist; create it first" in capsys.readouterr().err
    back.parent.mkdir()
    assert main(["convert", str(mid), str(back), "--to", "kohya"]) == 0
    out = capsys.readouterr().out
    assert f"wrote {back}" in out
    assert main(["convert", str(path), str(tmp_path / "x.safetensors"), "--to", "kohya"]) == 1
    assert "already in kohya" in capsys.readouterr().err


def test_convert_official(tmp_path: Path, tiny_pipe: Callable[[str], Any], capsys: pytest.CaptureFixture[str]) -> None:
    from peft import LoraConfig, get_peft_model
    import copy

    pipe = tiny_pipe("sd1")
    model = get_peft_model(copy.deepcopy(pipe.text_encoder), LoraConfig(r=2, lora_alpha=2, target_modules=["q_proj", "k_proj", "v_proj"]))
    model.save_pretrained(str(tmp_path / "official" / "text_encoder"))
    torch.save({"<dog>": torch.randn(1, 32)}, tmp_path / "official" / "dog.bin")
    dst = tmp_path / "out" / "mylora.safetensors"
    dst.parent.mkdir()
    args = ["convert", str(tmp_path / "official"), str(dst), "--from", "official-textboost", "--arch", "sd1"]
    assert main(args) == 1 and "--rename dog=NEWNAME" in capsys.readouterr().err
    assert main(args + ["--rename", "dog=mydogtb", "--save-precision", "bf16"]) == 0
    out = capsys.readouterr().out
    assert "note: zero-filled" in out and f"wrote {dst.with_name('mydogtb.safetensors')}" in out


def test_register_subcommands_in_another_cli() -> None:
    parser = argparse.ArgumentParser(prog="textboost-hub")
    subparsers = parser.add_subparsers(dest="command")
    subparsers.add_parser("push")
    register_subcommands(subparsers)
    args = parser.parse_args(["verify", "f.safetensors", "--arch", "sdxl"])
    assert args.arch == "sdxl" and args.base is None and callable(args.func)
    args = parser.parse_args(["convert", "a", "b", "--to", "diffusers"])
    assert args.to == "diffusers" and args.source_format == "auto" and callable(args.func)
    with pytest.raises(SystemExit):
        parser.parse_args(["verify", "f", "--arch", "sd3"])


def test_python_dash_m(tmp_path: Path, real_dims_sd1: Callable[..., Path]) -> None:
    good = real_dims_sd1(tmp_path / "real.safetensors")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "textboost_ext.export.cli", "verify", str(good), "--arch", "sd1"],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "OK: all" in proc.stdout


def test_verify_with_unloadable_base(tmp_path: Path, capsys: pytest.CaptureFixture[str], real_dims_sd1: Callable[..., Path]) -> None:
    good = real_dims_sd1(tmp_path / "real.safetensors")
    assert main(["verify", str(good), "--base", str(tmp_path / "no_such_model")]) == 1
    assert "verify: error:" in capsys.readouterr().err
