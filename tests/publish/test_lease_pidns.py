"""Claims across processes that a pid cannot tell apart: ``post-now`` as PID 1 of a PID
namespace (a container's one-shot command) killed mid-send, and a request that outlives the
lease while a process of another PID namespace looks at its claim (DESIGN.md, invariant 8).
The real CLI runs in subprocesses; the fake X in this process."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from pidns import as_pid_1, kill_pid_1, need_pid_namespaces
from publish.conftest import ACCOUNTS, APP, ROOT, WebhookSink
from publish.test_crash import command, copy_repo, environment, run, status, wait_out_backoff
from servers.translate import LibreServer
from servers.x import XServer
from service.conftest import wait_for

POST = "entretien-liban"  # human text in every language: no translation involved
FR = "francediplo"
TEXT_FR = "Entretien ce jour au Quai d'Orsay avec le ministre libanais"


class HeldX(XServer):
    """The fake X, holding every ``POST /2/tweets`` *before* acting on it until
    :meth:`release`: X's answer time is not bounded by its documentation, and posting is
    the slowest endpoint when X is degraded (its status page reports such incidents), so a
    request may last as long as the client's timeout allows."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.holding = threading.Event()  # a post is being held
        self._gate = threading.Event()

    def release(self) -> None:
        self._gate.set()

    def _serve(self, handler: Any) -> None:
        if handler.command == "POST" and handler.path.partition("?")[0] == "/2/tweets":
            self.holding.set()
            while not self._gate.wait(0.05) and not self._stopping.is_set():
                pass
        super()._serve(handler)


def tweet_posts(x: XServer) -> int:
    return sum(1 for r in x.requests if r.method == "POST" and r.path == "/2/tweets")


def only_row(repo: Path, env: dict[str, str]) -> dict[str, Any]:
    (row,) = [r for r in status(repo, env) if r["post_id"] == POST]
    return row


def test_post_now_as_pid_1_killed_mid_send_is_recovered_after_its_lease_with_an_alert(
    tmp_path: Path, libre: LibreServer
) -> None:
    """post-now as PID 1, SIGKILLed while X hangs on its post (nothing stored). Seen from
    outside its namespace, pid 1 is alive: only the heartbeat tells, and once the lease
    (2 s) has run out `status` flags the claim stale. The next post-now (another namespace)
    recovers it; the timeline cannot be read: an alert says it is still UNKNOWN; once X
    answers again the post goes out: on the timeline once."""
    need_pid_namespaces()
    repo = copy_repo(tmp_path / "repo")
    sink = WebhookSink()
    try:
        with XServer(accounts=ACCOUNTS, consumer=APP) as x:
            env = environment(
                x,
                libre,
                DIPLOBOT_X_TIMEOUT="30",
                DIPLOBOT_LEASE="2",
                DIPLOBOT_ALERT_WEBHOOK=sink.url,
            )
            x.fail_next("hang", method="POST", path="/2/tweets")
            proc = subprocess.Popen(
                as_pid_1(command(repo, "post-now", POST, "--lang", "fr")),
                env=env,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            wait_for("X to hold the post", lambda: tweet_posts(x) == 1, timeout=30)
            kill_pid_1(proc)
            row = only_row(repo, env)
            assert row["state"] == "SENDING" and row["claimed_by"].endswith(":1")

            stale = wait_for(
                "status to flag the claim as stale",
                lambda: only_row(repo, env)["stale"],
                timeout=20,
            )
            assert stale.startswith(f"no heartbeat from {row['claimed_by']} for ")
            shown = run(repo, env, "status", POST)
            assert f"SENDING  attempts 1  STALE: {stale[:30]}" in shown.stdout, shown.stdout

            x.fail_next("503", method="GET", path="/2/users/*")  # the timeline cannot be read
            done = run(repo, env, "post-now", POST, "--lang", "fr")
            assert done.returncode == 1, done.stdout + done.stderr
            assert "Traceback" not in done.stderr
            # Taken from its dead owner; whether it is checked again at once or after a
            # back-off is the reconciliation's business: not SENDING any more.
            row = only_row(repo, env)
            assert row["state"] in ("UNKNOWN", "PENDING") and row["stale"] is None
            assert "the process that was sending it stopped (no heartbeat" in done.stdout
            (alert,) = [a for a in sink.received if a.get("post") == POST]
            assert alert["event"] == "delivery.unknown" and alert["account"] == FR
            assert "could not read the timeline" in alert["reason"]

            for _ in range(4):  # X answers again: not on the timeline, so sent (after back-off)
                wait_out_backoff(repo)
                done = run(repo, env, "post-now", POST, "--lang", "fr")
                assert "Traceback" not in done.stderr, done.stderr
                if done.returncode == 0:
                    break
            assert done.returncode == 0, done.stdout + done.stderr
            row = only_row(repo, env)
            (tweet,) = x.timeline(FR)
            assert tweet["text"].startswith(TEXT_FR) and row["remote_id"] == tweet["id"]
            assert row["state"] == "POSTED" and tweet_posts(x) == 2  # the hung one stored nothing
    finally:
        sink.close()


def test_request_longer_than_the_lease_keeps_its_claim_against_another_pid_namespace(
    tmp_path: Path, libre: LibreServer
) -> None:
    """X holds a post-now's request for three leases (1 s); a second post-now, PID 1 of
    another namespace where the first one's pid does not exist, must leave the claim alone:
    its owner's heartbeat is fresh. The first then records what X answered: sent once."""
    need_pid_namespaces()
    repo = copy_repo(tmp_path / "repo")
    with HeldX(accounts=ACCOUNTS, consumer=APP) as x:
        env = environment(x, libre, DIPLOBOT_X_TIMEOUT="30", DIPLOBOT_LEASE="1")
        first = subprocess.Popen(
            command(repo, "post-now", POST, "--lang", "fr"),
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert x.holding.wait(30), "the first post-now never reached X"
            time.sleep(3)  # three leases since the claim
            second = subprocess.run(
                as_pid_1(command(repo, "post-now", POST, "--lang", "fr")),
                env=env,
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert second.returncode == 1, second.stdout + second.stderr
            assert "part 1 SENDING" in second.stdout and "Traceback" not in second.stderr
            row = only_row(repo, env)
            assert row["state"] == "SENDING" and row["stale"] is None and row["attempts"] == 1
            assert row["claimed_by"].endswith(f":{first.pid}")
        finally:
            x.release()
        out, err = first.communicate(timeout=60)
        assert first.returncode == 0, out + err
        row = only_row(repo, env)
        (tweet,) = x.timeline(FR)
        assert row["state"] == "POSTED" and row["remote_id"] == tweet["id"]
        assert tweet_posts(x) == 1
        assert json.loads(json.dumps(x.errors, default=str)) == []
