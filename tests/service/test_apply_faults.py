"""Faults while the service applies a revision (issue 15, items 1, 5, 8 and 15).

Each test runs the real ``diplobot run`` on a followed git repository (see conftest.py), or, for
the one corner no server can reach (a check that raises), the service in this process; and
asserts on what an operator and the public see: ``diplobot status``, ``/status``, the alert
webhook, and what the fake X and the fake LibreTranslate received.
"""

from __future__ import annotations

import os
import shutil
import struct
import time
import zlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from publish.conftest import WebhookSink, env_for
from servers.translate import FakeEngine, LibreServer
from servers.x import XServer
from service.conftest import (
    BRANCH,
    HANDLES,
    ContentRepo,
    ServiceFactory,
    due_in,
    post_yaml,
    sleep_until,
    wait_for,
)

from bot.content import loader
from bot.errors import PublishRejected
from bot.publish.media import RevisionMedia
from bot.service import Service, views
from bot.settings import ServiceSettings, Settings
from bot.source import GitSource
from bot.state import open_store
from bot.wiring import Wiring

LANGS = dict(zip(HANDLES, ("fr", "en", "ar", "es"), strict=True))
ON_TIME = timedelta(seconds=2)


def tweet_posts(x: XServer) -> int:
    return sum(1 for r in x.requests if r.method == "POST" and r.path == "/2/tweets")


def states(rows: list[dict[str, Any]]) -> dict[tuple[str, int], str]:
    """(account, part) → state, from ``diplobot status --format json`` or ``/status``."""
    return {(r["account"], r["part"]): r["state"] for r in rows}


def alerts_of(sink: WebhookSink, event: str) -> list[dict[str, Any]]:
    return [a for a in sink.received if a["event"] == event]


