"""Entities in a post's text, found the way X finds them (twitter-text's extractor)."""

from __future__ import annotations

from functools import lru_cache

from twitter_text import extract_urls


@lru_cache(maxsize=4096)
def has_url(text: str) -> bool:
    """Whether X would see a link in ``text`` (which makes the post cost more to publish)."""
    if "." not in text:  # every URL, with or without scheme, has a dot in its host
        return False
    return bool(extract_urls(text))
