"""Language tags diplobot accepts: BCP 47 tags made of an ISO 639-1 language, an optional
ISO 15924 script and an optional region (``fr``, ``zh-Hans``, ``zh-Hant``, ``pt-BR``,
``es-419``), written in their canonical case.

A tag is compared as written: ``zh-Hans`` and ``zh`` are two languages (an account in one does
not publish a post meant for the other). Each translation backend is given the code it knows
for a tag (``bot/translate/codes.py``); platforms that take a plain ISO 639 code (Mastodon's
``language``) take :func:`primary`.
"""

from __future__ import annotations

import re
from typing import Final

ISO_639_1 = frozenset(
    """
    aa ab ae af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca ce ch co cr cs cu cv
    cy da de dv dz ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr
    ht hu hy hz ia id ie ig ii ik io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw
    ky la lb lg li ln lo lt lu lv mg mh mi mk ml mn mr ms mt my na nb nd ne ng nl nn no nr nv
    ny oc oj om or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd se sg si sk sl sm sn so sq sr
    ss st su sv sw ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve vi vo wa wo xh yi
    yo za zh zu
    """.split()  # noqa: SIM905 - a word list reads better than 184 quoted strings
)

# language[-Script][-REGION], any case and '-' or '_': what an editor may type.
_TAG: Final = re.compile(
    r"(?P<lang>[A-Za-z]{2})(?:[-_](?P<script>[A-Za-z]{4}))?(?:[-_](?P<region>[A-Za-z]{2}|\d{3}))?"
)
LANGUAGE_PATTERN: Final = r"^[a-z]{2}(-[A-Z][a-z]{3})?(-([A-Z]{2}|[0-9]{3}))?$"
"""A canonical tag's shape (the JSON Schema's pattern; the language must also be ISO 639-1)."""


def canonical(tag: str) -> str | None:
    """``tag`` in its canonical case (``ZH-hans`` → ``zh-Hans``, ``pt_br`` → ``pt-BR``), or
    None when it is not a tag diplobot accepts (unknown language, extra subtags)."""
    found = _TAG.fullmatch(tag)
    if found is None:
        return None
    lang = found["lang"].lower()
    if lang not in ISO_639_1:
        return None
    parts = [lang]
    if found["script"]:
        parts.append(found["script"].title())
    if found["region"]:
        parts.append(found["region"].upper())
    return "-".join(parts)


def is_language(tag: str) -> bool:
    """Whether ``tag`` is accepted as written (canonical case, ISO 639-1 language)."""
    return canonical(tag) == tag


def primary(tag: str) -> str:
    """The ISO 639-1 language of ``tag``: ``zh-Hant`` → ``zh``."""
    return tag.split("-", 1)[0].lower()


def script(tag: str) -> str | None:
    """The script subtag of ``tag`` (``Hans``), or None."""
    return next((p for p in tag.split("-")[1:] if len(p) == 4 and p.isalpha()), None)


def region(tag: str) -> str | None:
    """The region subtag of ``tag`` (``BR``, ``419``), or None."""
    return next((p for p in tag.split("-")[1:] if len(p) in (2, 3)), None)


_TRADITIONAL_REGIONS: Final = frozenset({"TW", "HK", "MO"})


def chinese_script(tag: str) -> str:
    """``Hans`` or ``Hant`` for a Chinese tag: the script when given, else what its region
    writes (``zh-TW`` → ``Hant``), else simplified."""
    found = script(tag)
    if found in ("Hans", "Hant"):
        return found
    return "Hant" if region(tag) in _TRADITIONAL_REGIONS else "Hans"
