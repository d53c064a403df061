"""The lateness window (``DIPLOBOT_MAX_LATE``) applies to every attempt, first or retry
(docs/deploy.md, "Timing and the lateness window"): a delivery that cannot go out by its due
time plus the window ends EXPIRED with an alert, whether it was never tried, is waiting for a
retry, or X asked it to wait past the window. A thread already under way is completed, and
``post-now`` (a person's explicit act) has no window.

The first test runs ``diplobot run`` as a subprocess on the real clock; the others run the same
service in this process on a controlled clock (tests/service/clocked.py), since their waits
are minutes long.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

import pytest
from publish.conftest import WebhookSink
from servers.x import XServer
from service.clocked import (
    FR,
    ClockedService,
    alerts_of,
    fr_post,
    whole_hour_ahead,
    x_posts,
)
from service.conftest import (
    HANDLES,
    ContentRepo,
    ServiceFactory,
    due_in,
    post_yaml,
    sleep_until,
    wait_for,
)

from bot.state.ledger import State

MINUTE = timedelta(minutes=1)


def test_rate_limit_reset_beyond_the_window_expires_at_once_instead_of_posting_late(
    content_repo: ContentRepo, service: ServiceFactory, x: XServer, alerts: WebhookSink
) -> None:
    """``diplobot run``: X answers 429 with an ``x-rate-limit-reset`` 10 s after the due time
    and the window is 4 s: each delivery ends EXPIRED at once, with the reset in the reason and
    an alert, and nothing reaches X when the reset comes."""
    due = due_in(4)
    content_repo.write("content/posts/limite.yaml", post_yaml("limite", due, "Limité"))
    content_repo.commit("limite")
    reset = int((due + timedelta(seconds=10)).timestamp())
    x.fail_next("429", count=4, method="POST", path="/2/tweets", reset=reset)
    svc = service(DIPLOBOT_MAX_LATE="4", DIPLOBOT_ALERT_WEBHOOK=alerts.url)
    svc.start()

    def expired() -> bool:
        rows = svc.ledger("limite")
        return len(rows) == 4 and {r["state"] for r in rows} == {"EXPIRED"}

    wait_for("EXPIRED on every account", expired, timeout=12)
    assert datetime.now(UTC) < datetime.fromtimestamp(reset, UTC)  # at once, not at the reset
    for row in svc.ledger("limite"):
        assert re.fullmatch(
            r"X rate limit reached \(429\): the next try \(\S+ \S+ UTC\) would be 10 s after "
            r"its due time, beyond the lateness window of 4 s",
            row["last_error"],
        ), row["last_error"]
    wait_for("four alerts", lambda: len(alerts_of(alerts, "delivery.expired")) == 4)
    assert sorted(a["account"] for a in alerts_of(alerts, "delivery.expired")) == sorted(HANDLES)
    sleep_until(datetime.fromtimestamp(reset, UTC) + timedelta(seconds=2.5))
    assert sum(1 for r in x.requests if r.method == "POST" and r.path == "/2/tweets") == 4
    assert all(x.timeline(a) == [] for a in HANDLES)
    assert len(alerts_of(alerts, "delivery.expired")) == 4
    time.sleep(0.1)


def test_retry_after_a_503_and_a_pause_expires_instead_of_going_out_late(
    content_repo: ContentRepo,
    clocked: ClockedService,
    x: XServer,
    alerts: WebhookSink,
) -> None:
    """A 503 at the due time (not on the timeline: retried in 1 min), then the account is
    paused for 30 min: the retry is past the 15-min window, so it ends EXPIRED with an alert
    during the pause, and nothing goes out when the account resumes."""
    due = whole_hour_ahead()
    content_repo.write("content/posts/repli.yaml", fr_post("repli", due, "Repli"))
    svc = clocked
    svc.sync(due - MINUTE)
    x.fail_next("503", method="POST", path="/2/tweets")
    svc.sweep(due + timedelta(seconds=1))
    row = svc.row("repli")
    assert (row.state, row.attempts) == (State.PENDING, 1)
    assert row.retry_at is not None and row.retry_at - due < 2 * MINUTE

    svc.pause(FR)
    svc.sweep(due + 5 * MINUTE)
    assert svc.row("repli").state is State.PENDING  # paused, still within the window
    svc.sweep(due + 30 * MINUTE)
    row = svc.row("repli")
    assert row.state is State.EXPIRED
    assert row.last_error == "due 30 min ago, beyond the lateness window of 15 min"
    assert [a["post"] for a in alerts_of(alerts, "delivery.expired")] == ["repli"]

    svc.pause(FR, paused=False)
    svc.sweep(due + 31 * MINUTE)
    assert svc.row("repli").state is State.EXPIRED
    assert x_posts(x) == 1 and x.timeline(FR) == []
    assert len(alerts_of(alerts, "delivery.expired")) == 1


def test_a_thread_rate_limited_past_the_window_on_its_first_part_expires_whole(
    content_repo: ContentRepo,
    clocked: ClockedService,
    x: XServer,
    alerts: WebhookSink,
) -> None:
    """Part 1 of a thread gets a 429 whose reset is 40 min after the due time: nothing is
    public yet, so the whole thread ends EXPIRED at once (each part alerted), and the reset
    brings nothing."""
    due = whole_hour_ahead()
    content_repo.write("content/posts/fil.yaml", fr_post("fil", due, "Fil 1/2", "Fil 2/2"))
    svc = clocked
    svc.sync(due - MINUTE)
    reset = int((due + 40 * MINUTE).timestamp())
    x.fail_next("429", method="POST", path="/2/tweets", reset=reset)
    svc.sweep(due + timedelta(seconds=1))
    assert [r.state for r in svc.rows("fil")] == [State.EXPIRED, State.EXPIRED]
    assert "429" in (svc.row("fil", 1).last_error or "")
    assert svc.row("fil", 2).last_error == "part 1 expired: beyond the lateness window of 15 min"
    assert sorted(a["part"] for a in alerts_of(alerts, "delivery.expired")) == [1, 2]
    svc.sweep(due + 41 * MINUTE)
    assert x_posts(x) == 1 and x.timeline(FR) == []


def test_a_thread_under_way_is_completed_even_past_the_window(
    content_repo: ContentRepo,
    clocked: ClockedService,
    x: XServer,
    alerts: WebhookSink,
) -> None:
    """Part 1 went out; part 2 gets a 429 whose reset is 40 min after the due time: the
    thread is public, so part 2 is not expired but sent at the reset, as a reply to part 1
    (a half-published thread is worse than a late reply)."""
    due = whole_hour_ahead()
    content_repo.write("content/posts/suite.yaml", fr_post("suite", due, "Suite 1/2", "Suite 2/2"))
    svc = clocked
    svc.sync(due - MINUTE)
    reset = due + 40 * MINUTE
    # Faults are used in order, one per request: part 1 is answered at once ("slow" by 0 s),
    # part 2 is rate-limited.
    x.fail_next("slow", method="POST", path="/2/tweets", seconds=0)
    x.fail_next("429", method="POST", path="/2/tweets", reset=int(reset.timestamp()))
    svc.sweep(due + timedelta(seconds=1))
    assert [r.state for r in svc.rows("suite")] == [State.POSTED, State.PENDING]
    svc.sweep(due + 20 * MINUTE)  # past the window, before the reset: waits
    assert svc.row("suite", 2).state is State.PENDING
    svc.sweep(reset + timedelta(seconds=1))
    assert [r.state for r in svc.rows("suite")] == [State.POSTED, State.POSTED]
    timeline = x.timeline(FR)
    assert [t["text"] for t in timeline] == ["Suite 1/2", "Suite 2/2"]
    assert timeline[1]["reply_to"] == timeline[0]["id"]
    assert alerts.received == []


def test_post_now_has_no_window_and_its_rate_limited_retry_is_due_at_the_reset(
    content_repo: ContentRepo,
    clocked: ClockedService,
    x: XServer,
    alerts: WebhookSink,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """While the service runs (15-min window): ``post-now`` of a draft rate-limited until
    20 min later makes it due at the reset, and the service sends it then instead of expiring
    it; ``post-now`` of a post due 2 hours ago sends it (a person asked for it now)."""
    due = whole_hour_ahead()
    content_repo.write("content/posts/main.yaml", fr_post("main", None, "À la main"))
    content_repo.write("content/posts/tard.yaml", fr_post("tard", due, "Tard"))
    svc = clocked
    now = due - timedelta(hours=2)
    svc.sync(now)  # the service runs, with this content applied

    reset = now + 20 * MINUTE
    x.fail_next("429", method="POST", path="/2/tweets", reset=int(reset.timestamp()))
    code, out = svc.cli(capsys, now, "post-now", "main")
    assert code == 1 and "PENDING" in out, out
    row = svc.row("main")
    assert row.state is State.PENDING and row.due_at == reset
    svc.sweep(now + 16 * MINUTE)  # 16 min after the post-now, before the reset
    assert svc.row("main").state is State.PENDING
    svc.sweep(reset + timedelta(seconds=1))
    assert svc.row("main").state is State.POSTED

    code, out = svc.cli(capsys, due + timedelta(hours=2), "post-now", "tard")
    assert code == 0, out
    assert svc.row("tard").state is State.POSTED
    assert [t["text"] for t in x.timeline(FR)] == ["À la main", "Tard"]
    assert alerts.received == []
