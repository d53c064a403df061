"""``diplobot run`` against a git host over HTTP, and stopped while it waits on one (issue 15,
item 17): credentials in DIPLOBOT_REPO_URL, a repository that cannot be read, SIGTERM during
the first sync and during a publish.

The git host is the real ``git http-backend`` behind a local HTTP server that asks for Basic
credentials (service/git_server.py); the service is the real CLI in a subprocess.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from publish.conftest import WebhookSink
from servers.x import XServer
from service.conftest import (
    ContentRepo,
    ServiceFactory,
    ServiceProcess,
    due_in,
    post_yaml,
    wait_for,
)
from service.git_server import GitHttpServer

TOKEN = "glpat-CANARY-7c1d9e"
USER = "desk-bot"
STOP_BUDGET = 8.5
"""What Docker allows (10 s before SIGKILL), less a margin: every stop below must beat it."""


@pytest.fixture
def git_host(content_repo: ContentRepo) -> Iterator[GitHttpServer]:
    """The desk's repository served over HTTP, for ``USER``/``TOKEN`` only."""
    server = GitHttpServer(content_repo.path.parent, auth=(USER, TOKEN))
    yield server
    server.close()


def repo_url(host: GitHttpServer, content_repo: ContentRepo, userinfo: str) -> str:
    return host.url(content_repo.path.name, userinfo)


def launch(svc: ServiceProcess) -> None:
    """Start the service without waiting for it to be ready (``ServiceProcess.start`` does)."""
    svc.runs += 1
    log = (svc.state_dir / f"service-{svc.runs}.log").open("wb")
    env = {**svc.env, "DIPLOBOT_HTTP_ADDR": f"127.0.0.1:{svc.port}"}
    svc.proc = subprocess.Popen(
        svc.command("run"), env=env, cwd=svc.state_dir, stdout=log, stderr=log
    )
    log.close()


def sigterm(svc: ServiceProcess) -> tuple[int, float]:
    """SIGTERM; (exit code, seconds until exit). Killed and failed past 15 s."""
    proc = svc.proc
    assert proc is not None and proc.poll() is None, "the service is not running"
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
        raise AssertionError("still running 15 s after SIGTERM: killed") from None
    return code, time.monotonic() - sent


