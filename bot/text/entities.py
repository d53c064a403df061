"""Entities in a post's text, found the way X finds them (twitter-text's extractor)."""

from __future__ import annotations

from bot.text._entities import url_spans
from bot.text.length import normalize


def has_url(text: str) -> bool:
    """Whether X would see a link in ``text`` (which makes the post cost more to publish)."""
    return bool(url_spans(normalize(text)))
