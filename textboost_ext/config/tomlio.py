"""Reading TOML with errors that name the file and line, and writing values back as TOML text."""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path
from typing import Any

from textboost_ext.config.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # the same parser, before it joined the standard library
    import tomli as tomllib

# A Hugging Face access token (the shape textboost_ext.hub.auth scrubs from messages).
_TOKEN_RE = re.compile(r"\bhf_[A-Za-z0-9]{30,}\b")
_POSITION_RE = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")
# A config is a few KB; a larger file is not one (and would be read whole)
MAX_CONFIG_BYTES = 4 * 1024 * 1024


def parse_toml_text(text: str, source: str) -> dict[str, Any]:
    """Strict TOML 1.0 (stdlib ``tomllib``); errors as ``FILE:LINE:COLUMN: reason``, never echoing the content."""
    token = _TOKEN_RE.search(text)
    if token:  # refused before anything runs, comments included: a config file gets copied, shared, uploaded
        line = text.count("\n", 0, token.start()) + 1
        raise ConfigError([f"{source}:{line}: this looks like a Hugging Face token (hf_...); remove it from the file "
                           "(comments too) and give the token through HF_TOKEN or `hf auth login` instead"])
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        where = _POSITION_RE.search(message)
        reason = _POSITION_RE.sub("", message) or "syntax error"
        if where:
            raise ConfigError([f"{source}:{where.group(1)}:{where.group(2)}: invalid TOML: {reason}"]) from None
        raise ConfigError([f"{source}: invalid TOML: {reason.replace(' (at end of document)', ' at the end of the file')}"]) from None


def read_toml(path: str | Path, what: str = "config file") -> dict[str, Any]:
    """Parse ``path``; a missing file or a syntax error raises :class:`ConfigError` naming both."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError([f"{path}: no such {what}" + (" (it is a folder)" if file.is_dir() else "")])
    try:
        if file.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError([f"{path}: {file.stat().st_size} bytes is far too large for a {what}; is it the right file?"])
        text = file.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not a UTF-8 text file ({exc.reason})"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read it ({exc.strerror or exc})"]) from None
    return parse_toml_text(text, str(path))


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
