"""The remedies docs/operations.md gives, run through the real CLI against the fake X:
``post-now ID`` sends again what ended FAILED or EXPIRED (never what is POSTED) and completes a
thread from its last posted part; ``retract ID`` of a delivery whose outcome is UNKNOWN looks
it up first, so a post that is live on X is deleted, not marked RETRACTED behind its back."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from publish.conftest import WebhookSink
from servers.translate import LibreServer
from servers.x import XServer
from service.clocked import FR, clocked_service, fr_post, lookups, whole_hour_ahead, x_posts

from bot.cli import main

POST = "entretien-liban"  # human text in every language: no translation involved
TIMELINE = "/2/users/*/tweets"


def cli(capsys: pytest.CaptureFixture[str], repo: Path, *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main([*args, "--root", str(repo)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def rows(capsys: pytest.CaptureFixture[str], repo: Path, post: str) -> list[dict[str, Any]]:
    code, out = cli(capsys, repo, "status", post, "--format", "json")
    assert code == 0, out
    found: list[dict[str, Any]] = json.loads(out)
    return found


def test_post_now_sends_a_failed_delivery_again(
    repo: Path, live: XServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """401 once: FAILED. ``post-now`` again (the documented remedy once the tokens are
    fixed): it checks the timeline first (it was attempted), then sends it: POSTED, once."""
    live.fail_next("401", method="POST", path="/2/tweets")
    assert cli(capsys, repo, "post-now", POST, "--lang", "fr")[0] == 1
    assert [r["state"] for r in rows(capsys, repo, POST)] == ["FAILED"]
    code, out = cli(capsys, repo, "post-now", POST, "--lang", "fr")
    assert code == 0, out
    assert "part 1 was FAILED (X refused the credentials (401)" in out
    assert "part 1 POSTED https://x.com/francediplo/status/" in out
    (row,) = rows(capsys, repo, POST)
    assert row["state"] == "POSTED" and row["remote_id"] == live.timeline(FR)[0]["id"]
    assert len(live.timeline(FR)) == 1 and lookups(live) == 1
    assert x_posts(live) == 2  # the refused one, then the one that went out


def test_post_now_sends_nothing_again_when_it_cannot_check_the_timeline_first(
    repo: Path, live: XServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """A FAILED delivery that was attempted may be on X: when the timeline cannot be read,
    ``post-now`` sends nothing, leaves it FAILED with its reason, says why and exits 1."""
    live.fail_next("401", method="POST", path="/2/tweets")
    assert cli(capsys, repo, "post-now", POST, "--lang", "fr")[0] == 1
    live.fail_next("503", method="GET", path=TIMELINE)
    code, out = cli(capsys, repo, "post-now", POST, "--lang", "fr")
    assert code == 1
    assert "nothing sent: it may be on X from an earlier attempt, and the timeline could not" in out
    (row,) = rows(capsys, repo, POST)
    assert row["state"] == "FAILED" and "(401)" in row["last_error"] and row["attempts"] == 1
    assert x_posts(live) == 1 and live.timeline(FR) == []


def test_post_now_sends_an_expired_delivery_again(
    repo: Path,
    x: XServer,
    libre: LibreServer,
    webhook: WebhookSink,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The service was down past the window: EXPIRED. ``post-now`` sends it (never
    attempted, so without a look-up), and a second ``post-now`` sends nothing."""
    due = whole_hour_ahead()
    (repo / "content/posts/expire.yaml").write_text(fr_post("expire", due, "Expiré"))
    svc = clocked_service(repo, tmp_path / "state", x, libre, webhook, monkeypatch)
    svc.sync(due + timedelta(hours=1))
    svc.sweep(due + timedelta(hours=1))
    assert svc.row("expire").last_error == "due 60 min ago, beyond the lateness window of 15 min"
    code, out = svc.cli(capsys, due + timedelta(hours=2), "post-now", "expire")
    assert code == 0, out
    assert "part 1 was EXPIRED (due 60 min ago" in out
    row = svc.row("expire")
    assert row.state.value == "POSTED" and row.attempts == 1
    assert [t["text"] for t in x.timeline(FR)] == ["Expiré"]
    assert lookups(x) == 0
    code, out = svc.cli(capsys, due + timedelta(hours=2), "post-now", "expire")
    assert code == 1 and "already published on" in out
    assert x_posts(x) == 1


