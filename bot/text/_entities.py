"""URL and emoji spans exactly as ``twitter_text.parse_tweet`` finds them, only faster.

``parse_tweet`` spends about 1 ms on a 200-character tweet, nearly all of it running two large
regular expressions at every position of the text. This module finds the same matches while
trying them only where a match can start. The patterns, the TLD and emoji lists and the URL
post-processing stay the library's: the patterns and lists are copied into ``_x_tables`` by
``scripts/x_tables.py`` (importing the library costs ~0.2 s), the post-processing is
``extract_urls`` below, and each pattern is compiled only when a text first needs it.

URLs. Every match of ``twitter_text``'s URL pattern is a preceding character (or the start of
the text) followed by a URL that contains no space character (the library's ``spaces_group``)
and contains a ``.`` directly followed by the first letter of a TLD or of ``xn--``; no ASCII
digit, ASCII punctuation or space character can be that letter, even ignoring case. So the
library is run only on runs of non-space characters holding such a ``.`` (``_TLD_DOT``), each
from the space character before it or from a later point before which no match can start
(``_url_window``). The pattern has no lookbehind; its only anchor is ``^`` in the
preceding-character group and its only lookahead is ``(?=[^0-9a-zA-Z@+-]|$)`` after a TLD,
which the space ending a run satisfies as the end of the text does. So a window holds the
same matches as the whole text has there. Runs are taken in order, so the entities come out
in the library's order.

Emoji. The library's pattern is ``seq|seq|...|[singles]``: 2,563 literal sequences of several
code points, tried in order, then one character class. At a position holding ``c``, only the
sequences starting with ``c`` can match, in their original order, and then ``[singles]``;
``_emoji_length_at`` tries exactly those. ``finditer`` tries every position left to right and
resumes after each match; trying only positions that hold a possible first character
(``_EMOJI_CANDIDATE``, a superset) finds the same matches, since no match is empty.

``tests/text/test_length.py`` checks these spans against the library's own functions.
"""

from __future__ import annotations

import functools
import re
from typing import Final

# The patterns parse_tweet uses (twitter-text-parser 3.x, pinned <4 in pyproject.toml), copied
# from the library by scripts/x_tables.py so that importing this module does not import it
# (~0.2 s); tests/text/test_x_tables.py holds the copy to the installed library.
from bot.text import _x_tables as tables

_SPACES: Final = tables.SPACES
_INVALID_DOMAIN: Final = tables.INVALID_DOMAIN_CHARS  # a character-class body

#: A ``.`` followed by a character that may start a TLD: not an ASCII digit, ASCII punctuation
#: or space character. Every URL the library extracts contains one.
_TLD_DOT: Final = re.compile(rf"\.[^0-9!-/:-@\[-`{{-~{_SPACES}]")
#: A run of non-space characters; matched on the reversed text, it finds where a run starts.
_NON_SPACE_RUN: Final = re.compile(rf"[^{_SPACES}]*")
#: Characters a URL's domain may hold before its TLD (a superset of what the URL pattern,
#: which ignores case, accepts: ``_INVALID_DOMAIN`` holds no letters).
_DOMAIN_RUN: Final = re.compile(rf"(?:[^{_INVALID_DOMAIN}]|[._-])*")
#: ``https://`` and the preceding character: how far before its domain a match may start.
_MATCH_BEFORE_DOMAIN: Final = len("https://") + 1

_EMOJI_SEQUENCES: Final = tables.EMOJI_SEQUENCES
_EMOJI_SINGLES: Final = frozenset(tables.EMOJI_SINGLES)
#: Every character an emoji may start with, widened to all astral characters so the class
#: stays a fast bitmap.
_EMOJI_CANDIDATE: Final = re.compile(
    "["
    + "".join(
        f"\\u{ord(c):04x}" for c in sorted({*_EMOJI_SEQUENCES, *_EMOJI_SINGLES}) if ord(c) < 0x10000
    )
    + "\\U00010000-\\U0010ffff]"
)


@functools.cache
def _sequences_after(first: str) -> re.Pattern[str] | None:
    """The rests of the sequences starting with ``first``, as one alternation in the library's
    order (compiled when a text first holds ``first``: most never appear)."""
    rests = _EMOJI_SEQUENCES.get(first)
    return re.compile("|".join(map(re.escape, rests))) if rests else None


def emoji_spans(text: str) -> dict[int, int]:
    """Map the start of every emoji ``parse_tweet`` would find in ``text`` to its length.

    ``text`` must already be normalized; indices and lengths are in code points.
    """
    spans: dict[int, int] = {}
    resume = 0
    for candidate in _EMOJI_CANDIDATE.finditer(text):
        start = candidate.start()
        if start >= resume and (length := _emoji_length_at(text, start)):
            spans[start] = length
            resume = start + length
    return spans


def _emoji_length_at(text: str, start: int) -> int:
    """Return the length of the library's emoji pattern matched at ``start``, or 0."""
    character = text[start]
    rest = _sequences_after(character)
    if rest is not None and (match := rest.match(text, start + 1)):
        return match.end() - start
    return 1 if character in _EMOJI_SINGLES else 0


