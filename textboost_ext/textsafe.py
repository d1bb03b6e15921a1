"""Show untrusted text (metadata of a downloaded file, names from a Hub repo) without letting it drive the
terminal (stdlib only): control characters, including ESC sequences and bidi overrides, become ``\\xNN``
escapes; ordinary text, tabs excluded, is unchanged."""

from __future__ import annotations

import unicodedata


def clean(text: object, keep_newlines: bool = False) -> str:
    out = []
    for char in str(text):
        if keep_newlines and char == "\n":
            out.append(char)
        elif unicodedata.category(char) in ("Cc", "Cf") and char != " ":
            out.append(f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return "".join(out)
