"""Is this post on the timeline the one we sent? (Reconciliation after an ambiguous outcome.)

Texts are compared after NFC normalisation, with white space collapsed, and each URL in a
canonical form: no scheme, host in lower case, no trailing ``/`` (X gives a URL written
without a scheme back with ``http://``). URLs are compared, never masked: two posts that
differ only by their link are two posts. The channel gives its text back as sent first (X:
t.co links expanded, HTML unescaped, see ``x.py``).
"""

from __future__ import annotations

import re

from bot.text._entities import url_spans
from bot.text.length import normalize

_SPACE = re.compile(r"\s+")
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)
_HOST_END = re.compile(r"[/?#]")


def _canonical_url(url: str) -> str:
    rest = _SCHEME.sub("", url, count=1)
    end = _HOST_END.search(rest)
    cut = end.start() if end else len(rest)
    return (rest[:cut].lower() + rest[cut:]).rstrip("/")


def comparable(text: str) -> str:
    text = normalize(text).strip()
    for start, length in sorted(url_spans(text).items(), reverse=True):
        text = text[:start] + _canonical_url(text[start : start + length]) + text[start + length :]
    return _SPACE.sub(" ", text)


def same_text(published: str, sent: str) -> bool:
    """Whether ``published`` (as the channel gives it back, unescaped) is ``sent``."""
    return comparable(published) == comparable(sent)
