"""An edit that lands while a post is being published: X receives exactly what the ledger
records (the claim returns the row as claimed, and that copy is published).

Two threads on one SQLite file, each with its own engine as two processes would have: one
delivers a two-part thread through the real X publisher to the fake X, slowed on part 1;
the other records an edit of part 2 meanwhile, as the service's apply does (``ensure``).
"""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from servers.x import XServer

from bot.platforms.x import XPublisher
from bot.publish.deliver import Deliverer
from bot.settings import XSettings
from bot.state import open_store, state_url
from bot.state.ledger import NewDelivery, Row, State

FR = "francediplo"
PART_1 = "Conférence sur le Soudan : la France réunit ses partenaires (1/2)"
PART_2_A = "Version A de la suite, relue avant l'heure (2/2)"
PART_2_B = "Version B de la suite, corrigée à l'heure même (2/2)"


def part(number: int, text: str) -> NewDelivery:
    return NewDelivery(
        post_id="soudan",
        account=FR,
        part=number,
        channel="x",
        lang="fr",
        due_at=datetime.now(UTC),
        text=text,
    )


def deliver_while_editing(
    repo: Path, x: XServer, slow: tuple[float, ...]
) -> tuple[list[Row], list[Row]]:
    """Deliver the thread (parts read before it starts, as the sweep reads them) while the
    other thread, once X holds part 1, records version B of part 2. X answers the posts
    after ``slow`` seconds each. Returns what the delivery returned and what ``ensure``
    returned after the edit."""
    url = state_url(repo, None)
    ledger = open_store(url).ledger
    ledger.ensure([part(1, PART_1), part(2, PART_2_A)])
    rows = ledger.rows("soudan", channel="x")
    assert [r.text for r in rows] == [PART_1, PART_2_A]
    publisher = XPublisher.from_settings(XSettings.from_env([FR], os.environ), {FR: FR})
    assert publisher is not None
    deliverer = Deliverer(ledger, publisher, repo, {FR: FR})
    for seconds in slow:
        x.fail_next("slow", method="POST", path="/2/tweets", seconds=seconds)
    done: list[Row] = []
    worker = threading.Thread(target=lambda: done.extend(deliverer.deliver_chain(rows)))
    worker.start()
    deadline = time.monotonic() + 10
    while not any(r.fault == "slow" for r in x.requests) and time.monotonic() < deadline:
        time.sleep(0.01)
    editor = open_store(url).ledger  # another store: its own connection to the file
    edited = editor.ensure([part(1, PART_1), part(2, PART_2_B)])
    worker.join(30)
    assert not worker.is_alive()
    return done, edited


def test_edit_at_its_due_time_publishes_what_the_ledger_records(repo: Path, live: XServer) -> None:
    """Part 2 edited while X holds part 1: X receives version B, the version the ledger
    records as POSTED (never the copy read before the edit)."""
    done, edited = deliver_while_editing(repo, live, slow=(0.8,))
    assert [(r.part, r.state, r.text) for r in edited] == [
        (1, State.SENDING, PART_1),  # the edit reached part 2 before its claim
        (2, State.PENDING, PART_2_B),
    ]
    timeline = live.timeline(FR)
    assert [t["text"] for t in timeline] == [PART_1, PART_2_B]
    assert [(r.state, r.text, r.remote_id) for r in done] == [
        (State.POSTED, t["text"], t["id"]) for t in timeline
    ]
    ledger = open_store(state_url(repo, None)).ledger
    assert [r.text for r in ledger.rows("soudan")] == [PART_1, PART_2_B]
    assert timeline[1]["reply_to"] == timeline[0]["id"]


def test_edit_at_its_due_time_then_an_ambiguous_answer_is_found_not_sent_again(
    repo: Path, live: XServer
) -> None:
    """The same edit, and part 2's answer is lost (X stores it, then answers after the
    client's timeout): reconciliation looks for the text X received, finds it and records
    it POSTED; nothing is left to be sent a second time."""
    done, _edited = deliver_while_editing(repo, live, slow=(0.8, 3))  # the timeout is 2 s
    part_2 = [r for r in live.requests if r.method == "POST" and r.path == "/2/tweets"][1]
    assert part_2.fault == "slow" and part_2.body["text"] == PART_2_B
    timeline = live.timeline(FR)
    assert [t["text"] for t in timeline] == [PART_1, PART_2_B]
    assert [(r.state, r.remote_id) for r in done] == [(State.POSTED, t["id"]) for t in timeline]
    assert [r.text for r in done] == [PART_1, PART_2_B]
