"""Reposts (amplification) through the pipeline and the service's dispatch, against the fake X:
a central post reposted by another account of the same platform, once, after the original.

The plan (the missions' ``amplify:``) gives a repost delivery ``repost_of``, the original's
delivery key; these tests hand-make that delivery, as the plan would."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from publish.conftest import env_for
from servers.translate import LibreServer
from servers.x import XServer

from bot import pipeline
from bot.cli import main
from bot.content.loader import load
from bot.content.types import ContentSet
from bot.publish.deliver import WAITING
from bot.publish.retract import retract
from bot.publish.session import Publishing
from bot.schedule.plan import Delivery
from bot.service.dispatch import Dispatch
from bot.settings import Settings
from bot.state import Store, open_store
from bot.state.ledger import State
from bot.wiring import Wiring

POST = "entretien-liban"
CENTRAL, AMPLIFIER = "francediplo", "francediplo_EN"


def _publishing(repo: Path, x: XServer, libre: LibreServer) -> tuple[ContentSet, Store, Publishing]:
    content = load(repo)
    store = open_store(f"sqlite:///{repo.parent / 'state.sqlite'}")
    wiring = Wiring(Settings.from_env(env_for(x, libre)))
    return content, store, Publishing.build(content, store, repo.parent, wiring)


def _record(content: ContentSet, pub: Publishing, now: datetime) -> None:
    """The central account's post and the amplifier's repost of it, due ``now``."""
    entry = content.posts[POST]
    original = pipeline.due_now(content, entry, [CENTRAL], now)
    repost = Delivery(
        post=POST,
        account=AMPLIFIER,
        lang="en",
        part=1,
        parts=1,
        due=now,
        source="human",
        repost_of=f"{POST}#1@{CENTRAL}",
    )
    loc = pipeline.localize(content, pub.translator, pub.cache, post_ids=[POST], parallel=1)
    planned = pipeline.rows(content, original, loc.variants, pub.channel_of)
    planned += pipeline.repost_rows([original[0], repost], pub.channel_of)
    assert [(i.account, [r.repost_of for r in i.rows]) for i in planned] == [
        (CENTRAL, [None]),
        (AMPLIFIER, [f"{POST}#1@{CENTRAL}"]),
    ]
    removed: dict[int, str] = {}
    assert [pipeline.record(pub, item, removed) for item in planned] == [None, None]


def test_a_repost_goes_after_its_original_once_and_retract_undoes_it(
    repo: Path, x: XServer, libre: LibreServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """Recorded with the post, the repost waits while the original is not POSTED, then is
    a retweet of it on the amplifier's timeline ("RT @francediplo: …"); delivered again it
    sends nothing; ``status`` shows it as a repost; ``retract`` undoes it before deleting the
    original."""
    content, store, pub = _publishing(repo, x, libre)
    _record(content, pub, datetime.now(UTC))
    (waiting,) = pipeline.deliver(pub, POST, AMPLIFIER)
    assert waiting.state is State.PENDING and waiting.attempts == 0
    assert (waiting.last_error or "").startswith(WAITING)
    assert x.reposts(AMPLIFIER) == []
    (original,) = pipeline.deliver(pub, POST, CENTRAL)
    assert original.state is State.POSTED, original.last_error
    # The next look, once its wait is over (the service's sweep).
    pub.deliverers["x"].clock = lambda: datetime.now(UTC) + timedelta(minutes=6)
    (done,) = pipeline.deliver(pub, POST, AMPLIFIER)
    assert done.state is State.POSTED and done.attempts == 1, done.last_error
    assert (done.remote_id, done.url) == (original.remote_id, original.url)
    assert x.reposts(AMPLIFIER) == [original.remote_id]
    (shown,) = x.timeline(AMPLIFIER)
    assert shown["repost_of"] == original.remote_id
    assert shown["text"].startswith(f"RT @{CENTRAL}: ")
    (again,) = pipeline.deliver(pub, POST, AMPLIFIER, look_now=True)
    assert (again.state, again.remote_id, again.attempts) == (State.POSTED, done.remote_id, 1)
    assert x.reposts(AMPLIFIER) == [original.remote_id]
    state = str(repo.parent / "state.sqlite")
    assert main(["status", "--root", str(repo), "--state", state, POST]) == 0
    shown_rows = capsys.readouterr().out.splitlines()
    assert [line for line in shown_rows if AMPLIFIER in line] == [
        f"{done.due_at:%Y-%m-%d %H:%M} UTC  {POST} part 1  {AMPLIFIER} [x]  POSTED  attempts 1  "
        f"↻ repost of {POST}#1@{CENTRAL}: {original.url}"
    ]
    result = retract(pub, pub.ledger.rows(POST))
    assert result.ok, result.lines
    assert [line.split(": ")[1].split(" ")[0:2] for line in result.lines] == [
        ["repost", "undone"],
        ["deleted", original.remote_id],
    ]
    assert x.reposts(AMPLIFIER) == [] and x.timeline(CENTRAL) == []
    assert not x.errors  # every request matched X's OpenAPI spec and was signed right
    store.close()


def test_the_dispatch_reposts_on_a_later_sweep(repo: Path, x: XServer, libre: LibreServer) -> None:
    """The service's dispatch: both chains are due together; the repost is published after
    the original, by a later run (a sweep), never before it and never twice."""
    content, store, pub = _publishing(repo, x, libre)
    _record(content, pub, datetime.now(UTC) - timedelta(seconds=1))
    dispatch = Dispatch(
        pub.ledger,
        store.pauses,
        max_late=timedelta(minutes=30),
        parallel=4,
        per_account=1,
        stopping=threading.Event(),
    )
    pub.deliverers["x"].clock = lambda: datetime.now(UTC)
    dispatch.run(pub, content, {})
    states = {r.account: r for r in pub.ledger.rows(POST)}
    assert states[CENTRAL].state is State.POSTED
    repost = states[AMPLIFIER]
    if repost.state is State.PENDING:  # it ran while the original was being sent: it waits
        assert x.reposts(AMPLIFIER) == []
        pub.deliverers["x"].clock = lambda: datetime.now(UTC) + timedelta(minutes=6)
        dispatch.run(pub, content, {})
        repost = pub.ledger.get(repost.id)
    assert repost.state is State.POSTED, repost.last_error
    assert x.reposts(AMPLIFIER) == [states[CENTRAL].remote_id]
    reposts = [r for r in x.requests if r.path.endswith("/retweets") and r.method == "POST"]
    assert len(reposts) == 1 and reposts[0].account == AMPLIFIER
    assert not x.errors
    store.close()
