"""``--changed-since REF``: which files a change touched (git), and the content as it was at
``REF``, to compare plans. ``plan --format markdown`` and ``preview`` both use it."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bot.content.types import ContentSet
from bot.errors import Problem
from bot.source import NO_ENV, changed_files, export_revision


@dataclass(frozen=True, slots=True)
class Since:
    """What changed since ``ref``: the files (relative to the content root) and the content
    at ``ref`` (None when it did not load: then everything counts as added)."""

    ref: str
    files: frozenset[str]
    base: ContentSet | None
    base_problems: tuple[Problem, ...] = field(default=())

    def posts(self, content: ContentSet) -> set[str]:
        """The posts of ``content`` whose files changed."""
        return {p.id for p in content.posts.values() if p.path in self.files}


Loader = Callable[[Path], tuple[ContentSet | None, list[Problem]]]
"""``bot.content.loader.validate``: the caller, a loading stage, hands it in."""


def since(root: Path, ref: str, validate: Loader, env: Mapping[str, str] = NO_ENV) -> Since:
    """What changed in the content repository at ``root`` since ``ref``; the content at
    ``ref`` is read with ``validate``.

    Raises:
        ConfigError: ``ref`` is not a commit, or git failed.
    """
    files = frozenset(changed_files(root, ref, env))
    with tempfile.TemporaryDirectory(prefix="diplobot-base-") as tmp:
        base_root = Path(tmp) / "base"
        export_revision(root, ref, base_root, env)
        base, problems = validate(base_root)
    return Since(ref, files, base, tuple(problems) if base is None else ())
