"""Alt texts are localized with the text, in one pass (bot/translate/localize.py): the editor's
per language, else translated through the same protection and cache, else the source."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from servers.translate import LibreServer
from translate.conftest import KEY, make_backend

from bot.content.loader import load
from bot.state import open_store, state_url
from bot.translate.localize import Localization, localize

POST = "journee-droits-humains"  # an image whose alt text is written in fr, en and es


@pytest.fixture
def keyed_libre() -> Iterator[LibreServer]:
    with LibreServer(api_key=KEY) as server:
        yield server


def _localize(repo: Path, server: LibreServer) -> Localization:
    cache = open_store(state_url(repo, None)).translations
    return localize(load(repo), make_backend("libre", server), cache, post_ids=[POST])


def test_alt_texts_are_settled_with_the_text_and_translated_once(
    repo: Path, keyed_libre: LibreServer
) -> None:
    """Written alts are kept as written; the missing language (ar) is translated from the
    post's language; a second run is served from the cache."""
    content = load(repo)
    written = content.posts[POST].post.media[0].alt
    assert isinstance(written, dict)
    first = _localize(repo, keyed_libre)
    alts = {v.lang: v.alts for v in first.variants}
    assert alts["fr"] == (written["fr"],) and alts["en"] == (written["en"],)
    assert alts["es"] == (written["es"],)
    (arabic,) = alts["ar"]
    assert arabic and arabic not in written.values()
    calls = len(keyed_libre.calls)
    # The alt is counted with the texts, and sent in the same batch as its language's texts.
    assert first.stats.requests == calls <= first.stats.engine_calls
    second = _localize(repo, keyed_libre)
    assert len(keyed_libre.calls) == calls and second.stats.engine_calls == 0
    assert {v.lang: v.alts for v in second.variants} == alts


def test_an_alt_text_that_cannot_be_translated_falls_back_to_the_source(
    repo: Path, keyed_libre: LibreServer
) -> None:
    """The engine failing leaves the text failed (retried) but the image keeps an alt text:
    the source's, logged, never cached."""
    keyed_libre.fail_next("500", count=50)
    result = _localize(repo, keyed_libre)
    ar = next(v for v in result.variants if v.lang == "ar")
    written = load(repo).posts[POST].post.media[0].alt
    assert isinstance(written, dict)
    assert ar.state == "failed" and ar.alts == (written["fr"],)