def url_spans(text: str) -> dict[int, int]:
    """Map the start of every URL ``parse_tweet`` would find in ``text`` to its length.

    The length is that of the entity's ``url`` string, which is what ``parse_tweet`` skips,
    and a later entity with the same start wins, as in ``parse_tweet``. ``text`` must already
    be normalized; indices and lengths are in code points.
    """
    spans: dict[int, int] = {}
    searched_to = 0
    reversed_text = ""
    for dot in _TLD_DOT.finditer(text):
        if dot.start() < searched_to:
            continue  # in a run already searched
        reversed_text = reversed_text or text[::-1]
        window = _url_window(text, reversed_text, dot.start())
        searched_to = window.stop
        for start, length in _urls_in(text[window]):
            spans[window.start + start] = length
    return spans


def _url_window(text: str, reversed_text: str, dot: int) -> slice:
    """Return the part of ``text`` to search for URLs, given the first TLD dot of a run.

    The window ends where the run of non-space characters holding ``dot`` ends; no match
    crosses a space. It starts at the space before the run, at the start of the text, or
    ``_MATCH_BEFORE_DOMAIN`` characters before ``domain_start``, whichever is last. Any URL in
    the run has its domain's TLD dot at or after ``dot``, and only domain characters, ``.``,
    ``-`` and ``_`` from the domain's start to that dot, so its domain starts at or after
    ``domain_start`` and the URL, protocol included, at most 8 characters before: no match
    starts before the window. Nor can the ``^`` that slicing adds start a URL at the window's
    first character: it is a space, the real start of the text, or a character at which no
    URL can start.
    """
    backwards = len(text) - dot  # where text[dot - 1] is in reversed_text
    run_start = dot - (_match_end(_NON_SPACE_RUN, reversed_text, backwards) - backwards)
    domain_start = dot - (_match_end(_DOMAIN_RUN, reversed_text, backwards) - backwards)
    start = max(run_start - 1, domain_start - _MATCH_BEFORE_DOMAIN, 0)
    return slice(start, _match_end(_NON_SPACE_RUN, text, dot))


def _match_end(pattern: re.Pattern[str], text: str, position: int) -> int:
    """Return where ``pattern``, which may match empty, ends when matched at ``position``."""
    match = pattern.match(text, position)
    return match.end() if match else position


@functools.lru_cache(maxsize=4096)
def _urls_in(window: str) -> tuple[tuple[int, int], ...]:
    """Return ``(start, len(url))`` of each URL the library extracts from ``window``, in order.

    Cached: the same link tends to appear in every language version of a post.
    """
    return tuple((start, len(url)) for start, url in extract_urls(window))


@functools.cache
def _url_patterns() -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    """The library's URL patterns, compiled when a text first holds a possible URL."""
    return (
        re.compile(*tables.EXTRACT_URL),
        re.compile(*tables.VALID_ASCII_DOMAIN),
        re.compile(*tables.VALID_TCO_URL),
        re.compile(*tables.NO_PROTOCOL_PRECEDING),
    )


def extract_urls(text: str) -> list[tuple[int, str]]:
    """``(start, url)`` of every URL in ``text``, as ``twitter_text.extract_urls_with_indices``
    (with URLs without a protocol) returns them: the library's function, line for line, over
    its patterns from ``_x_tables``."""
    if not text or "." not in text:
        return []
    extract_url, valid_ascii_domain, valid_tco_url, no_protocol_preceding = _url_patterns()
    urls: list[tuple[int, str]] = []
    for url_match in extract_url.finditer(text):
        _, before, url, protocol, domain, _, path, _ = url_match.groups()
        end_position = url_match.end()
        start_position = end_position - len(url)
        if not _is_valid_url(url, protocol or "https://", domain):
            continue
        if protocol is None:  # only ASCII domains count without a protocol
            if no_protocol_preceding.match(before):
                continue
            found = len(urls)
            for ascii_domain in valid_ascii_domain.finditer(domain):
                urls.append((start_position + ascii_domain.start(), ascii_domain.group(0)))
            if len(urls) == found:
                continue
            if path:  # the last domain takes the path and query with it
                start, last = urls[-1]
                urls[-1] = (start, url.replace(domain, last))
        else:
            tco = valid_tco_url.search(url)  # t.co links take no further path characters
            if tco:
                slug = tco.group(1)
                if slug and len(slug) > tables.MAX_TCO_SLUG_LENGTH:
                    continue
                url = tco.group(0)
            urls.append((start_position, url))
    return urls


def _is_valid_url(url: str, protocol: str, domain: str) -> bool:
    try:
        puny = domain.encode("idna").decode("ascii")
    except Exception:  # as the library: any failure makes the domain invalid
        return False
    if not puny:
        return False
    return len(protocol) + len(url) + len(puny) - len(domain) <= tables.MAX_URL_LENGTH
