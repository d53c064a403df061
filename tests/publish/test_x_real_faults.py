"""Faults a real X deployment meets, through ``diplobot post-now`` and the fake X: network
errors while uploading an image, 2xx answers without the post's id, reconciliation against the
timeline as X really returns it, answers that trickle in, and credentials that belong to
another account (issue 15, items 3, 4, 6, 9 and 13)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from publish.conftest import ACCOUNTS, APP, WebhookSink
from servers.x import XServer

from bot.cli import main
from bot.errors import PublishAmbiguous, PublishError, PublishRejected
from bot.platforms.x import XCredentials, XPublisher
from bot.publish.base import MediaItem, Outgoing
from bot.settings import Secret

FR, EN = "francediplo", "francediplo_EN"
IMAGE_POST = "journee-droits-humains"


def post_now(repo: Path, post: str, lang: str = "fr") -> int:
    return main(["post-now", "--root", str(repo), post, "--lang", lang])


def rows(repo: Path, capsys: pytest.CaptureFixture[str], post: str) -> list[dict[str, Any]]:
    capsys.readouterr()
    main(["status", "--root", str(repo), post, "--format", "json"])
    found: list[dict[str, Any]] = json.loads(capsys.readouterr().out)
    return found


def only_row(repo: Path, capsys: pytest.CaptureFixture[str], post: str) -> dict[str, Any]:
    found = rows(repo, capsys, post)
    assert len(found) == 1, found
    return found[0]


def creates(x: XServer) -> list[Any]:
    return [r for r in x.requests if r.method == "POST" and r.path == "/2/tweets"]


def write_post(repo: Path, post_id: str, text: str, *, image: bool = False) -> None:
    """A French-only draft (no publish_at: only post-now publishes it)."""
    lines = [f"id: {post_id}", "lang: fr", "languages: [fr]", f"text: {json.dumps(text)}"]
    if image:
        lines += ["media:", "  - file: media/drapeau.png", '    alt: "Drapeau français"']
    (repo / "content/posts" / f"{post_id}.yaml").write_text("\n".join(lines) + "\n")


def later(minutes: int = 3) -> Any:
    """A retry's back-off has passed (the first back-off is 1 minute)."""
    return time_machine.travel(datetime.now(UTC) + timedelta(minutes=minutes), tick=True)


@pytest.fixture
def publisher(x: XServer) -> Iterator[XPublisher]:
    """The real publisher for the four example accounts, pointed at the fake X."""
    accounts = {a: XCredentials(Secret(t), Secret(s)) for a, (t, s, _h) in ACCOUNTS.items()}
    handles = {a: h for a, (_t, _s, h) in ACCOUNTS.items()}
    yield XPublisher(Secret(APP[0]), Secret(APP[1]), accounts, handles, api_url=x.url, timeout=1.0)


# -- item 3: a network error while uploading an image ----------------------------------------


