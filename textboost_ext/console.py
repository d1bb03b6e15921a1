"""What the console shows: logging set up once per command, third-party noise filtered.

Our messages go through the ``textboost_ext`` loggers (INFO by default: start summary, notes, "resumed
from step N", Hub progress); ``--quiet`` keeps warnings and errors, ``--verbose`` adds debug messages and
lets third-party libraries speak. Filtered unless ``--verbose`` (each is harmless and reads like an error):
bitsandbytes' and the ``kernels`` package's attempts to fetch optional CPU kernels from the Hub,
transformers' torchvision-fallback notices, accelerate's and diffusers' informational chatter.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

NOISY_LOGGERS = ("bitsandbytes", "kernels", "transformers", "diffusers", "accelerate", "huggingface_hub", "torch")
LEVELS = {"quiet": logging.WARNING, "info": logging.INFO, "verbose": logging.DEBUG}


class _Formatter(logging.Formatter):
    """INFO as the bare message; other levels prefixed (``warning: ...``), as the error lines are."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.levelno == logging.INFO:
            return message
        return f"{record.levelname.lower()}: {message}"


class _StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is at the time (tqdm shares it; tests swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:  # noqa: BLE001  (logging must never take the run down)
            self.handleError(record)


def configure_logging(level: str = "info") -> None:
    """Set up the ``textboost_ext`` loggers for a command-line run (idempotent). Call it before importing
    bitsandbytes: its kernel-fetch warnings are emitted at import."""
    ours = logging.getLogger("textboost_ext")
    ours.setLevel(LEVELS[level])
    if not any(isinstance(h, _StderrHandler) for h in ours.handlers):
        handler = _StderrHandler()
        handler.setFormatter(_Formatter())
        ours.addHandler(handler)
    quiet_third_party(verbose=level == "verbose")


def quiet_third_party(*, verbose: bool = False, import_now: bool = False) -> None:
    """Silence the libraries' chatter. Never imports them (``textboost-hub list`` stays torch-free): their
    environment switches cover a later import, their functions an earlier one; call again after imports."""
    if verbose:
        return
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    for module in ("transformers.utils.logging", "diffusers.utils.logging"):
        if import_now:  # a training run imports them anyway
            import importlib

            importlib.import_module(module)
        lib = sys.modules.get(module)
        if lib is not None:  # transformers and diffusers keep their own verbosity switch besides the logger level
            lib.set_verbosity_error()
            lib.disable_progress_bar()  # "Loading weights" of a model is noise beside our own progress bar
    warnings.filterwarnings("ignore", module=r"(bitsandbytes|kernels|accelerate|diffusers|transformers)(\..*)?")
