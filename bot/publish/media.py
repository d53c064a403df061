"""Where a publisher gets an image's bytes: from the revision that was validated, never from
whatever the working tree holds at publish time.

The service follows a git repository whose working tree moves to every fetched revision, valid
or not, while the last *valid* one keeps publishing: its images are read from git by revision
(:class:`RevisionMedia`). A mounted folder has no history to read from: its files are checked
again when they are read (:class:`FolderMedia`): a regular file, inside the folder, not through
a link out of it. Either way a refusal is final for that delivery (FAILED, alerted): an image
that cannot be shown as validated is not replaced by another one.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from bot.content.types import CONTENT_DIR
from bot.errors import PublishRejected
from bot.platforms import MEDIA_BYTES_MAX
from bot.publish.base import Outgoing, Published, Publisher, Receipt
from bot.source import NO_ENV, BlobUnreadable, read_blob

_LINK_OUT = "is a link to a place outside the repository: copy the image into content/media/"


class MediaSource(Protocol):
    def read(self, file: str) -> bytes:
        """The bytes of ``file`` (relative to the content root: ``content/media/x.png``).

        Raises:
            PublishRejected: it cannot be read as validated; the message says why.
        """
        ...


def _shown(file: str) -> str:
    """The path as the editor wrote it (relative to content/)."""
    return file.removeprefix(f"{CONTENT_DIR}/")


class RevisionMedia:
    """Images as committed in ``revision`` of the git repository at ``repo``."""

    def __init__(self, repo: Path, revision: str, env: Mapping[str, str] = NO_ENV) -> None:
        self.repo = repo
        self.revision = revision
        self.env = env  # git's environment (bot.source)

    def read(self, file: str) -> bytes:
        try:
            return read_blob(self.repo, self.revision, file, self.env)
        except BlobUnreadable as exc:
            shown, rev = _shown(file), self.revision[:12]
            if exc.kind == "link-out":
                raise PublishRejected(f"image {shown} {_LINK_OUT}") from None
            if exc.kind == "not-a-file":
                raise PublishRejected(f"image {shown} is not a file in revision {rev}") from None
            if exc.kind == "missing":
                raise PublishRejected(f"image {shown} is not in revision {rev}") from None
            raise PublishRejected(f"cannot read image {shown} from revision {rev}: {exc}") from None


class FolderMedia:
    """Images read from the folder ``root`` at publish time, checked again as they are read."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def read(self, file: str) -> bytes:
        shown = _shown(file)
        root = os.path.realpath(self.root)
        real = os.path.realpath(os.path.join(root, file))
        if not (real == root or real.startswith(root.rstrip(os.sep) + os.sep)):
            raise PublishRejected(f"image {shown} {_LINK_OUT}")
        # The last component must not be swapped for a link between the check and the open
        # (O_NOFOLLOW), and a FIFO put there must not block the open (O_NONBLOCK).
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        try:
            fd = os.open(real, flags)
        except FileNotFoundError:
            raise PublishRejected(f"image {shown} not found") from None
        except OSError as exc:
            raise PublishRejected(f"cannot read image {shown}: {exc.strerror}") from None
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise PublishRejected(f"image {shown} is not a regular file")
            if info.st_size > MEDIA_BYTES_MAX:
                raise PublishRejected(
                    f"image {shown} grew over {MEDIA_BYTES_MAX / 1_048_576:g} MB after it was "
                    "checked"
                )
            return handle.read(MEDIA_BYTES_MAX + 1)


class ValidatedMedia:
    """A publisher whose posts carry the bytes of each image from ``media`` (so the platform
    adapter never opens a path itself). Everything else goes to ``inner`` unchanged."""

    def __init__(self, inner: Publisher, media: MediaSource, root: Path) -> None:
        self.inner = inner
        self.media = media
        self.root = root
        self.name = inner.name

    def publish(self, item: Outgoing) -> Receipt:
        media = tuple(replace(m, data=self.media.read(self._relative(m.path))) for m in item.media)
        return self.inner.publish(replace(item, media=media))

    def _relative(self, path: Path) -> str:
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            raise PublishRejected(f"image {path.name} is outside the content root") from None

    def find(self, item: Outgoing, since: datetime) -> Receipt | None:
        return self.inner.find(item, since)

    def recent(self, account: str, since: datetime) -> list[Published]:
        return self.inner.recent(account, since)

    def delete(self, account: str, remote_id: str) -> None:
        self.inner.delete(account, remote_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)  # the adapter's other methods (whoami, …)
