"""Load a training config: TOML file + command-line overrides -> a validated :class:`TrainConfig`.

The TOML uses kohya option names at the top level plus a ``[textboost]`` table. Like kohya's
``read_config_from_file``, other tables (``[model]``, ``[training]``, ...) are only groupings and are
flattened one level. Unlike kohya, nothing is silently ignored: an unknown key, a wrong type or an
impossible value is an error naming the file, the table and the fix, and every problem is reported
in one :class:`ConfigError` before any model loads.
"""

from __future__ import annotations

import difflib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from textboost_ext.config.coerce import BadValue, coerce, textboost_fields, train_fields
from textboost_ext.config.errors import ConfigError, Problems, closest_name, did_you_mean
from textboost_ext.config.paths import INPUT_PATHS, check_paths as check_input_paths, resolve_input_path
from textboost_ext.config.schema import TextBoostConfig, TrainConfig
from textboost_ext.config.tomlio import read_toml, toml_value
from textboost_ext.config.unsupported import (
    ANY_VALUE,
    KOHYA_TRAIN_OPTIONS,
    TOP_LEVEL_OFF_VALUES,
    MISPLACED_KEYS,
    SECRET_HINT,
    is_secret_key,
    is_top_level_off,
    looks_like_token,
)
from textboost_ext.config.options import model_family
from textboost_ext.config.validate import validate_config

if typing.TYPE_CHECKING:
    from textboost_ext.config.dataset import DatasetSpec

TEXTBOOST_TABLE = "textboost"


@dataclass
class _Setting:
    """One raw value and where it came from (for messages and relative-path lookup)."""

    value: Any
    source: str  # "x.toml", "x.toml [training]", "command line (--learning_rate)"
    base_dir: Path | None  # the TOML's folder; None for the command line
    from_text: bool  # command-line text that still needs parsing


def load_config(config_file: str | Path | None, cli_overrides: Mapping[str, object] | None = None, *,
                check_paths: bool = False) -> TrainConfig:
    """Read ``config_file`` (may be None), apply ``cli_overrides`` (field name -> value; they win), validate.

    Override values may be typed or command-line text (``"5e-5"``). Schema validation never touches
    the disk; ``check_paths=True`` (or :func:`textboost_ext.config.paths.check_paths` later) also
    checks that input paths exist. Raises :class:`ConfigError` listing every problem.
    """
    problems = Problems()
    train: dict[str, _Setting] = {}
    textboost: dict[str, _Setting] = {}
    if config_file is not None:
        raw = read_toml(config_file)
        _collect_file(raw, str(config_file), Path(config_file).parent, train, textboost, problems)
    _collect_overrides(cli_overrides or {}, train, textboost, problems)

    train_values = _coerce_all(train, train_fields(), problems)
    textboost_values = _coerce_all(textboost, textboost_fields(), problems)
    cfg = TrainConfig(**train_values, textboost=TextBoostConfig(**textboost_values))
    validate_config(cfg, problems)
    _reject_token_values(cfg, problems)
    if check_paths:  # in the same round as the key and value problems
        check_input_paths(cfg, problems)
    problems.raise_if_any()
    return cfg


