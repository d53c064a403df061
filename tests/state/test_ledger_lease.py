"""Who holds a claim, and when it is stale: a lease per process start, never a pid alone.

Each test uses a real SQLite state file; "another process" is a second :class:`Ledger` with an
:class:`Instance` of its own (or a real process, where its pid must exist or be gone).
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect

from bot.cli import main
from bot.settings import DEFAULT_LEASE, lease_from_env
from bot.state import Store, open_store, state_url
from bot.state.ledger import (
    Instance,
    Ledger,
    NewDelivery,
    Row,
    State,
    this_instance,
)
from bot.state.migrations import STEPS, migrate

LEASE = timedelta(seconds=60)


def delivery(post: str = "p", part: int = 1, text: str = "Bonjour") -> NewDelivery:
    return NewDelivery(
        post_id=post,
        account="fr",
        part=part,
        channel="x",
        lang="fr",
        due_at=datetime(2026, 11, 24, 8, 0, tzinfo=UTC),
        text=text,
    )


def other(*, host: str | None = None, pid: int = 4_000_001, pid_space: str = "pid:[1]") -> Instance:
    """Another process start: by default on this host, with a pid that cannot exist here, in
    another pid namespace (so its pid says nothing: only its heartbeat does)."""
    return Instance("0ther0ther00", host or socket.gethostname(), pid, pid_space)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return open_store(state_url(tmp_path, None))


def claimed_by(store: Store, instance: Instance, *, at: datetime, post: str = "p") -> Row:
    """A row claimed at ``at`` by ``instance`` (its heartbeat written with the claim)."""
    ledger = store.ledger_as(instance, lease=LEASE)
    (row,) = ledger.ensure([delivery(post)])
    claimed = ledger.claim(row.id, at)
    assert claimed is not None and claimed.claimed_by == instance.owner
    return claimed


def set_heartbeat(store: Store, instance: Instance, seen: datetime) -> None:
    path = store.engine.url.database
    assert path is not None
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(
            "UPDATE instances SET seen_at = ? WHERE instance = ?",
            (seen.isoformat(timespec="microseconds"), instance.id),
        )


def me(store: Store) -> Ledger:
    return store.ledger_as(lease=LEASE)


def test_claim_names_the_process_start_with_host_and_pid_for_people(store: Store) -> None:
    """claimed_by is INSTANCE@HOST:PID, INSTANCE random for each start of a process."""
    (row,) = me(store).ensure([delivery()])
    claimed = me(store).claim(row.id, datetime.now(UTC))
    assert claimed is not None
    instance, _, rest = (claimed.claimed_by or "").partition("@")
    assert rest == f"{socket.gethostname()}:{os.getpid()}"
    assert len(instance) == 12 and instance == this_instance().id
    code = "from bot.state.ledger import owner_id; print(owner_id())"
    twice = [
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        for _ in range(2)
    ]
    starts = {done.stdout.partition("@")[0] for done in twice}
    assert len(starts) == 2 and instance not in starts  # a new id for every start


def test_claim_by_this_instance_is_never_stale(store: Store) -> None:
    """However old, a claim of this very process start is its own: never taken from it."""
    row = claimed_by(store, this_instance(), at=datetime.now(UTC))
    later = datetime.now(UTC) + timedelta(days=3)
    assert me(store).stale_claims(later) == {}
    # Any other process (here: of another pid namespace) would find it stale by then.
    observer = store.ledger_as(other(), lease=LEASE)
    assert list(observer.stale_claims(later)) == [row.id]


def test_claim_by_another_instance_with_a_fresh_heartbeat_is_not_stale(store: Store) -> None:
    """Claimed long ago (a slow X request), heartbeat 30 s old: still held."""
    owner = other()
    now = datetime.now(UTC)
    row = claimed_by(store, owner, at=now - timedelta(minutes=10))
    set_heartbeat(store, owner, now - timedelta(seconds=30))
    assert me(store).stale_claims(now) == {}
    set_heartbeat(store, owner, now - LEASE - timedelta(seconds=1))
    assert me(store).stale_claims(now) == {row.id: f"no heartbeat from {owner.owner} for 61 s"}


def test_claim_whose_owner_never_beat_again_is_stale_after_the_lease(store: Store) -> None:
    """No heartbeat since the claim: held for the lease, stale after it."""
    owner = other()
    now = datetime.now(UTC)
    row = claimed_by(store, owner, at=now)
    assert me(store).stale_claims(now + LEASE - timedelta(seconds=1)) == {}
    assert list(me(store).stale_claims(now + LEASE + timedelta(seconds=1))) == [row.id]


def test_heartbeat_is_renewed_while_a_claim_is_held_and_stops_after(store: Store) -> None:
    """A claim held three times as long as its lease (an X request that takes that long) is
    kept alive by its owner's heartbeat thread; once released, the heartbeat stops."""
    owner = other()
    lease = timedelta(seconds=0.6)  # a beat every 0.1 s
    theirs = store.ledger_as(owner, lease=lease)
    (row,) = theirs.ensure([delivery()])
    claimed_at = datetime.now(UTC)
    assert theirs.claim(row.id, claimed_at) is not None
    observer = store.ledger_as(lease=lease)
    for _ in range(6):
        time.sleep(0.3)
        assert observer.stale_claims(datetime.now(UTC)) == {}
    assert theirs.transition(row.id, State.POSTED, expect=[State.SENDING], remote_id="1")
    time.sleep(0.3)  # the thread sees nothing held and ends
    seen = heartbeat_of(store, owner)
    assert seen - claimed_at > timedelta(seconds=1.5)  # renewed while the claim was held
    time.sleep(0.3)
    assert heartbeat_of(store, owner) == seen  # and not after


