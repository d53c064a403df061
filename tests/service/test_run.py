"""``diplobot run`` as a real process, following a real git repository (DESIGN.md, "run").

Each test starts the service in a subprocess with ``DIPLOBOT_REPO_URL`` pointing at a git
repository in a temporary folder, commits to that repository as the desk would, and checks what
an operator sees (``/status``, ``/healthz``, ``diplobot status``, the alert webhook) and what the
fake X received. Due times are a few seconds ahead, written with an explicit UTC offset.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from datetime import timedelta
from typing import Any

from publish.conftest import WebhookSink
from servers.translate import FakeEngine, LibreServer
from servers.x import XServer
from service.conftest import (
    HANDLES,
    ContentRepo,
    ServiceFactory,
    ServiceProcess,
    due_in,
    post_yaml,
    sleep_until,
    wait_for,
)

ON_TIME = timedelta(seconds=2)
"""How soon after its due instant a delivery must reach X."""
SECRET = "hook-secret-CANARY-4242"


def published(x: XServer, text_start: str) -> dict[str, list[dict[str, Any]]]:
    """Per account, the posts on its timeline whose text starts with ``text_start``."""
    return {a: [t for t in x.timeline(a) if t["text"].startswith(text_start)] for a in HANDLES}


def everywhere(x: XServer, text_start: str) -> bool:
    return all(published(x, text_start).values())


def tweet_posts(x: XServer) -> int:
    """How many ``POST /2/tweets`` X received (answered or not)."""
    return sum(1 for r in x.requests if r.method == "POST" and r.path == "/2/tweets")


def states(svc: ServiceProcess, post: str) -> dict[str, str]:
    """Account → state of the post's delivery, as /status shows it."""
    return {r["account"]: r["state"] for r in svc.rows(post)}


def all_in(svc: ServiceProcess, post: str, state: str) -> bool:
    found = states(svc, post)
    return sorted(found) == sorted(HANDLES) and set(found.values()) == {state}


def alerts_of(sink: WebhookSink, event: str) -> list[dict[str, Any]]:
    """The alerts the webhook received for ``event``."""
    return [a for a in sink.received if a["event"] == event]


def test_new_commit_is_published_on_time_to_every_account_once(
    content_repo: ContentRepo, service: ServiceFactory, x: XServer
) -> None:
    """A commit adding a post due in 4 s reaches the four accounts once each, within 2 s."""
    svc = service()
    svc.start()
    assert svc.post("/hooks/git", b"{}", {})[0] == 404  # no DIPLOBOT_WEBHOOK_SECRET: no hook
    first = svc.status()["revision"]
    due = due_in(4)
    text = "Annonce du jour"
    content_repo.write("content/posts/2026/annonce.yaml", post_yaml("annonce", due, text))
    rev = content_repo.commit("annonce")
    assert rev != first
    wait_for("the commit to be applied", lambda: svc.status()["revision"] == rev)
    assert all_in(svc, "annonce", "PENDING")
    assert tweet_posts(x) == 0

    wait_for("the post on every account", lambda: everywhere(x, text), timeout=15)
    time.sleep(1.5)  # two more sweeps: nothing is sent again
    posts = published(x, text)
    assert {a: len(p) for a, p in posts.items()} == dict.fromkeys(HANDLES, 1)
    assert posts["francediplo"][0]["text"] == text
    assert posts["francediplo_AR"][0]["text"] == f"{text} [بالعربية]"
    for account, (tweet,) in posts.items():
        lag = tweet["created_at"] - due
        assert timedelta(0) <= lag <= ON_TIME, f"{account}: posted {lag} after its due time"
    assert tweet_posts(x) == 4
    assert all_in(svc, "annonce", "POSTED")
    assert x.errors == []


