"""The state's column types and its one dialect switch: instants are aware UTC datetimes in
code, the same ISO-8601 text in a SQLite file as before and ``timestamptz`` in PostgreSQL;
SQLite and PostgreSQL URLs are accepted, others refused, and a URL's password is never
shown."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from servers.postgres import free_port
from sqlalchemy import text
from sqlalchemy.exc import StatementError

from bot.errors import ConfigError, StateError
from bot.state import open_store
from bot.state import state_url as url_of
from bot.state.ledger import NewDelivery, State


def delivery(due: datetime) -> NewDelivery:
    return NewDelivery("p", "fr", 1, "x", "fr", due, "Bonjour")


def test_instants_are_stored_as_the_same_iso_text_and_read_back_in_utc(tmp_path: Path) -> None:
    """A due time given in Paris is stored as UTC text with microseconds (the width every
    due_at has always had, so text comparisons hold), the creation time to the second, and
    both read back as aware UTC datetimes."""
    store = open_store(url_of(tmp_path, None))
    paris = datetime(2026, 11, 24, 9, 0, tzinfo=ZoneInfo("Europe/Paris"))
    (row,) = store.ledger.ensure([delivery(paris)])
    assert row.due_at == paris and row.due_at.tzinfo is UTC
    assert store.ledger.claim(row.id, datetime(2026, 11, 24, 8, 0, 1, 5, tzinfo=UTC))
    assert store.ledger.transition(row.id, State.POSTED, expect=[State.SENDING], remote_id="1")
    with closing(sqlite3.connect(store.engine.url.database or "")) as conn:
        due, claimed, created = conn.execute(
            "SELECT due_at, claimed_at, created_at FROM deliveries"
        ).fetchone()
    assert due == "2026-11-24T08:00:00.000000+00:00"
    assert claimed == "2026-11-24T08:00:01.000005+00:00"
    assert len(created) == len("2026-11-24T08:00:00+00:00") and created.endswith("+00:00")


def test_a_naive_datetime_is_refused(state_url: str) -> None:
    """An instant without a zone is a defect in the caller, never guessed."""
    store = open_store(state_url)
    with pytest.raises(StatementError, match="naive datetime"):
        store.ledger.ensure([delivery(datetime(2026, 11, 24, 8, 0))])


def test_instants_are_timestamps_in_postgresql_read_back_in_utc(pg_url: str) -> None:
    """PostgreSQL keeps instants as ``timestamptz`` (so its own clock compares with them),
    to the microsecond, the creation time to the second; wall times as ``timestamp``."""
    store = open_store(pg_url)
    paris = datetime(2026, 11, 24, 9, 0, tzinfo=ZoneInfo("Europe/Paris"))
    (row,) = store.ledger.ensure([delivery(paris)])
    assert row.due_at == paris and row.due_at.tzinfo is UTC
    claimed_at = datetime(2026, 11, 24, 8, 0, 1, 5, tzinfo=UTC)
    assert store.ledger.claim(row.id, claimed_at)
    with store.engine.connect() as conn:
        kinds = dict(
            conn.execute(
                text(
                    "SELECT table_name || '.' || column_name, data_type "
                    "FROM information_schema.columns WHERE column_name IN "
                    "('due_at', 'claimed_at', 'created_at', 'local', 'seen_at')"
                )
            ).all()
        )
        later = conn.execute(
            text("SELECT count(*) FROM deliveries WHERE due_at < now() AND claimed_at = :at"),
            {"at": claimed_at},
        ).scalar()
        created = conn.execute(text("SELECT created_at FROM deliveries")).scalar_one()
    assert kinds["deliveries.due_at"] == "timestamp with time zone"
    assert kinds["instances.seen_at"] == "timestamp with time zone"
    assert kinds["slot_pins.local"] == "timestamp without time zone"
    assert later == 1 and created.microsecond == 0
    store.close()


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://bot@db/diplobot",
        "postgresql://bot@db/diplobot",
        "postgres://bot@db:5433/diplobot",
    ],
)
def test_a_postgresql_url_is_accepted_in_each_spelling_and_opened_with_psycopg(
    tmp_path: Path, url: str
) -> None:
    """``--state``/``DIPLOBOT_STATE`` take PostgreSQL's usual spellings; psycopg 3 opens them."""
    assert url_of(tmp_path, url) == "postgresql+psycopg://" + url.split("://", 1)[1]


@pytest.mark.parametrize(
    ("url", "says"),
    [
        (
            "mysql://bot@db/diplobot",
            r"'mysql://…' is not supported; use sqlite:///PATH or postgresql\+psycopg://",
        ),
        ("postgresql+psycopg://bot:s3cret@db", r"names no database: use sqlite"),
    ],
)
def test_a_state_url_of_another_kind_is_refused_with_what_to_use(
    tmp_path: Path, url: str, says: str
) -> None:
    """Another kind of database, or a PostgreSQL URL without its database, is refused with
    the forms to use, whether given as --state or opened directly; never with the password."""
    for attempt in (lambda: url_of(tmp_path, url), lambda: open_store(url)):
        with pytest.raises(ConfigError, match=says) as caught:
            attempt()
        assert "s3cret" not in str(caught.value)


def test_a_postgresql_server_that_cannot_be_reached_is_named_without_its_password() -> None:
    """No server there: the operator learns which URL failed and why, password hidden."""
    url = f"postgresql+psycopg://bot:s3cret@127.0.0.1:{free_port()}/diplobot"
    with pytest.raises(StateError) as caught:
        open_store(url)
    message = str(caught.value)
    assert message.startswith(
        f"the state database postgresql+psycopg://bot:***@127.0.0.1:{url.split(':')[3]}"
    )
    assert "cannot be used" in message and "s3cret" not in message