def test_heartbeat_row_deleted_while_a_claim_is_held_is_written_again(store: Store) -> None:
    """Another process prunes heartbeats idle for a week; an instance that was idle that long
    and claims again writes its row back with its next beat, so its claim stays held."""
    owner = other()
    lease = timedelta(seconds=0.6)
    theirs = store.ledger_as(owner, lease=lease)
    (row,) = theirs.ensure([delivery()])
    assert theirs.claim(row.id, datetime.now(UTC)) is not None
    with closing(sqlite3.connect(store.engine.url.database or "")) as conn, conn:
        conn.execute("DELETE FROM instances")
    time.sleep(1.0)  # more than the lease
    assert store.ledger_as(lease=lease).stale_claims(datetime.now(UTC)) == {}
    assert datetime.now(UTC) - heartbeat_of(store, owner) < lease
    assert theirs.transition(row.id, State.POSTED, expect=[State.SENDING], remote_id="1")


def heartbeat_of(store: Store, instance: Instance) -> datetime:
    with closing(sqlite3.connect(store.engine.url.database or "")) as conn:
        (seen,) = conn.execute(
            "SELECT seen_at FROM instances WHERE instance = ?", (instance.id,)
        ).fetchone()
    return datetime.fromisoformat(seen)


def test_claim_by_a_previous_start_with_this_pid_is_stale_at_once(store: Store) -> None:
    """Same host, same pid, another instance: the pid is ours now (a restarted container is
    PID 1 again), so its owner is dead, whatever its heartbeat says and whatever its pid
    namespace was (the old container's is gone)."""
    mine = this_instance()
    previous = Instance("previous0000", mine.host, mine.pid, "pid:[4026532000]")
    now = datetime.now(UTC)
    row = claimed_by(store, previous, at=now)
    assert me(store).stale_claims(now) == {
        row.id: f"process {mine.pid} on {mine.host} is another start now: the one that "
        "claimed it was restarted"
    }


def gone_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_claim_by_a_gone_process_of_this_pid_namespace_is_stale_at_once(store: Store) -> None:
    """A process of this host and pid namespace that no longer exists: its claim is stale
    at once (post-now killed, then run again)."""
    pid = gone_pid()
    owner = other(pid=pid, pid_space=this_instance().pid_space)
    now = datetime.now(UTC)
    row = claimed_by(store, owner, at=now)
    assert me(store).stale_claims(now) == {row.id: f"process {pid} on {owner.host} is gone"}


def test_pid_of_another_namespace_or_host_says_nothing(store: Store) -> None:
    """The same missing pid in another pid namespace (a container sharing the host name),
    or on another host: only the heartbeat counts."""
    pid = gone_pid()
    now = datetime.now(UTC)
    in_container = claimed_by(store, other(pid=pid, pid_space="pid:[4026532999]"), at=now)
    elsewhere = claimed_by(
        store,
        Instance("elsewhere000", "other-host", pid, this_instance().pid_space),
        at=now,
        post="q",
    )
    assert me(store).stale_claims(now) == {}
    later = now + LEASE + timedelta(seconds=1)
    assert set(me(store).stale_claims(later)) == {in_container.id, elsewhere.id}


def write_legacy_claim(store: Store, owner: str, claimed_at: datetime) -> int:
    """A SENDING row as today's main writes it: claimed_by HOST:PID, no heartbeat."""
    ledger = me(store)
    (row,) = ledger.ensure([delivery()])
    path = store.engine.url.database or ""
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(
            "UPDATE deliveries SET state='SENDING', attempts=1, claimed_by=?, claimed_at=? "
            "WHERE id=?",
            (owner, claimed_at.isoformat(timespec="microseconds"), row.id),
        )
    return row.id


