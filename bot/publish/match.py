"""Is this post on the timeline the one we sent? (Reconciliation after an ambiguous outcome.)

X rewrites every URL to a t.co link and may normalise white space, so texts are compared with
URLs masked and white space collapsed, after NFC normalisation.
"""

from __future__ import annotations

import re

from bot.text._entities import url_spans
from bot.text.length import normalize

_TCO = re.compile(r"https?://t\.co/\w+")
_SPACE = re.compile(r"\s+")


def comparable(text: str) -> str:
    text = normalize(text).strip()
    spans = sorted(url_spans(text).items(), reverse=True)
    for start, length in spans:
        text = text[:start] + "\x00URL\x00" + text[start + length :]
    text = _TCO.sub("\x00URL\x00", text)
    return _SPACE.sub(" ", text)


def same_post_text(published: str, sent: str) -> bool:
    return comparable(published) == comparable(sent)