def png(seed: int) -> bytes:
    """A valid 2×1 RGB PNG whose pixels depend on ``seed`` (so two seeds differ in bytes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 2, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00" + bytes([seed % 256, 7, 9, seed // 256 % 256, 3, 1]))
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


# -- item 1: a translation outage at apply time ---------------------------------------------


def test_translation_outage_at_apply_is_retried_until_every_language_is_published(
    content_repo: ContentRepo,
    service: ServiceFactory,
    x: XServer,
    libre: LibreServer,
    alerts: WebhookSink,
) -> None:
    """LibreTranslate answers 500 while a commit is applied and recovers a second later, with
    no further commit: the deliveries awaiting translation are in the ledger (HELD, with the
    reason), the translation is tried again, and all four languages go out on time, once."""
    svc = service(DIPLOBOT_ALERT_WEBHOOK=alerts.url)
    svc.start()
    libre.fail_next("500", count=100_000)  # down until reset
    due = due_in(9)
    text = "Conférence de presse du ministre"
    content_repo.write("content/posts/presse.yaml", post_yaml("presse", due, text, human=False))
    rev = content_repo.commit("presse, to be machine-translated")
    wait_for("the commit to be applied", lambda: svc.status()["revision"] == rev)
    assert libre.calls, "the engine was asked"

    rows = svc.ledger("presse")  # diplobot status presse --format json
    assert states(rows) == {
        ("francediplo", 1): "PENDING",
        ("francediplo_EN", 1): "HELD",
        ("francediplo_AR", 1): "HELD",
        ("francediplo_ES", 1): "HELD",
    }
    for row in rows:
        if row["state"] == "HELD":
            assert row["last_error"].startswith(f"awaiting translation into {row['lang']}: "), row
            assert "answered with an error" in row["last_error"], row
    listed = svc.cli("status", "presse")
    assert listed.returncode == 0 and listed.stdout.count(" HELD ") == 3, listed.stdout
    held = wait_for("the held alerts", lambda: len(alerts_of(alerts, "delivery.held")) == 3)
    assert held

    time.sleep(1.0)
    libre.reset()  # the engine recovers; no commit follows
    engine = FakeEngine()
    wait_for(
        "every language on X",
        lambda: all(x.timeline(a) for a in HANDLES),
        timeout=15,
    )
    time.sleep(1.5)  # more sweeps: nothing is sent twice
    for account, lang in LANGS.items():
        (tweet,) = x.timeline(account)
        assert tweet["text"] == (text if lang == "fr" else engine.translate(text, "fr", lang))
        assert timedelta(0) <= tweet["created_at"] - due <= ON_TIME, account
    assert tweet_posts(x) == 4
    assert set(states(svc.ledger("presse")).values()) == {"POSTED"}
    assert alerts_of(alerts, "delivery.expired") == []


def test_translation_that_never_recovers_ends_expired_and_alerted(
    content_repo: ContentRepo,
    service: ServiceFactory,
    x: XServer,
    libre: LibreServer,
    alerts: WebhookSink,
) -> None:
    """The engine stays down past the lateness window: each delivery awaiting translation ends
    EXPIRED with the translation's error as its reason, an alert says so, and nothing vanishes;
    the French original goes out on time."""
    svc = service(DIPLOBOT_ALERT_WEBHOOK=alerts.url, DIPLOBOT_MAX_LATE="2")
    svc.start()
    libre.fail_next("500", count=100_000)
    due = due_in(4)
    content_repo.write(
        "content/posts/panne.yaml", post_yaml("panne", due, "Traduction en panne", human=False)
    )
    content_repo.commit("panne")
    wait_for("the French original on X", lambda: x.timeline("francediplo"), timeout=15)
    wait_for(
        "three deliveries EXPIRED",
        lambda: sorted(states(svc.ledger("panne")).values()) == ["EXPIRED"] * 3 + ["POSTED"],
        timeout=15,
    )
    for row in svc.ledger("panne"):
        if row["state"] == "EXPIRED":
            assert row["last_error"].startswith(
                f"no translation into {row['lang']} before the lateness window of 2 s closed: "
            ), row
            assert "answered with an error" in row["last_error"]
    expired = wait_for(
        "three EXPIRED alerts", lambda: len(alerts_of(alerts, "delivery.expired")) == 3
    )
    assert expired
    assert sorted(a["account"] for a in alerts_of(alerts, "delivery.expired")) == sorted(
        HANDLES[1:]
    )
    time.sleep(1.5)
    assert tweet_posts(x) == 1
    assert len(alerts_of(alerts, "delivery.expired")) == 3  # once each


# -- item 5: a revision whose checking raises ----------------------------------------------


@pytest.fixture
def in_process(
    tmp_path: Path,
    content_repo: ContentRepo,
    x: XServer,
    libre: LibreServer,
    alerts: WebhookSink,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[Service, Path]]:
    """The service in this process (not started: the test calls ``sync`` itself), following
    ``content_repo``, with the alert webhook."""
    for key, value in env_for(x, libre, DIPLOBOT_ALERT_WEBHOOK=alerts.url).items():
        monkeypatch.setenv(key, value)
    state = tmp_path / "in-process"
    state.mkdir()
    store = open_store(f"sqlite:///{state / 'state.sqlite'}")
    source = GitSource(str(content_repo.path), BRANCH, state / "repo")
    wiring = Wiring(Settings.from_env(os.environ))
    yield Service(source, store, state, ServiceSettings(), wiring=wiring), state
    store.close()


def test_revision_whose_validation_raises_is_reported_and_later_commits_still_apply(
    content_repo: ContentRepo,
    in_process: tuple[Service, Path],
    alerts: WebhookSink,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A check that raises (injected: the one corner no server reaches) is reported in /status
    and by an alert, once; the last good revision keeps running; the next commit applies."""
    real_validate = loader.validate

    def validate(root: Any, cache: Any = None, **options: Any) -> Any:
        if (Path(root) / "content" / "posts" / "boom.yaml").exists():
            raise RecursionError("maximum recursion depth exceeded")
        return real_validate(root, cache, **options)

    monkeypatch.setattr("bot.service.lifecycle.validate", validate)
    svc, _state = in_process
    content_repo.write("content/posts/bon.yaml", post_yaml("bon", due_in(3600), "Bon"))
    good = content_repo.commit("bon")
    svc.sync()
    assert views.status(svc)["revision"] == good

    content_repo.write("content/posts/boom.yaml", post_yaml("boom", due_in(3600), "Boum"))
    bad = content_repo.commit("boom")
    svc.sync()  # does not raise
    status = views.status(svc)
    assert (status["revision"], status["seen_revision"]) == (good, bad)
    assert status["content_valid"] is False
    (error,) = status["content_errors"]
    assert error.startswith(
        f"revision {bad}: could not be applied: RecursionError: maximum recursion depth "
        f"exceeded (still running {good}; tried again in "
    ), error
    (alert,) = wait_for("the alert", lambda: alerts_of(alerts, "content.failed"))
    assert alert["revision"] == bad and good in alert["text"]
    assert "RecursionError" in alert["reason"]
    svc.sync()  # the same revision again: not re-applied over and over, not alerted again
    time.sleep(0.3)
    assert len(alerts_of(alerts, "content.failed")) == 1
    assert {r["post"] for r in views.status(svc)["upcoming"]} == {"bon"}

    content_repo.remove("content/posts/boom.yaml")
    content_repo.write("content/posts/suite.yaml", post_yaml("suite", due_in(3600), "Suite"))
    fixed = content_repo.commit("remove boom, add suite")
    svc.sync()
    status = views.status(svc)
    assert (status["revision"], status["content_valid"], status["content_errors"]) == (
        fixed,
        True,
        [],
    )
    assert {r["post"] for r in status["upcoming"]} == {"bon", "suite"}