def _collect_file(raw: dict[str, Any], label: str, base_dir: Path, train: dict[str, _Setting],
                  textboost: dict[str, _Setting], problems: Problems) -> None:
    train_names, textboost_names = train_fields(), textboost_fields()

    def put(target: dict[str, _Setting], key: str, value: Any, source: str) -> None:
        if key in target:
            problems.add(f"{source}: {key} is set twice (also in {target[key].source}); keep one")
        else:
            target[key] = _Setting(value, source, base_dir, from_text=False)

    for key, value in raw.items():
        if key == TEXTBOOST_TABLE:
            if not isinstance(value, dict):
                problems.add(f"{label}: textboost must be a table: start it with a [textboost] line")
                continue
            for sub_key, sub_value in value.items():
                if sub_key in textboost_names:
                    put(textboost, sub_key, sub_value, f"{label} [textboost]")
                else:
                    problems.add(_unknown_key(sub_key, f"{label} [textboost]", in_textboost=True))
        elif key in train_names:
            put(train, key, value, label)
        elif key in KOHYA_TRAIN_OPTIONS and is_top_level_off(key, value):
            continue  # a kohya option spelled out at its "off" value changes nothing
        elif isinstance(value, dict) and not is_secret_key(key) and key not in {*KOHYA_TRAIN_OPTIONS, "datasets"}:
            table = f"{label} [{key}]"
            if _looks_like_textboost(key):
                problems.add(f"{table}: unknown table (did you mean [textboost]?)")
                continue
            for sub_key, sub_value in value.items():  # a kohya-style grouping table: flatten it
                if sub_key == TEXTBOOST_TABLE:
                    problems.add(f"{table}: [textboost] must be a top-level table, not [{key}.textboost]")
                elif sub_key in train_names:
                    put(train, sub_key, sub_value, table)
                elif sub_key in KOHYA_TRAIN_OPTIONS and is_top_level_off(sub_key, sub_value):
                    continue
                elif isinstance(sub_value, dict):
                    problems.add(f"{table}: nested table [{key}.{sub_key}] is not allowed; tables group "
                                 "top-level keys one level deep")
                else:
                    problems.add(_unknown_key(sub_key, table, in_textboost=False))
        else:
            problems.add(_unknown_key(key, label, in_textboost=False))


def _looks_like_textboost(table: str) -> bool:
    # A grouping table may have any name, but [TextBoost] or [textbost] is a typo of the real table.
    return difflib.SequenceMatcher(None, table.lower(), TEXTBOOST_TABLE).ratio() >= 0.75


def _unknown_key(key: str, where: str, *, in_textboost: bool) -> str:
    train_names, textboost_names = train_fields(), textboost_fields()
    if is_secret_key(key):
        return f"{where}: {key!r} looks like a secret; {SECRET_HINT}"
    if in_textboost and key in train_names:
        return f"{where}: {key!r} is a top-level setting, not a [textboost] one; move it above the [textboost] table"
    if not in_textboost and key in textboost_names:
        return f"{where}: {key!r} is a [textboost] setting; move it into the [textboost] table"
    if key in MISPLACED_KEYS:
        return f"{where}: {key!r} {MISPLACED_KEYS[key]}"
    if key in KOHYA_TRAIN_OPTIONS:
        off = TOP_LEVEL_OFF_VALUES.get(key)
        accepted = f" (only {toml_value(off)}, its off value, is accepted)" if off is not None and off is not ANY_VALUE else ""
        return (f"{where}: {key!r} is a kohya option this trainer does not implement; {KOHYA_TRAIN_OPTIONS[key]}"
                f"{accepted}")
    own, other = (textboost_names, train_names) if in_textboost else (train_names, textboost_names)
    hint = did_you_mean(key, own)
    if not hint and closest_name(key, other):
        table = "the top level" if in_textboost else "[textboost]"
        hint = f" (did you mean {closest_name(key, other)!r} in {table}?)"
    return f"{where}: unknown key {key!r}{hint}"


def _collect_overrides(overrides: Mapping[str, object], train: dict[str, _Setting],
                       textboost: dict[str, _Setting], problems: Problems) -> None:
    flat: dict[str, object] = {}
    for key, value in overrides.items():
        if key == TEXTBOOST_TABLE and isinstance(value, Mapping):
            flat.update(value)
        else:
            flat[key] = value
    train_names, textboost_names = train_fields(), textboost_fields()
    for key, value in flat.items():
        setting = _Setting(value, f"command line (--{key})", None, from_text=True)
        if key in train_names:
            train[key] = setting
        elif key in textboost_names:
            textboost[key] = setting
        elif is_secret_key(key):
            problems.add(f"command line: --{key} is not accepted; {SECRET_HINT}")
        else:
            problems.add(f"command line: unknown option --{key}{did_you_mean(key, [*train_names, *textboost_names])}")


def _coerce_all(settings: dict[str, _Setting], hints: dict[str, Any], problems: Problems) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, setting in settings.items():
        problems.sources[key] = setting.source
        try:
            value = coerce(key, setting.value, hints[key], from_text=setting.from_text)
        except BadValue as exc:
            problems.fail(key, f"{key}: {exc}")
            continue
        if key in INPUT_PATHS and isinstance(value, str):
            value = resolve_input_path(value, setting.base_dir)
        values[key] = value
    return values