def test_signed_webhook_syncs_at_once_and_unsigned_ones_are_refused(
    content_repo: ContentRepo, service: ServiceFactory, x: XServer, libre: LibreServer
) -> None:
    """GitHub's HMAC signature or GitLab's token → 202 and an immediate sync; else 401."""
    svc = service(DIPLOBOT_SYNC_INTERVAL="300", DIPLOBOT_WEBHOOK_SECRET=SECRET)
    svc.start()
    start_rev = svc.status()["revision"]
    due = due_in(5)
    text = "Sommet historique : merci aux partenaires"
    content_repo.write("content/posts/sommet.yaml", post_yaml("sommet", due, text, human=False))
    rev = content_repo.commit("sommet, machine-translated")
    body = json.dumps({"ref": "refs/heads/desk", "after": rev}).encode()
    good = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    bad = "sha256=" + hmac.new(b"not-the-secret", body, hashlib.sha256).hexdigest()

    assert svc.post("/hooks/git", body, {})[0] == 401
    assert svc.post("/hooks/git", body, {"X-Hub-Signature-256": bad})[0] == 401
    assert svc.post("/hooks/git", body, {"X-Gitlab-Token": "guess"})[0] == 401
    # A Content-Length that is negative or not a number is refused at once (reading "-1"
    # bytes would read until the client closes, past the size limit).
    assert svc.post_raw("/hooks/git", "-1") == 400
    assert svc.post_raw("/hooks/git", "abc") == 400
    time.sleep(1)
    assert svc.status()["revision"] == start_rev  # refused hooks did not sync

    asked = time.monotonic()
    code, answer = svc.post("/hooks/git", body, {"X-Hub-Signature-256": good})
    assert (code, answer) == (202, "sync started\n")
    wait_for("the webhook's sync", lambda: svc.status()["revision"] == rev, timeout=5)
    assert time.monotonic() - asked < 3
    assert all_in(svc, "sommet", "PENDING")

    # Machine-translated through LibreTranslate, published on time.
    wait_for("the post on every account", lambda: all(map(x.timeline, HANDLES)), timeout=15)
    engine = FakeEngine()
    for account, lang in zip(HANDLES, ("fr", "en", "ar", "es"), strict=True):
        (tweet,) = x.timeline(account)
        expected = text if lang == "fr" else engine.translate(text, "fr", lang)
        assert tweet["text"] == expected, account
        assert timedelta(0) <= tweet["created_at"] - due <= ON_TIME
    assert libre.calls, "the translations came from LibreTranslate"

    # GitLab's shared token works as well.
    content_repo.write("content/posts/brouillon.yaml", post_yaml("brouillon", None, "Brouillon"))
    rev2 = content_repo.commit("a draft")
    assert svc.post("/hooks/git", b"{}", {"X-Gitlab-Token": SECRET})[0] == 202
    wait_for("the GitLab webhook's sync", lambda: svc.status()["revision"] == rev2, timeout=5)


