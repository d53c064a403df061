"""Where the content comes from: a local folder (polled) or a git repository (cloned into the
state volume, fetched at an interval and at once on a signed webhook); and the git helpers
that read a revision: its files (:func:`read_blob`, :func:`export_revision`) and its commit and
author (:func:`head_commit`).

Credentials in ``DIPLOBOT_REPO_URL`` (``https://user:token@host/…``) never reach the clone's
``.git/config`` nor a log line: the remote is stored without them, and each git command that
talks to it receives them in its own environment, through a credential helper that answers
for that host only (see :func:`split_credentials`).

git runs in the environment it is given (``Settings.git_env``: the process's, without
``DIPLOBOT_*``); none given, in an empty one (with ``GIT_TERMINAL_PROMPT=0``).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import threading
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Protocol
from urllib.parse import unquote, urlsplit, urlunsplit

from bot.errors import ConfigError

NO_ENV: Mapping[str, str] = MappingProxyType({})
GIT_TIMEOUT = 120.0
GRACE = 0.5
"""How long a git command asked to stop may clean up (a clone removes its partial folder)."""

# Run by git as ``sh -c '<this> get'``: prints the credentials from the git command's own
# environment, and only when git asks for the repository's host (not one it was redirected to).
_HELPER = (
    '!f() { test "$1" = get || exit 0; ok=; '
    'while IFS= read -r line; do case "$line" in '
    '"host=$DIPLOBOT_GIT_HOST") ok=1;; esac; done; '
    'test -n "$ok" || exit 0; '
    'printf \'username=%s\\npassword=%s\\n\' "$DIPLOBOT_GIT_USERNAME" "$DIPLOBOT_GIT_PASSWORD"; '
    "}; f"
)


class Source(Protocol):
    root: Path

    def refresh(self) -> str:
        """Bring the working tree up to date; return its revision (changes when content does).

        Raises:
            ConfigError: the source cannot be read (clone or fetch failed, or :meth:`cancel`).
        """
        ...

    def cancel(self) -> None:
        """Interrupt a refresh in progress, and refuse later ones (the service is stopping)."""
        ...


class LocalSource:
    """A folder on disk. Its revision is git's HEAD when it is a clean checkout, otherwise a
    fingerprint of the files' names, sizes and modification times."""

    def __init__(self, root: Path, env: Mapping[str, str] = NO_ENV) -> None:
        self.root = root
        self.env = env

    def refresh(self) -> str:
        found: list[str] = []
        for top in ("content", "schedules"):
            _stat_files(os.path.join(self.root, top), found)
        digest = hashlib.sha256("\n".join(found).encode("utf-8", "surrogateescape"))
        head = _git(self.root, "rev-parse", "--short=12", "HEAD", check=False, env=self.env)
        label = head.strip() if head else "local"
        return f"{label}+{digest.hexdigest()[:10]}"

    def cancel(self) -> None:
        """Reading a folder takes no time worth interrupting."""


def _stat_files(folder: str, found: list[str]) -> None:
    """``path\0size\0mtime`` of every file under ``folder`` (following links to files, as
    ``stat`` does), each folder's files in name order before its subfolders in name order.
    One ``scandir`` per folder: an idle sync of 50,000 posts costs ~3 times less CPU than
    ``os.walk`` and a digest update per file."""
    try:
        with os.scandir(folder) as listing:
            entries = sorted(listing, key=lambda e: e.name)
    except OSError:
        return
    subfolders = []
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                subfolders.append(entry.path)
                continue
            st = entry.stat()
        except OSError:
            continue
        found.append(f"{entry.path}\0{st.st_size}\0{st.st_mtime_ns}")
    for sub in subfolders:
        _stat_files(sub, found)


