"""Decide whether the user asked for the sd-scripts host, and start it.

sd-scripts is asked for by ``--sd_scripts_dir PATH``, the ``SD_SCRIPTS_DIR`` environment variable, or by
running from inside an sd-scripts checkout (a folder holding ``train_network.py`` and ``library/``).
"""

from __future__ import annotations

import os
from pathlib import Path

SUPPORTED_COMMIT = "48d368fa"
SETUP_HINT = (
    "sd-scripts is not on PyPI. Set it up with:\n"
    "  git clone https://github.com/kohya-ss/sd-scripts && git -C sd-scripts checkout " + SUPPORTED_COMMIT + "\n"
    "  bash scripts/setup_sd_scripts.sh sd-scripts\n"
    "then pass --sd_scripts_dir sd-scripts (or set SD_SCRIPTS_DIR). See README, section 'kohya sd-scripts'."
)


class SdScriptsUnavailable(RuntimeError):
    pass


def flag_value(argv: list[str], flag: str) -> str | None:
    """The value of ``--flag VALUE`` / ``--flag=VALUE`` in ``argv`` (read before any parser exists)."""
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def is_sd_scripts_checkout(folder: Path) -> bool:
    return (folder / "train_network.py").is_file() and (folder / "library" / "train_util.py").is_file()


def sd_scripts_requested(argv: list[str], cwd: Path | None = None) -> Path | None:
    """The sd-scripts folder the user asked for, or None for the built-in host."""
    explicit = flag_value(argv, "--sd_scripts_dir") or os.environ.get("SD_SCRIPTS_DIR")
    if explicit:
        return Path(explicit).expanduser()
    here = Path(cwd or Path.cwd())
    return here if is_sd_scripts_checkout(here) else None


def check_sd_scripts(folder: Path) -> None:
    if not folder.is_dir():
        raise SdScriptsUnavailable(f"--sd_scripts_dir / SD_SCRIPTS_DIR: {folder} does not exist.\n{SETUP_HINT}")
    if not is_sd_scripts_checkout(folder):
        raise SdScriptsUnavailable(
            f"{folder} is not an sd-scripts checkout (no train_network.py and library/train_util.py).\n{SETUP_HINT}"
        )


def sd_scripts_python(folder: Path) -> Path | None:
    """The sd-scripts environment's interpreter, if one is known: ``SD_SCRIPTS_PYTHON`` or ``<checkout>/venv``."""
    explicit = os.environ.get("SD_SCRIPTS_PYTHON")
    if explicit:
        return Path(explicit)
    for candidate in (folder / "venv" / "bin" / "python", folder / "venv" / "Scripts" / "python.exe"):
        if candidate.is_file():
            return candidate
    return None


def missing_module_message(err: ImportError, folder: Path) -> str:
    """Which module could not be imported, in which interpreter, and how to get a working one."""
    import sys

    missing = err.name or str(err)
    python = sd_scripts_python(folder)
    rerun = (f"Run this script with the Python of the sd-scripts environment, e.g.\n  {python} "
             f"train_network_textboost.py --sd_scripts_dir {folder} ...\n"
             if python else "sd-scripts runs in its own environment (its pinned transformers/diffusers); run this "
             "script with that environment's Python (SD_SCRIPTS_PYTHON).\n")
    return (f"importing sd-scripts from {folder} failed: Python module {missing!r} is missing in {sys.executable} "
            f"({type(err).__name__}: {err}).\n{rerun}{SETUP_HINT}")


def run_sd_scripts(folder: Path, argv: list[str]) -> int:
    """Run sd-scripts' training loop with the TextBoost trainer subclass. Returns an exit code."""
    import sys

    try:
        check_sd_scripts(folder)
        from textboost_ext.kohya.trainer import main as kohya_main
    except SdScriptsUnavailable as err:
        print(f"error: cannot use kohya sd-scripts: {err}", file=sys.stderr)
        return 2
    except ImportError as err:  # our own adapter needs a package this interpreter lacks
        print(f"error: cannot use kohya sd-scripts: {missing_module_message(err, folder)}", file=sys.stderr)
        return 2
    return kohya_main(folder, argv)
