"""Config errors: one exception that lists every problem found, each with where it came from.

Validation never stops at the first mistake: a user who fixes one typo should not have to rerun to
meet the next one. Every message starts with its location (file, table, or command line) so that the
fix is obvious, e.g. ``config_templates/x.toml: unknown key 'learning_rat' (did you mean
'learning_rate'?)``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping


class ConfigError(ValueError):
    """A training config (TOML, dataset TOML or command line) is invalid. ``errors`` lists every problem."""

    def __init__(self, errors: Iterable[str]) -> None:
        self.errors = list(errors)
        if len(self.errors) == 1:
            text = self.errors[0]
        else:
            text = f"{len(self.errors)} config problems:\n" + "\n".join(f"  - {e}" for e in self.errors)
        super().__init__(text)


def closest_name(name: str, candidates: Iterable[str]) -> str | None:
    """The valid name a typo most likely meant, or None when nothing is close."""
    lowered = {c.lower(): c for c in candidates}
    matches = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[matches[0]] if matches else None


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` or an empty string."""
    best = closest_name(name, candidates)
    return f" (did you mean {best!r}?)" if best else ""


def show_value(value: object, limit: int = 80) -> str:
    """A value as it would appear in a message, shortened so one bad value cannot flood the report."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Problems:
    """Collects errors; knows where each config key was set so messages can name the file or flag.

    ``sources`` maps a field name to a label such as ``"x.toml"``, ``"x.toml [textboost]"`` or
    ``"command line (--learning_rate)"``. Keys whose value could not even be parsed are remembered
    in ``failed`` so that rules depending on them stay quiet instead of reporting follow-on noise.
    """

    def __init__(self, sources: Mapping[str, str] | None = None) -> None:
        self.sources: dict[str, str] = dict(sources or {})
        self.failed: set[str] = set()
        self.errors: list[str] = []

    def add(self, message: str) -> None:
        if message not in self.errors:
            self.errors.append(message)

    def at(self, keys: str | tuple[str, ...], message: str) -> None:
        """Report a problem with one key (or a rule over several; the first names the location)."""
        keys = (keys,) if isinstance(keys, str) else keys
        if any(k in self.failed for k in keys):
            return
        source = self.sources.get(keys[0])
        self.add(f"{source}: {message}" if source else message)

    def fail(self, key: str, message: str) -> None:
        """A value that could not be parsed: report it and silence rules that depend on it."""
        self.at(key, message)
        self.failed.add(key)

    def raise_if_any(self) -> None:
        if self.errors:
            raise ConfigError(self.errors)
