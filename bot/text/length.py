"""How long X says a text is: twitter-text v3 weighted length, as ``parse_tweet`` counts it.

X counts most Latin, Greek, Cyrillic, Arabic, Hebrew and Indic characters as 1, everything
else (CJK, most symbols) as 2, any URL as 23 and any emoji, however many code points it has,
as 2; a post may weigh at most 280. That is twitter-text's configuration v3, the one X uses.

``measure`` returns what ``twitter_text.parse_tweet(text)`` returns under that configuration,
field for field, but 30 to 80 times faster: ``parse_tweet`` takes about 1 ms per tweet, and
validation measures tens of thousands of texts. It replays ``parse_tweet``'s counting loop
run by run instead of character by character, over URL and emoji spans found by
``bot.text._entities`` with the library's own patterns. The conformance suite and a
differential test against ``parse_tweet`` in ``tests/text/test_length.py`` hold it to that.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from typing import Final

from bot.text._entities import _TLD_DOT, emoji_spans, url_spans

MAX_WEIGHTED_LENGTH: Final = 280
URL_WEIGHT: Final = 23
EMOJI_WEIGHT: Final = 2

#: Code point ranges that weigh 1 in configuration v3; every other code point weighs 2.
LIGHT_RANGES: Final = ((0x0000, 0x10FF), (0x2000, 0x200D), (0x2010, 0x201F), (0x2032, 0x2037))
#: Characters that make a post invalid wherever they are (twitter-text's ``invalid_chars``).
INVALID_CHARACTERS: Final = frozenset("\ufffe\ufeff\uffff")

_HEAVY: Final = re.compile(
    "[^" + "".join(f"\\u{start:04x}-\\u{end:04x}" for start, end in LIGHT_RANGES) + "]"
)


@dataclass(frozen=True)
class Measure:
    """What X would say about a text, as twitter-text's ``ParsedResult`` does.

    ``weighted`` is the weight, ``limit`` the most a post may weigh and ``permillage`` the weight
    in thousandths of the limit, rounded down. ``valid_range`` and ``display_range`` are
    inclusive ``(start, end)`` offsets in UTF-16 code units into the text as given (before
    ``normalize``): ``display_range`` covers the whole text and ``valid_range`` the part before
    the limit is passed or an invalid character met (``(0, -1)`` for an empty text).
    """

    weighted: int
    limit: int
    valid: bool
    permillage: int
    valid_range: tuple[int, int]
    display_range: tuple[int, int]


def normalize(text: str) -> str:
    """Return ``text`` as X counts it: ``\\r\\n`` and lone ``\\r`` become ``\\n``, then NFC."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return unicodedata.normalize("NFC", text)


def measure(text: str) -> Measure:
    """Measure ``text`` as X does (twitter-text v3), after ``normalize``.

    ``valid`` is true when X would accept the text as a post: it is not empty, weighs at most
    ``MAX_WEIGHTED_LENGTH`` and contains none of ``INVALID_CHARACTERS``. A lone surrogate,
    which no post can carry and on which ``parse_tweet`` raises, weighs 2 here: reject such
    text where it is read.
    """
    normalized = normalize(text)
    weighted, clean, last_fit = _tally(normalized)
    text_units = _utf16_length(text)
    normalization_shift = text_units - _utf16_length(normalized)
    return Measure(
        weighted=weighted,
        limit=MAX_WEIGHTED_LENGTH,
        valid=clean and 0 < weighted <= MAX_WEIGHTED_LENGTH,
        permillage=math.floor((weighted / MAX_WEIGHTED_LENGTH) * 1000),
        valid_range=(0, _utf16_length(normalized[: last_fit + 1]) - 1 + normalization_shift),
        display_range=(0, text_units - 1 if text_units > 0 else 0),
    )


def weighted_length(text: str) -> int:
    """Return the weight X gives ``text`` (``measure(text).weighted``)."""
    return _tally(normalize(text))[0]


