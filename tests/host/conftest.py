"""Host-trainer tests: a clean accelerate state per test (accelerate keeps process-wide singletons).

``make_config`` and ``one_image_dataset`` come from ``tests/conftest.py``.
"""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _fresh_accelerate_state(fresh_accelerate_state: None) -> None:
    """Every test here builds an Accelerator."""
