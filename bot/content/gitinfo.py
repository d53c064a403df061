"""The git revision and author the content came from (recorded with every delivery)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def revision(root: Path) -> tuple[str | None, str | None]:
    """(commit, author) of HEAD in ``root``, or (None, None) when it is not a git checkout."""
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "log", "-1", "--format=%H%n%an <%ae>"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return None, None
    return (out[0], out[1]) if len(out) >= 2 else (None, None)
