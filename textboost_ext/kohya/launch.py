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


def _flag_value(argv: list[str], flag: str) -> str | None:
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
    explicit = _flag_value(argv, "--sd_scripts_dir") or os.environ.get("SD_SCRIPTS_DIR")
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


def run_sd_scripts(folder: Path, argv: list[str]) -> int:
    """Run sd-scripts' training loop with the TextBoost trainer subclass. Returns an exit code."""
    import sys

    try:
        check_sd_scripts(folder)
        from textboost_ext.kohya.trainer import main as kohya_main
    except (SdScriptsUnavailable, ImportError) as err:
        print(f"error: cannot use kohya sd-scripts: {err}", file=sys.stderr)
        if isinstance(err, ImportError):
            print(SETUP_HINT, file=sys.stderr)
        return 2
    return kohya_main(folder, argv)