def test_broken_commit_keeps_the_last_good_revision_running(
    content_repo: ContentRepo, service: ServiceFactory, x: XServer, alerts: WebhookSink
) -> None:
    """A typo in a commit is reported with file:line; the last good revision keeps
    publishing; the fixing commit is applied."""
    due = due_in(7)
    content_repo.write("content/posts/bon.yaml", post_yaml("bon", due, "Bonne nouvelle"))
    good = content_repo.commit("bon")
    svc = service(DIPLOBOT_ALERT_WEBHOOK=alerts.url)
    svc.start()
    assert svc.status()["revision"] == good

    broken_yaml = post_yaml("casse", due_in(3600), "Texte cassé").replace("publish_at", "pubish_at")
    content_repo.write("content/posts/casse.yaml", broken_yaml)
    broken = content_repo.commit("typo")
    wait_for("the broken revision to be seen", lambda: svc.status()["seen_revision"] == broken)
    status = svc.status()
    assert status["content_valid"] is False
    assert status["revision"] == good
    assert status["content_errors"] == [
        "content/posts/casse.yaml:3:1: unknown key 'pubish_at' (did you mean 'publish_at'?)"
    ]
    assert svc.get("/healthz") == (200, "ok (active)\n")
    assert svc.get("/readyz")[0] == 200
    alert = wait_for("the content.invalid alert", lambda: alerts_of(alerts, "content.invalid"))
    assert alert[0]["revision"] == broken and "casse.yaml:3:1" in alert[0]["text"]
    assert good in alert[0]["text"]

    # The last good revision keeps running: its post goes out on time.
    wait_for("the good post on every account", lambda: everywhere(x, "Bonne"), timeout=15)
    assert all(
        timedelta(0) <= t["created_at"] - due <= ON_TIME
        for posts in published(x, "Bonne").values()
        for t in posts
    )
    assert svc.status()["revision"] == good
    assert svc.proc is not None and svc.proc.poll() is None

    content_repo.write("content/posts/casse.yaml", broken_yaml.replace("pubish_at", "publish_at"))
    fixed = content_repo.commit("fix the typo")
    wait_for("the fixed revision to be applied", lambda: svc.status()["revision"] == fixed)
    status = svc.status()
    assert status["content_valid"] is True and status["content_errors"] == []
    assert all_in(svc, "casse", "PENDING")
    assert tweet_posts(x) == 4


def test_commit_deleting_a_pending_post_cancels_it(
    content_repo: ContentRepo, service: ServiceFactory, x: XServer
) -> None:
    """A post deleted before its due time is never published; its deliveries show RETRACTED
    with the reason."""
    due = due_in(6)
    content_repo.write("content/posts/retire.yaml", post_yaml("retire", due, "À retirer"))
    content_repo.commit("retire")
    svc = service()
    svc.start()
    assert all_in(svc, "retire", "PENDING")

    content_repo.remove("content/posts/retire.yaml")
    rev = content_repo.commit("remove retire")
    wait_for("the deletion to be applied", lambda: svc.status()["revision"] == rev)
    rows = svc.rows("retire")
    assert {r["state"] for r in rows} == {"RETRACTED"} and len(rows) == 4
    assert {r["error"] for r in rows} == {"cancelled: the post was removed from the content"}

    sleep_until(due + timedelta(seconds=2.5))
    assert tweet_posts(x) == 0
    assert all(x.timeline(a) == [] for a in HANDLES)
    assert all_in(svc, "retire", "RETRACTED")
    assert {r["state"] for r in svc.ledger("retire")} == {"RETRACTED"}


def test_restart_after_the_due_time_publishes_once_within_the_lateness_window(
    content_repo: ContentRepo, service: ServiceFactory, x: XServer
) -> None:
    """Stopped before the due time, started after it (within DIPLOBOT_MAX_LATE): published
    once on each account, and a further restart sends nothing again."""
    due = due_in(5)
    content_repo.write("content/posts/reprise.yaml", post_yaml("reprise", due, "Reprise"))
    content_repo.commit("reprise")
    svc = service(DIPLOBOT_MAX_LATE="60")
    svc.start()
    assert all_in(svc, "reprise", "PENDING")
    assert svc.stop() == 0
    sleep_until(due + timedelta(seconds=1.5))
    assert tweet_posts(x) == 0

    restarted = time.time()
    svc.start()
    wait_for("the late post on every account", lambda: everywhere(x, "Reprise"), timeout=10)
    assert time.time() - restarted < 8
    wait_for("POSTED in /status", lambda: all_in(svc, "reprise", "POSTED"))
    assert svc.stop() == 0

    svc.start()  # once more: what is POSTED is not sent again
    time.sleep(1.2)  # another sync and sweep
    assert svc.stop() == 0
    assert tweet_posts(x) == 4
    assert {a: len(p) for a, p in published(x, "Reprise").items()} == dict.fromkeys(HANDLES, 1)
    assert {r["state"] for r in svc.ledger("reprise")} == {"POSTED"}


