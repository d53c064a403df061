"""A copy of the whole bundled example, its missions included (``missions/``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def full_example(tmp_path: Path) -> Path:
    """The bundled example with its missions: the central one (content/, schedules/) and
    missions/ambassade-chine."""
    repo = tmp_path / "repo"
    for part in ("content", "schedules", "missions"):
        shutil.copytree(ROOT / part, repo / part, symlinks=True)
    return repo
