"""`make setup`'s torch handling, run for real against a stand-in interpreter (no network, no pip).

The stand-in `VENV/bin/python` records its arguments and answers `import torch` as told, so these tests
run the Makefile's own recipe: how TORCH_SPEC reaches pip (as separate words, so `--index-url` works)
and when an already-installed torch is kept.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")

FAKE_PYTHON = """#!/bin/sh
# one line per call, each argument in <> so that one quoted argument differs from several words
for a in "$@"; do printf '<%s>' "$a"; done >> "$(dirname "$0")/../calls.log"; echo >> "$(dirname "$0")/../calls.log"
case "$*" in
  *"import torch"*) [ -f "$(dirname "$0")/../has_torch" ] || exit 1; echo 2.99.0+cu999 ;;
esac
exit 0
"""


def _venv(tmp_path: Path, *, has_torch: bool) -> Path:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    if has_torch:
        (venv / "has_torch").touch()
    return venv


def _make(venv: Path, *args: str, env: dict[str, str] | None = None) -> tuple[str, list[str]]:
    run_env = {k: v for k, v in os.environ.items() if k not in ("TORCH_SPEC", "MAKEFLAGS")}
    run_env.update(env or {})
    proc = subprocess.run(["make", "--no-print-directory", f"VENV={venv}", *args, "setup"], cwd=REPO,
                          env=run_env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = (venv / "calls.log").read_text().splitlines()
    return proc.stdout, [" ".join(line[1:-1].split("><")) for line in lines]


def _argvs(venv: Path) -> list[list[str]]:
    return [line[1:-1].split("><") for line in (venv / "calls.log").read_text().splitlines()]


def test_default_installs_pinned_torch_when_none_is_installed(tmp_path):
    venv = _venv(tmp_path, has_torch=False)
    out, calls = _make(venv)
    assert "-m pip install -q torch==2.13.0" in calls
    assert "-m pip install -q -e .[test]" in calls
    assert calls.index("-m pip install -q torch==2.13.0") < calls.index("-m pip install -q -e .[test]")
    assert (venv / ".installed").exists()


def test_torch_spec_with_index_url_reaches_pip_as_separate_words(tmp_path):
    venv = _venv(tmp_path, has_torch=False)
    spec = "torch --index-url https://download.pytorch.org/whl/cu124"
    out, calls = _make(venv, f"TORCH_SPEC={spec}")
    # pip got separate words, not one quoted "torch --index-url ..." requirement (pip's "Invalid requirement").
    assert ["-m", "pip", "install", "-q", "torch", "--index-url", "https://download.pytorch.org/whl/cu124"] in _argvs(venv)


def test_an_installed_torch_is_kept_by_default(tmp_path):
    venv = _venv(tmp_path, has_torch=True)
    out, calls = _make(venv)
    assert not [c for c in calls if c.startswith("-m pip install -q torch")]
    assert "keeping the torch already in" in out and "2.99.0+cu999" in out
    assert "-m pip install -q -e .[test]" in calls


@pytest.mark.parametrize("how", ["command line", "environment"])
def test_an_explicit_torch_spec_replaces_an_installed_torch(tmp_path, how):
    venv = _venv(tmp_path, has_torch=True)
    spec = "torch --index-url https://download.pytorch.org/whl/cpu"
    if how == "command line":
        out, calls = _make(venv, f"TORCH_SPEC={spec}")
    else:
        out, calls = _make(venv, env={"TORCH_SPEC": spec})
    assert f"-m pip install -q {spec}" in calls


def test_sd_scripts_setup_says_it_builds_a_cpu_torch_and_checks_the_spec(tmp_path):
    script = REPO / "scripts" / "setup_sd_scripts.sh"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TORCH")}
    env["SD_SCRIPTS_DIR"] = str(tmp_path / "missing")  # stops the script before any venv or pip
    proc = subprocess.run(["bash", str(script), str(tmp_path / "dir")], env=env, capture_output=True, text=True)
    assert proc.returncode != 0
    assert "torch==2.13.0+cpu, a CPU-only build" in proc.stderr and "whl/cu124" in proc.stderr
    env["TORCH_SPEC"] = "torch --index-url https://download.pytorch.org/whl/cu124"  # unpinned: refused
    proc = subprocess.run(["bash", str(script), str(tmp_path / "dir")], env=env, capture_output=True, text=True)
    assert proc.returncode != 0 and "TORCH_SPEC must start with torch==VERSION" in proc.stderr
    env["TORCH_SPEC"] = "torch==2.13.0 --index-url https://download.pytorch.org/whl/cu124"
    proc = subprocess.run(["bash", str(script), str(tmp_path / "dir")], env=env, capture_output=True, text=True)
    assert "torch: torch==2.13.0 --index-url" in proc.stderr and "CPU-only" not in proc.stderr
