"""Reading the content repository's files without trusting what sits in it.

A repository is written by editors, and a checkout can hold anything git or a mounted folder
can: a named pipe (opening it for reading waits for a writer, forever), a socket, a device, a
link to ``/dev/stdin``, folders nested thousands of levels deep (``os.walk`` recurses once per
level and overflows Python's stack near 1,000 on Python 3.11), file names that are not UTF-8.
Everything here refuses those with a reason an editor can act on, and never blocks:

- a file is opened only after ``stat`` says it is a regular file, with ``O_NONBLOCK`` (so a
  pipe swapped in between cannot block the read either), and ``fstat`` checks it again;
- folders are walked iteratively, at most ``MAX_DIR_DEPTH`` levels deep, and a folder that
  cannot be listed is reported instead of silently skipped.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass

MAX_DIR_DEPTH = 32
"""Folders inside folders under content/posts: a year and a month need two."""

_NONBLOCK = getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
_BINARY = getattr(os, "O_BINARY", 0)


class NotReadable(Exception):
    """A file that is not a readable regular file; ``reason`` says what it is instead."""

    def __init__(self, reason: str, *, missing: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.missing = missing


class TooLarge(Exception):
    """A regular file larger than the caller accepts; it was not read."""

    def __init__(self, size: int) -> None:
        super().__init__(f"{size} bytes")
        self.size = size


def kind(mode: int) -> str:
    """What a non-regular file is, in words an editor knows."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def read_regular(
    path: str | os.PathLike[str], limit: int, *, max_size: int | None = None
) -> tuple[bytes, int]:
    """The first ``limit`` bytes of the regular file at ``path`` (links are followed), and
    its size.

    Raises:
        NotReadable: missing, not a regular file (pipe, socket, device, folder), or unreadable.
        TooLarge: larger than ``max_size``; nothing was read.
    """
    try:
        before = os.stat(path)
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        raise _unreadable(exc) from None
    if not stat.S_ISREG(before.st_mode):
        raise NotReadable(f"it is {kind(before.st_mode)}, not a file")
    if max_size is not None and before.st_size > max_size:
        raise TooLarge(before.st_size)
    try:
        fd = os.open(path, os.O_RDONLY | _NONBLOCK | _BINARY)
    except (OSError, ValueError) as exc:
        raise _unreadable(exc) from None
    try:
        after = os.fstat(fd)
        if not stat.S_ISREG(after.st_mode):  # replaced between stat and open
            raise NotReadable(f"it is {kind(after.st_mode)}, not a file")
        # The first read asks for the size fstat gave, plus one byte: a buffer of the file's
        # size, not of ``limit`` (a 1 MB buffer is an mmap and munmap per file). Then on
        # until the end or ``limit``: the file may be growing, or (/proc) say size 0.
        chunks: list[bytes] = []
        left = limit
        want = after.st_size + 1
        while left > 0:
            chunk = os.read(fd, min(left, want))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
            want = 1 << 16
        return b"".join(chunks), after.st_size
    except OSError as exc:
        raise _unreadable(exc) from None
    finally:
        os.close(fd)


def _unreadable(exc: OSError | ValueError) -> NotReadable:
    if isinstance(exc, ValueError):
        return NotReadable("its name contains a NUL character")
    if isinstance(exc, FileNotFoundError):
        return NotReadable("not found", missing=True)
    return NotReadable(f"cannot be read: {exc.strerror or exc}")


def shown_path(rel: str) -> str:
    """``rel`` printable: bytes of a name that is not UTF-8 appear as ``\\xff``."""
    return rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


@dataclass(frozen=True, slots=True)
class Found:
    """One entry met by :func:`walk`: a file, or a problem with a file or folder."""

    rel: str  # root-relative, forward slashes, printable (see shown_path)
    problem: str = ""  # empty for a file to read
    hint: str = ""


def walk(root: str, top: str, *, skip: str | None = None) -> Iterator[Found]:
    """Every non-hidden entry under ``root/top`` that is not a folder, in sorted order.

    Folders are entered when they are real folders (links to folders are not followed), at
    most ``MAX_DIR_DEPTH`` levels down; ``skip`` (root-relative) is not entered. A folder that
    is too deep or cannot be listed, and a name that is not UTF-8, come back as problems.
    """
    stack: list[tuple[str, int]] = [(top, 0)]
    while stack:
        rel_dir, depth = stack.pop()
        try:
            with os.scandir(os.path.join(root, rel_dir)) as it:
                entries = sorted(it, key=lambda e: e.name)
        except FileNotFoundError:
            if depth == 0:
                continue  # no such folder at all: nothing to read
            yield Found(shown_path(rel_dir), "folder vanished while it was read")
            continue
        except OSError as exc:
            if depth == 0 and isinstance(exc, NotADirectoryError):
                yield Found(shown_path(rel_dir), "this should be a folder, but it is a file")
                continue
            yield Found(
                shown_path(rel_dir),
                f"cannot read this folder: {exc.strerror or exc}",
                "check its permissions",
            )
            continue
        subdirs: list[str] = []
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                continue
            rel = f"{rel_dir}/{name}"
            if _undecodable(name):
                yield Found(
                    shown_path(rel),
                    "this name is not valid UTF-8 text",
                    "rename it using letters, digits, '-' and '_'",
                )
                continue
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
                is_link_to_dir = not is_dir and entry.is_symlink() and entry.is_dir()
            except OSError:
                is_dir = is_link_to_dir = False
            if is_link_to_dir:
                continue  # as os.walk: links to folders are not entered
            if not is_dir:
                yield Found(rel)
                continue
            if rel == skip:
                continue
            if depth + 1 > MAX_DIR_DEPTH:
                yield Found(
                    shown_path(rel),
                    f"folders are nested more than {MAX_DIR_DEPTH} levels deep here; "
                    "nothing inside is read",
                    "move the files up a few folders",
                )
                continue
            subdirs.append(rel)
        stack.extend((d, depth + 1) for d in reversed(subdirs))


def _undecodable(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
