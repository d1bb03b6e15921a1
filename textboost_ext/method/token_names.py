"""Placeholder / embedding name rules (stdlib only: the config layer checks names without torch).

A1111, Forge and ComfyUI find an embedding by its name (the file stem) as it appears in the prompt's
token ids; a name ending in punctuation (``<dog>``) stops matching before a comma, and a real word
(``dog``) hijacks every prompt that uses it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

TOKEN_NAME_MIN_LEN = 2
TOKEN_NAME_MAX_LEN = 32
TOKEN_NAME_PATTERN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_-]*[A-Za-z0-9])?$")


def validate_token_name(name: str, vocab: Mapping[str, int] | None = None) -> None:
    """Raise ``ValueError`` (with a reason and a suggested name) unless ``name`` is a safe
    A1111/Forge embedding name: ASCII letters and digits, ``_``/``-`` only inside, at least one letter,
    2–32 characters, not a whole word of the CLIP vocabulary (``name + "</w>"``, compared lower-case
    as CLIP lower-cases prompts) and not already a token (a BPE piece or an added token, which could
    not be registered anew). ``vocab`` is ``tokenizer.get_vocab()``; None skips those checks.

    Why: A1111 finds an embedding by its name's token ids; a name ending in punctuation (``<dog>``)
    stops matching before a comma, and a real word (``dog``) hijacks every prompt that uses it.
    """
    reason = token_name_problem(name, vocab)
    if reason is not None:
        raise ValueError(
            f"placeholder_token {name!r} is not usable: {reason}. "
            f"Try {suggest_token_name(name, vocab)!r} (letters/digits, not a dictionary word)."
        )


def suggest_token_name(name: str, vocab: Mapping[str, int] | None = None) -> str:
    """A valid name close to ``name``: illegal characters dropped, lower-cased, a digit appended
    until it is no vocabulary word ("dog" -> "dog1", "<my dog>" -> "mydog" or "mydog1")."""
    cleaned = re.sub(r"[^a-z0-9_-]", "", str(name).lower()).strip("_-")[:TOKEN_NAME_MAX_LEN - 2]
    if not re.search(r"[a-z]", cleaned):
        cleaned = "tb" + cleaned
    if len(cleaned) < TOKEN_NAME_MIN_LEN:
        cleaned += "tok"
    candidate, n = cleaned, 1
    while token_name_problem(candidate, vocab) is not None:
        candidate, n = f"{cleaned}{n}", n + 1
    return candidate


def token_name_problem(name: Any, vocab: Mapping[str, int] | None) -> str | None:
    if not isinstance(name, str) or not name:
        return "it is empty"
    if not TOKEN_NAME_MIN_LEN <= len(name) <= TOKEN_NAME_MAX_LEN:
        return f"it has {len(name)} characters, allowed {TOKEN_NAME_MIN_LEN}-{TOKEN_NAME_MAX_LEN}"
    if any(c.isspace() for c in name):
        return "it contains whitespace (it would become several words)"
    if not TOKEN_NAME_PATTERN.match(name):
        return "only ASCII letters and digits are allowed, with '_' or '-' inside but not at either end"
    if not re.search(r"[A-Za-z]", name):
        return "it has no letter"
    return vocabulary_conflict(name, vocab) if vocab is not None else None


def is_vocabulary_word(name: str, vocab: Mapping[str, int]) -> bool:
    """``name`` is a whole word of a CLIP vocabulary (CLIP lower-cases prompts)."""
    return (name.lower() + "</w>") in vocab


def vocabulary_conflict(name: str, vocab: Mapping[str, int]) -> str | None:
    """Why ``name`` cannot be a new token of a tokenizer with ``vocab``, or None."""
    if is_vocabulary_word(name, vocab):
        return "it is a word of the CLIP vocabulary, so it would hijack every prompt that uses that word"
    if name in vocab or name.lower() in vocab:
        return "it is already a token of the tokenizer, so it cannot be registered as a new one"
    return None
