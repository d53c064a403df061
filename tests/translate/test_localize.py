"""Localization end to end: real client (LibreTranslate via deep-translator) against the fake
server, real state database, the bundled example's French diplomatic posts."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers.translate import FakeEngine, LibreServer
from translate.conftest import KEY, make_backend

from bot.content.loader import load
from bot.state import open_store, state_url
from bot.text.protect import entities
from bot.translate.localize import localize

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def libre() -> Iterator[LibreServer]:
    with LibreServer(api_key=KEY) as server:
        yield server


def _localize(repo: Path, server: LibreServer, **kw: object):  # type: ignore[no-untyped-def]
    cache = open_store(state_url(repo, None)).translations
    return localize(load(repo), make_backend("libre", server), cache, **kw)  # type: ignore[arg-type]


def test_entities_and_glossary_survive_a_mangling_engine(repo: Path, libre: LibreServer) -> None:
    """Every URL, mention, hashtag, emoji and glossary term of the example stays intact in
    en, ar and es, although the engine mangles all of them when unprotected."""
    content = load(repo)
    result = _localize(repo, libre)
    machine = [v for v in result.variants if v.origin == "machine"]
    assert {v.lang for v in machine} == {"en", "ar", "es"}
    assert all(v.state in ("ready", "review") for v in machine), [
        (v.post, v.lang, v.reason) for v in machine if v.state not in ("ready", "review")
    ]
    for v in machine:
        entry = content.posts[v.post]
        source = entry.human_text(entry.post.lang, v.part - 1) or ""
        assert entities(" ".join(v.texts)) == entities(source), (v.post, v.lang)
        # The same source unprotected would have been damaged by this engine:
        if entities(source):
            raw = FakeEngine().translate(source, "fr", v.lang)
            assert entities(raw) != entities(source), (v.post, v.lang)
    cop = next(v for v in machine if v.post == "bilan-cop31" and v.lang == "es")
    assert "Ministerio de Europa y Asuntos Exteriores" in cop.texts[0]  # glossary rendering
    assert "https://www.diplomatie.gouv.fr/fr/politique-etrangere" in cop.texts[0]


@pytest.mark.parametrize("misbehaviour", ["drop_placeholders", "duplicate_placeholders"])
def test_an_engine_that_loses_an_entity_gets_the_variant_held(
    repo: Path, libre: LibreServer, misbehaviour: str
) -> None:
    """When the engine drops or repeats a protected entity anyway, the variant is held."""
    setattr(libre.engine, misbehaviour, True)
    result = _localize(repo, libre, post_ids=["bilan-cop31"])
    held = {v.lang: v for v in result.variants if v.state == "held"}
    assert set(held) == {"ar", "es"}  # en has a human translation
    assert all(v.texts == () and "write a human translation" in v.reason for v in held.values())


def test_second_run_makes_no_engine_call(repo: Path, libre: LibreServer) -> None:
    """Each unique (text, target) is translated once; a second run is served from the cache."""
    first = _localize(repo, libre)
    calls = len(libre.calls)
    assert first.stats.requests == calls > 0  # a batch per language pair: fewer than texts
    assert first.stats.engine_calls >= calls
    second = _localize(repo, libre)
    assert len(libre.calls) == calls
    assert second.stats.engine_calls == 0 and second.stats.cache_hits == first.stats.engine_calls
    assert [v.texts for v in second.variants] == [v.texts for v in first.variants]


def test_identical_texts_are_sent_once(repo: Path, libre: LibreServer) -> None:
    """Two posts with the same text into the same language cost one engine call."""
    posts = repo / "content/posts"
    for name in ("same-a", "same-b"):
        (posts / f"{name}.yaml").write_text("lang: fr\nlanguages: [fr, es]\ntext: Merci !\n")
    result = _localize(repo, libre, post_ids=["same-a", "same-b"])
    assert result.stats.engine_calls == 1 and len(libre.calls) == 1


def _cli(repo: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", "--root", str(repo), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
    )


def test_cache_survives_a_restart_and_the_key_leaks_nowhere(repo: Path, libre: LibreServer) -> None:
    """Two separate processes: the second makes zero calls; with DEBUG logs the canary key
    appears in no output, log or state file."""
    env = {
        "DIPLOBOT_TRANSLATOR": "libre",
        "DIPLOBOT_TRANSLATOR_URL": libre.url,
        "DIPLOBOT_TRANSLATOR_KEY": KEY,
        "DIPLOBOT_LOG_LEVEL": "DEBUG",
        "DIPLOBOT_LOG_FORMAT": "json",
    }
    first = _cli(repo, "translate", "--format", "json", env=env)
    assert first.returncode == 0, first.stderr
    calls = len(libre.calls)
    assert calls > 0
    second = _cli(repo, "translate", env=env)
    assert second.returncode == 0, second.stderr
    assert len(libre.calls) == calls
    assert "0 engine call(s)" in second.stdout
    assert "translate.done" in first.stderr  # DEBUG logging was really on
    leaks = [first.stdout, first.stderr, second.stdout, second.stderr]
    leaks += [p.read_bytes().decode("latin-1") for p in (repo / ".diplobot").iterdir()]
    assert not any(KEY in text for text in leaks)
    # The key did reach the server (it is not that we never sent it):
    assert libre.calls[0].params.get("api_key") == KEY
