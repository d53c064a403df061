"""``/preview``: the editors' preview of the revision the service runs, read-only.

The site is made (``bot/preview/site.py``: plan saving nothing, localize with the service's
translator and cache, the pages) on the first request, and kept in memory for
:data:`KEEP` seconds while the revision stays the same; requests meanwhile are answered from it.
Only the pages and images of that site are served: a request names one of them, never a file.
"""

from __future__ import annotations

import mimetypes
import threading
import time
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from bot.errors import PublishRejected
from bot.preview.render import INDEX, Site
from bot.preview.site import DEFAULT_DAYS, make
from bot.publish.media import FolderMedia, MediaSource, RevisionMedia
from bot.source import GitSource

if TYPE_CHECKING:
    from bot.service.lifecycle import Service

KEEP = 60.0
"""Seconds a made site is served before it is made again (times move with the clock)."""

CSP = "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; base-uri 'none'"


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes
    content_type: str


@dataclass(slots=True)
class _Made:
    revision: str | None
    at: float
    site: Site


class Previews:
    """One service's preview sites (the last one made)."""

    def __init__(self, days: int = DEFAULT_DAYS) -> None:
        self.days = days
        self.lock = threading.Lock()
        self.made: _Made | None = None

    def answer(self, service: Service, name: str) -> Answer:
        """The page or image ``name`` (relative to ``/preview/``; "" is the calendar)."""
        with service.lock:
            content, pub, revision = service.content, service.pub, service.revision
        if content is None or pub is None or revision is None:
            return Answer(503, b"no valid content loaded yet\n", "text/plain")
        with self.lock:  # one request makes the site; the others wait for it
            made = self.made
            if made is None or made.revision != revision or time.monotonic() - made.at > KEEP:
                site = make(
                    content,
                    datetime.now(UTC),
                    self.days,
                    pub.translator,
                    pub.cache,
                    pins=service.pins,
                    revision=revision,
                    parallel=pub.translate_parallel,
                ).site
                made = self.made = _Made(revision, time.monotonic(), site)
        name = name or INDEX
        if name in made.site.pages:
            return Answer(200, made.site.pages[name].encode("utf-8"), "text/html")
        file = made.site.assets.get(name)
        if file is None:
            return Answer(404, b"not found\n", "text/plain")
        # As publishing reads it: from the running revision in git, or checked in the folder.
        source = service.source
        media: MediaSource = (
            RevisionMedia(source.root, revision, source.env)
            if isinstance(source, GitSource)
            else FolderMedia(content.root)
        )
        try:
            data = media.read(file)
        except PublishRejected:
            return Answer(404, b"not found\n", "text/plain")
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        return Answer(200, data, kind)


_PREVIEWS: weakref.WeakKeyDictionary[Service, Previews] = weakref.WeakKeyDictionary()
_PREVIEWS_LOCK = threading.Lock()


def previews(service: Service) -> Previews:
    """``service``'s own previews, made on the first request."""
    with _PREVIEWS_LOCK:
        own = _PREVIEWS.get(service)
        if own is None:
            own = _PREVIEWS[service] = Previews()
        return own