def test_restart_beyond_the_lateness_window_expires_and_alerts(
    content_repo: ContentRepo, service: ServiceFactory, x: XServer, alerts: WebhookSink
) -> None:
    """Started again more than DIPLOBOT_MAX_LATE after the due time: nothing is published,
    each delivery ends EXPIRED with the reason, and an alert is sent for each."""
    due = due_in(4)
    content_repo.write("content/posts/perime.yaml", post_yaml("perime", due, "Périmé"))
    content_repo.commit("perime")
    svc = service(DIPLOBOT_MAX_LATE="2", DIPLOBOT_ALERT_WEBHOOK=alerts.url)
    svc.start()
    assert all_in(svc, "perime", "PENDING")
    assert svc.stop() == 0
    sleep_until(due + timedelta(seconds=3.5))

    svc.start()
    wait_for("EXPIRED in diplobot status", lambda: all_in(svc, "perime", "EXPIRED"), timeout=10)
    rows = svc.ledger("perime")
    assert sorted(r["account"] for r in rows) == sorted(HANDLES)
    assert {r["state"] for r in rows} == {"EXPIRED"}
    for row in rows:
        late = re.fullmatch(
            r"due (\d+) s ago, beyond the lateness window of 2 s", row["last_error"]
        )
        assert late and 3 <= int(late[1]) < 10, row["last_error"]
    wait_for("four alerts", lambda: len(alerts_of(alerts, "delivery.expired")) == 4)
    expired = alerts_of(alerts, "delivery.expired")
    assert sorted(a["account"] for a in expired) == sorted(HANDLES)
    assert all(a["post"] == "perime" and a["state"] == "EXPIRED" for a in expired)
    time.sleep(1.5)
    assert tweet_posts(x) == 0
    assert all(x.timeline(a) == [] for a in HANDLES)
    assert len(alerts_of(alerts, "delivery.expired")) == 4


def test_sigterm_during_a_publish_exits_cleanly_and_nothing_is_lost_or_doubled(
    content_repo: ContentRepo, service: ServiceFactory, x: XServer
) -> None:
    """SIGTERM while X holds the posts without answering: exit 0 within 10 s, each delivery
    UNKNOWN (X's timeline could not be read either); the next start reconciles them to
    POSTED without sending again, once on each timeline."""
    due = due_in(4)
    content_repo.write("content/posts/lent.yaml", post_yaml("lent", due, "Réponse lente"))
    content_repo.commit("lent")
    # X stores each post but answers after 3 s; the client gives up after 2 (DIPLOBOT_X_TIMEOUT).
    x.fail_next("slow", count=4, method="POST", path="/2/tweets", seconds=3)
    svc = service()
    svc.start()
    wait_for(
        "X to be holding four posts",
        lambda: sum(r.fault == "slow" for r in x.requests) == 4,
        timeout=10,
    )
    # The look-up of the timeline that would settle the ambiguity fails too, so the outcome
    # stays open until the next start.
    x.fail_next("503", count=4, method="GET", path="/2/users/*")
    stopped = time.monotonic()
    assert svc.stop(timeout=10) == 0
    assert time.monotonic() - stopped < 10
    after_stop = {r["account"]: r["state"] for r in svc.ledger("lent")}
    assert after_stop == dict.fromkeys(HANDLES, "UNKNOWN")
    stops = [e for e in svc.events() if e["message"] == "service.stopped"]
    assert [e["extra"]["clean"] for e in stops] == [True]
    assert tweet_posts(x) == 4

    svc.start()
    wait_for("POSTED after the restart", lambda: all_in(svc, "lent", "POSTED"), timeout=10)
    time.sleep(1.5)  # more sweeps: nothing is sent again
    assert svc.stop() == 0
    assert tweet_posts(x) == 4  # found on the timelines, not sent again
    assert {a: len(p) for a, p in published(x, "Réponse").items()} == dict.fromkeys(HANDLES, 1)
    rows = svc.ledger("lent")
    assert {r["state"] for r in rows} == {"POSTED"}
    assert {r["remote_id"] for r in rows} == {x.timeline(a)[0]["id"] for a in HANDLES}


