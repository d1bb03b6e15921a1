#!/usr/bin/env bash
# Set up an isolated kohya-ss/sd-scripts environment for textboost-ext's sd-scripts plugin and its tests.
#
#   scripts/setup_sd_scripts.sh [DIR]
#
# DIR (default: ${XDG_CACHE_HOME:-$HOME/.cache}/textboost-ext/sd-scripts) receives:
#   DIR/sd-scripts   the sd-scripts checkout at the pinned commit (cloned when the network allows;
#                    or bring your own with SD_SCRIPTS_DIR=/path/to/checkout)
#   DIR/venv         a venv with sd-scripts' requirements.txt, a torch (CPU-only by default: see TORCH_SPEC), torchvision (import guard
#                    below), bitsandbytes 0.50.x, peft, pytest, and this repository installed editable
# If DIR itself is an sd-scripts checkout (`setup_sd_scripts.sh sd-scripts`), it is used as the checkout
# and the venv goes to DIR/venv, sd-scripts' own convention (its .gitignore lists venv).
#
# Environment knobs:
#   SD_SCRIPTS_DIR         use this existing checkout instead of DIR/sd-scripts (it is never modified)
#   SD_SCRIPTS_COMMIT      commit to require (default: the one below); SD_SCRIPTS_ALLOW_OTHER_COMMIT=1
#                          accepts a git checkout at another commit that still has the step-method API
#   PYTHON                 interpreter for the venv (default python3; 3.10 or newer)
#   TORCH_SPEC             default torch==2.13.0+cpu: a CPU-ONLY build (the tests' machines carry its wheel).
#                          Installed FIRST and then pinned by a constraints file so that no later
#                          requirement can replace it. The same forms as `make setup TORCH_SPEC=...`:
#                          torch==VERSION, optionally followed by pip options, e.g. for a GPU
#                          TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu124"
#                          (then also TORCHVISION_SPEC="torchvision==0.28.0 --index-url <the same>")
#   TORCH_INDEX_URL        extra index to find TORCH_SPEC / TORCHVISION_SPEC (e.g. PyTorch's CPU wheel
#                          index) when they are not on your default index or find-links
#   TORCHVISION_SPEC       default torchvision==0.28.0 (the release made for torch 2.13), installed --no-deps
#
# Idempotent: a stamp in the venv (hash of this script, requirements.txt and the pins) skips pip when
# nothing changed; the import checks at the end always run. Prints the variables the tests read.
# Details, measurements and pitfalls: docs/sd-scripts.md.
set -euo pipefail

PINNED_COMMIT="48d368fa557731ad0488c07304dfeba8c07910eb"  # 2026-02-16, "Merge pull request #2268 from kohya-ss/sd3"
SD_SCRIPTS_URL="https://github.com/kohya-ss/sd-scripts"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0+cpu}"
TORCHVISION_SPEC="${TORCHVISION_SPEC:-torchvision==0.28.0}"
EXTRA_SPECS=("bitsandbytes>=0.50,<0.51" "peft==0.21.2" "pytest>=8" "scipy>=1.11")
COMMIT="${SD_SCRIPTS_COMMIT:-$PINNED_COMMIT}"
# TORCH_SPEC / TORCHVISION_SPEC: a requirement followed by pip options (words, as the Makefile takes them)
read -r -a TORCH_WORDS <<< "$TORCH_SPEC"
read -r -a TORCHVISION_WORDS <<< "$TORCHVISION_SPEC"
[[ "${TORCH_WORDS[0]:-}" == torch==* ]] || { echo "TORCH_SPEC must start with torch==VERSION (then pip options such as --index-url URL), got $TORCH_SPEC" >&2; exit 1; }
TORCH_PIN="${TORCH_WORDS[0]#torch==}"

log() { printf '[setup_sd_scripts] %s\n' "$*" >&2; }
die() { printf '[setup_sd_scripts] ERROR: %s\n' "$*" >&2; exit 1; }
if [[ "$TORCH_PIN" == *+cpu ]]; then
  log "torch: $TORCH_SPEC, a CPU-only build. For a GPU run with TORCH_SPEC=\"torch==${TORCH_PIN%+cpu} --index-url https://download.pytorch.org/whl/cu124\" (and TORCHVISION_SPEC likewise)"
