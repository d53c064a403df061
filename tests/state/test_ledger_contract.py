"""The ledger's contract, tested directly: every transition of the delivery state machine
(bot/state/ledger.py's diagram), the guards that refuse a move from the wrong state, and the
claim race — many threads and several processes claiming the same rows, each row won once.
Every test runs on SQLite and on PostgreSQL (the ``state_url`` fixture)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from bot.state import Store, open_store
from bot.state.ledger import FINAL, Instance, Ledger, NewDelivery, Row, State
from bot.state.tables import UTCDateTime, deliveries

LEASE = timedelta(seconds=60)
DUE = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
NOW = DUE + timedelta(seconds=1)
ROOT = Path(__file__).resolve().parents[2]


def item(post: str = "p", part: int = 1, text: str = "Bonjour", due: datetime = DUE) -> NewDelivery:
    return NewDelivery(post, "fr", part, "x", "fr", due, text)


@pytest.fixture
def store(state_url: str) -> Iterator[Store]:
    store = open_store(state_url)
    yield store
    store.close()


@pytest.fixture
def ledger(store: Store) -> Ledger:
    return store.ledger_as(lease=LEASE)


def force(store: Store, row_id: int, **values: Any) -> None:
    """Set a row's columns behind the ledger's back (to start a test from a given state)."""
    for name, value in values.items():
        if isinstance(value, State):
            values[name] = value.value
        elif isinstance(value, str) and isinstance(deliveries.c[name].type, UTCDateTime):
            values[name] = datetime.fromisoformat(value)
    with store.engine.begin() as conn:
        conn.execute(update(deliveries).where(deliveries.c.id == row_id).values(**values))


def one(ledger: Ledger, state: State, store: Store, **values: Any) -> Row:
    """A recorded row, put in ``state``."""
    (row,) = ledger.ensure([item()])
    force(store, row.id, state=state, **values)
    return ledger.get(row.id)


# -- recording ---------------------------------------------------------------------------


def test_ensure_records_a_new_delivery_pending_with_its_text(ledger: Ledger) -> None:
    """HELD/PENDING are the only ways in: a new delivery is PENDING, unattempted, due as
    planned; recording it again changes nothing."""
    (row,) = ledger.ensure([item()])
    assert (row.state, row.attempts, row.text, row.due_at) == (State.PENDING, 0, "Bonjour", DUE)
    assert row.due_at.tzinfo is UTC and row.retry_at is None and row.claimed_by is None
    assert ledger.ensure([item()]) == [row]


def test_ensure_refreshes_a_pending_row_whose_text_or_due_changed(ledger: Ledger) -> None:
    """PENDING → PENDING: a new text or due time is written before anything is sent."""
    (row,) = ledger.ensure([item()])
    later = DUE + timedelta(hours=1)
    (after,) = ledger.ensure([item(text="Bonsoir", due=later)])
    assert (after.id, after.state, after.text, after.due_at) == (
        row.id,
        State.PENDING,
        "Bonsoir",
        later,
    )


def test_a_cancelled_row_comes_back_with_its_post_and_a_sent_one_does_not(
    ledger: Ledger, store: Store
) -> None:
    """RETRACTED → PENDING only for "cancelled: …" and never sent; a retracted post stays."""
    row = one(ledger, State.RETRACTED, store, last_error="cancelled: its post was removed")
    (back,) = ledger.ensure([item(text="De retour")])
    assert (back.id, back.state, back.last_error, back.text) == (
        row.id,
        State.PENDING,
        None,
        "De retour",
    )
    force(store, row.id, state=State.RETRACTED, remote_id="42", last_error="cancelled: x")
    (still,) = ledger.ensure([item(text="Encore")])
    assert (still.state, still.text) == (State.RETRACTED, "De retour")


# -- HELD ----------------------------------------------------------------------------------


def test_hold_records_held_and_ensure_releases_it_with_its_text(ledger: Ledger) -> None:
    """(new) → HELD with the reason and next try; HELD is never claimed; → PENDING once
    its text is ready (``ensure``), retry and reason cleared."""
    retry = NOW + timedelta(minutes=5)
    ledger.hold([item(text="")], "translation failed: timeout", retry)
    (held,) = ledger.rows()
    assert (held.state, held.last_error, held.retry_at) == (
        State.HELD,
        "translation failed: timeout",
        retry,
    )
    assert ledger.claim(held.id, retry + timedelta(days=1)) is None
    (ready,) = ledger.ensure([item(text="Bonjour")])
    assert (ready.id, ready.state, ready.text) == (held.id, State.PENDING, "Bonjour")
    assert ready.retry_at is None and ready.last_error is None


def test_hold_takes_a_pending_row_and_leaves_every_other_state(
    ledger: Ledger, store: Store
) -> None:
    """PENDING → HELD (its post changed and the new text failed: the old text must not go
    out); rows in any other state are left as they are."""
    (row,) = ledger.ensure([item()])
    retry = NOW + timedelta(minutes=5)
    ledger.hold([item()], "translation failed", retry)
    assert ledger.get(row.id).state is State.HELD
    for state in (State.SENDING, State.UNKNOWN, *FINAL):
        force(store, row.id, state=state, last_error=None, retry_at=None)
        ledger.hold([item()], "translation failed", retry)
        after = ledger.get(row.id)
        assert (after.state, after.last_error, after.retry_at) == (state, None, None), state


# -- the claim -------------------------------------------------------------------------------


def test_claim_moves_a_due_pending_row_to_sending_once(ledger: Ledger) -> None:
    """PENDING → SENDING: committed, attempts counted, owned by this process start, claimed
    at ``now``; a second claim gets nothing."""
    (row,) = ledger.ensure([item()])
    claimed = ledger.claim(row.id, NOW)
    assert claimed is not None
    assert (claimed.state, claimed.attempts, claimed.claimed_at) == (State.SENDING, 1, NOW)
    assert claimed.claimed_by == ledger.instance.owner
    assert ledger.claim(row.id, NOW) is None
    assert ledger.get(row.id) == claimed
    assert ledger.transition(row.id, State.POSTED, expect=[State.SENDING], remote_id="1")


@pytest.mark.parametrize("state", [s for s in State if s is not State.PENDING], ids=str)
def test_claim_refuses_every_state_but_pending(ledger: Ledger, store: Store, state: State) -> None:
    """Only PENDING is ever claimed: the row is left exactly as it was."""
    row = one(ledger, state, store)
    assert ledger.claim(row.id, NOW) is None
    assert ledger.get(row.id) == row


def test_claim_waits_for_retry_at(ledger: Ledger) -> None:
    """PENDING with ``retry_at`` (429, or surely not sent): not claimed a microsecond before,
    claimed at that instant."""
    (row,) = ledger.ensure([item()])
    assert ledger.claim(row.id, NOW) is not None
    retry = NOW + timedelta(minutes=15, microseconds=500)
    assert ledger.transition(
        row.id, State.PENDING, expect=[State.SENDING], error="429", retry_at=retry
    )
    assert ledger.get(row.id).retry_at == retry
    assert ledger.claim(row.id, retry - timedelta(microseconds=1)) is None
    claimed = ledger.claim(row.id, retry)
    assert claimed is not None and claimed.attempts == 2
    ledger.transition(row.id, State.FAILED, expect=[State.SENDING], error="x")


# -- transitions and their guards --------------------------------------------------------------

MOVES = [
    # (from, to, what makes it) — the diagram's arrows that transition() draws
    (State.SENDING, State.POSTED, "sent"),
    (State.SENDING, State.PENDING, "retry_at: 429 or not sent"),
    (State.SENDING, State.FAILED, "refused, or out of attempts"),
    (State.SENDING, State.UNKNOWN, "ambiguous"),
    (State.UNKNOWN, State.POSTED, "found on the timeline"),
    (State.UNKNOWN, State.PENDING, "not found"),
    (State.UNKNOWN, State.UNKNOWN, "look-up failed"),
    (State.UNKNOWN, State.FAILED, "timeline unreadable for 6 h"),
    (State.PENDING, State.FAILED, "out of attempts"),
    (State.PENDING, State.SKIPPED, "blackout"),
    (State.PENDING, State.EXPIRED, "past its lateness window"),
    (State.PENDING, State.RETRACTED, "cancelled"),
    (State.HELD, State.EXPIRED, "window closed before its text"),
    (State.HELD, State.RETRACTED, "cancelled"),
    (State.POSTED, State.RETRACTED, "deleted on the platform"),
]


@pytest.mark.parametrize(("start", "to", "why"), MOVES, ids=[f"{a}-{b}" for a, b, _ in MOVES])
def test_transition_moves_only_from_the_expected_state(
    ledger: Ledger, store: Store, start: State, to: State, why: str
) -> None:
    """``transition(expect=[start])`` moves a row in ``start`` to ``to``, and refuses (False,
    the row untouched) from every other state."""
    for actual in State:
        row = one(ledger, actual, store, last_error="before")
        moved = ledger.transition(row.id, to, expect=[start], error=why)
        after = ledger.get(row.id)
        if actual is start:
            assert moved and (after.state, after.last_error) == (to, why)
        else:
            assert not moved and after == row, (actual, start, to)
        force(store, row.id, state=State.PENDING)  # for the next round on the same row


def test_transition_records_what_the_platform_answered(ledger: Ledger) -> None:
    """→ POSTED keeps the remote id and URL and clears the error; → PENDING without a
    ``retry_at`` clears it; an error given is recorded."""
    (row,) = ledger.ensure([item()])
    assert ledger.claim(row.id, NOW)
    retry = NOW + timedelta(minutes=1)
    assert ledger.transition(
        row.id, State.UNKNOWN, expect=[State.SENDING], error="timeout", retry_at=retry
    )
    unknown = ledger.get(row.id)
    assert (unknown.last_error, unknown.retry_at) == ("timeout", retry)
    assert ledger.transition(row.id, State.PENDING, expect=[State.UNKNOWN])
    pending = ledger.get(row.id)
    assert (pending.last_error, pending.retry_at) == (None, None)
    assert ledger.claim(row.id, NOW)
    url = "https://x.com/fr/status/7"
    assert ledger.transition(row.id, State.POSTED, expect=[State.SENDING], remote_id="7", url=url)
    posted = ledger.get(row.id)
    assert (posted.state, posted.remote_id, posted.url, posted.last_error) == (
        State.POSTED,
        "7",
        url,
        None,
    )
    assert posted.attempts == 2 and posted.updated_at.tzinfo is UTC


def test_transition_from_sending_releases_the_heartbeat(ledger: Ledger) -> None:
    """A claim keeps its owner's heartbeat thread running; leaving SENDING lets it stop."""
    (row,) = ledger.ensure([item()])
    assert ledger.claim(row.id, NOW)
    assert row.id in ledger._beat._held
    assert ledger.transition(row.id, State.POSTED, expect=[State.SENDING], remote_id="1")
    assert row.id not in ledger._beat._held