def test_post_now_completes_a_thread_from_its_last_posted_part(
    repo: Path, live: XServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """Part 1 of a 3-part thread went out, part 2 was refused (FAILED), part 3 never left.
    ``post-now`` sends parts 2 and 3 as replies to the live part 1, which is not sent again."""
    live.fail_next("slow", method="POST", path="/2/tweets", seconds=0)  # part 1: answered
    live.fail_next("401", method="POST", path="/2/tweets")  # part 2
    assert cli(capsys, repo, "post-now", "conference-soudan", "--lang", "fr")[0] == 1
    states = [r["state"] for r in rows(capsys, repo, "conference-soudan")]
    assert states == ["POSTED", "FAILED", "PENDING"]
    first = live.timeline(FR)[0]["id"]

    code, out = cli(capsys, repo, "post-now", "conference-soudan", "--lang", "fr")
    assert code == 0, out
    timeline = live.timeline(FR)
    assert [t["text"][-3:] for t in timeline] == ["1/3", "2/3", "3/3"]
    assert timeline[0]["id"] == first
    assert timeline[1]["reply_to"] == first and timeline[2]["reply_to"] == timeline[1]["id"]
    recorded = sorted(rows(capsys, repo, "conference-soudan"), key=lambda r: r["part"])
    assert [r["state"] for r in recorded] == ["POSTED"] * 3
    assert [r["remote_id"] for r in recorded] == [t["id"] for t in timeline]


def unknown_after_post_now(
    capsys: pytest.CaptureFixture[str], repo: Path, x: XServer, post_fault: str
) -> None:
    """``post-now`` whose answer is lost (``post_fault``) while the timeline cannot be read:
    the delivery is UNKNOWN."""
    x.fail_next(post_fault, method="POST", path="/2/tweets")
    x.fail_next("503", method="GET", path=TIMELINE)
    assert cli(capsys, repo, "post-now", POST, "--lang", "fr")[0] == 1
    assert [r["state"] for r in rows(capsys, repo, POST)] == ["UNKNOWN"]


def test_retract_of_an_unknown_delivery_that_x_has_deletes_it(
    repo: Path, live: XServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """X stored the post but the answer was lost: ``retract`` finds it on the timeline and
    deletes it before marking it RETRACTED."""
    unknown_after_post_now(capsys, repo, live, "drop_after_store")
    remote = live.timeline(FR)[0]["id"]
    code, out = cli(capsys, repo, "retract", POST, "--lang", "fr", "--yes")
    assert code == 0, out
    assert f"deleted {remote}" in out
    assert live.timeline(FR) == []
    (row,) = rows(capsys, repo, POST)
    assert row["state"] == "RETRACTED" and row["remote_id"] == remote
    assert any(r.method == "DELETE" and r.path == f"/2/tweets/{remote}" for r in live.requests)


def test_retract_of_an_unknown_delivery_that_x_does_not_have_cancels_it(
    repo: Path, live: XServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """The connection dropped before X stored anything: ``retract`` looks, finds nothing,
    and cancels the delivery."""
    unknown_after_post_now(capsys, repo, live, "drop_before_store")
    before = lookups(live)
    code, out = cli(capsys, repo, "retract", POST, "--lang", "fr", "--yes")
    assert code == 0, out
    assert "cancelled (not on the timeline)" in out
    assert lookups(live) == before + 1
    (row,) = rows(capsys, repo, POST)
    assert row["state"] == "RETRACTED" and row["remote_id"] is None


def test_retract_of_an_unknown_delivery_refuses_when_the_timeline_cannot_be_read(
    repo: Path, live: XServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """The post is live on X but the timeline cannot be read: ``retract`` changes nothing,
    says why, and exits 1; run again once X answers, it deletes the post."""
    unknown_after_post_now(capsys, repo, live, "drop_after_store")
    live.fail_next("503", method="GET", path=TIMELINE)
    code, out = cli(capsys, repo, "retract", POST, "--lang", "fr", "--yes")
    assert code == 1
    assert "NOT retracted: X may have it, and the timeline could not be read" in out
    assert "run retract again later" in out
    assert [r["state"] for r in rows(capsys, repo, POST)] == ["UNKNOWN"]
    assert len(live.timeline(FR)) == 1
    code, out = cli(capsys, repo, "retract", POST, "--lang", "fr", "--yes")
    assert code == 0, out
    assert live.timeline(FR) == []
    assert [r["state"] for r in rows(capsys, repo, POST)] == ["RETRACTED"]