class GitSource:
    """A remote repository followed on one branch, checked out under the state folder."""

    def __init__(self, url: str, branch: str, dest: Path, env: Mapping[str, str] = NO_ENV) -> None:
        self.url, self._auth = split_credentials(url)  # url: what git stores and logs show
        self.branch = branch
        self.root = dest
        self.env = env
        self._runner = _Runner()
        self._dirty: set[str] = set()  # see changed()
        self._reset = False  # whether this process has reset the checkout once

    def refresh(self) -> str:
        self._reset = self._reset and (self.root / ".git").is_dir()  # not removed since
        if self._reset:  # checked and reset once by this process: fetch, and reset if new
            return self._follow()
        if (self.root / ".git").is_dir() and not self._usable():
            # A clone interrupted by a kill leaves a .git without a commit: start again.
            shutil.rmtree(self.root)
        if not (self.root / ".git").is_dir():
            self.root.parent.mkdir(parents=True, exist_ok=True)
            self._git(
                None,
                "clone",
                "--quiet",
                "--branch",
                self.branch,
                "--single-branch",
                self.url,
                str(self.root),
                remote=True,
            )
        else:
            current = (
                self._git(self.root, "remote", "get-url", "origin", check=False) or ""
            ).strip()
            # DIPLOBOT_REPO_URL changed since the clone, or the clone was made by a version
            # that stored a token in .git/config: store the URL without it.
            if current != self.url:
                self._git(self.root, "remote", "set-url", "origin", self.url)
            self._git(self.root, "fetch", "--quiet", "origin", self.branch, remote=True)
            # The first sync of a process resets even when nothing is new: a kill may have
            # cut one short.
            self._git(self.root, "reset", "--quiet", "--hard", "FETCH_HEAD")
        # A split index: a reset or status rewrites the entries that changed, not an index of
        # every file (at 50,000 posts, ~5 MB each time).
        self._git(self.root, "config", "core.splitIndex", "true")
        self._git(self.root, "config", "feature.manyFiles", "true")
        self._reset = True
        return (self._git(self.root, "rev-parse", "HEAD") or "").strip()

    def _follow(self) -> str:
        """A later sync of this process: fetch; reset only when the branch moved. Nothing new
        (most syncs) costs two git commands, and no reset, which would stat every file of
        the checkout."""
        self._git(self.root, "fetch", "--quiet", "origin", self.branch, remote=True)
        heads = (self._git(self.root, "rev-parse", "HEAD", "FETCH_HEAD") or "").split()
        if len(heads) != 2:
            raise ConfigError("git rev-parse failed: no HEAD or FETCH_HEAD in the checkout")
        if heads[0] != heads[1]:
            self._git(self.root, "reset", "--quiet", "--hard", heads[1])
        return heads[1]

    def cancel(self) -> None:
        self._runner.cancel()

    def changed(self, since: str) -> set[str] | None:
        """Every path of the checkout that may differ from what it held at commit ``since``
        (after a :meth:`refresh`): what git says changed between ``since`` and HEAD, what the
        working tree holds that HEAD does not (modified, untracked, ignored files), and the
        same as of the previous call (those may have changed back since). None when git
        cannot say: the caller then looks at every file."""
        try:
            diff = self._git(
                self.root, "diff", "--name-only", "-z", "--no-renames", since, "HEAD", check=False
            )
            status = self._git(
                self.root,
                "status",
                "--porcelain=v1",
                "-z",
                "--no-renames",
                "--untracked-files=all",
                "--ignored=matching",
                check=False,
            )
        except (UnicodeDecodeError, ConfigError):  # a path that is not UTF-8: walk instead
            return None
        if diff is None or status is None:
            return None
        dirty = {entry[3:] for entry in status.split("\0") if len(entry) > 3}
        found = {p for p in diff.split("\0") if p} | dirty | self._dirty
        self._dirty = dirty
        return found

    def _usable(self) -> bool:
        """False only when git says the clone has no commit: a git that cannot run says
        nothing about the clone, which is then kept."""
        command = ["git", "-C", str(self.root), "rev-parse", "--verify", "--quiet", "HEAD"]
        try:
            return self._runner.run(command, _env(self.env)).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return True

    def _git(
        self, cwd: Path | None, *args: str, check: bool = True, remote: bool = False
    ) -> str | None:
        extra = _credential_env(self.url, self._auth, self.env) if remote and self._auth else {}
        return _git(cwd, *args, check=check, extra_env=extra, runner=self._runner, env=self.env)


class BlobUnreadable(Exception):
    """A file cannot be read from a revision; ``kind`` says why: ``missing``, ``link-out``
    (a symbolic link leading out of the repository), ``not-a-file`` or ``git``."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind


def read_blob(repo: Path, revision: str, path: str, env: Mapping[str, str] = NO_ENV) -> bytes:
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
            env=_env(env),
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BlobUnreadable("git", type(exc).__name__) from None
    header, _, rest = done.stdout.partition(b"\n")
    fields = header.decode("utf-8", "replace").split()
    if done.returncode != 0 or not fields:
        first = (done.stderr.decode("utf-8", "replace").strip().splitlines() or [""])[0]
        raise BlobUnreadable("git", strip_userinfo(first))
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


def export_revision(repo: Path, revision: str, dest: Path, env: Mapping[str, str] = NO_ENV) -> None:
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
            env=_env(env),
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"git archive failed: {type(exc).__name__}") from None
    if done.returncode != 0:
        first = (done.stderr.decode("utf-8", "replace").strip().splitlines() or [""])[0]
        raise ConfigError(f"git archive failed: {strip_userinfo(first)}")
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)

    def only_safe(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo | None:
        try:  # the data filter refuses links and paths leading out of ``dest``: left out
            return data_filter(member, path)  # type: ignore[no-any-return]
        except tarfile.FilterError:
            return None

    with tarfile.open(fileobj=io.BytesIO(done.stdout)) as archive:
        archive.extractall(dest, filter=only_safe)


def split_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """``https://user:token@host/x.git`` → (``https://host/x.git``, (user, token)).

    Only http(s) URLs carry a password or token this way; others (ssh, paths) are returned
    as they are. A URL with a token and no password (``https://TOKEN@host/…``, as GitHub
    accepts) gives (TOKEN, "").
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return url, None
    if parts.scheme.lower() not in ("http", "https") or "@" not in parts.netloc:
        return url, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    bare = urlunsplit((parts.scheme, hostport, parts.path, parts.query, parts.fragment))
    return bare, (unquote(user), unquote(password))