# -- post-now, rescheduling ------------------------------------------------------------------------


@pytest.mark.parametrize("ended", [State.FAILED, State.EXPIRED, State.SKIPPED], ids=str)
def test_rearm_makes_an_ended_row_pending_again_with_one_attempt_left(
    ledger: Ledger, store: Store, ended: State
) -> None:
    """FAILED | EXPIRED | SKIPPED → PENDING (post-now): due now, no retry_at, attempts
    lowered to at most ``attempts_at_most``; refused from any state not expected."""
    row = one(ledger, ended, store, attempts=5, retry_at="2026-11-24T09:00:00.000000+00:00")
    due = NOW + timedelta(seconds=3)
    assert ledger.rearm(row.id, expect=[ended], due=due, attempts_at_most=4)
    after = ledger.get(row.id)
    assert (after.state, after.due_at, after.retry_at, after.attempts) == (
        State.PENDING,
        due,
        None,
        4,
    )
    force(store, row.id, state=ended, attempts=1)
    assert ledger.rearm(row.id, expect=[ended], due=due, attempts_at_most=4)
    assert ledger.get(row.id).attempts == 1  # never raised
    for other in (State.POSTED, State.SENDING, State.UNKNOWN):
        force(store, row.id, state=other)
        assert not ledger.rearm(row.id, expect=[ended], due=due, attempts_at_most=4)
        assert ledger.get(row.id).state is other


