"""A delivery held for its translation (the engine down, or lacking the language) is tried
again by the follow-ups, with growing waits — not by every apply of an unrelated commit, which
would translate every held delivery again at each commit (at 269 missions with a language the
engine lacks: ~800 translations and transactions an apply). A commit that changes the held
post itself records it again at once.

The service in this process (not started: the test calls ``sync`` itself, so no follow-up runs
between the steps), following a real git repository, the fake LibreTranslate down, a real
SQLite ledger.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from publish.conftest import env_for
from servers.translate import LibreServer
from servers.x import XServer
from service.conftest import BRANCH, ContentRepo, due_in, post_yaml

from bot.service import Service
from bot.settings import ServiceSettings, Settings
from bot.source import GitSource
from bot.state import open_store
from bot.state.ledger import State
from bot.wiring import Wiring


@pytest.fixture
def service(
    tmp_path: Path,
    content_repo: ContentRepo,
    x: XServer,
    libre: LibreServer,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Service]:
    for key, value in env_for(x, libre).items():
        monkeypatch.setenv(key, value)
    state = tmp_path / "in-process"
    state.mkdir()
    store = open_store(f"sqlite:///{state / 'state.sqlite'}")
    source = GitSource(str(content_repo.path), BRANCH, state / "repo")
    wiring = Wiring(Settings.from_env(os.environ))
    # Follow-ups far apart: only an apply could try the held deliveries again here.
    settings = ServiceSettings(sweep_interval=600)
    yield Service(source, store, state, settings, wiring=wiring)
    store.close()


def translations_asked(libre: LibreServer) -> int:
    return sum(1 for c in libre.calls if c.path == "/translate")


def test_an_unrelated_commit_does_not_translate_held_deliveries_again(
    content_repo: ContentRepo, service: Service, libre: LibreServer
) -> None:
    libre.fail_next("500", count=100_000)  # down
    due = due_in(3600)
    content_repo.write("content/posts/presse.yaml", post_yaml("presse", due, "Presse", human=False))
    content_repo.commit("presse, to be machine-translated")
    service.sync()
    held = [r for r in service.ledger.rows("presse") if r.state is State.HELD]
    assert len(held) == 3, [(r.account, r.state) for r in service.ledger.rows("presse")]
    asked = translations_asked(libre)
    assert asked > 0

    # A commit about another post (human translations: nothing to ask the engine).
    content_repo.write("content/posts/autre.yaml", post_yaml("autre", due, "Autre", human=True))
    rev = content_repo.commit("autre")
    service.sync()
    assert service.revision == rev
    assert translations_asked(libre) == asked, "the held deliveries were translated again"
    after = {r.id: r for r in service.ledger.rows("presse")}
    assert all(after[r.id].state is State.HELD for r in held)
    assert all(after[r.id].retry_at == r.retry_at for r in held), "their next try moved"
    assert {r.state for r in service.ledger.rows("autre")} == {State.PENDING}

    # A commit that changes the held post: recorded again at once (asked again).
    content_repo.write(
        "content/posts/presse.yaml", post_yaml("presse", due, "Presse 2", human=False)
    )
    content_repo.commit("presse edited")
    service.sync()
    assert translations_asked(libre) > asked
    assert {r.state for r in service.ledger.rows("presse") if r.lang != "fr"} == {State.HELD}
    fr = [r for r in service.ledger.rows("presse") if r.lang == "fr"]
    assert [r.text for r in fr] == ["Presse 2"]
