"""The state on a real PostgreSQL server (tests/servers/postgres.py): an empty database is set
up by the first command that opens it, migrations run in one transaction and take turns
between processes, a step that fails leaves the database as it was, a database that is not
ours is refused and left alone, a lost connection is replaced, and what the operator is told
never shows the URL's password."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from servers.postgres import PASSWORD, PASSWORD_ROLE, PostgresServer
from sqlalchemy import (
    Column,
    Connection,
    MetaData,
    String,
    Table,
    event,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DatabaseError

from bot.errors import StateError
from bot.state import database_problem, open_store
from bot.state.dialect import alter_table, engine_for
from bot.state.ledger import _CLAIM, NewDelivery, State, _Work, connection_lost
from bot.state.migrations import STEPS, Step, add_column, migrate
from bot.state.tables import deliveries, schema_version

ROOT = Path(__file__).resolve().parents[2]
DUE = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
LEASE = timedelta(seconds=60)
NOTE = Step(
    "a note on each delivery",
    lambda conn: add_column(conn, deliveries, Column("note", String, server_default="none")),
)
CliRun = Callable[..., Any]  # the `run_cli` fixture of tests/conftest.py


def item(post: str, text: str = "Bonjour") -> NewDelivery:
    return NewDelivery(post, "fr", 1, "x", "fr", DUE, text)


def version(url: str) -> int:
    engine = engine_for(url)
    with engine.connect() as conn:
        found = conn.execute(select(schema_version.c.version)).scalar_one()
    engine.dispose()
    return int(found)


def tables(url: str) -> set[str]:
    engine = engine_for(url)
    with engine.connect() as conn:
        names = set(inspect(conn).get_table_names())
    engine.dispose()
    return names


def dump(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of ours, as stored."""
    engine = engine_for(url)
    with engine.connect() as conn:
        found = {
            name: sorted(tuple(r) for r in conn.execute(text(f'SELECT * FROM "{name}"')))
            for name in inspect(conn).get_table_names()
        }
    engine.dispose()
    return found


def test_an_empty_database_gets_every_step(pg_url: str) -> None:
    """The first open of an empty database creates every table and the due index, at the
    latest schema."""
    open_store(pg_url).close()
    assert version(pg_url) == len(STEPS)
    assert tables(pg_url) == {
        "schema_version",
        "slot_pins",
        "translations",
        "deliveries",
        "runtime_pauses",
        "heartbeat",
        "instances",
        "by_hand",
        "service_lease",
    }
    engine = engine_for(pg_url)
    with engine.connect() as conn:
        indexes = {i["name"] for i in inspect(conn).get_indexes("deliveries")}
    engine.dispose()
    assert "ix_deliveries_state_due" in indexes


def test_old_code_builds_old_schemas_and_opening_brings_them_up_to_date(pg_url: str) -> None:
    engine = engine_for(pg_url)
    assert migrate(engine, upto=2) == 2
    engine.dispose()
    assert version(pg_url) == 2 and "instances" not in tables(pg_url)
    open_store(pg_url).close()
    assert version(pg_url) == len(STEPS)
    assert {"instances", "by_hand", "runtime_pauses"} <= tables(pg_url)


def test_a_step_that_adds_a_column_runs_once_and_newer_schemas_are_refused(pg_url: str) -> None:
    """A step after today's adding a column: run once, recorded, rows kept with its default;
    then this code (which knows fewer steps) refuses the database."""
    store = open_store(pg_url)
    store.ledger.ensure([item("a"), item("b")])
    store.close()
    before = dump(pg_url)
    engine = engine_for(pg_url)
    assert migrate(engine, steps=(*STEPS, NOTE)) == len(STEPS) + 1
    assert migrate(engine, steps=(*STEPS, NOTE)) == len(STEPS) + 1
    engine.dispose()
    after = dump(pg_url)
    assert after["deliveries"] == [(*row, "none") for row in before["deliveries"]]
    with pytest.raises(
        StateError, match=rf"upgraded by a newer diplobot \(schema {len(STEPS) + 1}"
    ):
        open_store(pg_url)