def test_reschedule_moves_only_pending_and_held_rows(ledger: Ledger, store: Store) -> None:
    """A post's new time reaches PENDING and HELD rows; a row being sent or ended keeps
    its due time."""
    (row,) = ledger.ensure([item()])
    later = DUE + timedelta(hours=2)
    for state in State:
        force(store, row.id, state=state, due_at="2026-11-24T08:00:00.000000+00:00")
        moved = ledger.reschedule(row.id, later)
        assert moved is (state in (State.PENDING, State.HELD)), state
        assert ledger.get(row.id).due_at == (later if moved else DUE)


def test_a_row_armed_by_hand_keeps_its_due_time_when_the_plan_records_it(ledger: Ledger) -> None:
    """post-now's due time (now, or X's reset) stands when the plan records the post again;
    a text change still reaches it."""
    (row,) = ledger.ensure([item()])
    soon = NOW + timedelta(seconds=5)
    assert ledger.rearm(row.id, expect=[State.PENDING], due=soon, attempts_at_most=1)
    ledger.arm_by_hand([row.id])
    assert ledger.armed_by_hand() == {row.id}
    (after,) = ledger.ensure([item(text="Modifié")])
    assert (after.due_at, after.text) == (soon, "Modifié")


# -- stale claims ------------------------------------------------------------------------------


