"""Run kohya sd-scripts' ``train_network.py`` loop with TextBoost: ``main(sd_scripts_dir, argv)``.

The same four steps as sd-scripts' own ``__main__`` (parse, ``verify_command_line_training_args``,
``read_config_from_file``, ``Trainer().train(args)``) with sd-scripts' parser plus the TextBoost options
and a trainer class that is sd-scripts' own with :class:`~textboost_ext.kohya.mixin.TextBoostTrainerMixin`
in front. ``--sdxl`` (or ``sdxl = true`` in the TOML) picks ``sdxl_train_network``'s parser and
``SdxlNetworkTrainer``. The classes exist only once sd-scripts is importable:

    from textboost_ext.kohya.trainer import trainer_class   # after import_sd_scripts(folder)
    TextBoostNetworkTrainer = trainer_class(sdxl=False)      # or: from ...trainer import TextBoostNetworkTrainer
"""

from __future__ import annotations

import argparse
import functools
import importlib
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from textboost_ext.kohya.args import (
    TextBoostArgumentError,
    add_textboost_arguments,
    normalise_for_sd_scripts,
    textboost_config_from_args,
    wants_sdxl,
)
from textboost_ext.kohya.launch import SdScriptsUnavailable, check_sd_scripts, missing_module_message
from textboost_ext.kohya.mixin import TextBoostTrainerMixin

TRAINER_MODULES = {False: "train_network", True: "sdxl_train_network"}


def import_sd_scripts(folder: Path, sdxl: bool = False) -> ModuleType:
    """Put the checkout first on ``sys.path`` and import its trainer module (``sdxl_train_network`` for SDXL)."""
    folder = Path(folder).expanduser().resolve()
    check_sd_scripts(folder)
    if str(folder) in sys.path:
        sys.path.remove(str(folder))
    sys.path.insert(0, str(folder))  # position 0: the checkout's library/ and networks/ win over any other
    name = TRAINER_MODULES[sdxl]
    try:
        module = importlib.import_module(name)
    except ImportError as err:
        raise SdScriptsUnavailable(missing_module_message(err, folder)) from err
    loaded_from = Path(module.__file__ or "").resolve().parent
    if loaded_from != folder:
        raise SdScriptsUnavailable(f"{name} was imported from {loaded_from}, not from {folder}; another sd-scripts is "
                                   "already imported in this Python process")
    if not hasattr(importlib.import_module("train_network").NetworkTrainer, "process_batch"):
        raise SdScriptsUnavailable(f"{folder} has the legacy NetworkTrainer (no process_batch hook); check out the "
                                   "supported commit (see docs/sd-scripts.md)")
    return module


def build_parser(sdxl: bool) -> argparse.ArgumentParser:
    """sd-scripts' parser (``train_network`` or ``sdxl_train_network``) plus the TextBoost options."""
    return add_textboost_arguments(importlib.import_module(TRAINER_MODULES[sdxl]).setup_parser())


class SdScriptsAccess:
    """What the mixin reads from sd-scripts' globals (tests give the mixin fakes instead)."""

    def current_tokenize_strategy(self) -> Any:
        from library import strategy_base

        return strategy_base.TokenizeStrategy.get_strategy()  # the one train() set; it tokenises the dataset

    def current_text_encoding_strategy(self) -> Any:
        from library import strategy_base

        return strategy_base.TextEncodingStrategy.get_strategy()

    def sd_train_util(self) -> ModuleType:
        from library import train_util

        return train_util


@functools.cache
def trainer_class(sdxl: bool = False) -> type:
    """``TextBoostNetworkTrainer`` (over ``train_network.NetworkTrainer``) or ``TextBoostSdxlNetworkTrainer``
    (over ``sdxl_train_network.SdxlNetworkTrainer``); needs :func:`import_sd_scripts` first."""
    module = importlib.import_module(TRAINER_MODULES[sdxl])
    host = module.SdxlNetworkTrainer if sdxl else module.NetworkTrainer

    class Trainer(TextBoostTrainerMixin, SdScriptsAccess, host):  # type: ignore[misc, valid-type]
        pass

    Trainer.__name__ = Trainer.__qualname__ = "TextBoostSdxlNetworkTrainer" if sdxl else "TextBoostNetworkTrainer"
    Trainer.__doc__ = f"sd-scripts' {host.__name__} with the TextBoost hooks (textboost_ext.kohya.mixin)."
    return Trainer


def __getattr__(name: str) -> type:  # TextBoostNetworkTrainer / TextBoostSdxlNetworkTrainer, once sd-scripts imports
    if name in ("TextBoostNetworkTrainer", "TextBoostSdxlNetworkTrainer"):
        return trainer_class(sdxl=name == "TextBoostSdxlNetworkTrainer")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def parse_sd_scripts_args(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """sd-scripts' parse + ``read_config_from_file`` (CLI over TOML over defaults). That function parses
    ``sys.argv`` again, so it sees ``argv`` there for the duration of the call."""
    from library import train_util

    args = parser.parse_args(argv)
    train_util.verify_command_line_training_args(args)
    saved = sys.argv
    sys.argv = [saved[0] if saved else "train_network_textboost.py", *argv]
    try:
        return train_util.read_config_from_file(args, parser)
    finally:
        sys.argv = saved


def main(sd_scripts_dir: Path, argv: list[str]) -> int:
    """Train with sd-scripts' loop; returns an exit code (2: bad options or no usable sd-scripts)."""
    from textboost_ext.registry import create_extension

    sdxl = wants_sdxl(argv)
    try:
        import_sd_scripts(Path(sd_scripts_dir), sdxl)
    except SdScriptsUnavailable as err:
        print(f"error: cannot use kohya sd-scripts: {err}", file=sys.stderr)
        return 2
    parser = build_parser(sdxl)
    args = parse_sd_scripts_args(parser, argv)
    try:
        if bool(getattr(args, "sdxl", False)) != sdxl:
            raise TextBoostArgumentError("sdxl is set in a way the launcher could not see before parsing; pass --sdxl "
                                         "on the command line or `sdxl = true` in the --config_file TOML")
        normalise_for_sd_scripts(args)
        textboost_config_from_args(args)  # option errors before any model loads
        extension = create_extension(str(args.extension))
    except ValueError as err:  # TextBoostArgumentError, or an unknown --extension
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        trainer_class(sdxl)(extension).train(args)
    except TextBoostArgumentError as err:  # found once the dataset/models are there
        print(f"error: {err}", file=sys.stderr)
        return 2
    _write_manifest(args)
    return 0


def _write_manifest(args: object) -> None:
    """sd-scripts wrote its files in place; a folder holding exactly this run's LoRA becomes a complete adapter
    (``manifest.json`` last, as the built-in trainer does). Only the main process."""
    import os

    from textboost_ext.hub.manifest import write_manifest

    folder = Path(str(getattr(args, "output_dir", "") or "."))
    if int(os.environ.get("RANK", "0")) == 0 and (folder / f"{getattr(args, 'output_name', '')}.safetensors").is_file():
        write_manifest(folder)
