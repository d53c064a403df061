"""``Ledger.record_new`` (one transaction, one prepared INSERT for every delivery not in the
ledger yet) leaves the ledger exactly as :meth:`Ledger.ensure`, the path it replaces for those
deliveries, one group at a time. On SQLite and on PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from bot.state import Store, open_store
from bot.state.dialect import upsert
from bot.state.ledger import Ledger, MediaRef, NewDelivery, State, _new_row
from bot.state.tables import deliveries

DUE = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)


def _group(post: str, account: str, parts: int = 1, text: str = "Bonjour") -> list[NewDelivery]:
    return [
        NewDelivery(
            post,
            account,
            part,
            "x",
            "fr" if account == "fr" else "en",
            DUE + timedelta(minutes=part),
            f"{text} {post} {part}",
            (MediaRef("content/media/a.png", "Le ministre"),) if part == 1 else (),
            revision="abc123",
            author="Desk",
        )
        for part in range(1, parts + 1)
    ]


def _dump(store: Store) -> list[tuple[Any, ...]]:
    """Every delivery as stored, but for the instants the rows were written at and their ids
    (the order in which rows are inserted differs), by (post, account, part, channel)."""
    c = deliveries.c
    kept = [col for col in deliveries.columns if col.name not in ("id", "created_at", "updated_at")]
    query = select(*kept).order_by(c.post_id, c.account, c.part, c.channel)
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(query)]


def _ledger(make: Callable[[str], str], name: str) -> tuple[Ledger, Store]:
    store = open_store(make(name))
    return store.ledger_as(lease=timedelta(seconds=60)), store


def test_record_new_leaves_the_ledger_as_ensure_does(state_urls: Callable[[str], str]) -> None:
    before = [_group("old", "fr"), _group("cancelled", "en"), _group("thread", "fr", 2)]
    groups = [
        _group("p1", "fr"),
        _group("p1", "en", 3),  # a thread
        _group("old", "fr", text="Changé"),  # there already: refreshed by ensure only
        _group("cancelled", "en"),  # RETRACTED "cancelled: …": brought back by ensure
        _group("thread", "fr", 3),  # a part more than recorded
        _group("p2", "en"),
        *[_group(f"many-{i:04d}", "fr") for i in range(1200)],  # over SQLite's parameter chunk
    ]
    results = {}
    for name in ("each", "batched"):
        ledger, store = _ledger(state_urls, name)
        for group in before:
            ledger.ensure(group)
        (cancelled,) = ledger.rows("cancelled")
        assert ledger.transition(
            cancelled.id, State.RETRACTED, expect=[State.PENDING], error="cancelled: gone"
        )
        if name == "each":
            for group in groups:
                ledger.ensure(group)
        else:
            fresh = ledger.record_new(groups)
            assert fresh == [g[0].post_id not in ("old", "cancelled", "thread") for g in groups]
            for group, new in zip(groups, fresh, strict=True):
                if not new:
                    ledger.ensure(group)
        results[name] = _dump(store)
    assert results["batched"] == results["each"]
    assert len(results["batched"]) == 4 + 1 + 3 + 1 + 1 + 1200  # before, then new rows
    (cancelled_row,) = [r for r in results["batched"] if r[0] == "cancelled"]
    assert State.PENDING.value in cancelled_row  # brought back, as ensure does


def test_record_new_leaves_groups_with_a_row_to_ensure(state_urls: Callable[[str], str]) -> None:
    """A group with any of its parts recorded is not touched (ensure decides)."""
    ledger, store = _ledger(state_urls, "s")
    ledger.ensure(_group("t", "fr", 1))
    before = _dump(store)
    assert ledger.record_new([_group("t", "fr", 2, text="Autre")]) == [False]
    assert _dump(store) == before
    assert ledger.record_new([]) == []


def test_record_new_beside_another_process_recording_the_same_delivery(
    state_urls: Callable[[str], str],
) -> None:
    """Another process (``post-now``'s ensure) records the same delivery in a transaction
    still open when ``record_new`` starts: ``record_new`` waits or skips it, never fails, and
    the delivery has one row."""
    url = state_urls("s")
    ledger = open_store(url).ledger_as(lease=timedelta(seconds=60))
    other = open_store(url)
    (mine,) = [_group("p", "fr")]
    results: list[list[bool]] = []
    errors: list[BaseException] = []

    def record() -> None:
        try:
            results.append(ledger.record_new([mine]))
        except BaseException as exc:
            errors.append(exc)

    with other.engine.connect() as conn:
        conn.execute(upsert(conn, deliveries, _new_row(mine[0], DUE)))  # not committed yet
        thread = threading.Thread(target=record)
        thread.start()
        time.sleep(0.5)  # record_new is waiting: for the write lock, or on the row's key
        conn.commit()
    thread.join(30)
    assert errors == [] and len(results) == 1
    assert [(r.post_id, r.state) for r in ledger.rows()] == [("p", State.PENDING)]
    other.close()