def weight_bound(text: str) -> int:
    """An upper bound of ``weighted_length(text)``, several times cheaper to compute.

    Sound because, over the normalized text: a character outside entities weighs 1 when it is
    ASCII and at most 2 otherwise, never more than its UTF-8 bytes; an emoji weighs 2, no more
    than its bytes (a one-character emoji is never ASCII, a longer one has two bytes or more:
    ``tests/text/test_length.py`` checks the tables); a URL weighs 23; and every URL holds a
    TLD dot (``_TLD_DOT``) of its own. So the weight is at most the UTF-8 length plus 23 for
    each TLD dot.
    """
    normalized = normalize(text)
    size = len(normalized) if normalized.isascii() else _utf8_length(normalized)
    dots = len(_TLD_DOT.findall(normalized)) if "." in normalized else 0
    return size + URL_WEIGHT * dots


def _utf8_length(text: str) -> int:
    """``text``'s length in UTF-8 bytes, a lone surrogate counted as the 3 bytes it would be."""
    return len(text.encode("utf-8", "surrogatepass"))


def _tally(text: str) -> tuple[int, bool, int]:
    """Replay ``parse_tweet``'s counting loop over normalized ``text``.

    Returns ``(weight, clean, last_fit)``: the total weight; whether no invalid character was
    met (``parse_tweet`` only looks at characters outside entities and at each entity's last
    character); and the index of the last character examined while the text was still clean
    and within the limit (0 if none was).
    """
    spans = {start: (length, EMOJI_WEIGHT) for start, length in emoji_spans(text).items()}
    spans.update({start: (length, URL_WEIGHT) for start, length in url_spans(text).items()})
    weight, clean, last_fit, position = 0, True, 0, 0
    for start in sorted(spans):
        if start < position:  # inside an entity already counted: parse_tweet skipped it
            continue
        weight, clean, last_fit = _tally_plain(text, position, start, weight, clean, last_fit)
        length, entity_weight = spans[start]
        position = start + length
        weight += entity_weight
        # As parse_tweet does; no URL or emoji ends with an invalid character today.
        clean = clean and text[position - 1 : position] not in INVALID_CHARACTERS
        if clean and weight <= MAX_WEIGHTED_LENGTH:
            last_fit = position - 1
    return _tally_plain(text, position, len(text), weight, clean, last_fit)


def _tally_plain(
    text: str, start: int, end: int, weight: int, clean: bool, last_fit: int
) -> tuple[int, bool, int]:
    """Continue ``_tally`` over ``text[start:end]``, a run holding no entity."""
    run = text[start:end]
    if not run:
        return weight, clean, last_fit
    if run.isascii():  # ASCII weighs 1 a character and holds no invalid character
        run_weight, clean_length = len(run), len(run)
    else:
        run_weight, clean_length = len(run) + len(_HEAVY.findall(run)), _clean_length(run)
    if clean and weight < MAX_WEIGHTED_LENGTH:  # last_fit may still move
        if clean_length == len(run) and weight + run_weight <= MAX_WEIGHTED_LENGTH:
            last_fit = end - 1
        elif fitting := _fitting_length(run, clean_length, MAX_WEIGHTED_LENGTH - weight):
            last_fit = start + fitting - 1
    return weight + run_weight, clean and clean_length == len(run), last_fit


def _clean_length(run: str) -> int:
    """Return the index of the first invalid character in ``run``, or its length if none."""
    return min((i for i in map(run.find, INVALID_CHARACTERS) if i >= 0), default=len(run))


def _fitting_length(run: str, length: int, budget: int) -> int:
    """Return how many characters from the start of ``run[:length]`` weigh at most ``budget``."""
    if run.isascii():
        return min(length, budget)
    for index, character in enumerate(run[:length]):
        budget -= 2 if _HEAVY.match(character) else 1
        if budget < 0:
            return index
    return length


def _utf16_length(text: str) -> int:
    """Return the number of UTF-16 code units in ``text``."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2
