"""``diplobot run`` restarted the way a container restarts it: PID 1 again, on the same host
name, with a claim left SENDING by the previous start (DESIGN.md, invariant 8)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from pidns import as_pid_1, kill_pid_1, need_pid_namespaces, stop_pid_1
from publish.conftest import WebhookSink
from servers.x import XServer
from service.conftest import ContentRepo, ServiceFactory, ServiceProcess, due_in, wait_for

from bot.http import serve
from bot.service import Service
from bot.settings import ServiceSettings
from bot.source import LocalSource
from bot.state import open_store, state_url
from bot.state.ledger import Instance, NewDelivery, this_instance

FR = "francediplo"


def start_as_pid_1(svc: ServiceProcess) -> None:
    """``ServiceProcess.start``, with the service as PID 1 of a PID namespace of its own."""
    svc.runs += 1
    log = (svc.state_dir / f"service-{svc.runs}.log").open("wb")
    env = {**svc.env, "DIPLOBOT_HTTP_ADDR": f"127.0.0.1:{svc.port}"}
    svc.proc = subprocess.Popen(
        as_pid_1(svc.command("run")), env=env, cwd=svc.state_dir, stdout=log, stderr=log
    )
    log.close()
    wait_for("the service to load its content", lambda: svc.get("/readyz")[0] == 200, timeout=60)


def only_row(svc: ServiceProcess, post: str) -> dict[str, object]:
    (row,) = svc.ledger(post)
    return row


def test_restarted_container_recovers_a_claim_held_by_pid_1(
    content_repo: ContentRepo, service: ServiceFactory, x: XServer, alerts: WebhookSink
) -> None:
    """The service, PID 1, is SIGKILLed while X holds its post (stored, answer not sent yet);
    `status` flags the claim as stale; started again as PID 1 it recovers the claim at once
    (far within the 10-minute lease) and finds the post on the timeline: POSTED, sent once."""
    need_pid_namespaces()
    due = due_in(-5)  # already due: the first sweep at start publishes it
    content_repo.write(
        "content/posts/relance.yaml",
        "id: relance\nlang: fr\nlanguages: [fr]\n"
        f"publish_at: {due.isoformat(timespec='seconds')}\n"
        'text: "Relance après le redémarrage du conteneur"\n',
    )
    content_repo.commit("relance")
    # X stores the post, then keeps its answer for 2 minutes; the client waits up to 60 s.
    x.fail_next("slow", method="POST", path="/2/tweets", seconds=120)
    svc = service(DIPLOBOT_X_TIMEOUT="60", DIPLOBOT_LEASE="600", DIPLOBOT_ALERT_WEBHOOK=alerts.url)
    start_as_pid_1(svc)
    wait_for("X to store the post and hold its answer", lambda: x.timeline(FR), timeout=60)
    row = only_row(svc, "relance")
    assert row["state"] == "SENDING" and str(row["claimed_by"]).endswith(":1")
    assert svc.proc is not None
    kill_pid_1(svc.proc)

    # Meanwhile: `docker run --rm … status` is PID 1 as well, so the old owner's pid is its own.
    done = subprocess.run(
        as_pid_1(svc.command("status", "relance", "--format", "json")),
        env=svc.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    (seen,) = json.loads(done.stdout)
    assert seen["state"] == "SENDING"
    assert "the one that claimed it was restarted" in seen["stale"]
    text = subprocess.run(
        as_pid_1(svc.command("status", "relance")),
        env=svc.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "SENDING  attempts 1  STALE: process 1 on " in text.stdout, text.stdout
    assert "need attention" in text.stdout
    # From the host, pid 1 is another (live) process: only the heartbeat may decide, and its
    # lease has not run out yet.
    assert only_row(svc, "relance")["stale"] is None

    restarted = time.monotonic()
    start_as_pid_1(svc)
    wait_for(
        "the restarted service to settle the claim",
        lambda: only_row(svc, "relance")["state"] == "POSTED",
        timeout=120,
    )
    assert time.monotonic() - restarted < 120  # at start, not after the 600 s lease
    row = only_row(svc, "relance")
    (tweet,) = x.timeline(FR)
    assert row["remote_id"] == tweet["id"] and row["attempts"] == 1
    assert tweet["text"] == "Relance après le redémarrage du conteneur"
    posts = [r for r in x.requests if r.method == "POST" and r.path == "/2/tweets"]
    assert len(posts) == 1  # found by reconciliation, never sent again
    recovered = [e for e in svc.events() if e["message"] == "publish.recovered"]
    assert [e["extra"]["post"] for e in recovered] == ["relance"]
    assert svc.status()["stale"] == []
    assert svc.proc is not None and stop_pid_1(svc.proc) == 0
    assert [a for a in alerts.received if a.get("post") == "relance"] == []  # resolved
    assert x.errors == []


def test_status_endpoint_lists_a_claim_whose_owner_is_gone(tmp_path: Path) -> None:
    """/status of a service (not started: nothing settles the claim meanwhile) lists under
    ``stale`` a SENDING row whose owner's process is gone, with why."""
    store = open_store(state_url(tmp_path, None))
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # a process of this host and pid namespace that is gone
    dead = Instance("previous0000", socket.gethostname(), proc.pid, this_instance().pid_space)
    ledger = store.ledger_as(dead)
    due = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
    (row,) = ledger.ensure([NewDelivery("relance", FR, 1, "x", "fr", due, "Relance")])
    assert ledger.claim(row.id, datetime.now(UTC)) is not None
    service = Service(LocalSource(tmp_path), store, tmp_path, ServiceSettings())
    server, _thread = serve(service, "127.0.0.1:0")
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/status"
        with urllib.request.urlopen(url, timeout=10) as response:
            shown = json.loads(response.read())
    finally:
        server.shutdown()
        server.server_close()
    (stale,) = shown["stale"]
    assert (stale["post"], stale["account"], stale["state"]) == ("relance", FR, "SENDING")
    assert stale["stale"] == f"process {proc.pid} on {socket.gethostname()} is gone"