def test_a_failed_step_leaves_the_database_as_it_was(pg_url: str) -> None:
    """PostgreSQL changes its schema in the transaction: a step failing after another added
    a column and rewrote rows leaves neither the column nor the rows changed."""
    store = open_store(pg_url)
    store.ledger.ensure([item("a"), item("b")])
    store.close()
    before = dump(pg_url)

    def breaks(conn: Connection) -> None:
        conn.execute(text("UPDATE deliveries SET text = 'lost'"))
        conn.execute(text("INSERT INTO by_hand (delivery_id, armed_at) VALUES (1, now())"))
        conn.execute(text("INSERT INTO by_hand (delivery_id, armed_at) VALUES (1, now())"))

    steps = (*STEPS, NOTE, Step("a broken step", breaks))
    engine = engine_for(pg_url)
    with pytest.raises(StateError, match=rf"could not be upgraded to schema {len(STEPS) + 2}"):
        migrate(engine, steps=steps)
    engine.dispose()
    assert version(pg_url) == len(STEPS)
    assert dump(pg_url) == before  # no note column, no text lost


def test_a_step_that_alters_columns_keeps_every_row_and_the_id_sequence(pg_url: str) -> None:
    """``alter_table`` alters in place: slot pins' ``pinned_at`` becomes optional, rows kept;
    the ledger altered to its own definition keeps its rows, its index and its id sequence
    (a rebuilt table would hand out ids already taken)."""
    store = open_store(pg_url)
    rows = store.ledger.ensure([item("a"), item("b")])
    store.close()
    pins = Table(
        "slot_pins",
        MetaData(),
        Column("post_id", String, primary_key=True),
        Column("slot", String, nullable=False),
        Column("local", String, nullable=False),
        Column("pinned_at", String, nullable=True),
    )
    steps = (
        *STEPS,
        Step("pinned_at optional", lambda conn: alter_table(conn, pins)),
        Step("the ledger as defined", lambda conn: alter_table(conn, deliveries)),
    )
    engine = engine_for(pg_url)
    assert migrate(engine, steps=steps) == len(STEPS) + 2
    with engine.begin() as conn:
        columns = {c["name"]: c for c in inspect(conn).get_columns("slot_pins")}
        assert columns["pinned_at"]["nullable"] and not columns["slot"]["nullable"]
        conn.execute(text("INSERT INTO slot_pins VALUES ('p', 's', '2026-01-01T09:00:00', NULL)"))
        indexes = {i["name"] for i in inspect(conn).get_indexes("deliveries")}
    engine.dispose()
    assert "ix_deliveries_state_due" in indexes
    assert len(dump(pg_url)["deliveries"]) == len(rows)


