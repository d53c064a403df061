"""Claims and outcomes that come at the same time share one commit (``Shared.together``):
each caller still gets exactly what a transaction of its own would give it, after the commit.
On SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Connection, event, text

from bot.state import Store, open_store
from bot.state.ledger import Ledger, NewDelivery, Row, State

DUE = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
THREADS = 40


_OPENED: list[Store] = []


@pytest.fixture(autouse=True)
def _close_stores() -> Iterator[None]:
    """Each store a test opened is closed after it (its claims' heartbeats stop)."""
    yield
    while _OPENED:
        _OPENED.pop().close()


def _ledger(url: str) -> Ledger:
    store = open_store(url)
    _OPENED.append(store)
    return store.ledger_as(lease=timedelta(seconds=60))


def _all_at_once(jobs: list[threading.Thread]) -> None:
    for job in jobs:
        job.start()
    for job in jobs:
        job.join(30)


def test_simultaneous_claims_share_commits_and_each_gets_its_own_answer(state_url: str) -> None:
    ledger = _ledger(state_url)
    ledger.ensure(
        NewDelivery(f"p{i}", "fr", 1, "x", "fr", DUE, f"Texte {i}") for i in range(THREADS)
    )
    rows = {r.post_id: r for r in ledger.rows()}
    commits = []
    event.listen(ledger.engine, "commit", lambda _conn: commits.append(1))
    start = threading.Barrier(2 * THREADS)
    own: dict[int, Row | None] = {}
    shared: list[Row | None] = []

    def claim_own(i: int) -> None:
        start.wait()
        own[i] = ledger.claim(rows[f"p{i}"].id, DUE)

    def claim_shared() -> None:
        start.wait()
        shared.append(ledger.claim(rows["p0"].id, DUE))

    _all_at_once(
        [threading.Thread(target=claim_own, args=(i,)) for i in range(1, THREADS)]
        + [threading.Thread(target=claim_shared) for _ in range(THREADS + 1)]
    )
    assert all(own[i] is not None and own[i].state is State.SENDING for i in own)  # type: ignore[union-attr]
    assert len(own) == THREADS - 1
    assert sum(1 for r in shared if r is not None) == 1  # one claim of a row wins, as ever
    assert {r.state for r in ledger.rows()} == {State.SENDING}
    assert all(r.attempts == 1 for r in ledger.rows())
    claims = 2 * THREADS
    assert len(commits) < claims  # shared (each claim alone would commit once)


def test_a_failing_work_fails_alone(state_url: str) -> None:
    """A batch in which one work fails is rolled back, and each work runs again alone: the
    others are committed, the failing one's caller gets its error."""
    ledger = _ledger(state_url)
    ledger.ensure(NewDelivery(f"p{i}", "fr", 1, "x", "fr", DUE, f"Texte {i}") for i in range(8))
    ids = [r.id for r in ledger.rows()]
    start = threading.Barrier(len(ids) + 1)
    errors: list[BaseException] = []
    moved: list[bool] = []

    def fail(conn: Connection) -> None:
        conn.execute(text("UPDATE deliveries SET text = 'lost'"))
        raise ValueError("boom")

    def failing() -> None:
        start.wait()
        try:
            ledger._hot.together(fail)
        except ValueError as exc:
            errors.append(exc)

    def outcome(row_id: int) -> None:
        start.wait()
        moved.append(ledger.transition(row_id, State.FAILED, expect=[State.PENDING], error="x"))

    _all_at_once(
        [threading.Thread(target=failing)]
        + [threading.Thread(target=outcome, args=(i,)) for i in ids]
    )
    assert [str(e) for e in errors] == ["boom"]
    assert moved == [True] * len(ids)
    rows = ledger.rows()
    assert {r.state for r in rows} == {State.FAILED}
    assert all(r.text.startswith("Texte") for r in rows)  # the failed work was rolled back


def test_a_claim_is_committed_before_it_is_returned(state_url: str) -> None:
    """What ``claim`` returns is on disk: another connection reads it SENDING at once."""
    ledger = _ledger(state_url)
    (row,) = ledger.ensure([NewDelivery("p", "fr", 1, "x", "fr", DUE, "Texte")])
    assert ledger.claim(row.id, DUE) is not None
    other = open_store(state_url).ledger_as(lease=timedelta(seconds=60))
    assert other.get(row.id).state is State.SENDING


@pytest.mark.parametrize("threads", [1, 3])
def test_transition_answers_as_before(state_url: str, threads: int) -> None:
    """A transition from a state the row is not in moves nothing, batched or not."""
    ledger = _ledger(state_url)
    (row,) = ledger.ensure([NewDelivery("p", "fr", 1, "x", "fr", DUE, "Texte")])
    results: list[bool] = []

    def move() -> None:
        results.append(ledger.transition(row.id, State.POSTED, expect=[State.SENDING]))

    _all_at_once([threading.Thread(target=move) for _ in range(threads)])
    assert results == [False] * threads
    assert ledger.get(row.id).state is State.PENDING
