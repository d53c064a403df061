"""Follow-ups of issue 15, run on the service in this process on a controlled clock
(tests/service/clocked.py): its real Publishing and Deliverer, a real SQLite ledger, the fake X.

- What ``post-now`` arms (a person's explicit act) survives the service's next apply: a draft's
  delivery is not cancelled because the post is still a draft, and a scheduled one is not moved
  back to its planned time (then expired by the lateness window).
- A defect in diplobot or a library while publishing (the publisher raises something that is
  not a PublishError) never leaves the claimed row SENDING while the process lives: it is
  ambiguous (X may have the post), so UNKNOWN, looked up on the timeline before any retry;
  logged once with its traceback, and alerted. Only the defect is patched in.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from loguru import logger
from publish.conftest import WebhookSink
from servers.x import XServer
from service.clocked import FR, ClockedService, alerts_of, fr_post, whole_hour_ahead, x_posts
from service.conftest import ContentRepo

from bot.platforms.x import XPublisher
from bot.publish.base import Outgoing, Receipt
from bot.state.ledger import State

MINUTE = timedelta(minutes=1)


def test_a_rate_limited_post_now_of_a_draft_survives_the_next_apply_and_goes_out(
    content_repo: ContentRepo,
    clocked: ClockedService,
    x: XServer,
    alerts: WebhookSink,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``post-now`` of a draft gets a 429 (due at the reset); a commit about another post is
    applied before the reset: the draft's delivery stays PENDING and goes out at the reset."""
    now = whole_hour_ahead()
    content_repo.write("content/posts/brouillon.yaml", fr_post("brouillon", None, "Brouillon"))
    svc = clocked
    svc.sync(now)
    reset = now + 20 * MINUTE
    x.fail_next("429", method="POST", path="/2/tweets", reset=int(reset.timestamp()))
    code, out = svc.cli(capsys, now, "post-now", "brouillon")
    assert code == 1 and "PENDING" in out, out
    assert svc.row("brouillon").due_at == reset

    content_repo.write("content/posts/autre.yaml", fr_post("autre", now + 3 * 60 * MINUTE, "Autre"))
    svc.sync(now + MINUTE)  # a new revision is applied; the post is still a draft
    row = svc.row("brouillon")
    assert (row.state, row.due_at) == (State.PENDING, reset), row.last_error
    svc.sweep(reset + timedelta(seconds=1))
    assert svc.row("brouillon").state is State.POSTED
    assert [t["text"] for t in x.timeline(FR)] == ["Brouillon"]
    assert x_posts(x) == 2 and alerts.received == []