def git_processes_in(folder: Path) -> list[str]:
    """Command lines of git processes working in ``folder`` (a leftover clone or fetch)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "git" in cmdline and str(folder) in cmdline:
            found.append(cmdline)
    return found


def alerts_of(sink: WebhookSink, event: str) -> list[dict[str, Any]]:
    return [a for a in sink.received if a["event"] == event]


def test_token_in_repo_url_is_never_stored_in_the_clone_nor_logged(
    content_repo: ContentRepo,
    git_host: GitHttpServer,
    service: ServiceFactory,
    alerts: WebhookSink,
) -> None:
    """``DIPLOBOT_REPO_URL=http://user:token@host/repo`` (or ``…_FILE``) clones and fetches
    with the token (the git host received it), yet the clone's .git holds no trace of it, nor
    do the logs at DEBUG, ``/status`` or the alerts, even when the token is wrong and the sync
    fails. A clone made by an older version, with the token in its config, is cleaned at the
    next sync."""
    url = repo_url(git_host, content_repo, f"{USER}:{TOKEN}")
    svc = service(
        DIPLOBOT_REPO_URL=url,
        DIPLOBOT_LOG_LEVEL="DEBUG",
        DIPLOBOT_ALERT_WEBHOOK=alerts.url,
    )
    # An older version's clone: the token is in .git/config.
    subprocess.run(
        ["git", "clone", "--quiet", "--branch", "desk", url, str(svc.clone)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    assert TOKEN in (svc.clone / ".git" / "config").read_text()
    svc.start()
    content_repo.write("content/posts/prive.yaml", post_yaml("prive", due_in(600), "Privé"))
    rev = content_repo.commit("prive")
    wait_for("the fetch of the new commit", lambda: svc.status()["revision"] == rev)
    assert svc.stop() == 0

    # A fresh clone, through the credentials, the URL given as a Docker secret file.
    fresh = service(DIPLOBOT_LOG_LEVEL="DEBUG")
    secret_file = fresh.state_dir.parent / "repo_url"
    secret_file.write_text(url + "\n", encoding="utf-8")
    del fresh.env["DIPLOBOT_REPO_URL"]
    fresh.env["DIPLOBOT_REPO_URL_FILE"] = str(secret_file)
    fresh.start()
    assert fresh.status()["revision"] == rev
    assert fresh.stop() == 0
    basic = [r.authorization for r in git_host.requests if r.authorization]
    assert basic, "git never sent the credentials"

    # A wrong token: the sync fails, visibly, without showing the token either.
    wrong = "wrong-CANARY-0000"
    svc.env["DIPLOBOT_REPO_URL"] = repo_url(git_host, content_repo, f"{USER}:{wrong}")
    launch(svc)
    wait_for("the failed fetch", lambda: "sync.failed" in svc.log(), timeout=10)
    status = svc.status()
    assert "Authentication failed" in (status["sync_error"] or "")
    assert svc.stop() == 0

    for where in (svc, fresh):
        for path in (where.clone / ".git").rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                assert TOKEN.encode() not in data and wrong.encode() not in data, path
        assert TOKEN not in where.log() and wrong not in where.log()
    assert (svc.clone / ".git" / "config").read_text().count(f"url = {git_host.url('')}") == 1
    assert TOKEN not in repr(alerts.received) and wrong not in repr(alerts.received)
    assert TOKEN not in repr(status) and wrong not in repr(status)


def test_unreachable_repository_alerts_once_and_readyz_fails_until_it_recovers(
    content_repo: ContentRepo,
    git_host: GitHttpServer,
    service: ServiceFactory,
    alerts: WebhookSink,
) -> None:
    """When the repository cannot be read, one ``sync.failed`` alert (not one per sync), and
    /readyz answers 503 with the reason while /healthz stays 200 (alive and sweeping);
    /status and /metrics show it. When it can be read again, one ``sync.recovered``."""
    svc = service(
        DIPLOBOT_REPO_URL=repo_url(git_host, content_repo, f"{USER}:{TOKEN}"),
        DIPLOBOT_ALERT_WEBHOOK=alerts.url,
    )
    svc.start()
    assert svc.get("/readyz") == (200, "ready (active)\n")

    git_host.auth = (USER, "rotated-token")  # the host stops accepting the service's token
    wait_for("the failure alert", lambda: alerts_of(alerts, "sync.failed"), timeout=10)
    code, reason = svc.get("/readyz")
    assert code == 503 and reason.startswith("cannot read the content source since ")
    assert "Authentication failed" in reason
    assert svc.get("/healthz") == (200, "ok (active)\n")
    sync = svc.status()["sync"]
    assert sync["ok"] is False and sync["failing_since"] and "Authentication" in sync["error"]
    assert "diplobot_sync_failing 1" in svc.get("/metrics")[1]
    failed_syncs = svc.log().count("sync.failed")
    time.sleep(3)  # three more syncs fail (DIPLOBOT_SYNC_INTERVAL=1)
    assert svc.log().count("sync.failed") >= failed_syncs + 2
    assert len(alerts_of(alerts, "sync.failed")) == 1
    (alert,) = alerts_of(alerts, "sync.failed")
    assert "cannot read the content repository" in alert["text"]
    assert "still running revision" in alert["text"]

    git_host.auth = (USER, TOKEN)
    wait_for("the recovery alert", lambda: alerts_of(alerts, "sync.recovered"), timeout=10)
    assert svc.get("/readyz") == (200, "ready (active)\n")
    assert svc.status()["sync"]["ok"] is True
    assert "diplobot_sync_failing 0" in svc.get("/metrics")[1]
    time.sleep(2)
    assert len(alerts_of(alerts, "sync.failed")) == 1
    assert len(alerts_of(alerts, "sync.recovered")) == 1
    assert svc.stop() == 0


def test_sigterm_during_the_first_sync_exits_within_8_s_and_the_next_start_clones(
    content_repo: ContentRepo, git_host: GitHttpServer, service: ServiceFactory
) -> None:
    """SIGTERM while the first clone waits on a slow git host: exit 0 within 8 s, no git
    process left behind, no alert-worthy failure logged; the next start clones afresh."""
    git_host.delay = 60.0
    svc = service(DIPLOBOT_REPO_URL=repo_url(git_host, content_repo, f"{USER}:{TOKEN}"))
    launch(svc)
    wait_for("the clone to reach the git host", lambda: git_host.requests, timeout=15)
    time.sleep(0.5)
    code, took = sigterm(svc)
    assert code == 0
    assert took < STOP_BUDGET, f"exited {took:.1f} s after SIGTERM"
    assert git_processes_in(svc.clone) == []
    assert "sync.failed" not in svc.log()

    git_host.delay = 0.0
    svc.start()
    assert svc.status()["revision"] == content_repo.git("rev-parse", "HEAD")
    assert svc.stop() == 0


def test_sigterm_during_a_hung_x_request_exits_within_8_s_and_nothing_is_doubled(
    content_repo: ContentRepo, service: ServiceFactory, x: XServer
) -> None:
    """X holds a post for 30 s and the client waits up to 25 s: SIGTERM exits 0 within 8 s
    anyway. The post X stored is found on the timeline at the next start, not sent again."""
    content_repo.write(
        "content/posts/bloque.yaml",
        "id: bloque\nlang: fr\nlanguages: [fr]\n"
        f"publish_at: {due_in(4).isoformat()}\ntext: Requête bloquée\n",
    )
    content_repo.commit("bloque")
    x.fail_next("slow", count=1, method="POST", path="/2/tweets", seconds=30)
    svc = service(DIPLOBOT_X_TIMEOUT="25")
    svc.start()
    wait_for("X to hold the post", lambda: any(r.fault == "slow" for r in x.requests))
    code, took = sigterm(svc)
    assert code == 0
    assert took < STOP_BUDGET, f"exited {took:.1f} s after SIGTERM"
    stopped = [e["extra"]["clean"] for e in svc.events() if e["message"] == "service.stopped"]
    assert stopped == [False]  # the request was abandoned, not finished

    svc.start()
    wait_for("POSTED after the restart", lambda: svc.ledger("bloque")[0]["state"] == "POSTED")
    assert svc.stop() == 0
    posts = [r for r in x.requests if r.method == "POST" and r.path == "/2/tweets"]
    assert len(posts) == 1
    assert [t["text"] for t in x.timeline("francediplo")] == ["Requête bloquée"]


def test_sigterm_between_two_parts_of_a_thread_does_not_start_the_next_part(
    content_repo: ContentRepo, service: ServiceFactory, x: XServer
) -> None:
    """SIGTERM while X holds part 1 of a thread for 3 s: part 1 ends POSTED (its request
    finished within the stop budget), part 2 is not sent by the stopping process; the next
    start sends it, once, as a reply to part 1."""
    content_repo.write(
        "content/posts/fil.yaml",
        "id: fil\nlang: fr\nlanguages: [fr]\n"
        f"publish_at: {due_in(4).isoformat()}\ntext: Fil, partie 1\n"
        "thread:\n  - text: Fil, partie 2\n",
    )
    content_repo.commit("fil")
    x.fail_next("slow", count=1, method="POST", path="/2/tweets", seconds=3)
    svc = service(DIPLOBOT_X_TIMEOUT="10")
    svc.start()
    wait_for("X to hold part 1", lambda: any(r.fault == "slow" for r in x.requests))
    code, took = sigterm(svc)
    assert code == 0 and took < STOP_BUDGET
    assert [t["text"] for t in x.timeline("francediplo")] == ["Fil, partie 1"]
    assert {r["part"]: r["state"] for r in svc.ledger("fil")} == {1: "POSTED", 2: "PENDING"}

    svc.start()
    wait_for("part 2", lambda: len(x.timeline("francediplo")) == 2)
    assert svc.stop() == 0
    first, second = x.timeline("francediplo")
    assert (first["text"], second["text"]) == ("Fil, partie 1", "Fil, partie 2")
    assert second["reply_to"] == first["id"]
    assert len([r for r in x.requests if r.method == "POST" and r.path == "/2/tweets"]) == 2
