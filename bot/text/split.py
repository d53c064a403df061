"""Split a text too long for one post into a numbered thread, at sentence boundaries.

A split happens only at white space — after a sentence when possible, else between words — and
never inside a phrase the caller keeps together (a glossary rendering); URLs, mentions,
hashtags and emoji contain no white space, so they are never cut.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from bot.text.length import MAX_WEIGHTED_LENGTH, weighted_length

_SENTENCE_END = re.compile(r"(?<=[.!?;…؟。！？])\s+")
_SPACE = re.compile(r"\s+")


class CannotSplit(ValueError):
    """Some piece between two allowed split points is longer than one post."""


JOIN_SEPARATOR = "\n\n"
"""Between the parts of a thread published as one post (a platform without reply chains)."""


_NUMBERING = re.compile(r"\s+(\d{1,3})/(\d{1,3})$")


def join_parts(texts: Sequence[str]) -> str:
    """The parts of a thread as one post's text, in order. A part's closing number ("… 2/3",
    as editors and :func:`split_thread` write them) means nothing in one post: it is dropped
    when it is exactly the part's place in the thread."""
    total = len(texts)
    out = []
    for place, text in enumerate(texts, 1):
        text = text.strip()
        found = _NUMBERING.search(text)
        if found and (int(found[1]), int(found[2])) == (place, total):
            text = text[: found.start()]
        out.append(text)
    return JOIN_SEPARATOR.join(out)


def split_thread(
    text: str,
    keep_together: Sequence[str] = (),
    limit: int = MAX_WEIGHTED_LENGTH,
    count: Callable[[str], int] = weighted_length,
) -> list[str]:
    """Split ``text`` into parts of at most ``limit`` characters as ``count`` measures them
    (X's weighted length by default), each ending " i/n".

    Raises:
        CannotSplit: when no split is possible within the limit.
    """
    text = text.strip()
    if count(text) <= limit:
        return [text]
    protected = _protected_ranges(text, keep_together)
    sentences = _pieces(text, _SENTENCE_END, protected)
    for count_guess in (9, 99, 999):
        suffix_room = len(f" {count_guess}/{count_guess}")
        parts = _pack(
            sentences, limit - suffix_room, protected_text=text, protected=protected, count=count
        )
        if len(parts) <= count_guess:
            total = len(parts)
            return [f"{part} {i}/{total}" for i, part in enumerate(parts, 1)]
    raise CannotSplit("the text would need more than 999 posts")


def _protected_ranges(text: str, phrases: Sequence[str]) -> list[tuple[int, int]]:
    ranges = []
    for phrase in phrases:
        if not phrase.strip() or not _SPACE.search(phrase):
            continue
        start = text.find(phrase)
        while start >= 0:
            ranges.append((start, start + len(phrase)))
            start = text.find(phrase, start + 1)
    return ranges


def _pieces(text: str, pattern: re.Pattern[str], protected: list[tuple[int, int]]) -> list[str]:
    pieces, last = [], 0
    for match in pattern.finditer(text):
        if any(a < match.start() < b for a, b in protected):
            continue
        pieces.append(text[last : match.start()])
        last = match.end()
    pieces.append(text[last:])
    return [p for p in pieces if p]


def _pack(
    sentences: list[str],
    budget: int,
    *,
    protected_text: str,
    protected: list[tuple[int, int]],
    count: Callable[[str], int],
) -> list[str]:
    parts: list[str] = []
    current = ""
    for sentence in sentences:
        candidate = f"{current} {sentence}" if current else sentence
        if count(candidate) <= budget:
            current = candidate
            continue
        if current:
            parts.append(current)
            current = ""
        if count(sentence) <= budget:
            current = sentence
            continue
        # One sentence longer than a post: fall back to word boundaries.
        words = _pieces(
            sentence, _SPACE, _protected_ranges(sentence, _phrases(protected_text, protected))
        )
        for word in words:
            candidate = f"{current} {word}" if current else word
            if count(candidate) <= budget:
                current = candidate
            elif count(word) <= budget:
                if current:
                    parts.append(current)
                current = word
            else:
                raise CannotSplit("a single word or protected phrase is longer than a post")
    if current:
        parts.append(current)
    return parts


def _phrases(text: str, ranges: list[tuple[int, int]]) -> list[str]:
    return [text[a:b] for a, b in ranges]
