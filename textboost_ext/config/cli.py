"""Command line generated from the schema: every config key is also a ``--<key>`` flag (kohya style).

Only flags actually given become overrides (argparse defaults are suppressed), so the precedence is
simply: command line > TOML file > schema defaults. ``[textboost]`` keys are flattened onto the
command line as kohya does; their names are unique across both tables (checked at import).
"""

from __future__ import annotations

import argparse
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textboost_ext.config.coerce import field_hints, split_optional
from textboost_ext.config.errors import ConfigError, closest_name
from textboost_ext.config.load import load_config
from textboost_ext.config.schema import TextBoostConfig, TrainConfig
from textboost_ext.config.unsupported import KOHYA_TRAIN_OPTIONS, SECRET_HINT, is_secret_key

RUN_OPTIONS = ("config_file", "dry_run", "show_captions", "quiet", "verbose", "sd_scripts_dir")


@dataclass(frozen=True)
class RunOptions:
    """Options about the run itself, not part of the training config."""

    config_file: str | None = None
    dry_run: bool = False
    show_captions: int = 0  # print this many training captions and exit (kohya's --debug_dataset habit)
    log_level: str = "info"  # "quiet" | "info" | "verbose" (--quiet / --verbose)
    sd_scripts_dir: str | None = None  # reserved for the sd-scripts host


def _config_flag_names() -> list[str]:
    """Every config key that becomes a flag; fails loudly if the two tables ever share a name."""
    train, textboost = field_hints(TrainConfig), field_hints(TextBoostConfig)
    names = [*train, *textboost]
    bool_names = [n for n, hint in {**train, **textboost}.items() if split_optional(hint)[0] is bool]
    all_flags = names + [f"no_{n}" for n in bool_names] + list(RUN_OPTIONS)
    clashes = sorted({n for n in all_flags if all_flags.count(n) > 1})
    if clashes:
        raise RuntimeError(f"config keys clash on the flattened command line: {clashes}")
    return names


_CONFIG_FLAGS = _config_flag_names()


def build_arg_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """``--config_file``, ``--dry_run``, ``--sd_scripts_dir`` and one ``--<key>`` per config field."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Train a TextBoost text-encoder LoRA (kohya option names).",
        epilog="Precedence: command line > --config_file TOML > defaults. Booleans: --key / --no_key.",
        allow_abbrev=False,  # a prefix like --learning must not silently mean --learning_rate
        argument_default=argparse.SUPPRESS,
    )
    run = parser.add_argument_group("run")
    run.add_argument("--config_file", metavar="TOML", help="training config TOML (kohya names + [textboost])")
    run.add_argument("--dry_run", action="store_true", help="validate, print the resolved config and dataset, exit")
    run.add_argument("--show_captions", metavar="N", type=int,
                     help="print N training captions as the run would draw them (with augmentation tokens), then exit")
    run.add_argument("--quiet", action="store_true", help="show only warnings and errors (and the progress bar)")
    run.add_argument("--verbose", action="store_true", help="debug messages, and third-party libraries' own messages")
    run.add_argument("--sd_scripts_dir", metavar="DIR", help="kohya sd-scripts checkout, to train with its trainer")
    _add_fields(parser.add_argument_group("training config (TOML top level)"), TrainConfig())
    _add_fields(parser.add_argument_group("[textboost] table"), TextBoostConfig())
    return parser


def _add_fields(group: argparse._ArgumentGroup, defaults: TrainConfig | TextBoostConfig) -> None:
    from textboost_ext.config.options_help import HIDDEN_FROM_HELP, describe

    for name, hint in field_hints(type(defaults)).items():
        default = getattr(defaults, name)
        base, _ = split_optional(hint)
        # the text comes from options_help (also docs/options.md); always-refused kohya keys stay parseable
        # (to be refused with their message) but are not offered
        help_text = argparse.SUPPRESS if name in HIDDEN_FROM_HELP else describe(name, default).replace("%", "%%")
        if base is bool:
            group.add_argument(f"--{name}", dest=name, action="store_const", const=True, help=help_text)
            # --no_<key> exists for every boolean (to override a TOML `true`); listed when the default is on.
            group.add_argument(f"--no_{name}", dest=name, action="store_const", const=False,
                               help=f"set {name} to false" if default and name not in HIDDEN_FROM_HELP else argparse.SUPPRESS)
        elif name == "resolution":
            group.add_argument(f"--{name}", nargs="+", metavar="SIZE", help=help_text)
        elif typing.get_origin(base) is list:
            group.add_argument(f"--{name}", nargs="*", metavar="VALUE", help=help_text)
        else:
            metavar = {int: "INT", float: "FLOAT"}.get(base, "TEXT")
            group.add_argument(f"--{name}", metavar=metavar, help=help_text)


def parse_args(argv: Sequence[str] | None = None, *, check_paths: bool = True) -> tuple[TrainConfig, RunOptions]:
    """Parse the command line, load ``--config_file``, apply the flags given, validate.

    Raises :class:`ConfigError` listing unknown flags together with every config problem.
    ``check_paths`` also checks that input files and folders exist.
    """
    namespace, unknown = build_arg_parser().parse_known_args(argv)
    given: dict[str, Any] = vars(namespace)
    run = RunOptions(
        config_file=_with_toml_suffix(given.pop("config_file", None)),
        dry_run=bool(given.pop("dry_run", False)),
        show_captions=int(given.pop("show_captions", 0)),
        log_level=_log_level(given.pop("quiet", False), given.pop("verbose", False)),
        sd_scripts_dir=given.pop("sd_scripts_dir", None),
    )
    flag_errors = _unknown_flags(unknown)
    try:
        cfg = load_config(run.config_file, given, check_paths=check_paths)
    except ConfigError as exc:
        raise ConfigError(flag_errors + exc.errors) from None
    if flag_errors:
        raise ConfigError(flag_errors)
    return cfg, run


def _log_level(quiet: bool, verbose: bool) -> str:
    return "verbose" if verbose else "quiet" if quiet else "info"


def _with_toml_suffix(config_file: str | None) -> str | None:
    # kohya accepts `--config_file x` for x.toml.
    if config_file and not Path(config_file).exists() and Path(config_file + ".toml").is_file():
        return config_file + ".toml"
    return config_file


def _unknown_flags(unknown: list[str]) -> list[str]:
    known = [*_CONFIG_FLAGS, *RUN_OPTIONS]
    errors = []
    after_flag = False
    for item in unknown:
        if not item.startswith("-"):
            if not after_flag:
                errors.append(f"command line: unexpected argument {item!r} (options look like --key value)")
            after_flag = False
            continue
        name = item.lstrip("-").split("=", 1)[0]
        after_flag = "=" not in item
        if is_secret_key(name):
            errors.append(f"command line: --{name} is not accepted; {SECRET_HINT}")
        elif name in KOHYA_TRAIN_OPTIONS:
            errors.append(f"command line: --{name} is a kohya option this trainer does not implement; "
                          f"{KOHYA_TRAIN_OPTIONS[name]}")
        else:
            best = closest_name(name, known)
            errors.append(f"command line: unknown option --{name}" + (f" (did you mean --{best}?)" if best else ""))
    return errors