def test_abandon_turns_a_stale_claim_unknown_only_while_it_is_that_claim(
    store: Store, ledger: Ledger
) -> None:
    """SENDING → UNKNOWN (``abandon``): its owner died mid-send. Refused once the row moved
    on, or was claimed anew."""
    dead = Instance("deadbeef0001", "elsewhere", 4_000_001, "pid:[1]")
    theirs = store.ledger_as(dead, lease=LEASE)
    (row,) = theirs.ensure([item()])
    claimed = theirs.claim(row.id, NOW - timedelta(minutes=5))
    assert claimed is not None
    theirs._beat.release(row.id)  # it died: no more heartbeats
    ((stale, why),) = ledger.stale_sending(NOW)
    assert stale == claimed and why.startswith(f"no heartbeat from {dead.owner} for ")
    assert ledger.abandon(stale, why)
    after = ledger.get(row.id)
    assert (after.state, after.last_error) == (State.UNKNOWN, why)
    assert not ledger.abandon(stale, why)  # not SENDING any more
    assert ledger.stale_sending(NOW) == []


# -- the claim race ------------------------------------------------------------------------------


def test_claim_race_between_threads_each_row_is_won_once(state_url: str) -> None:
    """Eight threads, each with its own store (its own connection, as a process would have)
    and instance, claim the same 60 rows in different orders: each row is won exactly once,
    by the owner the ledger records."""
    url = state_url
    rows = open_store(url).ledger_as(lease=LEASE).ensure([item(f"p{i}") for i in range(60)])
    ids = [r.id for r in rows]
    won: dict[str, list[int]] = {}
    start = threading.Barrier(8)

    def claimer(n: int) -> None:
        me = Instance(f"thread{n:06d}", "racehost", 5_000_000 + n, "")
        ledger = open_store(url).ledger_as(me, lease=LEASE)
        order = random.Random(n).sample(ids, len(ids))
        start.wait()
        won[me.owner] = [i for i in order if ledger.claim(i, NOW) is not None]
        for i in won[me.owner]:
            ledger._beat.release(i)  # its heartbeat thread ends

    threads = [threading.Thread(target=claimer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert_won_once(url, ids, won)


CLAIMER = textwrap.dedent(
    """
    import json, random, sys, time
    from datetime import datetime, timedelta
    from bot.state import open_store
    from bot.state.ledger import this_instance

    url, ids, start, now = sys.argv[1], json.loads(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    ledger = open_store(url).ledger_as(lease=timedelta(seconds=60))
    order = random.Random(this_instance().id).sample(ids, len(ids))
    time.sleep(max(0.0, start - time.time()))
    won = [i for i in order if ledger.claim(i, datetime.fromisoformat(now)) is not None]
    for i in won:
        ledger._beat.release(i)
    print(json.dumps({"owner": this_instance().owner, "won": won}))
    """
)


def test_claim_race_between_processes_each_row_is_won_once(state_url: str) -> None:
    """Three processes claim the same 150 rows at the same instant, in different orders: each
    row is won exactly once, by the process the ledger records."""
    url = state_url
    rows = open_store(url).ledger_as(lease=LEASE).ensure([item(f"p{i}") for i in range(150)])
    ids = [r.id for r in rows]
    start = time.time() + 3.0  # each process starts (imports) first, then they race
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIMER, url, json.dumps(ids), str(start), NOW.isoformat()],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    won: dict[str, list[int]] = {}
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        result = json.loads(out.strip().splitlines()[-1])
        won[result["owner"]] = result["won"]
    assert_won_once(url, ids, won)


def assert_won_once(url: str, ids: list[int], won: dict[str, list[int]]) -> None:
    claims = [i for mine in won.values() for i in mine]
    assert sorted(claims) == sorted(ids)  # every row claimed, none twice
    recorded = {r.id: r for r in open_store(url).ledger_as(lease=LEASE).rows()}
    for owner, mine in won.items():
        for row_id in mine:
            row = recorded[row_id]
            assert (row.state, row.attempts, row.claimed_by) == (State.SENDING, 1, owner)


# -- what the views read ----------------------------------------------------------------------


def test_views_read_counts_the_next_due_and_pages_by_account(ledger: Ledger) -> None:
    """``/status`` and ``/metrics`` read the ledger with aggregates and pages: counts by state
    and account, the earliest PENDING due time, a page by due time or most recent first, and
    only some accounts' rows (``?mission=``)."""
    later = DUE + timedelta(hours=1)
    rows = ledger.ensure(
        [
            item("a"),
            NewDelivery("b", "en", 1, "x", "en", later, "Hello"),
            NewDelivery("c", "en", 1, "x", "en", DUE + timedelta(hours=2), "Hi"),
        ]
    )
    assert ledger.claim(rows[0].id, NOW) is not None
    assert ledger.counts() == {(State.SENDING, "fr"): 1, (State.PENDING, "en"): 2}
    assert ledger.next_due() == later
    by_due = ledger.page([State.PENDING, State.SENDING], limit=2)
    assert [r.post_id for r in by_due] == ["a", "b"]
    assert [r.post_id for r in ledger.page([State.PENDING], limit=5, offset=1)] == ["c"]
    recent = ledger.page([State.PENDING], limit=5, recent_first=True)  # one ensure: same instant
    assert [r.post_id for r in recent] == ["c", "b"]  # then the last recorded first
    theirs = ledger.page([State.PENDING, State.SENDING], limit=5, accounts={"en"})
    assert [r.post_id for r in theirs] == ["b", "c"]
    ledger._beat.release(rows[0].id)
