"""Shared fixtures. Ray tests share one local Ray instance per session (see `ray_session`)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    """A path for a fresh event log inside the test's temporary directory."""
    return tmp_path / "tape.db"
