"""Fixtures for the pure method tests."""

from __future__ import annotations

import copy

import pytest


@pytest.fixture
def fresh_clip_tokenizer(clip_tokenizer):  # noqa: ANN001, ANN201
    """A private copy of the session's real CLIP tokenizer: tests add tokens to it, and the shared
    fixture must keep its 49,408 tokens for everyone else."""
    return copy.deepcopy(clip_tokenizer)
