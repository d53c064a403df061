"""The service's lease (bot/state/lease.py): one holder at a time, an epoch that grows at every
takeover, expiry on the database's clock, a holder that stops on its own before the database
would let another take over, and claims fenced by the lease in their own UPDATE.

Each test runs on a real state database; "another replica" is a second :class:`ServiceLease`
with an :class:`Instance` of its own, on an engine of its own (its own connections)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.instance import Instance
from bot.state import Store, open_store
from bot.state.lease import ServiceLease
from bot.state.ledger import NewDelivery, State

SHORT = timedelta(seconds=1.5)


class Clock:
    """A monotonic clock a test moves by hand (the lease's own deadline)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def replica(name: str) -> Instance:
    return Instance(f"{name:0<12}"[:12], f"host-{name}", 4_000_000 + len(name), "pid:[1]")


@pytest.fixture
def db_url(state_url: str) -> str:
    """A new, empty state database: SQLite, then PostgreSQL (tests/servers/postgres.py)."""
    return state_url


@pytest.fixture
def stores(db_url: str) -> Iterator[list[Store]]:
    """Two stores (two engines, as two processes have) on one state database."""
    opened = [open_store(db_url), open_store(db_url)]
    yield opened
    for store in opened:
        store.close()


def delivery(post: str) -> NewDelivery:
    due = datetime.now(UTC) - timedelta(seconds=1)
    return NewDelivery(post, "fr", 1, "x", "fr", due, f"Bonjour {post}")


def test_the_first_poll_takes_the_lease_and_a_second_replica_stands_by(
    stores: list[Store],
) -> None:
    a = stores[0].service_lease(timedelta(seconds=30), replica("a"))
    b = stores[1].service_lease(timedelta(seconds=30), replica("b"))
    first = a.poll()
    assert first.held and first.taken is not None
    assert (first.taken.epoch, first.taken.previous, first.taken.released) == (1, "", False)
    assert a.valid() and a.epoch == 1
    assert b.poll().held is False and not b.valid() and b.epoch is None
    again = a.poll()  # a renewal: same epoch, no takeover
    assert again.held and again.taken is None and a.epoch == 1
    view = b.view()
    assert view is not None
    assert (view.holder, view.owner, view.epoch) == (a.me.id, a.me.owner, 1)
    assert 29 < view.expires_in <= 30


def test_a_lease_that_ran_out_is_taken_with_the_next_epoch_and_the_old_holder_knows(
    stores: list[Store],
) -> None:
    a = stores[0].service_lease(SHORT, replica("a"))
    b = stores[1].service_lease(SHORT, replica("b"))
    assert a.poll().held
    assert not b.poll().held
    time.sleep(SHORT.total_seconds() + 0.1)  # a renews nothing: its lease runs out
    turn = b.poll()
    assert turn.held and turn.taken is not None
    assert (turn.taken.epoch, turn.taken.previous, turn.taken.released) == (2, a.me.owner, False)
    lost = a.poll()
    assert (lost.held, lost.lost) == (False, True)
    assert not a.valid() and a.epoch is None and b.valid()


def test_a_released_lease_is_taken_at_once(stores: list[Store]) -> None:
    a = stores[0].service_lease(timedelta(seconds=60), replica("a"))
    b = stores[1].service_lease(timedelta(seconds=60), replica("b"))
    assert a.poll().held
    assert a.release() is True and not a.valid()
    turn = b.poll()
    assert turn.held and turn.taken is not None
    assert (turn.taken.epoch, turn.taken.previous, turn.taken.released) == (2, a.me.owner, True)
    assert a.release() is False  # it holds nothing now


def test_the_holder_stops_a_third_of_the_lease_before_another_can_take_it(
    stores: list[Store],
) -> None:
    """``valid()`` runs out on the holder's own clock, counted from when its last renewal
    was *sent*, a third of the lease before the database lets another replica take it: the
    window where neither publishes is the margin, and there is none where both may."""
    a = stores[0].service_lease(SHORT, replica("a"))
    b = stores[1].service_lease(SHORT, replica("b"))
    sent = time.monotonic()
    assert a.poll().held
    stopped = None
    while time.monotonic() - sent < SHORT.total_seconds() + 0.5:
        if stopped is None and not a.valid():
            stopped = time.monotonic() - sent
        if b.poll().held:
            started = time.monotonic() - sent
            break
        time.sleep(0.02)
    else:
        pytest.fail("the other replica never took the lease")
    lease = SHORT.total_seconds()
    assert stopped is not None and stopped <= lease * 2 / 3 + 0.1  # (one look every 20 ms)
    assert started >= lease  # the database's clock: a full lease after the renewal was sent
    assert started - stopped >= lease / 3 - 0.1


def test_a_claim_is_fenced_by_the_lease_in_its_own_statement(stores: list[Store]) -> None:
    """A holder paused past its lease comes back believing it is valid (its clock is moved
    back here): the claim's own UPDATE still refuses, because another replica took the lease;
    the new holder claims the row."""
    clock = Clock()
    old = ServiceLease(stores[0].engine, SHORT, replica("old"), monotonic=clock)
    new = stores[1].service_lease(SHORT, replica("new"))
    old_ledger = stores[0].ledger_as(old.me)
    old_ledger.fence = old
    new_ledger = stores[1].ledger_as(new.me)
    new_ledger.fence = new
    (row,) = old_ledger.ensure([delivery("p1")])
    (other,) = old_ledger.ensure([delivery("p2")])
    assert old.poll().held
    claimed = old_ledger.claim(row.id, datetime.now(UTC))
    assert claimed is not None and claimed.state is State.SENDING
    time.sleep(SHORT.total_seconds() + 0.1)
    assert new.poll().held  # the old holder's lease ran out: taken, epoch 2
    assert old.valid()  # its own clock did not move (frozen): it believes it holds it
    assert old_ledger.claim(other.id, datetime.now(UTC)) is None
    assert old_ledger.get(other.id).state is State.PENDING
    mine = new_ledger.claim(other.id, datetime.now(UTC))
    assert mine is not None and mine.claimed_by == new.me.owner


def test_a_holder_whose_own_deadline_passed_claims_nothing(stores: list[Store]) -> None:
    clock = Clock()
    lease = ServiceLease(stores[0].engine, timedelta(seconds=30), replica("a"), monotonic=clock)
    ledger = stores[0].ledger_as(lease.me)
    ledger.fence = lease
    (row,) = ledger.ensure([delivery("p")])
    assert ledger.claim(row.id, datetime.now(UTC)) is None  # no lease yet
    assert lease.poll().held
    clock.now += 20.5  # past 30 s - a third: stopped, though the database's lease holds
    assert not lease.valid()
    assert ledger.claim(row.id, datetime.now(UTC)) is None
    clock.now -= 20.5
    claimed = ledger.claim(row.id, datetime.now(UTC))
    assert claimed is not None and claimed.state is State.SENDING


def test_replicas_racing_for_a_free_lease_take_it_once(db_url: str) -> None:
    """Eight replicas, each on its own engine, poll the free lease at the same instant:
    exactly one takes it, epoch 1."""
    stores = [open_store(db_url) for _ in range(8)]
    leases = [
        s.service_lease(timedelta(seconds=30), replica(f"r{n}")) for n, s in enumerate(stores)
    ]
    gate = threading.Barrier(len(leases))
    turns = []
    lock = threading.Lock()

    def race(lease: ServiceLease) -> None:
        gate.wait()
        turn = lease.poll()
        with lock:
            turns.append(turn)

    threads = [threading.Thread(target=race, args=(lease,)) for lease in leases]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    taken = [t.taken for t in turns if t.taken is not None]
    assert len(turns) == 8 and len(taken) == 1 and taken[0].epoch == 1
    assert sum(lease.valid() for lease in leases) == 1
    for store in stores:
        store.close()