def _credential_env(url: str, auth: tuple[str, str], env: Mapping[str, str]) -> dict[str, str]:
    """Configuration for one git command, through the environment (GIT_CONFIG_COUNT, git ≥
    2.31), never the command line (``ps`` shows it) nor a file: the credential helpers
    configured elsewhere are cleared (``store`` would write the token to disk), then ours."""
    base = int(env.get("GIT_CONFIG_COUNT") or 0)
    return {
        "GIT_CONFIG_COUNT": str(base + 2),
        f"GIT_CONFIG_KEY_{base}": "credential.helper",
        f"GIT_CONFIG_VALUE_{base}": "",
        f"GIT_CONFIG_KEY_{base + 1}": "credential.helper",
        f"GIT_CONFIG_VALUE_{base + 1}": _HELPER,
        "DIPLOBOT_GIT_HOST": urlsplit(url).netloc,
        "DIPLOBOT_GIT_USERNAME": auth[0],
        "DIPLOBOT_GIT_PASSWORD": auth[1],
    }


class _Runner:
    """Runs git commands one at a time, each in its own process group, so that
    :meth:`cancel` can end the command and the helpers it started (git-remote-https)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[str] | None = None
        self.cancelled = threading.Event()

    def run(self, command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        """Raises OSError, subprocess.TimeoutExpired, or ConfigError once cancelled."""
        with self._lock:
            if self.cancelled.is_set():
                raise ConfigError("git stopped: the service is shutting down")
            proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
                start_new_session=True,
            )
            self._proc = proc
        try:
            try:
                out, err = proc.communicate(timeout=GIT_TIMEOUT)
            except subprocess.TimeoutExpired:
                _end(proc)
                proc.communicate()
                raise
        finally:
            with self._lock:
                self._proc = None
        if self.cancelled.is_set():
            raise ConfigError("git stopped: the service is shutting down")
        return subprocess.CompletedProcess(command, proc.returncode, out, err)

    def cancel(self) -> None:
        with self._lock:
            self.cancelled.set()
            proc = self._proc
        if proc is not None:
            threading.Thread(target=_end, args=(proc,), name="git-stop", daemon=True).start()


def _end(proc: subprocess.Popen[str]) -> None:
    """SIGTERM to the command's process group (git removes a partial clone), SIGKILL after
    :data:`GRACE`."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            proc.wait(GRACE)
            return
        except subprocess.TimeoutExpired:
            continue


def _git(
    cwd: Path | None,
    *args: str,
    check: bool = True,
    extra_env: dict[str, str] | None = None,
    runner: _Runner | None = None,
    env: Mapping[str, str] = NO_ENV,
) -> str | None:
    command = ["git", *(["-C", str(cwd)] if cwd else []), *args]
    try:
        done = (runner or _Runner()).run(command, _env(env, extra_env))
    except (OSError, subprocess.TimeoutExpired) as exc:
        if not check:
            return None
        raise ConfigError(f"git {args[0]} failed: {type(exc).__name__}") from None
    except ConfigError:
        if not check:
            return None
        raise
    if done.returncode != 0:
        if not check:
            return None
        # git's message may contain a URL with credentials (one given by an older clone's
        # config): keep the first line and strip them.
        first = (done.stderr.strip().splitlines() or [""])[0]
        raise ConfigError(f"git {args[0]} failed: {strip_userinfo(first)}")
    return done.stdout


def _env(base: Mapping[str, str], extra: dict[str, str] | None = None) -> dict[str, str]:
    # Not the service's own settings (DIPLOBOT_REPO_URL holds the token): git needs none.
    env = {k: v for k, v in base.items() if not k.startswith("DIPLOBOT_")}
    env.update(GIT_TERMINAL_PROMPT="0", **(extra or {}))
    return env


def strip_userinfo(text: str) -> str:
    """Mask the ``user:password@`` of every URL in ``text``."""
    return re.sub(r"(\w+://)[^/@\s]+@", r"\1***@", text)


def changed_files(repo: Path, ref: str, env: Mapping[str, str] = NO_ENV) -> list[str]:
    """The files of ``repo`` (a checkout, or a folder of one) that differ from ``ref``: changed
    since, by commits or in the working tree, and new files git does not ignore; paths relative
    to ``repo``, with forward slashes.

    Raises:
        ConfigError: ``ref`` is not a commit of the repository, or git failed.
    """
    if (
        ref.startswith("-")
        or _git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False, env=env)
        is None
    ):
        raise ConfigError(
            f"'{ref}' is not a commit of {repo} (fetch it first: in CI, check out with "
            "fetch-depth: 0)"
        )
    found: list[str] = []
    for args in (
        ("diff", "--name-only", "--relative", "--no-renames", "-z", ref, "--"),
        ("ls-files", "--others", "--exclude-standard", "-z"),
    ):
        out = _git(repo, *args, env=env) or ""
        found += [name for name in out.split("\0") if name]
    return sorted(set(found))


def head_commit(root: Path) -> tuple[str | None, str | None]:
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
