"""A replica that lost the lease sends nothing, even with a claim in hand: the deliverer asks
``may_send`` after the claim, and the X publisher asks it again on its event loop right before
the request that creates the post (bot/publish/base.py, ``Outgoing.may_send``). Through the
real X publisher to the fake X, on a real SQLite ledger."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from servers.x import XServer

from bot.platforms.x import XPublisher
from bot.publish.deliver import Deliverer
from bot.settings import XSettings
from bot.state import open_store, state_url
from bot.state.ledger import NewDelivery, State

FR = "francediplo"


def deliverer_and_row(repo: Path) -> tuple[Deliverer, int]:
    ledger = open_store(state_url(repo, None)).ledger
    due = datetime.now(UTC)
    (row,) = ledger.ensure([NewDelivery("gate", FR, 1, "x", "fr", due, "Bonjour la porte")])
    publisher = XPublisher.from_settings(XSettings.from_env([FR], os.environ), {FR: FR})
    assert publisher is not None
    return Deliverer(ledger, publisher, repo, {FR: FR}), row.id


def posts(x: XServer) -> int:
    return sum(1 for r in x.requests if (r.method, r.path) == ("POST", "/2/tweets"))


def test_a_deliverer_that_may_not_send_gives_its_claim_back(repo: Path, live: XServer) -> None:
    deliverer, row_id = deliverer_and_row(repo)
    deliverer.may_send = lambda: False
    (done,) = deliverer.deliver_chain([deliverer.ledger.get(row_id)])
    assert done.state is State.PENDING and done.retry_at is None
    assert done.last_error is not None and "lost its lease" in done.last_error
    assert done.attempts == 1 and posts(live) == 0
    deliverer.may_send = lambda: True  # the replica that holds the lease now
    (done,) = deliverer.deliver_chain([deliverer.ledger.get(row_id)])
    assert done.state is State.POSTED and posts(live) == 1


def test_x_asks_again_right_before_its_request(repo: Path, live: XServer) -> None:
    """``may_send`` turns false between the deliverer's check and X's request (the replica
    was frozen in between, and another took over): X receives no post."""
    deliverer, row_id = deliverer_and_row(repo)
    answers = iter([True, False])
    deliverer.may_send = lambda: next(answers)
    (done,) = deliverer.deliver_chain([deliverer.ledger.get(row_id)])
    assert done.state is State.PENDING and posts(live) == 0
    assert [r.path for r in live.requests] == ["/2/users/me"]  # the account check only
