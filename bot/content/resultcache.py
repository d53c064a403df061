"""What checking each post file found, kept between runs of ``diplobot validate``, keyed by the
file's git blob id: a second run reads no YAML for the files git says are unchanged.

The cache is one JSON file (``.diplobot/validate-cache.json`` under the repository; JSON, not
pickle: it is read from a folder an editor can write to). An entry is used only when:

- the file is tracked by git, unmodified in the working tree (``git diff-files``), a plain
  file (mode 100644/100755), at stage 0: its content is then the blob ``git ls-files -s``
  names;
- the rest of what a post is checked against is the same: the accounts, slots and glossary
  files, the media files (the loader's context key), and diplobot's own code and the
  versions of Python, PyYAML and pydantic;
- the cache file itself is not tracked by git (a committed one is ignored: it could say any
  file is fine).

Anything git cannot say (not a git checkout, git missing, a path that is not UTF-8) means no
cache: every file is checked, as without it. Reading or writing the cache never fails a check.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from bot.errors import Problem

CACHE_FILE = ".diplobot/validate-cache.json"
VERSION = 1

Result = tuple[str | None, list[Problem]]
"""A post file's id (None: invalid) and its problems, as checking it found them."""


def _code_key() -> str:
    """diplobot's own code (every module of the package) and the libraries the checks use."""
    import pydantic
    import yaml

    digest = hashlib.sha1()
    package = Path(__file__).resolve().parents[1]
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode())
        digest.update(path.read_bytes())
    digest.update(f"{sys.version}|{yaml.__version__}|{pydantic.VERSION}".encode())
    return digest.hexdigest()


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(root), *args],
            capture_output=True,
            timeout=60,
            check=False,
            env={"GIT_TERMINAL_PROMPT": "0"},  # as bot/source.py runs git without settings
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    try:
        return done.stdout.decode("utf-8")
    except UnicodeDecodeError:
        return None


def blob_ids(root: Path) -> dict[str, str] | None:
    """Root-relative path → blob id of every file whose content git knows for certain (see
    the module); None when git cannot say, or the cache file is tracked."""
    top = _git(root, "rev-parse", "--show-prefix")
    if top is None or top.strip():
        return None  # not a git checkout, or ``root`` is not its top
    staged = _git(root, "ls-files", "-s", "-z")
    modified = _git(root, "diff-files", "--name-only", "-z")
    if staged is None or modified is None:
        return None
    found: dict[str, str] = {}
    for line in staged.split("\0"):
        meta, _, path = line.partition("\t")
        fields = meta.split()
        if len(fields) != 3:
            continue
        mode, blob, stage = fields
        if path == CACHE_FILE:
            return None
        if stage == "0" and mode in ("100644", "100755"):
            found[path] = blob
    for path in modified.split("\0"):
        found.pop(path, None)
    return found


class ResultCache:
    """Results by (path, blob id), under one key (context and code); see the module."""

    def __init__(self, root: Path, context: str, blobs: dict[str, str]) -> None:
        self.path = root / CACHE_FILE
        self.key = f"{VERSION}:{context}:{_code_key()}"
        self.blobs = blobs
        self.old: dict[str, list[object]] = {}
        self.new: dict[str, list[object]] = {}
        with contextlib.suppress(OSError, ValueError, TypeError):
            data = json.loads(self.path.read_bytes())
            if isinstance(data, dict) and data.get("key") == self.key:
                files = data.get("files")
                if isinstance(files, dict):
                    self.old = files

    @classmethod
    def open(cls, root: Path, context: str) -> ResultCache | None:
        blobs = blob_ids(root)
        return cls(root, context, blobs) if blobs is not None else None

    def get(self, rel: str) -> Result | None:
        blob = self.blobs.get(rel)
        if blob is None:
            return None
        hit = self.old.get(rel)
        if not isinstance(hit, list) or len(hit) != 3 or hit[0] != blob:
            return None
        post_id, rows = hit[1], hit[2]
        if not isinstance(rows, list):
            return None
        problems = []
        for row in rows:
            if not (
                isinstance(row, list)
                and len(row) == 6
                and [type(v) for v in row] == [str, int, int, str, str, str]
            ):
                return None
            problems.append(Problem(*row))
        if post_id is not None and not isinstance(post_id, str):
            return None
        self.new[rel] = hit
        return post_id, problems

    def put(self, rel: str, post_id: str | None, problems: list[Problem]) -> None:
        blob = self.blobs.get(rel)
        if blob is not None:
            rows = [[p.path, p.line, p.column, p.message, p.hint, p.severity] for p in problems]
            self.new[rel] = [blob, post_id, rows]

    def save(self) -> None:
        """Write what this run found (entries of files gone are dropped); never raises."""
        if self.new == self.old:
            return
        tmp = self.path.with_name(self.path.name + f".{os.getpid()}.tmp")
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(
                json.dumps({"key": self.key, "files": self.new}, ensure_ascii=False),
                encoding="utf-8",
            )
            os.replace(tmp, self.path)
        with contextlib.suppress(OSError):
            tmp.unlink()
