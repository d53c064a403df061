"""Protect what machine translation must not touch, and prove afterwards it was not touched.

Before translation, URLs, @mentions, #hashtags, $cashtags, emoji (flags and ZWJ sequences
included) and glossary terms are replaced by placeholders ``⟦0⟧``, ``⟦1⟧``… After translation
each placeholder is restored — an entity to itself, a glossary term to its fixed rendering in
the target language. Then the result is checked: every placeholder came back exactly once,
none was invented, and the entities in the result are exactly the entities expected. Anything
else raises :class:`EntityMismatch`, and the variant is held rather than published.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from bot.text._entities import emoji_spans, url_spans
from bot.text.length import normalize

_HASHTAG = re.compile(r"(?<![\w&#＃])[#＃](?![\ufe0f\u20e3])\w*[^\W\d_]\w*")
_MENTION = re.compile(r"(?<![\w@＠])[@＠]\w{1,15}(?![\w@＠])")
_CASHTAG = re.compile(r"(?<![\w$])\$[A-Za-z]{1,6}(?:[._][A-Za-z]{1,2})?(?![\w$])")
_PLACEHOLDER = re.compile(r"⟦\s*(\d+)\s*⟧")
_BRACKETS = re.compile(r"[⟦⟧]")
_APOSTROPHES = "'’ʼ"


class EntityMismatch(ValueError):
    """The translation lost, altered or invented a protected entity; ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class GlossaryTerm:
    term: str
    translations: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Protected:
    """A text ready for the engine, and what is needed to restore and check the answer."""

    masked: str
    replacements: tuple[str, ...]  # what placeholder i becomes in the target language
    expected: tuple[str, ...]  # the entities the restored text must contain, exactly


def entities(text: str) -> Counter[str]:
    """The URLs, mentions, hashtags, cashtags and emoji runs of ``text``, with multiplicity."""
    return Counter(text[a:b] for a, b, kind in _entity_spans(normalize(text)) if kind != "term")


def entity_spans(text: str) -> list[tuple[int, int, str]]:
    """The (start, end, kind) of every entity of ``text`` (as given: normalize it first),
    earliest first, none overlapping; kind: url, mention, hashtag, cashtag or emoji."""
    return _entity_spans(text)


def protect(text: str, target: str, glossary: Sequence[GlossaryTerm] = ()) -> Protected:
    """Mask ``text`` for translation into ``target``."""
    text = normalize(text)
    spans = _entity_spans(text, _glossary_pattern(tuple(g.term for g in glossary)))
    terms = {_fold(g.term): g for g in glossary}
    parts: list[str] = []
    replacements: list[str] = []
    expected: list[str] = []
    last = 0
    for start, end, kind in spans:
        original = text[start:end]
        parts.append(text[last:start])
        parts.append(f"⟦{len(replacements)}⟧")
        if kind == "term":
            entry = terms[_fold(original)]
            replacements.append(entry.translations.get(target, original))
        else:
            replacements.append(original)
            expected.append(original)
        last = end
    parts.append(text[last:])
    return Protected("".join(parts), tuple(replacements), tuple(expected))


def restore(translated: str, protected: Protected) -> str:
    """Put the protected pieces back and check nothing was lost, altered or invented.

    Raises:
        EntityMismatch: with a reason an editor can act on.
    """
    seen: Counter[int] = Counter(int(m.group(1)) for m in _PLACEHOLDER.finditer(translated))
    count = len(protected.replacements)
    for index in range(count):
        if seen[index] == 0:
            raise EntityMismatch(f"the translation lost '{protected.replacements[index]}'")
        if seen[index] > 1:
            raise EntityMismatch(f"the translation repeated '{protected.replacements[index]}'")
    invented = [i for i in seen if i >= count]
    if invented:
        raise EntityMismatch("the translation invented a placeholder")

    def put_back(match: re.Match[str]) -> str:
        return protected.replacements[int(match.group(1))]

    restored = _PLACEHOLDER.sub(put_back, translated)
    if _BRACKETS.search(restored):
        raise EntityMismatch("the translation damaged a placeholder")
    restored = normalize(restored)
    found = entities(restored)
    wanted = Counter(protected.expected)
    if found != wanted:
        extra = sorted((found - wanted).elements())
        missing = sorted((wanted - found).elements())
        detail = []
        if missing:
            detail.append("lost " + ", ".join(f"'{e}'" for e in missing))
        if extra:
            detail.append("added " + ", ".join(f"'{e}'" for e in extra))
        raise EntityMismatch("the translation " + " and ".join(detail))
    return restored


def _fold(value: str) -> str:
    for mark in _APOSTROPHES[1:]:
        value = value.replace(mark, "'")
    return value.casefold()


@lru_cache(maxsize=16)
def _glossary_pattern(terms: tuple[str, ...]) -> re.Pattern[str] | None:
    if not terms:
        return None
    alternatives = []
    for term in sorted(terms, key=len, reverse=True):
        alternatives.append(
            "".join(
                f"[{_APOSTROPHES}]"
                if ch in _APOSTROPHES
                else r"\s+"
                if ch.isspace()
                else re.escape(ch)
                for ch in term
            )
        )
    return re.compile(r"(?<!\w)(?:" + "|".join(alternatives) + r")(?!\w)", re.IGNORECASE)


def _entity_spans(text: str, glossary: re.Pattern[str] | None = None) -> list[tuple[int, int, str]]:
    """Non-overlapping (start, end, kind) spans, earliest first; URLs beat what they contain."""
    candidates: list[tuple[int, int, str]] = []
    candidates += [(s, s + n, "url") for s, n in url_spans(text).items()]
    candidates += [(m.start(), m.end(), "hashtag") for m in _HASHTAG.finditer(text)]
    candidates += [(m.start(), m.end(), "mention") for m in _MENTION.finditer(text)]
    candidates += [(m.start(), m.end(), "cashtag") for m in _CASHTAG.finditer(text)]
    if glossary is not None:
        candidates += [(m.start(), m.end(), "term") for m in glossary.finditer(text)]
    emoji = sorted(emoji_spans(text).items())
    run_start = run_end = -1
    for start, length in emoji:  # adjacent emoji become one run (one placeholder)
        if start == run_end:
            run_end = start + length
            continue
        if run_start >= 0:
            candidates.append((run_start, run_end, "emoji"))
        run_start, run_end = start, start + length
    if run_start >= 0:
        candidates.append((run_start, run_end, "emoji"))
    # Longest first at the same start; then drop anything overlapping a kept span.
    candidates.sort(key=lambda c: (c[0], -(c[1] - c[0])))
    kept: list[tuple[int, int, str]] = []
    for span in candidates:
        if kept and span[0] < kept[-1][1]:
            continue
        kept.append(span)
    return kept
