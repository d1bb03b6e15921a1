"""Reading TOML with errors that name the file and line, and writing values back as TOML text."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import toml

from textboost_ext.config.errors import ConfigError


def read_toml(path: str | Path, what: str = "config file") -> dict[str, Any]:
    """Parse ``path``; a missing file or a syntax error raises :class:`ConfigError` naming both."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError([f"{path}: no such {what}" + (" (it is a folder)" if file.is_dir() else "")])
    try:
        return toml.loads(file.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not a UTF-8 text file ({exc.reason})"]) from None
    except toml.TomlDecodeError as exc:
        raise ConfigError([f"{path}: invalid TOML at line {exc.lineno}, column {exc.colno}: {exc.msg}"]) from None


def toml_value(value: Any) -> str:
    """One value as TOML source: str, bool, int, finite float, or a list of those."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"cannot write a non-finite number {value!r} to a config")
        return repr(value)  # shortest exact form; TOML accepts "5e-05" and "1e+20"
    if isinstance(value, str):
        # JSON string escapes (\" \\ \n \uXXXX) are all valid in TOML basic strings.
        # DEL is the one control character JSON leaves raw and TOML forbids.
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to a TOML config")
