"""Versioned migrations: a state file of the last release opens in place with every row kept,
and steps that add or alter a column run once, recorded, or leave the file as it was."""

from __future__ import annotations

import shutil
import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Connection, MetaData, String, Table, create_engine

from bot.errors import StateError
from bot.schedule.plan import Pin
from bot.state import open_store, state_url
from bot.state.dialect import alter_table, engine_for
from bot.state.ledger import Instance, State
from bot.state.migrations import STEPS, Step, add_column, migrate
from bot.state.tables import deliveries
from bot.state.translations import CacheKey, text_hash

RELEASE = Path(__file__).parent.parent / "data" / "state" / "release-schema5.sqlite"
"""Made by diplobot 2b7de57 (see tests/data/state/README.md)."""

NOTE = Step(
    "a note on each delivery",
    lambda conn: add_column(conn, deliveries, Column("note", String, server_default="none")),
)


def release_copy(tmp_path: Path) -> Path:
    path = tmp_path / "state.sqlite"
    shutil.copyfile(RELEASE, path)
    return path


def dump(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, as stored."""
    with closing(sqlite3.connect(path)) as conn:
        names = [n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {n: sorted(conn.execute(f'SELECT * FROM "{n}"').fetchall()) for n in names}


def columns(path: Path, table: str) -> list[str]:
    with closing(sqlite3.connect(path)) as conn:
        return [row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')]


def version(path: Path) -> int:
    with closing(sqlite3.connect(path)) as conn:
        (found,) = conn.execute("SELECT version FROM schema_version").fetchone()
    return int(found)


def test_state_file_of_the_last_release_opens_in_place_with_every_row_kept(
    tmp_path: Path,
) -> None:
    """The release's file (schema 5) opens with this code: upgraded to schema 6 (an index of
    the deliveries by state and due time) and 7 (reposts: a column), no row rewritten, and
    every table reads back as the release wrote it, instants as aware UTC datetimes."""
    path = release_copy(tmp_path)
    before = dump(path)
    assert version(path) == 5 and len(STEPS) > 5
    store = open_store(state_url(tmp_path, str(path)))
    ledger = store.ledger_as(lease=timedelta(seconds=60))
    rows = {(r.post_id, r.part): r for r in ledger.rows()}
    assert len(rows) == sum(1 for r in before["deliveries"]) == 11
    retry = rows[("retry", 1)]
    assert (retry.state, retry.attempts, retry.last_error) == (State.PENDING, 1, "429")
    assert retry.retry_at == datetime(2026, 11, 24, 8, 15, 0, 500000, tzinfo=UTC)
    assert retry.claimed_at == datetime(2026, 11, 24, 7, 59, 30, 123456, tzinfo=UTC)
    assert retry.due_at == datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
    assert retry.updated_at.tzinfo is UTC and retry.updated_at.microsecond == 0
    posted = rows[("posted", 1)]
    assert (posted.state, posted.remote_id) == (State.POSTED, "1860000000000000001")
    assert rows[("held", 1)].state is State.HELD
    assert [m.alt for m in rows[("with-media", 1)].media] == ["Le ministre"]
    assert ledger.armed_by_hand() == {rows[("by-hand", 1)].id}
    # The release's claim is judged by today's rules: its owner's heartbeat is old.
    later = datetime(2026, 11, 24, 8, 5, tzinfo=UTC)
    assert list(ledger.stale_claims(later)) == [rows[("sending", 1)].id]
    assert store.pins.load() == {"slotted": Pin("morning", datetime(2026, 11, 25, 9, 30))}
    key = CacheKey("libre", "fr", "en", text_hash("Bonjour"), "g1")
    assert store.translations.get_many([key]) == {key: "Hello"}
    assert store.pauses.current() == {"francediplo_AR": "travaux", "*": ""}
    me = Instance("release00001", "release-host", 4242, "pid:[4026531836]")
    presence = store.presence(timedelta(seconds=60), Instance("next00000001", "h", 1, ""))
    presence.beat(datetime(2026, 11, 24, 7, 59, 0, tzinfo=UTC))
    others = presence.others(datetime(2026, 11, 24, 7, 59, 45, tzinfo=UTC))
    assert [(o.instance, o.started_at) for o in others] == [
        (me.id, "2026-11-24T07:59:30.123456+00:00")
    ]
    store.close()
    after = dump(path)
    after["instances"] = [r for r in after["instances"] if r[0] != "next00000001"]
    after["heartbeat"] = [r for r in after["heartbeat"] if r[0] != "service:next00000001"]
    assert after.pop("schema_version") == [(len(STEPS),)]
    before.pop("schema_version")
    # Schema 7 added deliveries.repost_of (reposts): None in every row of the release.
    assert after.pop("deliveries") == [(*row, None) for row in before.pop("deliveries")]
    assert after.pop("service_lease") == []  # schema 8: the replicas' lease, empty until a run
    assert after == before
    with closing(sqlite3.connect(path)) as conn:
        plan = conn.execute(
            "EXPLAIN QUERY PLAN SELECT id FROM deliveries WHERE state = 'PENDING' AND due_at <= ?",
            ("2026-11-25",),
        ).fetchall()
    assert "ix_deliveries_state_due" in str(plan)


def test_a_step_that_adds_a_column_upgrades_the_release_file_once(tmp_path: Path) -> None:
    """A step after today's adding a column: run once on the release's file, recorded as
    the next schema, every row kept (the new column at its default); run again, nothing happens."""
    path = release_copy(tmp_path)
    before = dump(path)
    steps = (*STEPS, NOTE)
    engine = engine_for(f"sqlite:///{path}")
    assert migrate(engine, steps=steps) == len(STEPS) + 1
    assert migrate(engine, steps=steps) == len(STEPS) + 1
    engine.dispose()
    assert version(path) == len(STEPS) + 1
    assert columns(path, "deliveries")[-1] == "note"
    after = dump(path)
    assert after["deliveries"] == [(*row, None, "none") for row in before["deliveries"]]
    assert after.pop("service_lease") == []  # the replicas' lease: a table of today's steps
    assert {n: r for n, r in after.items() if n not in ("deliveries", "schema_version")} == {
        n: r for n, r in before.items() if n not in ("deliveries", "schema_version")
    }
    # The file now refuses the code that knows one step fewer: a newer one upgraded it.
    newer = rf"upgraded by a newer diplobot \(schema {len(STEPS) + 1}"
    with pytest.raises(StateError, match=newer):
        open_store(f"sqlite:///{path}")


def test_a_failed_step_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    """Today's steps, a column, and a step that fails halfway (after changing rows): the
    upgrade stops with a message naming that step, and the file is exactly as it was, at
    schema 5, without the index."""
    path = release_copy(tmp_path)
    before = dump(path)

    def breaks(conn: Connection) -> None:
        conn.exec_driver_sql("UPDATE deliveries SET text = 'lost'")
        # rows the step did not expect: a primary key taken
        conn.exec_driver_sql("INSERT INTO by_hand (delivery_id, armed_at) SELECT 7, 'x'")

    steps = (*STEPS, NOTE, Step("a broken step", breaks))
    engine = engine_for(f"sqlite:///{path}")
    broken = rf"could not be upgraded to schema {len(STEPS) + 2} \(a broken step\)"
    with pytest.raises(StateError, match=broken):
        migrate(engine, steps=steps)
    engine.dispose()
    assert version(path) == 5
    assert "note" not in columns(path, "deliveries")
    assert dump(path) == before


def test_a_step_that_alters_a_column_keeps_every_row(tmp_path: Path) -> None:
    """A column altered (slot pins' ``pinned_at`` becomes optional): the table is rebuilt
    with its new definition, its rows kept, and the new definition holds."""
    path = release_copy(tmp_path)
    before = dump(path)
    pins = Table(
        "slot_pins",
        MetaData(),
        Column("post_id", String, primary_key=True),
        Column("slot", String, nullable=False),
        Column("local", String, nullable=False),
        Column("pinned_at", String, nullable=True),
    )
    steps = (*STEPS, Step("pinned_at optional", lambda conn: alter_table(conn, pins)))
    engine = engine_for(f"sqlite:///{path}")
    assert migrate(engine, steps=steps) == len(STEPS) + 1
    engine.dispose()
    after = dump(path)
    assert after["slot_pins"] == before["slot_pins"]
    with closing(sqlite3.connect(path)) as conn:
        notnull = {row[1]: row[3] for row in conn.execute("PRAGMA table_info(slot_pins)")}
        assert notnull["pinned_at"] == 0 and notnull["slot"] == 1
        conn.execute("INSERT INTO slot_pins VALUES ('p', 's', '2026-01-01T09:00:00', NULL)")
        tables = {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == set(before) | {"service_lease"}  # the old copy is gone


def test_a_new_file_gets_every_step_and_old_code_builds_old_schemas(tmp_path: Path) -> None:
    """A new file is at the latest schema; ``upto`` builds an older one, which opening
    brings up to date."""
    url = state_url(tmp_path, None)
    (tmp_path / ".diplobot").mkdir()
    old = create_engine(url)
    assert migrate(old, upto=2) == 2
    old.dispose()
    path = tmp_path / ".diplobot" / "state.sqlite"
    assert version(path) == 2 and "instances" not in dump(path)
    open_store(url).close()
    assert version(path) == len(STEPS)
    assert {"instances", "by_hand", "runtime_pauses"} <= set(dump(path))


def test_the_repost_column_joins_a_ledger_of_schema_6(state_url: str) -> None:
    """Schema 7 (reposts) adds ``deliveries.repost_of`` to a ledger that has none, on SQLite
    and on PostgreSQL: its rows are kept, with no original (None); run again, nothing."""
    engine = engine_for(state_url)
    assert migrate(engine, upto=6) == 6
    old = Table(
        "deliveries",
        MetaData(),
        *[c._copy() for c in deliveries.columns if c.name != "repost_of"],
    )
    now = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE deliveries DROP COLUMN repost_of")  # as 6 made it
        values = {
            "post_id": "p",
            "account": "francediplo",
            "part": 1,
            "channel": "x",
            "lang": "fr",
            "due_at": now,
            "text": "Bonjour",
            "media": "[]",
            "content_hash": "h",
            "state": "PENDING",
            "attempts": 0,
            "created_at": now,
            "updated_at": now,
        }
        conn.execute(old.insert().values(**values))
    assert migrate(engine) == len(STEPS)
    assert migrate(engine) == len(STEPS)
    engine.dispose()
    store = open_store(state_url)
    (row,) = store.ledger.rows("p")
    assert (row.text, row.repost_of, row.due_at) == ("Bonjour", None, now)
    store.close()


RELEASE6 = Path(__file__).parent.parent / "data" / "state" / "release-schema6.sqlite"
"""Made by diplobot 713aa3e, the release before issue 12 (see tests/data/state/README.md)."""


def test_state_file_of_the_release_before_missions_opens_in_place_with_every_row_kept(
    tmp_path: Path,
) -> None:
    """713aa3e's file (schema 6: X and issue 11's platforms, a Telegram delivery left for a
    person and a Weibo task) opens with this code: steps 7 (reposts' column) and 8 (the
    replicas' lease) run once, no row rewritten, the rows for a person still for a person."""
    from bot.publish.deliver import for_a_person

    path = tmp_path / "state.sqlite"
    shutil.copyfile(RELEASE6, path)
    before = dump(path)
    assert version(path) == 6
    store = open_store(state_url(tmp_path, str(path)))
    ledger = store.ledger_as(lease=timedelta(seconds=60))
    rows = {(r.post_id, r.account, r.part): r for r in ledger.rows()}
    assert len(rows) == len(before["deliveries"]) == 15
    assert rows[("posted", "france_en_bluesky", 1)].remote_id == (
        "at://did:plc:abc/app.bsky.feed.post/3lbxyz"
    )
    assert rows[("posted", "france_fr_mastodon", 1)].state is State.POSTED
    people = {key[1] for key, row in rows.items() if for_a_person(row)}
    assert people == {"france_es_telegram", "ambafrance_chine"}
    assert all(row.repost_of is None for row in rows.values())
    assert ledger.armed_by_hand() == {rows[("by-hand", "francediplo", 1)].id}
    assert store.pins.load() == {"slotted": Pin("morning", datetime(2026, 12, 1, 9, 30))}
    store.close()
    after = dump(path)
    assert after.pop("schema_version") == [(len(STEPS),)]
    before.pop("schema_version")
    assert after.pop("deliveries") == [(*row, None) for row in before.pop("deliveries")]
    assert after.pop("service_lease") == []
    assert after == before