def test_hostile_post_file_is_reported_and_a_restart_keeps_the_last_good_revision_running(
    content_repo: ContentRepo, service: ServiceFactory, x: XServer, alerts: WebhookSink
) -> None:
    """A post whose checking raises on today's code (a NUL byte in a media path) is reported
    as invalid with an alert, and the last good revision's post still goes out. Restarted on
    that revision, the service does not crash-loop: it reports it again and runs the last good
    revision, whose next post goes out; the fixing commit is applied."""
    first, later = due_in(8), due_in(22)
    content_repo.write("content/posts/bon.yaml", post_yaml("bon", first, "Toujours publié"))
    content_repo.write("content/posts/apres.yaml", post_yaml("apres", later, "Publié après"))
    good = content_repo.commit("bon, apres")
    svc = service(DIPLOBOT_ALERT_WEBHOOK=alerts.url)
    svc.start()
    assert svc.status()["revision"] == good

    hostile = post_yaml("piege", due_in(3600), "Piège") + 'media:\n  - file: "media/a\\0b.png"\n'
    content_repo.write("content/posts/piege.yaml", hostile)
    bad = content_repo.commit("a NUL in a media path")
    wait_for("the hostile revision to be seen", lambda: svc.status()["seen_revision"] == bad)
    status = svc.status()
    assert status["revision"] == good and status["content_valid"] is False
    assert status["content_errors"], status
    wait_for(
        "an alert about the hostile revision",
        lambda: [a for a in alerts.received if a.get("revision") == bad],
    )
    wait_for("the first post on every account", lambda: all(map(x.timeline, HANDLES)))
    assert svc.proc is not None and svc.proc.poll() is None
    assert svc.stop() == 0

    received = len(alerts.received)
    svc.start()  # on the hostile revision: ready, running the last good one
    status = svc.status()
    assert (status["revision"], status["seen_revision"]) == (good, bad)
    assert status["content_valid"] is False and status["content_errors"]
    wait_for(
        "the hostile revision reported again",
        lambda: [a for a in alerts.received[received:] if a.get("revision") == bad],
    )
    wait_for(
        "the later post on every account",
        lambda: all(len(x.timeline(a)) == 2 for a in HANDLES),
        timeout=25,
    )
    for account in HANDLES:
        tweet = x.timeline(account)[1]
        assert tweet["text"].startswith("Publié après")
        assert timedelta(0) <= tweet["created_at"] - later <= ON_TIME, account
    assert svc.proc is not None and svc.proc.poll() is None

    content_repo.remove("content/posts/piege.yaml")
    fixed = content_repo.commit("remove the hostile post")
    wait_for("the fix to be applied", lambda: svc.status()["revision"] == fixed)
    assert svc.status()["content_valid"] is True
    assert tweet_posts(x) == 8


