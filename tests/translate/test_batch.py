"""Batched machine translation (issue 14): engines that take lists get one request per batch,
and the outcome of every text is exactly what one request per text gives.

Each test runs :func:`localize` twice on the same content against the same fake server: once
with the backend as wired (batched), once through :class:`OneByOne`, which hides the batch
form so that every text goes through ``translate`` alone (the path batching replaces). Variants,
reasons and the cache must be identical; only the number of requests differs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from servers.translate import DeepLServer, FakeTranslationServer, LibreServer, MicrosoftServer
from translate.conftest import KEY, make_backend

from bot.content.loader import load
from bot.state import open_store, state_url
from bot.translate.base import BatchTranslator, Translator
from bot.translate.localize import Localization, localize

BATCHED = {"libre": LibreServer, "deepl": DeepLServer, "microsoft": MicrosoftServer}
WORDS = [
    "La",
    "France",
    "salue",
    "la",
    "coopération",
    "avec",
    "nos",
    "partenaires",
    "pour",
    "la",
    "paix",
    "et",
    "le",
    "climat",
]


class OneByOne:
    """The backend without its batch form: one request per text."""

    def __init__(self, inner: Translator) -> None:
        self.inner = inner
        self.name = inner.name

    def translate(self, text: str, source: str, target: str) -> str:
        return self.inner.translate(text, source, target)


def _write_posts(repo: Path, count: int) -> None:
    """``count`` French posts, each with a text of its own (entities included: a URL, a
    hashtag, a mention), machine-translated into en, es and ar."""
    posts = repo / "content/posts"
    for i in range(count):
        words = " ".join(WORDS[(i + k) % len(WORDS)] for k in range(6 + i % 7))
        text = f"{words} n°{i} #Diplo{i} @francediplo https://www.diplomatie.gouv.fr/fr/{i}"
        (posts / f"lot-{i:03d}.yaml").write_text(
            f'lang: fr\nlanguages: [fr, en, es, ar]\ntext: "{text}"\n', encoding="utf-8"
        )


def _run(repo: Path, state: str, translator: Translator, ids: list[str]) -> Localization:
    cache = open_store(state_url(repo, str(repo / state))).translations
    return localize(load(repo), translator, cache, post_ids=ids)


@pytest.fixture(params=sorted(BATCHED))
def server(request: pytest.FixtureRequest) -> Iterator[tuple[str, FakeTranslationServer]]:
    with BATCHED[request.param](api_key=KEY) as srv:
        yield request.param, srv


def test_batches_translate_exactly_as_one_text_per_request_with_few_requests(
    repo: Path, server: tuple[str, FakeTranslationServer]
) -> None:
    name, srv = server
    posts = 120
    _write_posts(repo, posts)
    ids = [f"lot-{i:03d}" for i in range(posts)]
    batched = make_backend(name, srv)
    assert isinstance(batched, BatchTranslator)

    one = _run(repo, "one.sqlite", OneByOne(make_backend(name, srv)), ids)
    single_requests = len(srv.calls)
    srv.reset()
    many = _run(repo, "many.sqlite", batched, ids)
    batch_requests = len(srv.calls)

    pairs = posts * 3
    assert one.stats.engine_calls == many.stats.engine_calls == pairs
    assert single_requests == one.stats.requests == pairs
    assert batch_requests == many.stats.requests
    assert batch_requests / pairs <= 0.05, (batch_requests, pairs)
    assert [(v.post, v.lang, v.texts, v.state, v.reason) for v in many.variants] == [
        (v.post, v.lang, v.texts, v.state, v.reason) for v in one.variants
    ]
    assert all(v.state in ("ready", "review") for v in many.variants)
    # The per-text cache holds the same: a second run asks nothing.
    again = _run(repo, "many.sqlite", batched, ids)
    assert again.stats.requests == 0 and again.stats.cache_hits == pairs
    assert [v.texts for v in again.variants] == [v.texts for v in many.variants]


def test_a_protected_entity_lost_in_a_batch_holds_only_that_text(repo: Path) -> None:
    """The engine drops a placeholder: each text is restored (and held) on its own, exactly
    as when sent alone."""
    _write_posts(repo, 4)
    (repo / "content/posts/sans.yaml").write_text(
        "lang: fr\nlanguages: [fr, es]\ntext: La France salue la paix\n", encoding="utf-8"
    )
    ids = ["lot-000", "lot-001", "sans"]
    with LibreServer(api_key=KEY) as srv:
        srv.engine.drop_placeholders = True
        one = _run(repo, "one.sqlite", OneByOne(make_backend("libre", srv)), ids)
        many = _run(repo, "many.sqlite", make_backend("libre", srv), ids)
    shown = [(v.post, v.lang, v.texts, v.state, v.reason) for v in many.variants]
    assert shown == [(v.post, v.lang, v.texts, v.state, v.reason) for v in one.variants]
    states = {(v.post, v.lang): v.state for v in many.variants if v.origin != "human"}
    assert states[("sans", "es")] == "ready"
    assert states[("lot-000", "es")] == "held"


def test_a_failed_batch_fails_each_of_its_texts_and_they_are_retried(repo: Path) -> None:
    """A 503 on the batch: every text of it failed (will retry), nothing cached; the next
    run translates them."""
    _write_posts(repo, 3)
    ids = ["lot-000", "lot-001", "lot-002"]
    with LibreServer(api_key=KEY) as srv:
        srv.fail_next("503", count=3)  # one request per language pair
        first = _run(repo, "s.sqlite", make_backend("libre", srv), ids)
        assert first.stats.requests == 3 and first.stats.failures == 9
        machine = [v for v in first.variants if v.origin != "human"]
        assert len(machine) == 9
        assert all(v.state == "failed" and "will retry" in v.reason for v in machine)
        second = _run(repo, "s.sqlite", make_backend("libre", srv), ids)
    assert second.stats.requests == 3 and second.stats.failures == 0
    assert all(v.state == "ready" for v in second.variants if v.origin != "human")


def test_a_server_with_a_smaller_batch_limit_gets_the_texts_one_by_one(repo: Path) -> None:
    """A LibreTranslate started with ``--batch-limit 2`` refuses the batch (400): the texts
    are sent one per request, and translated."""
    _write_posts(repo, 3)
    ids = ["lot-000", "lot-001", "lot-002"]
    with LibreServer(api_key=KEY) as srv:
        srv.batch_limit = 2
        result = _run(repo, "s.sqlite", make_backend("libre", srv), ids)
        calls = len(srv.calls)
    assert result.stats.failures == 0 and result.stats.requests == 3 * (1 + 3) == calls
    assert all(v.state == "ready" for v in result.variants if v.origin != "human")


@pytest.mark.parametrize(
    ("name", "limit"), [("deepl", DeepLServer.MAX_TEXTS), ("microsoft", 1000), ("libre", 50)]
)
def test_the_fakes_refuse_what_the_real_services_refuse(repo: Path, name: str, limit: int) -> None:
    """One text more than the service takes in a request is refused by the fake (DeepL 50,
    Microsoft 1,000; LibreTranslate as configured): the client never sends that many."""
    from bot.translate.base import BatchTooLarge

    with BATCHED[name](api_key=KEY) as srv:
        if isinstance(srv, LibreServer):
            srv.batch_limit = limit
        translator = make_backend(name, srv)
        assert isinstance(translator, BatchTranslator)
        assert translator.batch_texts <= limit
        texts = [f"Merci {i}" for i in range(limit + 1)]
        with pytest.raises((BatchTooLarge, Exception)) as raised:
            translator.translate_many(texts, "fr", "es")
        assert "deepl" in str(raised.value) or isinstance(raised.value, BatchTooLarge)
        assert translator.translate_many(texts[:limit], "fr", "es")[0] == "Gracias 0"


def test_the_largest_deepl_batch_fits_deepls_request_size() -> None:
    """``batch_texts`` texts of ``batch_chars`` characters in all, every one an emoji (which
    the SDK's JSON escapes as 12 bytes), stay under DeepL's 128 KiB: the fake accepts them."""
    with DeepLServer(api_key=KEY) as srv:
        translator = make_backend("deepl", srv)
        assert isinstance(translator, BatchTranslator)
        each = translator.batch_chars // translator.batch_texts
        texts = ["🌍" * each] * translator.batch_texts
        assert len(translator.translate_many(texts, "fr", "es")) == translator.batch_texts
        (call,) = srv.calls
        assert 100 * 1024 < int(call.headers["Content-Length"]) <= DeepLServer.MAX_BODY
