"""URL and emoji spans exactly as ``twitter_text.parse_tweet`` finds them, only faster.

``parse_tweet`` spends about 1 ms on a 200-character tweet, nearly all of it running two large
regular expressions at every position of the text. This module finds the same matches while
trying them only where a match can start. The patterns, the TLD and emoji lists and the URL
post-processing stay the library's.

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

from twitter_text import extract_urls_with_indices

# Internals of twitter-text-parser 3.x (pinned <4 in pyproject.toml): the exact patterns
# parse_tweet uses, so our spans cannot drift from the library's data.
from twitter_text.regexp.emoji import emoji as LIBRARY_EMOJI_PATTERN
from twitter_text.regexp.invalid_domain_chars import invalid_domain_chars
from twitter_text.regexp.spaces_group import spaces_group as _SPACES

_INVALID_DOMAIN: Final[str] = invalid_domain_chars.pattern  # a character-class body

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

_ESCAPED: Final = re.compile(r"\\U([0-9A-Fa-f]{8})(?:-\\U([0-9A-Fa-f]{8}))?")
_SEQUENCE_SHAPE: Final = re.compile(r"(?:\\U[0-9A-Fa-f]{8}){2,}")
_SINGLES_SHAPE: Final = re.compile(r"(?:\\U[0-9A-Fa-f]{8}(?:-\\U[0-9A-Fa-f]{8})?)+\]")


def _decode(escaped: str) -> str:
    """Decode a run of ``\\UXXXXXXXX`` escapes."""
    return "".join(chr(int(code, 16)) for code, _ in _ESCAPED.findall(escaped))


def _split_emoji_pattern(pattern: str) -> tuple[dict[str, re.Pattern[str]], frozenset[str]]:
    """Split the library's emoji pattern into sequences by first character, and the singles.

    Returns ``(sequences, singles)``: ``sequences[c]`` matches, from just after ``c``, the rest of
    the sequences that start with ``c``, as one alternation in the library's order.

    Raises:
        ValueError: ``pattern`` is not ``seq|seq|...|[singles]`` with every code point written
            as ``\\UXXXXXXXX`` (a twitter-text-parser release changed how it builds it).
    """
    alternatives, separator, singles = pattern.rpartition("|[")
    sequences = alternatives.split("|")
    if not separator or not _SINGLES_SHAPE.fullmatch(singles):
        raise ValueError("twitter_text's emoji pattern does not end with a character class")
    if not all(_SEQUENCE_SHAPE.fullmatch(sequence) for sequence in sequences):
        raise ValueError("twitter_text's emoji pattern has a sequence that is not literal")
    rests: dict[str, list[str]] = {}
    for sequence in map(_decode, sequences):
        rests.setdefault(sequence[0], []).append(re.escape(sequence[1:]))
    single_characters = frozenset(
        chr(code)
        for first, last in _ESCAPED.findall(singles)
        for code in range(int(first, 16), int(last or first, 16) + 1)
    )
    return (
        {first: re.compile("|".join(alternatives)) for first, alternatives in rests.items()},
        single_characters,
    )


_EMOJI_SEQUENCES, _EMOJI_SINGLES = _split_emoji_pattern(LIBRARY_EMOJI_PATTERN.pattern)
#: Every character an emoji may start with, widened to all astral characters so the class
#: stays a fast bitmap.
_EMOJI_CANDIDATE: Final = re.compile(
    "["
    + "".join(
        f"\\u{ord(c):04x}" for c in sorted({*_EMOJI_SEQUENCES, *_EMOJI_SINGLES}) if ord(c) < 0x10000
    )
    + "\\U00010000-\\U0010ffff]"
)


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
    rest = _EMOJI_SEQUENCES.get(character)
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
    return tuple(
        (entity["indices"][0], len(entity["url"])) for entity in extract_urls_with_indices(window)
    )
