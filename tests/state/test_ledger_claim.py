"""The claim and ``ensure`` on one row: what is claimed is what the ledger holds, and an edit
never reaches a row that is being, or has been, sent. On SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import update

from bot.state import Store, open_store
from bot.state.ledger import NewDelivery, State
from bot.state.tables import deliveries


def version(text: str) -> NewDelivery:
    return NewDelivery(
        post_id="p",
        account="fr",
        part=1,
        channel="x",
        lang="fr",
        due_at=datetime(2026, 11, 24, 8, 0, tzinfo=UTC),
        text=text,
    )


@pytest.fixture
def store(state_url: str) -> Iterator[Store]:
    store = open_store(state_url)
    yield store
    store.close()


def test_claim_returns_the_row_as_the_ledger_holds_it_when_claimed(store: Store) -> None:
    """Read as version A, edited to B before the claim: the claim returns B."""
    ledger = store.ledger
    (read,) = ledger.ensure([version("Version A")])
    open_store(store.url).ledger.ensure([version("Version B")])  # another connection
    claimed = ledger.claim(read.id, datetime.now(UTC))
    assert claimed is not None
    assert (claimed.state, claimed.text, claimed.attempts) == (State.SENDING, "Version B", 1)
    assert claimed.content_hash == version("Version B").content_hash
    assert claimed == ledger.get(read.id)


# HELD is left out: it awaits its text (the translation failed), and ensure() gives it.
@pytest.mark.parametrize(
    "state", [s for s in State if s not in (State.PENDING, State.HELD, State.RETRACTED)], ids=str
)
def test_ensure_never_changes_the_text_of_a_row_that_is_not_pending(
    store: Store, state: State
) -> None:
    """An edit recorded after the claim (or after the end) leaves the row as it was sent."""
    ledger = store.ledger
    (row,) = ledger.ensure([version("Version A")])
    with store.engine.begin() as conn:  # behind the ledger's back
        conn.execute(update(deliveries).where(deliveries.c.id == row.id).values(state=state.value))
    (after,) = ledger.ensure([version("Version B")])
    assert (after.state, after.text, after.content_hash) == (state, "Version A", row.content_hash)
