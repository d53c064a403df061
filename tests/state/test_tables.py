"""The state's column types and its one dialect switch: instants are aware UTC datetimes in
code and the same ISO-8601 text on disk as before; only SQLite URLs are accepted (today)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.exc import StatementError

from bot.errors import ConfigError
from bot.state import open_store, state_url
from bot.state.ledger import NewDelivery, State


def delivery(due: datetime) -> NewDelivery:
    return NewDelivery("p", "fr", 1, "x", "fr", due, "Bonjour")


def test_instants_are_stored_as_the_same_iso_text_and_read_back_in_utc(tmp_path: Path) -> None:
    """A due time given in Paris is stored as UTC text with microseconds (the width every
    due_at has always had, so text comparisons hold), the creation time to the second, and
    both read back as aware UTC datetimes."""
    store = open_store(state_url(tmp_path, None))
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


def test_a_naive_datetime_is_refused(tmp_path: Path) -> None:
    """An instant without a zone is a defect in the caller, never guessed."""
    store = open_store(state_url(tmp_path, None))
    with pytest.raises(StatementError, match="naive datetime"):
        store.ledger.ensure([delivery(datetime(2026, 11, 24, 8, 0))])


@pytest.mark.parametrize("url", ["postgresql://bot@db/diplobot", "mysql://bot@db/diplobot"])
def test_a_state_url_of_another_kind_is_refused_with_what_to_use(tmp_path: Path, url: str) -> None:
    """Only SQLite today: the URL is refused, naming its scheme and the form to use, whether
    given as --state or opened directly."""
    scheme = url.split("://")[0]
    for attempt in (lambda: state_url(tmp_path, url), lambda: open_store(url)):
        with pytest.raises(ConfigError, match=rf"'{scheme}://…' is not supported yet; use sqlite"):
            attempt()