def test_a_draft_armed_by_post_now_is_still_cancelled_when_its_post_is_deleted(
    content_repo: ContentRepo,
    clocked: ClockedService,
    x: XServer,
    alerts: WebhookSink,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The same rate-limited ``post-now`` of a draft, then the post file is deleted: the
    delivery is cancelled, and nothing reaches X at the reset."""
    now = whole_hour_ahead()
    content_repo.write("content/posts/brouillon.yaml", fr_post("brouillon", None, "Brouillon"))
    svc = clocked
    svc.sync(now)
    reset = now + 20 * MINUTE
    x.fail_next("429", method="POST", path="/2/tweets", reset=int(reset.timestamp()))
    svc.cli(capsys, now, "post-now", "brouillon")
    (content_repo.path / "content/posts/brouillon.yaml").unlink()
    svc.sync(now + MINUTE)
    row = svc.row("brouillon")
    assert row.state is State.RETRACTED
    assert row.last_error == "cancelled: the post was removed from the content"
    svc.sweep(reset + timedelta(seconds=1))
    assert x_posts(x) == 1 and x.timeline(FR) == []


def test_a_post_now_rearmed_delivery_is_not_moved_back_and_expired_by_the_next_apply(
    content_repo: ContentRepo,
    clocked: ClockedService,
    x: XServer,
    alerts: WebhookSink,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A post EXPIRED (window of 15 min); an hour later ``post-now`` re-arms it and X answers
    429 (due at the reset, 10 min later); the editor fixes a typo, which is applied before the
    reset: the delivery keeps the reset as its due time, and goes out then with the fixed text
    (on main, apply set it back to its planned time, an hour past: EXPIRED again)."""
    due = whole_hour_ahead()
    content_repo.write("content/posts/rappel.yaml", fr_post("rappel", due, "Rapel"))
    svc = clocked
    svc.sync(due - MINUTE)
    svc.sweep(due + 30 * MINUTE)  # nothing sent in time (the service was stuck, say)
    assert svc.row("rappel").state is State.EXPIRED

    now = due + 60 * MINUTE
    reset = now + 10 * MINUTE
    x.fail_next("429", method="POST", path="/2/tweets", reset=int(reset.timestamp()))
    code, out = svc.cli(capsys, now, "post-now", "rappel")
    assert code == 1 and "PENDING" in out, out
    assert (svc.row("rappel").state, svc.row("rappel").due_at) == (State.PENDING, reset)

    content_repo.write("content/posts/rappel.yaml", fr_post("rappel", due, "Rappel"))
    svc.sync(now + MINUTE)
    row = svc.row("rappel")
    assert (row.state, row.due_at, row.text) == (State.PENDING, reset, "Rappel")
    svc.sweep(reset + timedelta(seconds=1))
    assert svc.row("rappel").state is State.POSTED
    assert [t["text"] for t in x.timeline(FR)] == ["Rappel"]
    assert len(alerts_of(alerts, "delivery.expired")) == 1  # the first expiry only


def test_a_post_now_of_a_scheduled_post_is_not_moved_to_its_later_planned_time(
    content_repo: ContentRepo,
    clocked: ClockedService,
    x: XServer,
    alerts: WebhookSink,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A post due in 2 hours, sent now with ``post-now`` and rate-limited for 10 min; an edit
    is applied meanwhile: it goes out at the reset, not 2 hours later."""
    due = whole_hour_ahead()
    content_repo.write("content/posts/avance.yaml", fr_post("avance", due, "Avance"))
    svc = clocked
    now = due - 120 * MINUTE
    svc.sync(now)
    reset = now + 10 * MINUTE
    x.fail_next("429", method="POST", path="/2/tweets", reset=int(reset.timestamp()))
    svc.cli(capsys, now, "post-now", "avance")
    content_repo.write("content/posts/avance.yaml", fr_post("avance", due, "Avancé"))
    svc.sync(now + MINUTE)
    assert svc.row("avance").due_at == reset
    svc.sweep(reset + timedelta(seconds=1))
    assert svc.row("avance").state is State.POSTED
    assert [t["text"] for t in x.timeline(FR)] == ["Avancé"]


DEFECT = "'NoneType' object is not subscriptable"


@pytest.fixture
def errors() -> Iterator[list[dict[str, Any]]]:
    """The ERROR records loguru emits meanwhile."""
    found: list[dict[str, Any]] = []
    sink = logger.add(lambda m: found.append(m.record), level="ERROR")
    yield found
    logger.remove(sink)


def test_a_defect_after_x_stored_the_post_is_reconciled_never_left_sending_nor_sent_twice(
    content_repo: ContentRepo,
    clocked: ClockedService,
    x: XServer,
    alerts: WebhookSink,
    monkeypatch: pytest.MonkeyPatch,
    errors: list[dict[str, Any]],
) -> None:
    """The publisher raises TypeError once X has stored the post: the row is not left SENDING;
    it is looked up, found on the timeline and recorded POSTED with X's id. One POST reaches X,
    the defect is logged once with its traceback, and alerted once."""
    real = XPublisher.publish

    def stored_then_raises(self: XPublisher, item: Outgoing) -> Receipt:
        real(self, item)
        raise TypeError(DEFECT)

    monkeypatch.setattr(XPublisher, "publish", stored_then_raises)
    due = whole_hour_ahead()
    content_repo.write("content/posts/defaut.yaml", fr_post("defaut", due, "Défaut"))
    svc = clocked
    svc.sync(due - timedelta(minutes=1))
    svc.sweep(due + timedelta(seconds=1))
    row = svc.row("defaut")
    (tweet,) = x.timeline(FR)
    assert (row.state, row.remote_id) == (State.POSTED, tweet["id"])
    svc.sweep(due + timedelta(minutes=5))
    assert x_posts(x) == 1 and len(x.timeline(FR)) == 1
    (crash,) = [e for e in errors if e["message"] == "publish.crashed"]
    assert isinstance(crash["exception"].value, TypeError)
    assert crash["exception"].traceback is not None
    (alert,) = alerts_of(alerts, "delivery.unknown")
    assert alert["post"] == "defaut" and f"TypeError: {DEFECT}" in alert["reason"]


def test_a_defect_before_the_request_is_retried_once_the_timeline_says_it_is_absent(
    content_repo: ContentRepo,
    clocked: ClockedService,
    x: XServer,
    alerts: WebhookSink,
    monkeypatch: pytest.MonkeyPatch,
    errors: list[dict[str, Any]],
) -> None:
    """The publisher raises before anything reaches X: the row goes UNKNOWN, the timeline
    says it is absent, so it is PENDING with a back-off (not SENDING), and the next sweep
    after it sends it, once."""
    real = XPublisher.publish
    calls: list[str] = []

    def raises_the_first_time(self: XPublisher, item: Outgoing) -> Receipt:
        calls.append(item.text)
        if len(calls) == 1:
            raise KeyError("media_id")
        return real(self, item)

    monkeypatch.setattr(XPublisher, "publish", raises_the_first_time)
    due = whole_hour_ahead()
    content_repo.write("content/posts/reprise.yaml", fr_post("reprise", due, "Reprise"))
    svc = clocked
    svc.sync(due - timedelta(minutes=1))
    svc.sweep(due + timedelta(seconds=1))
    row = svc.row("reprise")
    assert row.state is State.PENDING and row.retry_at is not None
    assert "KeyError: 'media_id'" in (row.last_error or "")
    assert x_posts(x) == 0 and x.timeline(FR) == []
    svc.sweep(row.retry_at + timedelta(seconds=1))
    assert svc.row("reprise").state is State.POSTED
    assert [t["text"] for t in x.timeline(FR)] == ["Reprise"] and x_posts(x) == 1
    assert len([e for e in errors if e["message"] == "publish.crashed"]) == 1


def test_a_post_now_of_a_skipped_post_is_not_skipped_again_by_the_next_apply(
    content_repo: ContentRepo,
    clocked: ClockedService,
    x: XServer,
    alerts: WebhookSink,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A post due in a blackout is SKIPPED; ``post-now`` sends it anyway (the documented
    remedy) and X answers 429; a commit about another post is applied before the reset: the
    delivery stays PENDING and goes out at the reset."""
    due = whole_hour_ahead()
    slots = content_repo.path / "schedules/slots.yaml"
    local = due.astimezone(ZoneInfo("Europe/Paris"))  # blackouts are in the default zone
    blackout = (
        f"blackouts:\n  - from: {(local - MINUTE * 60):%Y-%m-%d %H:%M}\n"
        f"    until: {(local + MINUTE * 60):%Y-%m-%d %H:%M}\n    reason: Deuil national\n"
    )
    slots.write_text(slots.read_text().replace("blackouts: []\n", blackout))
    content_repo.write("content/posts/deuil.yaml", fr_post("deuil", due, "Hommage"))
    svc = clocked
    now = due - 3 * 60 * MINUTE
    svc.sync(now)
    assert svc.row("deuil").state is State.SKIPPED
    reset = now + 10 * MINUTE
    x.fail_next("429", method="POST", path="/2/tweets", reset=int(reset.timestamp()))
    code, out = svc.cli(capsys, now, "post-now", "deuil")
    assert code == 1 and "part 1 was SKIPPED" in out, out
    content_repo.write("content/posts/autre.yaml", fr_post("autre", due + 5 * 60 * MINUTE, "A"))
    svc.sync(now + MINUTE)
    assert (svc.row("deuil").state, svc.row("deuil").due_at) == (State.PENDING, reset)
    svc.sweep(reset + timedelta(seconds=1))
    assert svc.row("deuil").state is State.POSTED
    assert [t["text"] for t in x.timeline(FR)] == ["Hommage"]
