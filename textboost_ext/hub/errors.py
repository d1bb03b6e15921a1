"""Errors of the adapter store and the Hub tools. Each message names the thing and the fix.

``AdapterStoreError`` and its subclasses are about local files (bad name, broken file, would overwrite);
``HubError`` is about talking to the Hub (upload/download failed, verification of a pulled adapter failed).
The CLI turns both into one line on stderr and a non-zero exit code, without a traceback.
"""

from __future__ import annotations


class AdapterStoreError(Exception):
    """A problem with the local adapter store or an adapter folder/file."""


class AdapterNotFoundError(AdapterStoreError, FileNotFoundError):
    """No adapter of that name / at that path."""


class AdapterExistsError(AdapterStoreError, FileExistsError):
    """The target adapter folder exists and overwriting was not asked for."""


class AdapterFormatError(AdapterStoreError, ValueError):
    """A file of the adapter is malformed (bad safetensors header, bad samples/index.json, ...)."""


class AdapterIncompleteError(AdapterStoreError):
    """The adapter folder has no valid manifest.json (a run did not finish) or misses a listed file."""


class HubError(RuntimeError):
    """A Hub operation failed. ``retry_command`` is the exact shell command that retries it (no secrets)."""

    def __init__(self, message: str, *, stage: str = "", retry_command: str | None = None) -> None:
        super().__init__(message)
        self.stage = stage
        self.retry_command = retry_command


class VerifyFailedError(HubError):
    """A pulled adapter did not pass ``textboost_ext.export.verify``; ``report`` is the VerifyReport."""

    def __init__(self, message: str, *, report: object, retry_command: str | None = None) -> None:
        super().__init__(message, stage="verify", retry_command=retry_command)
        self.report = report