else
  log "torch: $TORCH_SPEC"
fi

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[[ -f "$REPO/pyproject.toml" && -d "$REPO/textboost_ext" ]] || die "cannot find the textboost-ext repository above $0"
DIR="${1:-${XDG_CACHE_HOME:-$HOME/.cache}/textboost-ext/sd-scripts}"
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
PYTHON="${PYTHON:-python3}"

# ---------------------------------------------------------------- 1. the sd-scripts checkout
has_step_api() {  # the NetworkTrainer API the plugin targets (legacy trees lack process_batch)
  local f="$1/train_network.py"
  [[ -f "$f" ]] && grep -q "def process_batch(" "$f" && grep -q "def get_noise_pred_and_target(" "$f" \
    && grep -q "def on_step_start(" "$f" && [[ -f "$1/networks/lora.py" && -f "$1/requirements.txt" ]]
}

check_commit() {  # a git checkout must be at $COMMIT; an exported tree (no .git) is trusted by its API
  local tree="$1" head top
  top="$(git -C "$tree" rev-parse --show-toplevel 2>/dev/null || true)"
  if [[ -n "$top" && "$(cd "$top" && pwd)" == "$tree" ]] && head="$(git -C "$tree" rev-parse HEAD 2>/dev/null)"; then
    if [[ "$head" != "$COMMIT"* ]]; then
      [[ "${SD_SCRIPTS_ALLOW_OTHER_COMMIT:-0}" == 1 ]] \
        || die "$tree is at commit $head, expected $COMMIT. Run: git -C '$tree' checkout $COMMIT (or set SD_SCRIPTS_ALLOW_OTHER_COMMIT=1 to accept it)"
      log "WARNING: $tree is at $head, not the tested $COMMIT (SD_SCRIPTS_ALLOW_OTHER_COMMIT=1)"
    fi
  else
    log "$tree is not a git checkout; cannot verify the commit (expected $COMMIT)"
  fi
}

if [[ -n "${SD_SCRIPTS_DIR:-}" ]]; then
  SD="$(cd "$SD_SCRIPTS_DIR" 2>/dev/null && pwd)" || die "SD_SCRIPTS_DIR=$SD_SCRIPTS_DIR does not exist"
elif [[ -f "$DIR/train_network.py" && -f "$DIR/library/train_util.py" ]]; then
  SD="$DIR"  # DIR is the checkout itself
else
  SD="$DIR/sd-scripts"
  if [[ ! -e "$SD" ]]; then
    command -v git >/dev/null || die "git is needed to clone $SD_SCRIPTS_URL (or set SD_SCRIPTS_DIR to an existing checkout)"
    log "cloning $SD_SCRIPTS_URL into $SD"
    git clone --quiet "$SD_SCRIPTS_URL" "$SD.partial" \
      || { rm -rf "$SD.partial"; die "could not clone $SD_SCRIPTS_URL (no network?). Clone it elsewhere and run: git -C sd-scripts checkout $COMMIT; then rerun with SD_SCRIPTS_DIR=/path/to/sd-scripts"; }
    git -C "$SD.partial" checkout --quiet "$COMMIT" || { rm -rf "$SD.partial"; die "commit $COMMIT not found in $SD_SCRIPTS_URL"; }
    mv "$SD.partial" "$SD"
  fi
fi
has_step_api "$SD" || die "$SD is not an sd-scripts tree with NetworkTrainer.process_batch/get_noise_pred_and_target/on_step_start (is it the legacy v0.9.x API?). Check out $COMMIT."
check_commit "$SD"
log "sd-scripts: $SD"

# ---------------------------------------------------------------- 2. the venv
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
  || die "$PYTHON is $("$PYTHON" --version 2>&1); sd-scripts and torch 2.13 need Python 3.10 or newer (set PYTHON=...)"
