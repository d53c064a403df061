"""How platforms other than X count a post's length (X: ``bot.text.length``).

- Bluesky counts *graphemes*: what a reader sees as one character (an emoji with its skin
  tone, a letter with its combining accent), Unicode's extended grapheme clusters.
- Mastodon counts code points, except that every URL counts 23 whatever its length and a
  mention of a remote account counts only its local part (``@user@instance`` → ``@user``).
- Telegram counts UTF-16 code units (the Bot API's unit): an emoji outside the BMP is 2.
- Facebook and Weibo: code points.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import regex

MASTODON_URL_WEIGHT: Final = 23

# Mastodon's own patterns, simplified to what changes the count: a URL with a scheme, and a
# remote mention's domain part (app/javascript/mastodon/features/compose/util/counter.js).
_MASTODON_URL: Final = re.compile(r"(?<![\w/])https?://[^\s<>\"]+", re.IGNORECASE)
_MASTODON_REMOTE_MENTION: Final = re.compile(r"(?<![\w/])(@[a-z0-9_]+)@[a-z0-9.\-]+\w", re.I)


def graphemes(text: str) -> int:
    """The number of user-perceived characters (extended grapheme clusters) in ``text``."""
    if text.isascii():  # every ASCII character but CR LF is its own grapheme
        return len(text) - text.count("\r\n")
    return len(_grapheme().findall(text))


@functools.cache
def _grapheme() -> regex.Pattern[str]:
    """``\\X``, compiled by the ``regex`` module (~40 ms to import: only when a text needs it)."""
    import regex

    return regex.compile(r"\X")


def graphemes_bound(text: str) -> int:
    """An upper bound of ``graphemes(text)``: a grapheme holds one code point or more."""
    return len(text)


def mastodon_length(text: str) -> int:
    """``text``'s length as a Mastodon server counts it against ``max_characters``."""
    text = _MASTODON_URL.sub("x" * MASTODON_URL_WEIGHT, text)
    return len(_MASTODON_REMOTE_MENTION.sub(r"\1", text))


def utf16_length(text: str) -> int:
    """``text``'s length in UTF-16 code units, the unit of Telegram's limits."""
    return len(text.encode("utf-16-le")) // 2


def characters(text: str) -> int:
    """``text``'s length in code points."""
    return len(text)