def test_alter_table_on_the_ledger_keeps_rows_and_hands_out_new_ids(pg_url: str) -> None:
    """The ledger altered to its own definition: no column's type is changed (that would
    rewrite the table under the lock), rows kept, ids go on from the sequence."""
    store = open_store(pg_url)
    first = store.ledger.ensure([item("a"), item("b")])
    statements: list[str] = []
    event.listen(store.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    with store.engine.begin() as conn:
        alter_table(conn, deliveries)
    (altered,) = [s for s in statements if s.startswith("ALTER TABLE")]
    assert " TYPE " not in altered  # no type changed: no rewrite of the table
    (third,) = store.ledger.ensure([item("c")])
    assert [r.post_id for r in store.ledger.rows()] == ["a", "b", "c"]
    assert third.id > max(r.id for r in first)
    store.close()


OPENER = textwrap.dedent(
    """
    import sys, time
    from bot.state import open_store
    url, start = sys.argv[1], float(sys.argv[2])
    time.sleep(max(0.0, start - time.time()))
    store = open_store(url)
    store.ledger.rows()
    print("opened")
    """
)


def test_processes_opening_an_empty_database_at_once_take_turns(pg_url: str) -> None:
    """Four processes open the same empty database at the same instant: each succeeds (the
    advisory lock makes them take turns: without it two would CREATE the same table), and
    the schema is migrated once."""
    start = time.time() + 3.0
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", OPENER, pg_url, str(start)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0 and out.strip() == "opened", err
    assert version(pg_url) == len(STEPS)
    engine = engine_for(pg_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM schema_version")).scalar() == 1
    engine.dispose()


def test_a_database_of_another_program_is_refused_and_left_untouched(pg_url: str) -> None:
    engine = engine_for(pg_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE customers (id integer primary key, name text)"))
    engine.dispose()
    with pytest.raises(StateError) as caught:
        open_store(pg_url)
    message = str(caught.value)
    assert "is damaged or is not a diplobot state database (it holds other tables: customers)" in (
        message
    )
    assert "Give diplobot a database of its own" in message
    assert tables(pg_url) == {"customers"}


@pytest.fixture
def guarded(postgres: PostgresServer) -> Iterator[str]:
    """A new database of the role that must give its password: its URL, without it."""
    name = postgres.create_database(owner=PASSWORD_ROLE)
    yield postgres.url(name, user=PASSWORD_ROLE)
    postgres.drop_database(name)


def test_a_table_dropped_behind_its_back_is_reported_as_damage_without_the_password(
    guarded: str,
) -> None:
    """A table of ours gone (dropped by hand): the error met while reading is told as damage,
    naming the database, never the password of its URL."""
    url = guarded.replace(f"{PASSWORD_ROLE}@", f"{PASSWORD_ROLE}:{PASSWORD}@")
    store = open_store(url)
    with store.engine.begin() as conn:
        conn.execute(text("DROP TABLE by_hand"))
    with pytest.raises(DatabaseError) as caught:
        store.ledger.armed_by_hand()
    problem = database_problem(caught.value, store.url)
    assert problem is not None
    shown = guarded.replace(f"{PASSWORD_ROLE}@", f"{PASSWORD_ROLE}:***@")
    assert str(problem).startswith(f"the state database {shown} is damaged or is not a diplobot")
    assert PASSWORD not in str(problem)
    store.close()


def test_the_password_comes_from_diplobot_state_password_and_is_never_shown(
    guarded: str, example_repo: Path, run_cli: CliRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A URL without its password: DIPLOBOT_STATE_PASSWORD(_FILE) gives it; without it, or
    with a wrong one, the command says which database refused and why, never a password."""
    status = ("status", "--root", str(example_repo), "--state", guarded)
    result = run_cli(*status)
    assert result.code == 1
    assert result.err.startswith(f"diplobot: the state database {guarded} cannot be used: ")
    assert "password" in result.err and "Traceback" not in result.err
    monkeypatch.setenv("DIPLOBOT_STATE_PASSWORD", "wrong-CANARY-1")
    result = run_cli(*status)
    assert result.code == 1 and "password authentication failed" in result.err
    assert "wrong-CANARY-1" not in result.err + result.out
    secret = example_repo / "state_password"
    secret.write_text(PASSWORD + "\n", encoding="utf-8")
    monkeypatch.delenv("DIPLOBOT_STATE_PASSWORD")
    monkeypatch.setenv("DIPLOBOT_STATE_PASSWORD_FILE", str(secret))
    result = run_cli(*status)
    assert result.code == 0, result.err
    assert PASSWORD not in result.err + result.out
    assert version(guarded.replace("@", f":{PASSWORD}@", 1)) == len(STEPS)


def test_the_ledger_works_on_after_the_server_restarts(
    postgres: PostgresServer, pg_url: str
) -> None:
    """Every connection cut (the server restarted): the ledger's shared connection and the
    pool's are replaced; at most the statement in flight fails, and it is safe to retry."""
    store = open_store(pg_url)
    ledger = store.ledger_as(lease=LEASE)
    (row,) = ledger.ensure([item("a")])
    assert ledger.get(row.id).state is State.PENDING  # the shared connection is open
    postgres.restart()
    try:
        claimed = ledger.claim(row.id, DUE)
    except DatabaseError:
        claimed = ledger.claim(row.id, DUE)  # the cut connection was seen and replaced
    assert claimed is not None and claimed.state is State.SENDING
    assert ledger.rows()[0].state is State.SENDING  # a pool connection, pre-pinged
    store.close()


def test_status_on_an_empty_database_sets_it_up(
    example_repo: Path, pg_url: str, run_cli: CliRun
) -> None:
    """`diplobot status --state postgresql+psycopg://…` on an empty database: the schema is
    created, the (empty) ledger shown."""
    result = run_cli("status", "--root", str(example_repo), "--state", pg_url, "--format", "json")
    assert result.code == 0, result.err
    json.loads(result.out)
    assert version(pg_url) == len(STEPS)


def cut_commit(monkeypatch: pytest.MonkeyPatch, when: str) -> list[str]:
    """The next commit on any psycopg connection loses its connection, ``after`` the server
    committed or ``before``; returns the list where the cut is recorded."""
    real = psycopg.Connection.commit
    cuts: list[str] = []

    def commit(conn: psycopg.Connection[Any]) -> None:
        if not cuts and when == "after":
            real(conn)
        if not cuts:
            cuts.append(when)
            conn.close()  # what a dead server or a cut network leaves
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        real(conn)

    monkeypatch.setattr(psycopg.Connection, "commit", commit)
    return cuts


def test_a_claim_whose_commit_answer_is_lost_is_still_ours(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection dies right after the server committed a claim, before its answer
    arrived: the claim is read back and returned (published, not left SENDING by a live
    instance, which nothing would recover before a restart). Dying before the commit: the
    error stands, the row is still PENDING, and the next claim takes it."""
    store = open_store(pg_url)
    ledger = store.ledger_as(lease=LEASE)
    first, second = ledger.ensure([item("a"), item("b")])
    cuts = cut_commit(monkeypatch, "after")
    claimed = ledger.claim(first.id, DUE)
    assert cuts == ["after"]
    assert claimed is not None and (claimed.state, claimed.attempts) == (State.SENDING, 1)
    assert claimed.claimed_by == ledger.instance.owner and first.id in ledger._beat._held

    cuts = cut_commit(monkeypatch, "before")
    with pytest.raises(DatabaseError):
        ledger.claim(second.id, DUE)
    assert cuts == ["before"] and ledger.get(second.id).state is State.PENDING
    again = ledger.claim(second.id, DUE)
    assert again is not None and again.attempts == 1
    store.close()


@pytest.mark.parametrize("when", ["after", "before"])
def test_a_transition_whose_commit_answer_is_lost_is_read_back(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    """SENDING → POSTED, the connection lost around the commit: committed, it is read back
    as done; not committed, it is run again. Either way the row is POSTED with its id once."""
    store = open_store(pg_url)
    ledger = store.ledger_as(lease=LEASE)
    (row,) = ledger.ensure([item("a")])
    assert ledger.claim(row.id, DUE) is not None
    cuts = cut_commit(monkeypatch, when)
    assert ledger.transition(row.id, State.POSTED, expect=[State.SENDING], remote_id="42")
    assert cuts == [when]
    after = ledger.get(row.id)
    assert (after.state, after.remote_id) == (State.POSTED, "42")
    assert not ledger.transition(row.id, State.POSTED, expect=[State.SENDING], remote_id="43")
    store.close()


def test_a_batch_whose_connection_is_lost_is_not_run_again(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two claims sharing one commit, the connection lost after the server committed them:
    neither is run again (each would find its row SENDING and give it up); each caller gets
    the error, and reads its claim back (see the claim's test above)."""
    store = open_store(pg_url)
    ledger = store.ledger_as(lease=LEASE)
    rows = ledger.ensure([item("a"), item("b")])
    owner = ledger.instance.owner
    works = [
        _Work(lambda conn, r=r: conn.execute(_CLAIM, {"row_id": r.id, "now": DUE, "owner": owner}))
        for r in rows
    ]
    cuts = cut_commit(monkeypatch, "after")
    ledger._hot._commit(works)
    assert cuts == ["after"]
    assert all(w.done and w.error is not None and connection_lost(w.error) for w in works)
    for r in rows:
        claimed = ledger.get(r.id)
        assert (claimed.state, claimed.attempts, claimed.claimed_by) == (State.SENDING, 1, owner)
    store.close()


def test_connections_name_diplobot_and_watch_for_a_silent_server_unless_the_url_says(
    pg_url: str,
) -> None:
    """Every connection has TCP keepalives and a user timeout (a server gone silent is found
    in about a minute, not the system's 15), and says it is diplobot; libpq parameters in the
    URL win over these defaults."""
    engine = engine_for(pg_url)
    with engine.connect() as conn:
        params = conn.connection.dbapi_connection.info.get_parameters()  # type: ignore[union-attr]
        name = conn.execute(text("SHOW application_name")).scalar()
    engine.dispose()
    assert name == "diplobot"
    assert (params["keepalives_idle"], params["tcp_user_timeout"]) == ("30", "30000")
    engine = engine_for(pg_url + "?application_name=desk&keepalives_idle=7")
    with engine.connect() as conn:
        params = conn.connection.dbapi_connection.info.get_parameters()  # type: ignore[union-attr]
        name = conn.execute(text("SHOW application_name")).scalar()
    engine.dispose()
    assert name == "desk" and params["keepalives_idle"] == "7"


def test_a_pg_dump_restored_into_an_empty_database_opens_with_every_row(
    postgres: PostgresServer, pg_url: str, tmp_path: Path
) -> None:
    """docs/deploy.md's backup: ``pg_dump --format=custom`` while the ledger is in use, then
    ``pg_restore --no-owner`` into an empty database: it opens as it was, and new deliveries
    get new ids (the id sequence came with it)."""
    store = open_store(pg_url)
    rows = store.ledger.ensure([item("a"), item("b")])
    assert store.ledger.claim(rows[0].id, DUE) is not None
    dump_file = tmp_path / "state.dump"
    where = ["-h", postgres.host, "-p", str(postgres.port), "-U", "postgres"]
    source = make_url(pg_url).database
    assert source is not None
    with dump_file.open("wb") as out:
        subprocess.run(
            [str(postgres.bindir / "pg_dump"), *where, "--format=custom", source],
            stdout=out,
            check=True,
        )
    restored = postgres.create_database()
    subprocess.run(
        [str(postgres.bindir / "pg_restore"), *where, "-d", restored, "--no-owner"],
        stdin=dump_file.open("rb"),
        check=True,
    )
    store.ledger._beat.release(rows[0].id)
    store.close()
    again = open_store(postgres.url(restored))
    before = {(r.post_id, r.state, r.attempts) for r in again.ledger.rows()}
    assert before == {("a", State.SENDING, 1), ("b", State.PENDING, 0)}
    (new,) = again.ledger.ensure([item("c")])
    assert new.id > max(r.id for r in rows)
    again.close()
    postgres.drop_database(restored)


def test_a_schema_of_its_own_through_the_url_search_path(pg_url: str) -> None:
    """docs/deploy.md: ``?options=-csearch_path%3Ddiplobot`` keeps the tables in that schema
    (a database shared with other tables in ``public``)."""
    engine = engine_for(pg_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE customers (id integer primary key)"))
        conn.execute(text("CREATE SCHEMA diplobot"))
    engine.dispose()
    store = open_store(pg_url + "?options=-csearch_path%3Ddiplobot")
    (row,) = store.ledger.ensure([item("a")])
    assert store.ledger.get(row.id).state is State.PENDING
    store.close()
    engine = engine_for(pg_url)
    with engine.connect() as conn:
        ours = set(inspect(conn).get_table_names(schema="diplobot"))
        public = set(inspect(conn).get_table_names())
    engine.dispose()
    assert {"deliveries", "schema_version", "instances"} <= ours and public == {"customers"}
    # The URL's options join diplobot's own, which they do not replace (a frozen replica's
    # transaction is still ended by the server).
    engine = engine_for(pg_url + "?options=-csearch_path%3Ddiplobot")
    with engine.connect() as conn:
        path = conn.execute(text("SHOW search_path")).scalar()
        idle = conn.execute(text("SHOW idle_in_transaction_session_timeout")).scalar()
    engine.dispose()
    assert (path, idle) == ("diplobot", "5s")