VENV="$DIR/venv"
VPY="$VENV/bin/python"
if [[ ! -x "$VPY" ]]; then
  log "creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi

pip_q() {  # pip, quiet; drops the "Location ... is ignored" noise some pip configurations print
  "$VPY" -m pip --disable-pip-version-check "$@" 2>&1 \
    | { grep -v -e "is ignored: it is neither a file nor a directory" || true; } >&2
  return "${PIPESTATUS[0]}"
}

index_args=()
[[ -n "${TORCH_INDEX_URL:-}" ]] && index_args=(--extra-index-url "$TORCH_INDEX_URL")

torch_version() { "$VPY" -c 'import importlib.metadata as m; print(m.version("torch"))' 2>/dev/null || true; }

STAMP="$VENV/.textboost-setup-stamp"  # inside the venv: never litter a checkout
stamp_value="$( { cat "${BASH_SOURCE[0]}" "$SD/requirements.txt"; echo "$TORCH_SPEC $TORCHVISION_SPEC $SD $REPO ${EXTRA_SPECS[*]}"; } | sha256sum | cut -d' ' -f1)"

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$stamp_value" ]]; then
  log "packages up to date (stamp matches); skipping pip"
else
  rm -f "$STAMP"
  # torch first, then pin it: requirements.txt has diffusers[torch]/accelerate/optimizers that depend on
  # torch, and an unpinned resolve may fetch a CUDA build of several GiB.
  log "installing $TORCH_SPEC"
  pip_q install -q "${index_args[@]}" "${TORCH_WORDS[@]}" || die "could not install $TORCH_SPEC. Put the wheel on your find-links or set TORCH_INDEX_URL to PyTorch's CPU wheel index"
  TORCH_VERSION="$(torch_version)"
  log "installed torch $TORCH_VERSION ($("$VPY" -c 'import torch; print("CUDA " + torch.version.cuda if torch.version.cuda else "CPU-only")' 2>/dev/null))"
  CONSTRAINTS="$VENV/textboost-constraints.txt"
  printf 'torch==%s\n' "$TORCH_VERSION" > "$CONSTRAINTS.tmp" && mv "$CONSTRAINTS.tmp" "$CONSTRAINTS"

  # requirements.txt ends with "-e ." (sd-scripts' `library` package): it must run from the tree.
  log "installing sd-scripts requirements.txt (torch pinned to $TORCH_VERSION)"
  (cd "$SD" && pip_q install -q -r requirements.txt -c "$CONSTRAINTS") || die "pip install -r $SD/requirements.txt failed"

  # torchvision is imported at top level by library/train_util.py and library/utils.py. --no-deps so
  # that it can never drag in another torch.
  log "installing $TORCHVISION_SPEC (--no-deps)"
  pip_q install -q --no-deps "${index_args[@]}" "${TORCHVISION_WORDS[@]}" -c "$CONSTRAINTS" || die "could not install $TORCHVISION_SPEC"

  log "installing ${EXTRA_SPECS[*]} and textboost-ext (editable, --no-deps)"
  pip_q install -q "${EXTRA_SPECS[@]}" -c "$CONSTRAINTS" || die "could not install ${EXTRA_SPECS[*]}"
  pip_q install -q --no-deps -e "$REPO" || die "could not install $REPO into $VENV"
fi

# ---------------------------------------------------------------- 3. the torchvision import guard
# The torchvision 0.28.0 wheel on PyPI is a CUDA build. Next to a CPU torch its C extension does not
# load, and `import torchvision` then dies with "operator torchvision::nms does not exist" because two
# fake-kernel registrations lack the _has_ops() guard their neighbours have. A meta-path hook, loaded by
# a .pth file, runs that one module with registrations of the missing torchvision::* operators skipped.
# It edits no installed file (so reinstalling torchvision keeps working), does not import torch at
# start-up, and does nothing when the extension loads (a matching CPU torchvision).
SITE="$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
cat > "$SITE/sd_scripts_torchvision_guard.py.tmp" <<'PYEOF'
"""Lets a CUDA-only torchvision wheel import next to a CPU torch (installed by textboost-ext's
scripts/setup_sd_scripts.sh; see docs/sd-scripts.md there).

When torchvision's C extension did not load, ``torchvision/_meta_registrations.py`` is executed with
``torch.library.register_fake("torchvision::...")`` turned into a no-op: there is no such operator to
describe, which is exactly the ``_has_ops()`` guard that module's other registrations already use.
torchvision's operators (nms, roi_align, ...) still raise their own "Couldn't load custom C++ ops" error
when called; the pure-Python ``torchvision.transforms`` that sd-scripts uses work normally.
"""