# -- item 8: removed content never goes out -------------------------------------------------


def thread_yaml(post_id: str, due: Any, parts: int) -> str:
    lines = [f"id: {post_id}", "lang: fr", f"publish_at: {due.isoformat(timespec='seconds')}"]
    for n in range(1, parts + 1):
        indent = "" if n == 1 else "    "
        if n == 2:
            lines.append("thread:")
        lead = "" if n == 1 else "  - "
        lines.append(f'{lead}text: "Fil {n}/{parts}"')
        lines.append(f"{indent}translations:")
        for lang in ("en", "ar", "es"):
            lines.append(f'{indent}  {lang}: "Thread {n}/{parts} [{lang}]"')
    return "\n".join(lines) + "\n"


def test_thread_edited_from_three_parts_to_two_never_publishes_the_old_third_part(
    content_repo: ContentRepo, service: ServiceFactory, x: XServer
) -> None:
    """A pending 3-part thread edited down to 2 parts: part 3 of every account is cancelled
    (RETRACTED, "removed from the post"), and X receives two parts per account, never a third."""
    due = due_in(8)
    content_repo.write("content/posts/fil.yaml", thread_yaml("fil", due, 3))
    content_repo.commit("a thread of three")
    svc = service()
    svc.start()
    assert set(states(svc.ledger("fil")).values()) == {"PENDING"}
    assert len(svc.ledger("fil")) == 12

    content_repo.write("content/posts/fil.yaml", thread_yaml("fil", due, 2))
    rev = content_repo.commit("the thread has two parts now")
    wait_for("the edit to be applied", lambda: svc.status()["revision"] == rev)
    rows = svc.ledger("fil")
    assert {(r["account"], r["part"]): (r["state"], r["last_error"]) for r in rows} == {
        **{(a, p): ("PENDING", None) for a in HANDLES for p in (1, 2)},
        **{(a, 3): ("RETRACTED", "cancelled: part 3 was removed from the post") for a in HANDLES},
    }

    wait_for("two parts on every account", lambda: all(len(x.timeline(a)) == 2 for a in HANDLES))
    sleep_until(due + timedelta(seconds=3))
    for account in HANDLES:
        texts = [t["text"] for t in x.timeline(account)]
        assert [t.split(" [")[0].replace("Thread", "Fil") for t in texts] == ["Fil 1/2", "Fil 2/2"]
    assert tweet_posts(x) == 8
    assert states(svc.ledger("fil")) == {
        **{(a, p): "POSTED" for a in HANDLES for p in (1, 2)},
        **{(a, 3): "RETRACTED" for a in HANDLES},
    }


