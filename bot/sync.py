"""Where the content comes from: a local folder (polled) or a git repository (cloned into the
state volume, fetched at an interval and at once on a signed webhook)."""

from __future__ import annotations

import hashlib
import hmac
import os
import subprocess
from pathlib import Path
from typing import Protocol

from bot.errors import ConfigError

GIT_TIMEOUT = 120.0


class Source(Protocol):
    root: Path

    def refresh(self) -> str:
        """Bring the working tree up to date; return its revision (changes when content does).

        Raises:
            ConfigError: the source cannot be read (clone or fetch failed).
        """
        ...


class LocalSource:
    """A folder on disk. Its revision is git's HEAD when it is a clean checkout, otherwise a
    fingerprint of the files' names, sizes and modification times."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def refresh(self) -> str:
        digest = hashlib.sha256()
        for top in ("content", "schedules"):
            for dirpath, dirnames, filenames in os.walk(self.root / top):
                dirnames.sort()
                for name in sorted(filenames):
                    path = os.path.join(dirpath, name)
                    try:
                        st = os.stat(path)
                    except OSError:
                        continue
                    digest.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        head = _git(self.root, "rev-parse", "--short=12", "HEAD", check=False)
        label = head.strip() if head else "local"
        return f"{label}+{digest.hexdigest()[:10]}"


class GitSource:
    """A remote repository followed on one branch, checked out under the state folder."""

    def __init__(self, url: str, branch: str, dest: Path) -> None:
        self.url = url
        self.branch = branch
        self.root = dest

    def refresh(self) -> str:
        if not (self.root / ".git").is_dir():
            self.root.parent.mkdir(parents=True, exist_ok=True)
            _git(
                None,
                "clone",
                "--quiet",
                "--branch",
                self.branch,
                "--single-branch",
                self.url,
                str(self.root),
            )
        else:
            current = (_git(self.root, "remote", "get-url", "origin", check=False) or "").strip()
            if current != self.url:  # DIPLOBOT_REPO_URL changed since the clone
                _git(self.root, "remote", "set-url", "origin", self.url)
            _git(self.root, "fetch", "--quiet", "origin", self.branch)
            _git(self.root, "reset", "--quiet", "--hard", "FETCH_HEAD")
        return (_git(self.root, "rev-parse", "HEAD") or "").strip()


class BlobUnreadable(Exception):
    """A file cannot be read from a revision; ``kind`` says why: ``missing``, ``link-out``
    (a symbolic link leading out of the repository), ``not-a-file`` or ``git``."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind


def read_blob(repo: Path, revision: str, path: str) -> bytes:
    """The bytes of ``path`` (relative to the repository's top) as committed in ``revision``,
    whatever the working tree holds now. Symbolic links are followed inside the revision's
    tree only (git's ``--follow-symlinks``): one that leads out is refused, never read.

    Raises:
        BlobUnreadable: the path is missing, a link out, not a file, or git failed.
    """
    if "\n" in path or "\n" in revision:
        raise BlobUnreadable("missing", "a path with a line break")
    try:
        done = subprocess.run(
            ["git", "-C", str(repo), "cat-file", "--batch", "--follow-symlinks"],
            input=f"{revision}:{path}\n".encode(),
            capture_output=True,
            timeout=GIT_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BlobUnreadable("git", type(exc).__name__) from None
    header, _, rest = done.stdout.partition(b"\n")
    fields = header.decode("utf-8", "replace").split()
    if done.returncode != 0 or not fields:
        first = (done.stderr.decode("utf-8", "replace").strip().splitlines() or [""])[0]
        raise BlobUnreadable("git", _strip_userinfo(first))
    # "<oid> blob <size>", "<name> missing", "symlink <size>" (the link leads out of the
    # tree), "dangling|loop|notdir <size>" (see git-cat-file(1), --follow-symlinks).
    if len(fields) == 3 and fields[1] == "blob" and fields[2].isdigit():
        size = int(fields[2])
        if len(rest) < size:
            raise BlobUnreadable("git", "short read")
        return rest[:size]
    if fields[0] == "symlink":
        raise BlobUnreadable("link-out")
    if fields[0] in ("dangling", "loop", "notdir"):
        raise BlobUnreadable("missing", f"a {fields[0]} link")
    if len(fields) == 3:  # a tree or a submodule
        raise BlobUnreadable("not-a-file", fields[1])
    raise BlobUnreadable("missing")


def export_revision(repo: Path, revision: str, dest: Path) -> None:
    """Write the files of ``revision`` into ``dest`` (emptied first), leaving the repository's
    working tree and index alone: to run a revision older than the one checked out.

    Raises:
        ConfigError: git failed, or this Python cannot extract an archive safely.
    """
    import io
    import shutil
    import tarfile

    data_filter = getattr(tarfile, "data_filter", None)  # Python 3.11.4+
    if data_filter is None:
        raise ConfigError("this Python cannot extract a revision safely (3.11.4 or later needed)")
    try:
        done = subprocess.run(
            ["git", "-C", str(repo), "archive", "--format=tar", revision],
            capture_output=True,
            timeout=GIT_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"git archive failed: {type(exc).__name__}") from None
    if done.returncode != 0:
        first = (done.stderr.decode("utf-8", "replace").strip().splitlines() or [""])[0]
        raise ConfigError(f"git archive failed: {_strip_userinfo(first)}")
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)

    def only_safe(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo | None:
        try:  # the data filter refuses links and paths leading out of ``dest``: left out
            return data_filter(member, path)  # type: ignore[no-any-return]
        except tarfile.FilterError:
            return None

    with tarfile.open(fileobj=io.BytesIO(done.stdout)) as archive:
        archive.extractall(dest, filter=only_safe)


def _git(cwd: Path | None, *args: str, check: bool = True) -> str | None:
    command = ["git", *(["-C", str(cwd)] if cwd else []), *args]
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=GIT_TIMEOUT, env=env, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        if not check:
            return None
        raise ConfigError(f"git {args[0]} failed: {type(exc).__name__}") from None
    if done.returncode != 0:
        if not check:
            return None
        # git's message may contain the URL, which may contain a token: keep the first line
        # and strip anything that looks like credentials in a URL.
        first = (done.stderr.strip().splitlines() or [""])[0]
        first = _strip_userinfo(first)
        raise ConfigError(f"git {args[0]} failed: {first}")
    return done.stdout


def _strip_userinfo(text: str) -> str:
    import re

    return re.sub(r"(\w+://)[^/@\s]+@", r"\1***@", text)


def verify_signature(secret: bytes, body: bytes, header: str | None) -> bool:
    """GitHub's ``X-Hub-Signature-256: sha256=<hex HMAC of the body>``."""
    if not header or not header.startswith("sha256="):
        return False
    expected = hmac.new(secret, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header[len("sha256=") :])


def verify_token(secret: bytes, header: str | None) -> bool:
    """GitLab's ``X-Gitlab-Token: <the shared secret>``."""
    return bool(header) and hmac.compare_digest(secret, (header or "").encode())
