"""Reposts (amplification) through the pipeline and the service's dispatch, against the fake X:
a central post reposted by another account of the same platform, once, after the original.

The plan (the missions' ``amplify:``) gives a repost delivery ``repost_of``, the original's
delivery key; these tests hand-make that delivery, as the plan would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from publish.conftest import ACCOUNTS, APP, env_for
from servers.translate import LibreServer
from servers.x import XServer

from bot import pipeline
from bot.cli import main
from bot.content.loader import load
from bot.content.types import ContentSet
from bot.errors import PublishAmbiguous
from bot.platforms.outbox import OutboxPublisher
from bot.platforms.x import XCredentials, XPublisher
from bot.publish.base import Outgoing
from bot.publish.deliver import REPOST_WAIT, WAITING, Deliverer
from bot.publish.retract import retract
from bot.publish.session import Publishing
from bot.schedule.plan import Delivery
from bot.service.dispatch import Dispatch
from bot.settings import Secret, Settings
from bot.state import Store, open_store
from bot.state.ledger import NewDelivery, State
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


def _x_publisher(x: XServer) -> XPublisher:
    accounts = {a: XCredentials(Secret(t), Secret(s)) for a, (t, s, _h) in ACCOUNTS.items()}
    handles = {a: h for a, (_t, _s, h) in ACCOUNTS.items()}
    return XPublisher(Secret(APP[0]), Secret(APP[1]), accounts, handles, api_url=x.url, timeout=2.0)


def test_x_already_retweeted_is_a_repost_made(x: XServer) -> None:
    """X's v1.1 answered a second retweet "403 You have already retweeted this Tweet." (code
    327): should v2 answer so, the repost is there, and that is its receipt."""
    publisher = _x_publisher(x)
    original = publisher.publish(Outgoing(CENTRAL, CENTRAL, "Bonjour", lang="fr"))
    item = Outgoing(AMPLIFIER, AMPLIFIER, "", key=f"p#1@{AMPLIFIER}", repost_of=original)
    assert publisher.repost(item).remote_id == original.remote_id
    problem = {"title": "Forbidden", "detail": "You have already retweeted this Tweet."}
    x.answer_next(403, json.dumps(problem).encode(), method="POST", path="/2/users/*/retweets")
    again = publisher.repost(item)
    assert (again.remote_id, again.url) == (original.remote_id, original.url)
    assert x.reposts(AMPLIFIER) == [original.remote_id]


def test_x_repost_answer_that_confirms_nothing_is_ambiguous(x: XServer) -> None:
    """X stored the repost but its answer does not say so (``{}``): PublishAmbiguous, and
    ``find_repost`` finds it on the account's timeline."""
    publisher = _x_publisher(x)
    since = datetime.now(UTC) - timedelta(minutes=1)
    original = publisher.publish(Outgoing(CENTRAL, CENTRAL, "Bonjour", lang="fr"))
    item = Outgoing(AMPLIFIER, AMPLIFIER, "", key=f"p#1@{AMPLIFIER}", repost_of=original)
    x.answer_next(200, b"{}", process=True, method="POST", path="/2/users/*/retweets")
    with pytest.raises(PublishAmbiguous):
        publisher.repost(item)
    found = publisher.find_repost(item, since)
    assert found is not None and found.remote_id == original.remote_id
    # A repost is not a post of the account's own: find() never takes it for one.
    assert publisher.find(Outgoing(AMPLIFIER, AMPLIFIER, "Bonjour"), since) is None


def test_a_repost_whose_original_goes_to_another_channel_is_skipped(
    repo: Path, x: XServer, libre: LibreServer
) -> None:
    """The central account has no credentials (its post goes to the outbox) while the
    amplifier's has: a repost of an outbox line is no repost, so it ends SKIPPED, saying
    which credentials to set; nothing reaches X."""
    env = env_for(x, libre)
    for name in ("ACCESS_TOKEN", "ACCESS_SECRET"):
        del env[f"DIPLOBOT_{CENTRAL.upper()}_{name}"]
    content = load(repo)
    store = open_store(f"sqlite:///{repo.parent / 'state.sqlite'}")
    pub = Publishing.build(content, store, repo.parent, Wiring(Settings.from_env(env)))
    assert (pub.channel_of[CENTRAL], pub.channel_of[AMPLIFIER]) == ("outbox", "x")
    _record(content, pub, datetime.now(UTC))
    (original,) = pipeline.deliver(pub, POST, CENTRAL)
    assert original.state is State.POSTED and original.channel == "outbox"
    (repost,) = pipeline.deliver(pub, POST, AMPLIFIER)
    assert repost.state is State.SKIPPED
    assert repost.last_error == (
        f"the original {POST}#1@{CENTRAL} goes out through outbox, this repost through x: a "
        "repost needs both accounts' credentials set (see docs/operations.md, Amplification)"
    )
    assert x.reposts(AMPLIFIER) == [] and not x.errors
    store.close()