def test_pause_holds_one_account_until_resume(
    content_repo: ContentRepo, service: ServiceFactory, x: XServer
) -> None:
    """``diplobot pause francediplo_AR`` while the service runs: that account's delivery
    waits, PENDING and listed as paused; ``resume`` publishes it."""
    due = due_in(5)
    content_repo.write("content/posts/pause.yaml", post_yaml("pause", due, "En pause"))
    content_repo.commit("pause")
    svc = service()
    svc.start()
    done = svc.cli("pause", "francediplo_AR", "--reason", "deuil national", root=svc.clone)
    assert (done.returncode, done.stdout) == (0, "paused: francediplo_AR\n"), done.stderr
    assert svc.status()["paused"] == {"francediplo_AR": "deuil national"}

    others = [a for a in HANDLES if a != "francediplo_AR"]
    wait_for(
        "the three other accounts",
        lambda: all(published(x, "En pause")[a] for a in others),
        timeout=15,
    )
    time.sleep(1.5)  # more sweeps: the paused account still waits
    assert published(x, "En pause")["francediplo_AR"] == []
    assert states(svc, "pause") == {
        "francediplo": "POSTED",
        "francediplo_EN": "POSTED",
        "francediplo_AR": "PENDING",
        "francediplo_ES": "POSTED",
    }
    assert svc.status()["paused"] == {"francediplo_AR": "deuil national"}

    done = svc.cli("resume", "francediplo_AR", root=svc.clone)
    assert (done.returncode, done.stdout) == (0, "resumed: francediplo_AR\n"), done.stderr
    resumed = time.monotonic()
    wait_for(
        "the Arabic account after resume",
        lambda: published(x, "En pause")["francediplo_AR"],
        timeout=5,
    )
    assert time.monotonic() - resumed < 3
    assert svc.status()["paused"] == {}
    wait_for("all POSTED", lambda: all_in(svc, "pause", "POSTED"))
    assert {a: len(p) for a, p in published(x, "En pause").items()} == dict.fromkeys(HANDLES, 1)
    assert tweet_posts(x) == 4


def test_webhook_during_a_slow_apply_leaves_the_newest_revision_running(
    content_repo: ContentRepo, service: ServiceFactory, x: XServer, libre: LibreServer
) -> None:
    """A signed webhook arriving while the interval sync still applies the previous commit
    (translating it) does not let that older revision win: the newest commit runs, its post
    is scheduled and the post it deleted is cancelled."""
    svc = service(DIPLOBOT_WEBHOOK_SECRET=SECRET)
    svc.start()
    libre.delay = 3.0  # each machine translation takes 3 s
    content_repo.write(
        "content/posts/ancien.yaml",
        post_yaml("ancien", due_in(120), "Ancien sommet", human=False),
    )
    older = content_repo.commit("ancien, to be machine-translated")
    wait_for("the interval sync to start translating it", lambda: libre.calls, timeout=5)
    assert svc.status()["revision"] != older  # still applying

    content_repo.remove("content/posts/ancien.yaml")
    content_repo.write(
        "content/posts/nouveau.yaml", post_yaml("nouveau", due_in(120), "Nouveau sommet")
    )
    newest = content_repo.commit("replace ancien with nouveau")
    body = b'{"ref": "refs/heads/desk"}'
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert svc.post("/hooks/git", body, {"X-Hub-Signature-256": signature})[0] == 202

    wait_for(
        "both commits to be applied",
        lambda: [e["message"] for e in svc.events()].count("content.applied") == 3,
        timeout=15,
    )
    status = svc.status()
    assert (status["revision"], status["seen_revision"]) == (newest, newest)
    assert all_in(svc, "nouveau", "PENDING")
    assert all_in(svc, "ancien", "RETRACTED")  # recorded by the older apply, then cancelled
