"""A thread part replies to the previous part's receipt: as published in one run, and rebuilt
from the ledger (remote id, URL, the thread's root) when a thread resumes or is reconciled."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from bot.platforms.outbox import OutboxPublisher
from bot.publish.base import Outgoing, Receipt
from bot.publish.deliver import Deliverer
from bot.state import open_store, state_url
from bot.state.ledger import NewDelivery, State

FR = "francediplo"


class Recording(OutboxPublisher):
    """The outbox, keeping every item it was asked to publish or find."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, {FR: FR})
        self.sent: list[Outgoing] = []
        self.sought: list[Outgoing] = []

    def publish(self, item: Outgoing) -> Receipt:
        self.sent.append(item)
        return super().publish(item)

    def find(self, item: Outgoing, since: datetime) -> Receipt | None:
        self.sought.append(item)
        return super().find(item, since)


def _parts(count: int) -> list[NewDelivery]:
    return [
        NewDelivery("accord", FR, n, "outbox", "fr", datetime.now(UTC), f"Accord ({n}/{count})")
        for n in range(1, count + 1)
    ]


def test_each_part_replies_to_the_previous_receipt_with_the_threads_root(tmp_path: Path) -> None:
    ledger = open_store(state_url(tmp_path, None)).ledger
    ledger.ensure(_parts(3))
    publisher = Recording(tmp_path / "outbox.jsonl")
    done = Deliverer(ledger, publisher, tmp_path, {FR: FR}).deliver_chain(
        ledger.rows("accord", channel="outbox")
    )
    assert [r.state for r in done] == [State.POSTED] * 3
    ids = [r.remote_id for r in done]
    assert [item.reply_to for item in publisher.sent] == [
        None,
        Receipt(ids[0], None, None),
        Receipt(ids[1], None, ids[0]),
    ]


def test_a_resumed_thread_rebuilds_the_receipt_from_the_ledger(tmp_path: Path) -> None:
    """Parts 1 and 2 POSTED by an earlier run: part 3 replies to part 2's recorded id and URL,
    with part 1's id as the root; reconciling part 3 looks for that same reply."""
    ledger = open_store(state_url(tmp_path, None)).ledger
    ledger.ensure(_parts(3))
    rows = ledger.rows("accord", channel="outbox")
    for row, remote in zip(rows[:2], ("111", "222"), strict=True):
        assert ledger.claim(row.id, datetime.now(UTC)) is not None
        url = f"https://example.org/{remote}"
        assert ledger.transition(
            row.id, State.POSTED, expect=[State.SENDING], remote_id=remote, url=url
        )
    publisher = Recording(tmp_path / "outbox.jsonl")
    deliverer = Deliverer(ledger, publisher, tmp_path, {FR: FR})
    done = deliverer.deliver_chain(ledger.rows("accord", channel="outbox"))
    assert [r.state for r in done] == [State.POSTED] * 3
    expected = Receipt("222", "https://example.org/222", "111")
    assert [item.reply_to for item in publisher.sent] == [expected]
    assert deliverer.lookup(done[2]) == Receipt(done[2].remote_id or "", None, "111")
    assert publisher.sought[-1].reply_to == expected