def _string_values(cfg: TrainConfig) -> list[tuple[str, str]]:
    found = []
    for owner in (cfg, cfg.textboost):
        for f in fields(owner):
            value = getattr(owner, f.name)
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, str):
                    found.append((f.name, item))
    return found


def _reject_token_values(cfg: TrainConfig, problems: Problems) -> None:
    for key, value in _string_values(cfg):
        if looks_like_token(value):
            problems.at(key, f"{key} holds what looks like a Hugging Face token; {SECRET_HINT}")


def config_to_toml(cfg: TrainConfig) -> str:
    """The resolved config as TOML text that :func:`load_config` reads back to an equal config.

    Saved beside every adapter for provenance. Unset (None) values are omitted; it refuses to write
    anything that looks like a token.
    """
    for key, value in _string_values(cfg):
        if looks_like_token(value):
            raise ValueError(f"refusing to write the config: {key} holds what looks like a Hugging Face token")
    lines = ["# Resolved TextBoost training config (textboost-ext). Load it with --config_file.", ""]
    lines += _toml_lines(cfg)
    lines += ["", "[textboost]"] + _toml_lines(cfg.textboost)
    return "\n".join(lines) + "\n"


def _toml_lines(obj: TrainConfig | TextBoostConfig) -> list[str]:
    lines = []
    defaults = type(obj)()
    for f in fields(obj):
        if f.name == TEXTBOOST_TABLE:
            continue
        value = getattr(obj, f.name)
        if value is None:
            if getattr(defaults, f.name) is not None:
                raise ValueError(f"{f.name} is None but its default is not; TOML cannot express that")
            continue
        lines.append(f"{f.name} = {toml_value(value)}")
    return lines


def format_resolved_config(cfg: TrainConfig, dataset: DatasetSpec | None = None) -> str:
    """What ``--dry_run`` prints: a short summary of the run, the dataset if known, then the full TOML."""
    tb = cfg.textboost
    views = cfg.max_train_steps * cfg.train_batch_size * cfg.gradient_accumulation_steps
    data = f"dataset_config {cfg.dataset_config}" if cfg.dataset_config else f"train_data_dir {cfg.train_data_dir}"
    from textboost_ext.hub.store import adapters_root  # torch-free

    folder = (Path(cfg.output_dir) if cfg.output_dir else adapters_root(cfg.adapters_dir)) / cfg.output_name
    exists = " (EXISTS: the run will refuse it unless overwrite = true)" if folder.exists() and not cfg.resume else ""
    output = (f"{folder / (cfg.output_name + '.safetensors')}{exists}\n"
              f"               samples {folder / 'samples'}, logs {folder / 'logs'}, state {folder / 'state'}")
    lines = [
        "TextBoost training run (resolved; nothing has been loaded or trained)",
        f"  base model : {cfg.pretrained_model_name_or_path} ({model_family(cfg)})",
        f"  data       : {data}",
        f"  schedule   : {cfg.max_train_steps} steps x batch {cfg.train_batch_size} x accumulation "
        f"{cfg.gradient_accumulation_steps} = {views} augmented views at {cfg.resolution[0]}x{cfg.resolution[1]}",
        f"  optimiser  : {cfg.optimizer_type}, LoRA lr {cfg.text_encoder_lr or cfg.learning_rate}, embedding lr "
        f"{tb.emb_learning_rate}, {cfg.lr_scheduler} schedule, rank {cfg.network_dim} / alpha {cfg.network_alpha}",
        f"  extension  : {cfg.extension}"
        + (f" (token {tb.placeholder_token!r} from {tb.initializer!r}, KP weight {tb.kpl_weight}, "
           f"{tb.timestep_sampling} timesteps, {tb.augment} augmentation)" if cfg.extension == "textboost" else ""),
        f"  output     : {output}",
    ]
    if dataset is not None:
        from textboost_ext.config.dataset import describe_dataset

        lines.append(describe_dataset(dataset, captions_from_templates=cfg.extension == "textboost"
                                      and cfg.textboost.caption_mode == "templates"))
    return "\n".join(lines) + "\n\n" + config_to_toml(cfg)


__all__ = ["ConfigError", "config_to_toml", "format_resolved_config", "load_config"]
