"""The service's lease (bot/state/lease.py): one holder at a time, an epoch that grows at every
takeover, expiry on the database's clock, a holder that stops on its own before the database
would let another take over, and claims fenced by the lease in their own UPDATE.

Each test runs on a real state database; "another replica" is a second :class:`ServiceLease`
with an :class:`Instance` of its own, on an engine of its own (its own connections)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.instance import Instance, pid_running, this_instance
from bot.state import Store, open_store
from bot.state.lease import ServiceLease, Turn
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
    window where neither publishes is the margin, and there is none where both may.

    The holder's clock reads the real monotonic clock (so its renewal is stamped with the
    real send time) and is then pinned around the deadline: the bound is checked exactly,
    not by polling, which a loaded machine delays."""
    seen: list[float] = []
    pinned: list[float] = []

    def clock() -> float:
        now = pinned[-1] if pinned else time.monotonic()
        seen.append(now)
        return now

    a = ServiceLease(stores[0].engine, SHORT, replica("a"), monotonic=clock)
    b = stores[1].service_lease(SHORT, replica("b"))
    assert a.poll().held
    sent = seen[0]  # the renewal's send time, as the holder stamped it
    lease = SHORT.total_seconds()
    pinned.append(sent + lease * 2 / 3 - 0.001)
    assert a.valid()
    pinned.append(sent + lease * 2 / 3)
    assert not a.valid()  # stopped a third of the lease early, on its own clock
    while time.monotonic() - sent < lease + 2.0:
        if b.poll().held:
            started = time.monotonic() - sent
            break
        time.sleep(0.02)
    else:
        pytest.fail("the other replica never took the lease")
    # the database's clock: not before a full lease after the renewal was sent, so a third
    # of the lease after the holder stopped
    assert started >= lease


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


# -- a holder that is provably dead: taken before its lease runs out -----------------------


def gone_pid() -> int:
    """The pid of a process of this host and pid namespace that has exited (and was reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(30)
    assert not pid_running(proc.pid)
    return proc.pid


def this_host(name: str, pid: int, pid_space: str | None = None) -> Instance:
    """A start on this very host (another instance id than this process's)."""
    me = this_instance()
    space = me.pid_space if pid_space is None else pid_space
    return Instance(f"{name:0<12}"[:12], me.host, pid, space)


LONG = timedelta(seconds=60)


def test_a_holder_of_this_host_whose_pid_is_gone_loses_the_lease_at_once_and_is_fenced(
    stores: list[Store],
) -> None:
    """A start of this host and pid namespace holds the lease (60 s) and dies (its pid is
    gone): the next start takes it at its first poll, with the next epoch; the dead holder,
    should it be a zombie that still believes it holds the lease, can claim nothing."""
    dead = ServiceLease(stores[0].engine, LONG, this_host("dead", gone_pid()), monotonic=Clock())
    dead_ledger = stores[0].ledger_as(dead.me)
    dead_ledger.fence = dead
    (row,) = dead_ledger.ensure([delivery("p1")])
    assert dead.poll().held
    new = ServiceLease(stores[1].engine, LONG, this_instance())
    started = time.monotonic()
    turn = new.poll()
    assert time.monotonic() - started < 5  # not the 60 s of the lease
    assert turn.held and turn.taken is not None
    assert (turn.taken.epoch, turn.taken.previous, turn.taken.released) == (2, dead.me.owner, False)
    assert turn.taken.dead == f"process {dead.me.pid} on {dead.me.host} is gone"
    assert dead.valid()  # its own clock did not move: it believes it holds the lease
    assert dead_ledger.claim(row.id, datetime.now(UTC)) is None  # fenced: epoch 1 is over
    assert dead.poll().lost and not dead.valid()
    view = new.view()
    assert view is not None and (view.holder, view.epoch) == (new.me.id, 2)


def test_a_previous_life_of_this_process_loses_the_lease_at_once(stores: list[Store]) -> None:
    """Same host, same pid, another instance id: a restarted container's previous start (PID
    1 again, in a new pid namespace): the pid is ours, so it is dead."""
    me = this_instance()
    before = ServiceLease(stores[0].engine, LONG, this_host("before", me.pid, "pid:[123]"))
    assert before.poll().held
    turn = ServiceLease(stores[1].engine, LONG, me).poll()
    assert turn.held and turn.taken is not None and turn.taken.epoch == 2
    assert turn.taken.dead == f"process {me.pid} on {me.host} is another start now"


@pytest.mark.parametrize(
    "who",
    ["running pid of this host", "gone pid of another host", "gone pid, other pid namespace"],
)
def test_a_holder_that_may_be_alive_keeps_the_lease_until_it_runs_out(
    stores: list[Store], who: str
) -> None:
    """Only expiry counts for a holder that may be alive: its pid runs (a second replica on
    this host), it runs on another host (a pid here says nothing about it), or in another pid
    namespace of this host (another container: its pid here is not its pid)."""
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        me = this_instance()
        holder = {
            "running pid of this host": lambda: this_host("alive", sleeper.pid),
            "gone pid of another host": lambda: Instance(
                "elsewhere000", f"not-{me.host}", gone_pid(), me.pid_space
            ),
            "gone pid, other pid namespace": lambda: this_host("other", gone_pid(), "pid:[9]"),
        }[who]()
        held = ServiceLease(stores[0].engine, SHORT, holder)
        assert held.poll().held
        new = ServiceLease(stores[1].engine, SHORT, this_instance())
        assert new.poll() == Turn(False)
        assert (new.view() or pytest.fail("no lease")).holder == holder.id
        time.sleep(SHORT.total_seconds() + 0.1)
        turn = new.poll()
        assert turn.held and turn.taken is not None
        assert (turn.taken.epoch, turn.taken.dead) == (2, "")
    finally:
        sleeper.kill()
        sleeper.wait(10)


def test_replicas_racing_for_a_dead_holders_lease_take_it_once(db_url: str) -> None:
    """Six starts of this host poll at the same instant a lease whose holder's pid is gone:
    exactly one takes it (the next epoch)."""
    stores = [open_store(db_url) for _ in range(7)]
    dead = ServiceLease(stores[0].engine, LONG, this_host("dead", gone_pid()))
    assert dead.poll().held
    # Each racer a live pid of its own (two starts sharing a pid would be previous lives).
    sleepers = [
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) for _ in range(6)
    ]
    leases = [
        ServiceLease(s.engine, LONG, this_host(f"r{n}", p.pid))
        for n, (s, p) in enumerate(zip(stores[1:], sleepers, strict=True))
    ]
    gate = threading.Barrier(len(leases))
    turns: list[Turn] = []
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
    assert len(turns) == 6 and len(taken) == 1 and taken[0].epoch == 2
    assert sum(lease.valid() for lease in leases) == 1
    assert [lease.poll().held for lease in leases].count(True) == 1  # and no one takes it next
    for proc in sleepers:
        proc.kill()
        proc.wait(10)
    for store in stores:
        store.close()