from __future__ import annotations

import importlib.abc
import sys
from typing import Any

_TARGET = "torchvision._meta_registrations"


class _GuardingLoader(importlib.abc.Loader):
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def create_module(self, spec: Any) -> Any:
        return self._inner.create_module(spec)

    def exec_module(self, module: Any) -> None:
        import torch.library
        import torchvision.extension

        if torchvision.extension._has_ops():
            self._inner.exec_module(module)
            return
        original = torch.library.register_fake

        def register_fake_unless_missing(op: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(op, str) and op.startswith("torchvision::"):
                return lambda fn: fn  # the operator was never defined: nothing to describe
            return original(op, *args, **kwargs)

        torch.library.register_fake = register_fake_unless_missing
        try:
            self._inner.exec_module(module)
        finally:
            torch.library.register_fake = original


class _GuardingFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name != _TARGET:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                spec.loader = _GuardingLoader(spec.loader)
                return spec
        return None


if not any(type(f).__name__ == "_GuardingFinder" for f in sys.meta_path):
    sys.meta_path.insert(0, _GuardingFinder())
PYEOF
mv "$SITE/sd_scripts_torchvision_guard.py.tmp" "$SITE/sd_scripts_torchvision_guard.py"
printf 'import sd_scripts_torchvision_guard\n' > "$SITE/sd_scripts_torchvision_guard.pth.tmp"
mv "$SITE/sd_scripts_torchvision_guard.pth.tmp" "$SITE/sd_scripts_torchvision_guard.pth"

# ---------------------------------------------------------------- 4. checks (always run)
"$VPY" -m pip --disable-pip-version-check check >&2 || die "pip check failed in $VENV"
log "checking imports (sd-scripts' train_network imports diffusers: 10-30 s)"
OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 SD_TREE="$SD" TORCH_PIN="$TORCH_PIN" "$VPY" - <<'PYEOF' || die "import check failed (see above)"
import importlib.metadata as md
import os
import sys

import torch

want = os.environ["TORCH_PIN"]
# "2.13.0" accepts any local build of it (2.13.0+cu124 from a CUDA index); "2.13.0+cpu" only that one
if torch.__version__ != want and (("+" in want) or torch.__version__.split("+")[0] != want):
    sys.exit(f"torch is {torch.__version__}, expected {want}: something replaced it; delete the venv and rerun")
sys.path.insert(0, os.environ["SD_TREE"])
from torchvision import transforms  # noqa: E402,F401  (through the guard when needed)

import train_network  # noqa: E402,F401
from library import train_util  # noqa: E402,F401
import networks.lora  # noqa: E402,F401
import bitsandbytes  # noqa: E402,F401
import textboost_ext.models.tiny  # noqa: E402,F401
import textboost_ext.models.tokenizer  # noqa: E402,F401
import textboost_ext.network  # noqa: E402,F401

versions = {p: md.version(p) for p in ("torch", "torchvision", "transformers", "diffusers", "accelerate", "bitsandbytes", "peft", "safetensors")}
print("[setup_sd_scripts] ok: " + ", ".join(f"{k} {v}" for k, v in versions.items()), file=sys.stderr)
PYEOF

[[ -f "$STAMP" ]] || { printf '%s\n' "$stamp_value" > "$STAMP.tmp" && mv "$STAMP.tmp" "$STAMP"; }

cat <<EOF
export SD_SCRIPTS_DIR=$SD
export SD_SCRIPTS_PYTHON=$VPY
EOF