def test_post_deleted_while_unknown_is_reconciled_and_never_sent_again(
    content_repo: ContentRepo, service: ServiceFactory, x: XServer, alerts: WebhookSink
) -> None:
    """Deliveries left UNKNOWN (X stored two of the four posts, refused two with a 503, and its
    timeline could not be read) when their post is deleted from the repository: the two on X
    end POSTED and are reported, the two absent end cancelled, and nothing is sent again."""
    due = due_in(4)
    content_repo.write("content/posts/efface.yaml", post_yaml("efface", due, "À effacer"))
    content_repo.commit("efface")
    x.fail_next("slow", count=2, method="POST", path="/2/tweets", seconds=3)
    x.fail_next("503", count=2, method="POST", path="/2/tweets")
    x.fail_next("503", count=100_000, method="GET", path="/2/users/*/tweets")
    svc = service(DIPLOBOT_ALERT_WEBHOOK=alerts.url)
    svc.start()
    wait_for(
        "four UNKNOWN deliveries",
        lambda: set(states(svc.ledger("efface")).values()) == {"UNKNOWN"},
        timeout=20,
    )
    on_x = {a for a in HANDLES if x.timeline(a)}
    assert len(on_x) == 2 and tweet_posts(x) == 4

    content_repo.remove("content/posts/efface.yaml")
    rev = content_repo.commit("delete efface")
    wait_for("the deletion to be applied", lambda: svc.status()["revision"] == rev)
    # The timeline is still unreadable: nothing can be settled yet, and nothing is re-sent.
    time.sleep(2)
    assert tweet_posts(x) == 4
    assert "PENDING" not in states(svc.ledger("efface")).values()

    posts_before = tweet_posts(x)
    x.reset()  # X's timeline can be read again
    wait_for(
        "every delivery settled",
        lambda: not {"UNKNOWN", "PENDING"} & set(states(svc.ledger("efface")).values()),
        timeout=15,
    )
    time.sleep(2)  # more sweeps
    assert tweet_posts(x) == 0, "nothing sent after the deletion"
    assert posts_before == 4
    rows = {r["account"]: r for r in svc.ledger("efface")}
    for account in HANDLES:
        row = rows[account]
        if account in on_x:
            (tweet,) = x.timeline(account)
            assert (row["state"], row["remote_id"]) == ("POSTED", tweet["id"])
        else:
            assert x.timeline(account) == []
            assert row["state"] == "RETRACTED"
            assert row["last_error"] == (
                "cancelled: the post was removed from the content (not found on the timeline)"
            )
    reported = wait_for(
        "the posts found on X reported", lambda: alerts_of(alerts, "delivery.posted")
    )
    assert sorted(a["account"] for a in reported) == sorted(on_x)
    assert all("removed from the content" in a["reason"] for a in reported)


# -- item 15: publish only what was validated ----------------------------------------------


def image_post(due: Any) -> str:
    return post_yaml("photo", due, "Photo du jour") + (
        "media:\n  - file: media/photo.png\n    alt: Une photo\n"
    )


@pytest.mark.parametrize("change", ["link_out", "bytes_changed"])
def test_image_of_a_refused_revision_is_never_uploaded(
    tmp_path: Path,
    content_repo: ContentRepo,
    service: ServiceFactory,
    x: XServer,
    change: str,
) -> None:
    """A good revision with an image; then a refused revision where the image became a link
    to a file outside the repository (or its bytes changed, in a revision refused for another
    file): X receives the validated image's bytes, never the other ones."""
    original, other = png(1), png(2)
    (content_repo.path / "content/media").mkdir(parents=True, exist_ok=True)
    (content_repo.path / "content/media/photo.png").write_bytes(original)
    due = due_in(8)
    content_repo.write("content/posts/photo.yaml", image_post(due))
    content_repo.commit("photo")
    svc = service()
    svc.start()

    image = content_repo.path / "content/media/photo.png"
    image.unlink()
    if change == "link_out":
        outside = tmp_path / "private" / "secret.png"
        outside.parent.mkdir()
        outside.write_bytes(other)
        os.symlink(outside, image)
    else:
        image.write_bytes(other)
        content_repo.write("content/posts/casse.yaml", "id: casse\nlang: fr\ntext: [\n")
    bad = content_repo.commit(f"refused: {change}")
    wait_for(
        "the revision refused",
        lambda: (svc.status()["seen_revision"], svc.status()["content_valid"]) == (bad, False),
    )

    wait_for("the post on every account", lambda: all(map(x.timeline, HANDLES)), timeout=15)
    sleep_until(due + timedelta(seconds=2))
    uploads = [r for r in x.requests if r.method == "POST" and r.path == "/2/media/upload"]
    assert len(uploads) == 4
    for account in HANDLES:
        (tweet,) = x.timeline(account)
        (media,) = tweet["media"]
        assert x.media(media["id"])["data"] == original, account
    assert tweet_posts(x) == 4