def test_claim_written_before_instances_existed_is_judged_like_before(store: Store) -> None:
    """HOST:PID of a gone process: stale at once; of this very pid (which runs the new code,
    so it is another process): stale at once; of a live process: held for the lease."""
    host, now = socket.gethostname(), datetime.now(UTC)
    row_id = write_legacy_claim(store, f"{host}:{gone_pid()}", now)
    assert list(me(store).stale_claims(now)) == [row_id]
    write_legacy_claim(store, f"{host}:{os.getpid()}", now)
    assert list(me(store).stale_claims(now)) == [row_id]
    write_legacy_claim(store, f"{host}:{os.getppid()}", now)
    assert me(store).stale_claims(now) == {}
    assert list(me(store).stale_claims(now + LEASE + timedelta(seconds=1))) == [row_id]


def test_state_file_of_schema_3_is_upgraded_and_its_claims_recovered(tmp_path: Path) -> None:
    """A state file made by the previous schema (3: no instances table) with a row left
    SENDING by a pid-1 process: opened, it gains the table, keeps its rows, and the claim is
    recovered by the same rules."""
    url = state_url(tmp_path, None)
    (tmp_path / ".diplobot").mkdir()
    old = create_engine(url)
    assert migrate(old, upto=3) == 3
    assert "instances" not in inspect(old).get_table_names()
    assert len(STEPS) >= 4
    old.dispose()
    store = open_store(url)
    assert "instances" in inspect(store.engine).get_table_names()
    with store.engine.connect() as conn:
        version = conn.exec_driver_sql("SELECT version FROM schema_version").scalar()
    assert version == len(STEPS)
    now = datetime.now(UTC)
    row_id = write_legacy_claim(store, f"{socket.gethostname()}:{gone_pid()}", now)
    assert list(me(store).stale_claims(now)) == [row_id]


def test_recovery_does_not_take_a_claim_made_anew_since_it_was_read(store: Store) -> None:
    """Two processes recover the same dead claim; one reconciles and claims it again before
    the other acts: the slower one must not take the new, live claim."""
    now = datetime.now(UTC)
    dead = other(pid=gone_pid(), pid_space=this_instance().pid_space)
    claimed_by(store, dead, at=now)
    ((seen, why),) = me(store).stale_sending(now)
    assert me(store).abandon(seen, why)  # the faster recoverer
    theirs = store.ledger_as(other(pid=os.getppid()), lease=LEASE)
    assert theirs.transition(seen.id, State.PENDING, expect=[State.UNKNOWN])
    assert theirs.claim(seen.id, now) is not None  # claimed anew, live
    assert not me(store).abandon(seen, why)  # the slower one, with the row as it read it
    assert me(store).get(seen.id).state is State.SENDING


def test_status_flags_a_stale_claim(
    tmp_path: Path, store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    """`diplobot status` shows a SENDING row whose owner is gone as stale, with why."""
    (tmp_path / "content").mkdir()
    now = datetime.now(UTC)
    dead = other(pid=gone_pid(), pid_space=this_instance().pid_space)
    claimed_by(store, dead, at=now)
    claimed_by(
        store, other(pid=os.getppid(), pid_space=this_instance().pid_space), at=now, post="q"
    )
    assert main(["status", "--root", str(tmp_path), "--format", "json"]) == 0
    rows = {r["post_id"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["p"]["state"] == "SENDING" and rows["q"]["state"] == "SENDING"
    assert rows["p"]["stale"] == f"process {dead.pid} on {dead.host} is gone"
    assert rows["q"]["stale"] is None
    assert main(["status", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"SENDING  attempts 1  STALE: process {dead.pid} on {dead.host} is gone" in out
    assert "1 delivery(ies) need attention (FAILED, UNKNOWN, EXPIRED or stale SENDING)" in out


def test_lease_is_read_from_the_environment() -> None:
    """DIPLOBOT_LEASE in seconds or minutes; anything else is a clear error."""
    assert lease_from_env({}) == DEFAULT_LEASE == timedelta(seconds=60)
    assert lease_from_env({"DIPLOBOT_LEASE": "90"}) == timedelta(seconds=90)
    assert lease_from_env({"DIPLOBOT_LEASE": "2m"}) == timedelta(minutes=2)
    from bot.errors import ConfigError

    for bad in ("0", "soon", "2h"):
        with pytest.raises(ConfigError, match="DIPLOBOT_LEASE"):
            lease_from_env({"DIPLOBOT_LEASE": bad})


def test_store_opened_with_a_lease_does_not_read_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The wiring passes the lease from its settings: the store's ledger uses it; a store
    opened without one takes the default and never reads DIPLOBOT_LEASE itself."""
    from bot.settings import Settings
    from bot.wiring import Wiring

    monkeypatch.setenv("DIPLOBOT_LEASE", "soon")
    url = state_url(tmp_path, None)
    assert open_store(url, lease=timedelta(seconds=90)).ledger.lease == timedelta(seconds=90)
    assert open_store(url).ledger.lease == DEFAULT_LEASE  # the environment's "soon" unread
    wired = Wiring(Settings.from_env({"DIPLOBOT_LEASE": "2m"})).store(url)
    assert wired.ledger.lease == timedelta(minutes=2)
