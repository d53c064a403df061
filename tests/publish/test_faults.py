"""The fault matrix: each answer X can give ends in its documented ledger state, no retry loop
is unbounded, and reconciliation finds a post that exists and retries one that does not."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from publish.conftest import WebhookSink
from servers.x import XServer

from bot.cli import main

POST = "entretien-liban"  # human text in every language: no translation involved
FR = "francediplo"


def post_now(repo: Path) -> int:
    return main(["post-now", "--root", str(repo), POST, "--lang", "fr"])


def rows(repo: Path, capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    capsys.readouterr()
    main(["status", "--root", str(repo), POST, "--format", "json"])
    return json.loads(capsys.readouterr().out)


def only_row(repo: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    found = rows(repo, capsys)
    assert len(found) == 1
    return found[0]


def fault(x: XServer, kind: str, count: int = 1, **kw: Any) -> None:
    x.fail_next(kind, count, method="POST", path="/2/tweets", **kw)


def test_429_with_reset_waits_until_the_reset(
    repo: Path, live: XServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """429 with x-rate-limit-reset: PENDING, retry_at = the reset instant; nothing posted."""
    reset = int((datetime.now(UTC) + timedelta(minutes=7)).timestamp())
    fault(live, "429", reset=reset)
    assert post_now(repo) == 1
    row = only_row(repo, capsys)
    assert row["state"] == "PENDING"
    assert datetime.fromisoformat(row["retry_at"]) == datetime.fromtimestamp(reset, UTC)
    assert live.timeline(FR) == []


def test_429_without_reset_backs_off_fifteen_minutes(
    repo: Path, live: XServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """429 with no reset header: PENDING with a bounded wait (X's 15-minute window)."""
    fault(live, "429_no_reset")
    before = datetime.now(UTC)
    assert post_now(repo) == 1
    row = only_row(repo, capsys)
    wait = datetime.fromisoformat(row["retry_at"]) - before
    assert row["state"] == "PENDING" and timedelta(minutes=14) < wait < timedelta(minutes=16)


def test_retry_is_not_attempted_before_retry_at(
    repo: Path, live: XServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second post-now before retry_at sends nothing; after it, the post goes out once."""
    fault(live, "429_no_reset")
    assert post_now(repo) == 1
    posts_before = [r for r in live.requests if r.method == "POST"]
    assert post_now(repo) == 1
    assert [r for r in live.requests if r.method == "POST"] == posts_before
    with time_machine.travel(datetime.now(UTC) + timedelta(minutes=16), tick=True):
        assert post_now(repo) == 0
    assert len(live.timeline(FR)) == 1


@pytest.mark.parametrize("kind", ["500", "503", "drop_before_store"])
def test_ambiguous_failure_of_a_post_that_does_not_exist_is_retried(
    repo: Path, live: XServer, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """5xx or a dropped connection: reconciled, not found on the timeline, so PENDING with a
    back-off; the retry then posts it exactly once."""
    fault(live, kind)
    assert post_now(repo) == 1
    row = only_row(repo, capsys)
    assert row["state"] == "PENDING" and row["retry_at"] is not None
    assert any(r.method == "GET" and r.path.endswith("/tweets") for r in live.requests)
    with time_machine.travel(datetime.now(UTC) + timedelta(minutes=2), tick=True):
        assert post_now(repo) == 0
    assert len(live.timeline(FR)) == 1
    assert only_row(repo, capsys)["attempts"] == 2


@pytest.mark.parametrize("kind", ["slow", "drop_after_store"])
def test_ambiguous_failure_of_a_post_that_exists_is_found_not_reposted(
    repo: Path, live: XServer, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """X stored the post but we never heard back: reconciliation finds it, POSTED, once."""
    fault(live, kind, seconds=5)  # the client times out after 2 s (DIPLOBOT_X_TIMEOUT)
    assert post_now(repo) == 0
    timeline = live.timeline(FR)
    assert len(timeline) == 1
    row = only_row(repo, capsys)
    assert row["state"] == "POSTED" and row["remote_id"] == timeline[0]["id"]


def test_duplicate_refusal_of_a_post_that_exists_is_reconciled(
    repo: Path, live: XServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """403 duplicate and the text is on the timeline (sent by an earlier, lost attempt):
    POSTED with that post's id."""
    text = (repo / "content/posts/2026/11/entretien-ministre-liban.yaml").read_text()
    french = text.split('text: "', 1)[1].split('"\n', 1)[0]
    seeded = live.add_tweet(FR, french)
    assert post_now(repo) == 0  # the fake refuses the duplicate itself
    row = only_row(repo, capsys)
    assert row["state"] == "POSTED"
    assert row["remote_id"] == (seeded["id"] if isinstance(seeded, dict) else seeded)
    assert len(live.timeline(FR)) == 1


def test_duplicate_refusal_without_the_post_fails_with_advice(
    repo: Path, live: XServer, webhook: WebhookSink, capsys: pytest.CaptureFixture[str]
) -> None:
    """403 duplicate but nothing on the timeline: FAILED, told to change the text, alerted."""
    fault(live, "403")
    assert post_now(repo) == 1
    row = only_row(repo, capsys)
    assert row["state"] == "FAILED" and "change the text" in row["last_error"]
    assert [a["event"] for a in webhook.received] == ["delivery.failed"]


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("401", "refused the credentials (401)"),
        ("402", "no credits left"),
        ("400", "X refused the post (400)"),
    ],
)
def test_final_failures_are_failed_and_alerted(
    repo: Path,
    live: XServer,
    webhook: WebhookSink,
    kind: str,
    words: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """401, 402 and 400 are not retried: FAILED with the reason, and an alert is sent."""
    fault(live, kind)
    assert post_now(repo) == 1
    row = only_row(repo, capsys)
    assert row["state"] == "FAILED" and words in row["last_error"]
    assert len(webhook.received) == 1
    alert = webhook.received[0]
    assert alert["event"] == "delivery.failed" and alert["account"] == FR
    assert words in alert["text"]
    assert live.timeline(FR) == []
    # Not retried on its own; `post-now` again is the remedy (tests/publish/test_remedies.py).


def test_retries_are_bounded(
    repo: Path, live: XServer, webhook: WebhookSink, capsys: pytest.CaptureFixture[str]
) -> None:
    """A server that keeps failing gets at most 5 attempts, then FAILED with an alert; a
    further ``post-now`` (a person's explicit act) gives it exactly one attempt more."""
    fault(live, "500", count=20)
    start = datetime.now(UTC)
    for hour in range(5):
        with time_machine.travel(start + timedelta(hours=hour), tick=True):
            post_now(repo)
    row = only_row(repo, capsys)
    assert row["state"] == "FAILED" and row["attempts"] == 5
    assert "gave up after 5 attempts" in row["last_error"]
    posts = [r for r in live.requests if r.method == "POST" and r.path == "/2/tweets"]
    assert len(posts) == 5
    assert webhook.received[-1]["state"] == "FAILED"
    with time_machine.travel(start + timedelta(hours=6), tick=True):
        assert post_now(repo) == 1
    posts = [r for r in live.requests if r.method == "POST" and r.path == "/2/tweets"]
    assert len(posts) == 6
    assert only_row(repo, capsys)["state"] == "FAILED"


def test_unreadable_timeline_leaves_the_delivery_unknown_and_alerts(
    repo: Path, live: XServer, webhook: WebhookSink, capsys: pytest.CaptureFixture[str]
) -> None:
    """If the timeline cannot be read, nothing is retried blindly: UNKNOWN, alerted; the next
    run reconciles it."""
    fault(live, "drop_after_store")
    live.fail_next("503", method="GET", path="/2/users/*/tweets")
    assert post_now(repo) == 1
    assert only_row(repo, capsys)["state"] == "UNKNOWN"
    assert webhook.received and webhook.received[0]["event"] == "delivery.unknown"
    assert post_now(repo) == 0
    row = only_row(repo, capsys)
    assert row["state"] == "POSTED" and len(live.timeline(FR)) == 1