def test_mounted_folder_image_replaced_by_a_link_out_is_not_uploaded(
    tmp_path: Path,
    content_repo: ContentRepo,
    service: ServiceFactory,
    x: XServer,
    alerts: WebhookSink,
) -> None:
    """A mounted folder (no git to read the validated bytes from): an image replaced by a link
    to a file outside the folder after it was validated is checked again at publish time: the
    delivery FAILS with the reason and an alert, and X receives nothing of the outside file."""
    svc = service(DIPLOBOT_REPO_URL="", DIPLOBOT_ALERT_WEBHOOK=alerts.url)
    for part in ("content", "schedules"):
        shutil.copytree(content_repo.path / part, svc.state_dir / part)
    media = svc.state_dir / "content/media"
    (media / "photo.png").write_bytes(png(1))
    due = due_in(6)
    (svc.state_dir / "content/posts/photo.yaml").write_text(image_post(due), encoding="utf-8")
    svc.start()
    assert {r["state"] for r in svc.rows("photo")} == {"PENDING"}
    first = svc.status()["revision"]

    outside = tmp_path / "private" / "secret.png"
    outside.parent.mkdir()
    outside.write_bytes(png(2))
    (media / "photo.png").unlink()
    os.symlink(outside, media / "photo.png")
    wait_for(
        "the change refused",
        lambda: svc.status()["seen_revision"] != first and not svc.status()["content_valid"],
    )

    wait_for(
        "four FAILED deliveries",
        lambda: (
            {r["state"] for r in svc.rows("photo")} == {"FAILED"} and len(svc.rows("photo")) == 4
        ),
        timeout=15,
    )
    for row in svc.rows("photo"):
        assert row["error"] == (
            "image media/photo.png is a link to a place outside the repository: "
            "copy the image into content/media/"
        ), row
    assert not any(r.path.startswith("/2/media") for r in x.requests)
    assert tweet_posts(x) == 0
    failed = wait_for("four alerts", lambda: len(alerts_of(alerts, "delivery.failed")) == 4)
    assert failed


def test_revision_media_follows_links_inside_the_revision_only(
    tmp_path: Path, content_repo: ContentRepo
) -> None:
    """Images read by revision: a link inside the repository gives its target's committed bytes
    (not the working tree's); a link out, a missing file and a folder are refused with a
    message an editor can act on."""
    media = content_repo.path / "content/media"
    media.mkdir(parents=True, exist_ok=True)
    (media / "vraie.png").write_bytes(png(1))
    os.symlink("vraie.png", media / "lien.png")
    secret = tmp_path / "secret.png"
    secret.write_bytes(png(2))
    os.symlink(secret, media / "dehors.png")
    rev = content_repo.commit("images and links")
    (media / "vraie.png").write_bytes(png(3))  # the working tree moves on; the revision does not

    reader = RevisionMedia(content_repo.path, rev)
    assert reader.read("content/media/lien.png") == png(1)
    assert reader.read("content/media/vraie.png") == png(1)
    refused = {
        "content/media/dehors.png": "image media/dehors.png is a link to a place outside the "
        "repository: copy the image into content/media/",
        "content/media/absente.png": f"image media/absente.png is not in revision {rev[:12]}",
        "content/media": f"image media is not a file in revision {rev[:12]}",
    }
    for file, message in refused.items():
        with pytest.raises(PublishRejected) as caught:
            reader.read(file)
        assert str(caught.value) == message
