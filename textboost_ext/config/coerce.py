"""Turn raw TOML / command-line values into the types the schema's dataclass hints declare.

TOML values arrive typed (a TOML string stays a string: ``learning_rate = "1e-4"`` is an error with
a fix, because kohya would pass the string on unconverted). Command-line values arrive as text and
are parsed. Either way the result is exactly the hinted type, or a :class:`BadValue` that says what
was expected.
"""

from __future__ import annotations

import math
import types
import typing
from dataclasses import fields
from functools import cache
from typing import Any

from textboost_ext.config.schema import TextBoostConfig, TrainConfig

_NONE_WORDS = ("none", "null")


class BadValue(ValueError):
    """The value does not fit the field's type; the message is the problem, without the location."""


@cache
def field_hints(cls: type) -> dict[str, Any]:
    """``{field name: resolved type hint}`` for a config dataclass (``textboost`` excluded)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in fields(cls) if f.name != "textboost"}


def train_fields() -> dict[str, Any]:
    return field_hints(TrainConfig)


def textboost_fields() -> dict[str, Any]:
    return field_hints(TextBoostConfig)


def split_optional(hint: Any) -> tuple[Any, bool]:
    """``int | None`` -> ``(int, True)``; ``int`` -> ``(int, False)``."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"unsupported config type hint {hint!r}")
        return args[0], True
    return hint, False


def describe(hint: Any) -> str:
    """Human words for a type hint, used in 'must be ...' messages."""
    base, optional = split_optional(hint)
    words = {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}
    if base in words:
        text = words[base]
    elif typing.get_origin(base) is list:
        (item,) = typing.get_args(base)
        text = f"a list of {'strings' if item is str else 'whole numbers'}"
    else:
        raise TypeError(f"unsupported config type hint {hint!r}")
    return text + (" (or unset)" if optional else "")


def parse_resolution(value: object) -> list[int]:
    """kohya's resolution forms: ``512``, ``[512, 768]``, ``"512"`` or ``"512,768"`` -> ``[w, h]``."""
    parts: list[object]
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",")]
    elif isinstance(value, list):
        parts = list(value)
    else:
        parts = [value]
    numbers: list[int] = []
    for part in parts:
        if isinstance(part, bool):
            raise BadValue(f"must be a size like 512, [512, 768] or \"512,768\"; got {part!r}")
        if isinstance(part, int):
            numbers.append(part)
        elif isinstance(part, str) and part.isdigit():
            numbers.append(int(part))
        else:
            raise BadValue(f"must be a size like 512, [512, 768] or \"512,768\"; got {value!r}")
    if len(numbers) not in (1, 2):
        raise BadValue(f"must be one size or [width, height]; got {len(numbers)} numbers")
    if len(numbers) == 1:
        numbers = numbers * 2
    for n in numbers:
        if n <= 0 or n % 8:
            raise BadValue(f"{n} is not a positive multiple of 8 (the VAE downsamples by 8)")
    return numbers


def coerce(name: str, value: object, hint: Any, *, from_text: bool = False) -> object:
    """Check (TOML) or parse (command line, ``from_text``) one value against its type hint."""
    if name == "resolution":
        if from_text and isinstance(value, list):
            value = ",".join(str(v) for v in value)
        return parse_resolution(value)
    if name == "caption_templates" and isinstance(value, str):
        value = [value]  # `caption_templates = "textual_inversion"`: a set name (or one template)
    base, optional = split_optional(hint)
    if value is None:
        if optional:
            return None
        raise BadValue(f"must be {describe(hint)}; it cannot be unset")
    if optional and isinstance(value, str):
        # TOML has no null: kohya configs write `vae = ""` for "not set"; on the command line
        # `--clip_skip none` does the same for non-string fields.
        if value == "" or (from_text and base is not str and value.lower() in _NONE_WORDS):
            return None
    if isinstance(value, dict):
        raise BadValue(f"must be {describe(hint)}, not a table")
    if typing.get_origin(base) is list:
        return _coerce_list(value, base, hint, from_text)
    return _coerce_scalar(value, base, hint, from_text)


def _coerce_scalar(value: object, base: Any, hint: Any, from_text: bool) -> object:
    expected = f"must be {describe(hint)}"
    if base is bool:
        if isinstance(value, bool):
            return value
        if from_text and isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        tail = "" if from_text else " (TOML booleans are unquoted: true / false)"
        raise BadValue(f"{expected}; got {value!r}{tail}")
    if base is str:
        if isinstance(value, str):
            return value
        raise BadValue(f"{expected}; got {value!r} (put it in quotes)")
    if base in (int, float):
        number = _parse_number(value, from_text)
        if number is None:
            hint_text = "" if from_text or not isinstance(value, str) else " (write numbers without quotes)"
            raise BadValue(f"{expected}; got {value!r}{hint_text}")
        if base is int:
            if isinstance(number, float):
                if not number.is_integer():
                    raise BadValue(f"{expected}; got {value!r}")
                number = int(number)
            return number
        number = float(number)
        if not math.isfinite(number):
            raise BadValue(f"must be a finite number; got {value!r}")
        return number
    raise TypeError(f"unsupported config type hint {hint!r}")


def _parse_number(value: object, from_text: bool) -> int | float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if from_text and isinstance(value, str):
        for parse in (int, float):
            try:
                return parse(value)
            except ValueError:
                continue
    return None


def _coerce_list(value: object, base: Any, hint: Any, from_text: bool) -> list[object]:
    (item_type,) = typing.get_args(base)
    if not isinstance(value, list):
        example = '["a", "b"]' if item_type is str else "[1, 2]"
        raise BadValue(f"must be {describe(hint)}, written as a list like {example}; got {value!r}")
    items = []
    for index, item in enumerate(value):
        try:
            items.append(_coerce_scalar(item, item_type, item_type, from_text))
        except BadValue as exc:
            raise BadValue(f"item {index + 1}: {exc}") from None
    return items
