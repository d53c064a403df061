"""The preview's translation cache keeps what it is given, by one text or many (``localize``
stores a run's translations with ``put_many``), until the site is made: then all of it in one
flush. Before the flush the state holds none of it."""

from __future__ import annotations

from pathlib import Path

from bot.preview.site import Deferred
from bot.state import open_store, state_url
from bot.state.translations import CacheKey, text_hash


def _key(text: str) -> CacheKey:
    return CacheKey("libre", "fr", "en", text_hash(text), "g1")


def test_writes_wait_for_the_flush_then_all_land(tmp_path: Path) -> None:
    store = open_store(state_url(tmp_path, None))
    try:
        cache = store.translations
        deferred = Deferred(cache)
        deferred.put(_key("Bonjour"), "Hello")
        deferred.put_many([(_key(f"Texte {i}"), f"Text {i}") for i in range(150)])
        keys = [_key("Bonjour"), *(_key(f"Texte {i}") for i in range(150))]
        assert cache.get_many(keys) == {}
        deferred.flush()
        found = cache.get_many(keys)
        assert len(found) == 151 and found[_key("Bonjour")] == "Hello"
        assert found[_key("Texte 149")] == "Text 149" and deferred.pending == []
    finally:
        store.close()
