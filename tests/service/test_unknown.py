"""An UNKNOWN delivery (X may have the post) whose timeline cannot be read: looked up again
with growing waits (``retry_at``), alerted once when it becomes UNKNOWN and once when it is
given up (FAILED), and never sent again without a look-up that worked saying X does not have
it (docs/operations.md, "The ledger").

The first test runs ``diplobot run`` as a subprocess and counts the alerts it sends; the
second runs the same service in this process on a controlled clock (tests/service/clocked.py)
through the six hours before it gives up.
"""

from __future__ import annotations

import itertools
import time
from datetime import timedelta

import pytest
from publish.conftest import WebhookSink
from servers.x import XServer
from service.clocked import (
    FR,
    ClockedService,
    alerts_of,
    fr_post,
    lookups,
    whole_hour_ahead,
    x_posts,
)
from service.conftest import ContentRepo, ServiceFactory, due_in, wait_for

from bot.state.ledger import State

TIMELINE = "/2/users/*/tweets"


def test_an_unknown_delivery_is_alerted_once_not_on_every_sweep(
    content_repo: ContentRepo, service: ServiceFactory, x: XServer, alerts: WebhookSink
) -> None:
    """``diplobot run`` with a 1 s sweep: X stores the post but the answer is lost, and its
    timeline cannot be read. Over the next 12 s: one alert, one look-up, nothing sent again;
    the row stays UNKNOWN with its next look-up a minute later."""
    due = due_in(3)
    content_repo.write("content/posts/incertain.yaml", fr_post("incertain", due, "Incertain"))
    content_repo.commit("incertain")
    x.fail_next("drop_after_store", method="POST", path="/2/tweets")
    x.fail_next("503", count=1000, method="GET", path=TIMELINE)
    svc = service(DIPLOBOT_ALERT_WEBHOOK=alerts.url)
    svc.start()
    wait_for("the UNKNOWN alert", lambda: alerts_of(alerts, "delivery.unknown"), timeout=12)
    time.sleep(12)  # a dozen sweeps
    unknown = alerts_of(alerts, "delivery.unknown")
    assert len(unknown) == 1, [a["text"] for a in unknown]
    assert "could not read the timeline" in unknown[0]["reason"]
    assert lookups(x) == 1
    assert x_posts(x) == 1 and len(x.timeline(FR)) == 1
    (row,) = svc.ledger("incertain")
    assert row["state"] == "UNKNOWN" and row["retry_at"] is not None
    assert alerts.received == unknown


def test_an_unknown_delivery_is_given_up_after_six_hours_with_one_alert_and_never_resent(
    content_repo: ContentRepo,
    clocked: ClockedService,
    x: XServer,
    alerts: WebhookSink,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A sweep every minute for 7 hours while X's timeline stays unreadable: the look-ups
    back off (1, 2, 4, 8, then every 15 min), two alerts in all (UNKNOWN, then FAILED "could
    not confirm" after 6 h), nothing sent again. Once X answers, ``post-now`` looks again,
    finds the post and records it POSTED without sending it twice."""
    due = whole_hour_ahead()
    content_repo.write("content/posts/doute.yaml", fr_post("doute", due, "Doute"))
    svc = clocked
    svc.sync(due - timedelta(minutes=1))
    x.fail_next("drop_after_store", method="POST", path="/2/tweets")
    x.fail_next("503", count=10_000, method="GET", path=TIMELINE)
    seen = []
    for minute in range(0, 7 * 60, 1):
        svc.sweep(due + timedelta(minutes=minute, seconds=1))
        seen.append(lookups(x))
        if svc.row("doute").state is not State.UNKNOWN:
            break
    row = svc.row("doute")
    assert row.state is State.FAILED, row
    assert (row.last_error or "").startswith("could not confirm whether X has it")
    assert "diplobot post-now doute --lang fr" in (row.last_error or "")
    gave_up_after = len(seen) - 1  # minutes
    assert 6 * 60 <= gave_up_after < 6 * 60 + 16
    # When each look-up happened (minutes after the due time): waits grow, then level off.
    at = [m for m in range(1, len(seen)) if seen[m] > seen[m - 1]]
    assert [0, *at[:5]] == [0, 1, 2, 4, 8, 16], at
    assert all(15 <= b - a <= 16 for a, b in itertools.pairwise(at[4:]))
    assert lookups(x) < 35
    assert [a["event"] for a in alerts.received] == ["delivery.unknown", "delivery.failed"]
    assert x_posts(x) == 1 and len(x.timeline(FR)) == 1

    x.reset()  # X's timeline answers again
    code, out = svc.cli(capsys, due + timedelta(hours=7), "post-now", "doute")
    assert code == 0, out
    assert "part 1 was FAILED (could not confirm whether X has it" in out
    assert "it is on X (https://x.com/francediplo/status/" in out
    row = svc.row("doute")
    assert row.state is State.POSTED and row.remote_id == x.timeline(FR)[0]["id"]
    assert x_posts(x) == 0  # (requests forgotten by reset): found, not sent again
    assert len(x.timeline(FR)) == 1