@pytest.mark.parametrize("kind", ["drop", "hang"])
def test_network_error_during_image_upload_is_retried_not_failed(
    repo: Path, live: XServer, webhook: WebhookSink, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    """A dropped or hung image upload is no file error: PENDING with a back-off and a message
    about the network; nothing was posted; the retry posts the image post once."""
    live.fail_next(kind, method="POST", path="/2/media/upload")
    assert post_now(repo, IMAGE_POST) == 1
    row = only_row(repo, capsys, IMAGE_POST)
    assert row["state"] == "PENDING" and row["retry_at"] is not None, row
    assert "cannot read image" not in row["last_error"]
    assert "upload" in row["last_error"] and "X" in row["last_error"]
    assert creates(live) == [] and webhook.received == []
    with later():
        assert post_now(repo, IMAGE_POST) == 0
    (posted,) = live.timeline(FR)
    assert len(posted["media"]) == 1
    assert only_row(repo, capsys, IMAGE_POST)["remote_id"] == posted["id"]


def test_unreadable_image_fails_with_its_name_and_nothing_is_sent(
    x: XServer, publisher: XPublisher, tmp_path: Path
) -> None:
    """A genuine local file error stays a final, readable refusal naming the file; X is not
    called at all."""
    item = Outgoing(FR, FR, "Bonjour", media=(MediaItem(tmp_path / "absent.png", None),))
    with pytest.raises(PublishRejected, match=r"cannot read image absent\.png: No such file"):
        publisher.publish(item)
    assert not [r for r in x.requests if r.method == "POST"]


# -- item 4: a 2xx without the post's id -------------------------------------------------------


@pytest.mark.parametrize("kind", ["empty_2xx", "null_data", "malformed_after_store"])
def test_2xx_without_the_post_id_is_reconciled_not_retried_blind(
    repo: Path, live: XServer, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    """X stored the post but answered 201 {}, {"data": null} or cut-off JSON: the delivery is
    ambiguous, found on the timeline, POSTED with the real id; one create request, no error."""
    live.fail_next(kind, method="POST", path="/2/tweets")
    assert post_now(repo, "entretien-liban") == 0
    (posted,) = live.timeline(FR)
    row = only_row(repo, capsys, "entretien-liban")
    assert row["state"] == "POSTED" and row["remote_id"] == posted["id"]
    assert len(creates(live)) == 1
    assert any(r.method == "GET" and r.path.endswith("/tweets") for r in live.requests)


def test_2xx_without_an_id_for_a_post_x_did_not_store_is_retried_after_reconciling(
    repo: Path, live: XServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """201 {} and nothing on the timeline: PENDING with a back-off (not a traceback, not
    SENDING for ever); the retry posts it once."""
    live.answer_next(201, b"{}", method="POST", path="/2/tweets")
    assert post_now(repo, "entretien-liban") == 1
    out = capsys.readouterr().out
    assert "PENDING" in out and "post id" in out
    row = only_row(repo, capsys, "entretien-liban")
    assert row["state"] == "PENDING" and row["retry_at"] is not None
    with later():
        assert post_now(repo, "entretien-liban") == 0
    assert len(live.timeline(FR)) == 1


# -- item 6: what identifies a delivery on the timeline ---------------------------------------


def test_posts_that_differ_only_by_their_link_are_both_published(
    repo: Path, live: XServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """After a 503, the second of two posts differing only by their link is not mistaken for
    the first (X gives both as t.co links): it is retried and published."""
    write_post(repo, "lien-a", "À lire : https://www.diplomatie.gouv.fr/fr/dossiers/a")
    write_post(repo, "lien-b", "À lire : https://www.diplomatie.gouv.fr/fr/dossiers/b")
    assert post_now(repo, "lien-a") == 0
    live.fail_next("503", method="POST", path="/2/tweets")
    assert post_now(repo, "lien-b") == 1
    first = only_row(repo, capsys, "lien-a")
    second = only_row(repo, capsys, "lien-b")
    assert second["state"] == "PENDING" and second["remote_id"] is None
    with later():
        assert post_now(repo, "lien-b") == 0
    second = only_row(repo, capsys, "lien-b")
    assert [t["text"][-1] for t in live.timeline(FR)] == ["a", "b"]
    assert second["remote_id"] == live.timeline(FR)[1]["id"] != first["remote_id"]


@pytest.mark.parametrize(
    "text",
    [
        "France & Liban : une coopération <renforcée> au service de la paix.",
        "Lire l'entretien : diplomatie.gouv.fr/fr/liban?a=1&b=2 — et l'agenda & le reste.",
    ],
)
def test_lost_answer_is_reconciled_against_html_escaped_text_with_t_co_links(
    repo: Path, live: XServer, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    """X gives &amp;, &lt;, &gt; and t.co links back: the post stored before the connection
    dropped is still recognised, POSTED once."""
    write_post(repo, "echappe", text)
    live.fail_next("drop_after_store", method="POST", path="/2/tweets")
    assert post_now(repo, "echappe") == 0
    (posted,) = live.timeline(FR)
    assert only_row(repo, capsys, "echappe")["remote_id"] == posted["id"]
    assert len(creates(live)) == 1


def test_lost_answer_of_an_image_post_is_reconciled_despite_its_trailing_media_link(
    repo: Path, live: XServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """An image post comes back with a t.co link to its media appended: still recognised."""
    live.fail_next("drop_after_store", method="POST", path="/2/tweets")
    assert post_now(repo, IMAGE_POST) == 0
    (posted,) = live.timeline(FR)
    assert only_row(repo, capsys, IMAGE_POST)["remote_id"] == posted["id"]
    assert len(creates(live)) == 1


def test_a_reply_with_the_same_text_is_not_taken_for_a_first_part(
    repo: Path, live: XServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same text posted as a reply to something else is not this delivery (a first part
    replies to nothing): after a 503 it stays to be retried."""
    write_post(repo, "reponse", "Merci à nos partenaires pour leur soutien.")
    root = live.add_tweet(FR, "Un autre fil.")
    live.add_tweet(FR, "Merci à nos partenaires pour leur soutien.", reply_to=root["id"])
    live.fail_next("503", method="POST", path="/2/tweets")
    assert post_now(repo, "reponse") == 1
    row = only_row(repo, capsys, "reponse")
    assert row["state"] == "PENDING" and row["remote_id"] is None


def test_a_post_without_the_image_is_not_taken_for_the_image_post(
    repo: Path, live: XServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same text without media is not the image post: after a 503 it is retried."""
    text = "La France soutient les défenseurs des droits humains."
    write_post(repo, "avec-image", text, image=True)
    live.add_tweet(FR, text)
    live.fail_next("503", method="POST", path="/2/tweets")
    assert post_now(repo, "avec-image") == 1
    row = only_row(repo, capsys, "avec-image")
    assert row["state"] == "PENDING" and row["remote_id"] is None


def test_thread_parts_are_reconciled_by_their_reply_target(
    repo: Path, live: XServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """A thread's part 2 whose answer was lost is found as the reply to part 1."""
    live.fail_next("drop_after_store", method="POST", path="/2/tweets", after=1)
    assert post_now(repo, "conference-soudan") == 0
    timeline = live.timeline(FR)
    assert len(timeline) == 3 and len(creates(live)) == 3
    parts = sorted(rows(repo, capsys, "conference-soudan"), key=lambda r: r["part"])
    assert [r["remote_id"] for r in parts if r["account"] == FR] == [t["id"] for t in timeline]


# -- item 13: an overall deadline on every X request ------------------------------------------


def test_trickled_answer_is_cut_at_the_deadline_and_reconciled(
    repo: Path, live: XServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """An answer trickling one byte a second never trips the 2 s read timeout; the deadline
    (3 × DIPLOBOT_X_TIMEOUT) ends the request, and the post X stored is found: POSTED once."""
    live.fail_next("trickle", method="POST", path="/2/tweets", seconds=1.0)
    outcome: list[int] = []
    started = time.monotonic()
    worker = threading.Thread(target=lambda: outcome.append(post_now(repo, "entretien-liban")))
    worker.start()
    worker.join(30)
    assert not worker.is_alive(), "post-now still waiting on the trickled answer after 30 s"
    assert time.monotonic() - started < 15
    assert outcome == [0]
    (posted,) = live.timeline(FR)
    row = only_row(repo, capsys, "entretien-liban")
    assert row["state"] == "POSTED" and row["remote_id"] == posted["id"]


def test_trickled_image_upload_is_cut_at_the_deadline_and_retried(
    repo: Path, live: XServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """A trickled image upload ends at the deadline: no post exists, so PENDING, retried."""
    live.fail_next("trickle", method="POST", path="/2/media/upload", seconds=1.0)
    started = time.monotonic()
    assert post_now(repo, IMAGE_POST) == 1
    assert time.monotonic() - started < 15
    row = only_row(repo, capsys, IMAGE_POST)
    assert row["state"] == "PENDING" and creates(live) == []


def test_trickled_timeline_is_cut_at_the_deadline(x: XServer, publisher: XPublisher) -> None:
    """Reading the timeline has the same deadline; a read is never ambiguous."""
    x.fail_next("trickle", method="GET", path="/2/users/*/tweets", seconds=0.5)
    started = time.monotonic()
    with pytest.raises(PublishError) as caught:
        publisher.find(Outgoing(FR, FR, "Bonjour"), datetime.now(UTC) - timedelta(minutes=5))
    assert not isinstance(caught.value, PublishAmbiguous)
    assert time.monotonic() - started < 3 * 1.0 + 2  # the deadline, plus the user look-up


@pytest.mark.parametrize("kind", ["drop_after_store", "slow", "trickle"])
def test_create_written_but_not_answered_is_ambiguous(
    x: XServer, publisher: XPublisher, kind: str
) -> None:
    """Once the request is written, a lost connection, a read timeout or the deadline leaves
    the post maybe stored: ambiguous (reconcile), never a plain retry."""
    publisher.whoami(FR)  # the account check, done before the fault
    x.fail_next(kind, method="POST", path="/2/tweets", seconds=0.5 if kind == "trickle" else 5)
    with pytest.raises(PublishAmbiguous):
        publisher.publish(Outgoing(FR, FR, "Peut-être publié"))
    assert len(x.timeline(FR)) == 1


def test_request_that_never_reaches_x_is_retryable_not_ambiguous(publisher: XPublisher) -> None:
    """X's listen queue is full, the connection never opens: nothing was sent, so the
    delivery is simply retried (no reconciliation needed)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _ in range(3):  # fill the accept queue: later connection attempts hang
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    publisher.api_url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    try:
        with pytest.raises(PublishError, match="nothing was sent") as caught:
            publisher.publish(Outgoing(FR, FR, "Jamais parti"))
    finally:
        for sock in [server, *fillers]:
            sock.close()
    assert not isinstance(caught.value, PublishAmbiguous)
    assert time.monotonic() - started < 3 * 1.0


# -- item 9: the credentials must be the account's -------------------------------------------


def test_credentials_of_another_account_are_refused_before_anything_is_sent(
    repo: Path,
    live: XServer,
    webhook: WebhookSink,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The English account's variables hold the French account's token: FAILED naming both
    handles and the variables to fix; nothing reaches the French timeline."""
    token, secret, _handle = ACCOUNTS[FR]
    monkeypatch.setenv("DIPLOBOT_FRANCEDIPLO_EN_ACCESS_TOKEN", token)
    monkeypatch.setenv("DIPLOBOT_FRANCEDIPLO_EN_ACCESS_SECRET", secret)
    assert post_now(repo, "entretien-liban", lang="en") == 1
    row = only_row(repo, capsys, "entretien-liban")
    assert row["state"] == "FAILED"
    error = row["last_error"]
    assert "belong to @francediplo," in error and "handle @francediplo_EN" in error
    assert "DIPLOBOT_FRANCEDIPLO_EN_ACCESS_TOKEN" in error
    assert "DIPLOBOT_FRANCEDIPLO_EN_ACCESS_SECRET" in error
    assert token not in error and secret not in error
    assert live.timeline(FR) == [] and live.timeline(EN) == []
    assert [r for r in live.requests if r.method == "POST"] == []
    assert [a["event"] for a in webhook.received] == ["delivery.failed"]


def test_the_account_check_is_made_once_per_account_per_process(repo: Path, live: XServer) -> None:
    """A 3-part thread on four accounts: one GET /2/users/me per account, before its first
    post."""
    assert main(["post-now", "--root", str(repo), "conference-soudan"]) == 0
    checks = [r for r in live.requests if r.path == "/2/users/me"]
    assert sorted(r.account or "" for r in checks) == sorted(ACCOUNTS)
    for account in ACCOUNTS:
        mine = [r for r in live.requests if r.account == account]
        assert mine[0].path == "/2/users/me"


def test_outbox_reconciles_by_text_link_images_and_reply_target(tmp_path: Path) -> None:
    """The dry-run outbox matches a delivery the same way: a post differing only by its link,
    by its reply target or by its images is another post."""
    from bot.platforms.outbox import OutboxPublisher

    outbox = OutboxPublisher(tmp_path / "outbox.jsonl")
    since = datetime.now(UTC) - timedelta(minutes=1)
    first = outbox.publish(Outgoing(FR, FR, "Lire https://exemple.fr/a"))
    reply = outbox.publish(Outgoing(FR, FR, "Suite", reply_to=first))
    image = MediaItem(tmp_path / "i.png", None)

    assert outbox.find(Outgoing(FR, FR, "Lire  https://EXEMPLE.fr/a/"), since) == first
    assert outbox.find(Outgoing(FR, FR, "Lire https://exemple.fr/b"), since) is None
    assert outbox.find(Outgoing(FR, FR, "Suite", reply_to=first), since) == reply
    assert outbox.find(Outgoing(FR, FR, "Suite"), since) is None
    assert outbox.find(Outgoing(FR, FR, "Lire https://exemple.fr/a", media=(image,)), since) is None
    assert outbox.find(Outgoing(EN, EN, "Lire https://exemple.fr/a"), since) is None