def test_a_repost_waits_within_the_lateness_window_then_expires(tmp_path: Path) -> None:
    """In the service (a lateness window), a repost whose original is late waits with
    growing waits, looked at again before the window closes (not expired early for a long
    wait), and ends EXPIRED with the window, saying it waited for its original."""
    store = open_store(f"sqlite:///{tmp_path / 'state.sqlite'}")
    outbox = OutboxPublisher(tmp_path / "outbox.jsonl", {CENTRAL: CENTRAL, AMPLIFIER: AMPLIFIER})
    due = datetime.now(UTC).replace(microsecond=0)
    key = f"{POST}#1@{CENTRAL}"
    store.ledger.ensure(
        [
            NewDelivery(POST, CENTRAL, 1, "outbox", "fr", due, "Bonjour"),
            NewDelivery(POST, AMPLIFIER, 1, "outbox", "en", due, "", repost_of=key),
        ]
    )
    clock = [due + timedelta(minutes=8)]
    deliverer = Deliverer(store.ledger, outbox, tmp_path, {}, clock=lambda: clock[0], platforms={})
    window = timedelta(minutes=10)
    (repost,) = [r for r in store.ledger.rows(POST) if r.account == AMPLIFIER]
    (waiting,) = deliverer.deliver_chain([repost], max_late=window)
    assert waiting.state is State.PENDING
    # Its wait (as long as it has waited, at most 5 min) is cut to end before the window.
    assert waiting.retry_at == due + window - REPOST_WAIT[0]
    assert waiting.last_error == f"{WAITING}{key} to be posted (it is PENDING)"
    clock[0] = due + window - timedelta(seconds=4)
    (expired,) = deliverer.deliver_chain([store.ledger.get(repost.id)], max_late=window)
    assert expired.state is State.EXPIRED
    assert (expired.last_error or "").startswith(f"{WAITING}{key} to be posted")
    assert outbox.records() == []
    store.close()


DELIVER = """
import sys
from pathlib import Path

from bot import pipeline
from bot.content.loader import load
from bot.publish.session import Publishing
from bot.settings import from_process
from bot.state import open_store
from bot.wiring import Wiring

repo, state, post, account = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]
content = load(repo)
store = open_store(f"sqlite:///{state}")
pub = Publishing.build(content, store, state.parent, Wiring(from_process()))
pipeline.deliver(pub, post, account)
"""


def test_a_repost_killed_after_x_stored_it_is_posted_once(
    repo: Path, x: XServer, libre: LibreServer
) -> None:
    """A real process reposts; X stores the repost and is slow to answer; the process is
    SIGKILLed. The next process recovers its claim (its owner is gone), finds the repost on
    the account's timeline: POSTED, and X holds one repost, asked for once."""
    content, store, pub = _publishing(repo, x, libre)
    _record(content, pub, datetime.now(UTC))
    (original,) = pipeline.deliver(pub, POST, CENTRAL)
    assert original.state is State.POSTED
    x.fail_next("slow", method="POST", path="/2/users/*/retweets", seconds=30)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIPLOBOT_")}
    state = repo.parent / "state.sqlite"
    child = subprocess.Popen(
        [sys.executable, "-c", DELIVER, str(repo), str(state), POST, AMPLIFIER],
        env={**env, **env_for(x, libre)},
    )
    try:
        deadline = time.monotonic() + 20
        while not x.reposts(AMPLIFIER) and time.monotonic() < deadline:
            assert child.poll() is None, "the process ended before X stored the repost"
            time.sleep(0.02)
        assert x.reposts(AMPLIFIER) == [original.remote_id]
        (sending,) = [r for r in pub.ledger.rows(POST) if r.account == AMPLIFIER]
        assert sending.state is State.SENDING  # claimed, committed, then the call to X
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    (recovered,) = pub.recover()
    assert recovered.state is State.POSTED, recovered.last_error
    assert (recovered.remote_id, recovered.attempts) == (original.remote_id, 1)
    (again,) = pipeline.deliver(pub, POST, AMPLIFIER, look_now=True)
    assert again.state is State.POSTED
    asked = [r for r in x.requests if r.method == "POST" and r.path.endswith("/retweets")]
    assert len(asked) == 1 and x.reposts(AMPLIFIER) == [original.remote_id]
    store.close()


@pytest.mark.parametrize("ending", [None, State.FAILED])
def test_a_repost_in_the_ledger_of_each_kind(
    state_url: str, tmp_path: Path, ending: State | None
) -> None:
    """On SQLite and on PostgreSQL: the repost's row carries ``repost_of``; it waits for its
    original, then goes once (the outbox holds one repost line), or ends SKIPPED with the
    original's reason."""
    store = open_store(state_url)
    outbox = OutboxPublisher(tmp_path / "outbox.jsonl", {CENTRAL: CENTRAL, AMPLIFIER: AMPLIFIER})
    due = datetime.now(UTC)
    key = f"{POST}#1@{CENTRAL}"
    store.ledger.ensure(
        [
            NewDelivery(POST, CENTRAL, 1, "outbox", "fr", due, "Bonjour"),
            NewDelivery(POST, AMPLIFIER, 1, "outbox", "en", due, "", repost_of=key),
        ]
    )
    clock = [due]
    deliverer = Deliverer(store.ledger, outbox, tmp_path, {}, clock=lambda: clock[0])
    rows = {r.account: r for r in store.ledger.rows(POST)}
    assert (rows[CENTRAL].repost_of, rows[AMPLIFIER].repost_of) == (None, key)
    (waiting,) = deliverer.deliver_chain([rows[AMPLIFIER]])
    assert waiting.state is State.PENDING and waiting.retry_at == due + REPOST_WAIT[0]
    if ending is None:
        (original,) = deliverer.deliver_chain([rows[CENTRAL]])
        assert original.state is State.POSTED
    else:
        assert store.ledger.transition(rows[CENTRAL].id, ending, expect=[State.PENDING], error="x")
    clock[0] = due + REPOST_WAIT[0]
    (done,) = deliverer.deliver_chain([store.ledger.get(rows[AMPLIFIER].id)])
    reposts = [(r["account"], r["repost_of"]) for r in outbox.records() if r.get("repost_of")]
    if ending is None:
        assert done.state is State.POSTED and done.attempts == 1
        assert reposts == [(AMPLIFIER, original.remote_id)]
    else:
        why = f"the original {key} ended FAILED: x"
        assert (done.state, done.last_error) == (State.SKIPPED, why)
        assert reposts == []
    store.close()
