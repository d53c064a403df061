"""The service's HTTP server under hostile or careless clients (issue 15, item 16).

Each test runs the real server (``bot.http.serve``) on 127.0.0.1 in front of a real
``Service`` over a SQLite ledger, and talks to it through raw sockets where a polite client
(urllib) would hide the fault: request smuggling on a kept-alive connection, non-ASCII header
bytes, slow connections.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import socket
import threading
import time
import tracemalloc
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
from service.conftest import wait_for

from bot.http import ReplayGuard, serve
from bot.service import Service
from bot.settings import Secret, ServiceSettings
from bot.source import LocalSource
from bot.state import open_store, state_url
from bot.state.ledger import NewDelivery, State
from bot.state.tables import deliveries

SECRET = "hook-secret-CANARY-5151"
ACCOUNTS = "timezone: Europe/Paris\naccounts:\n  fr_acct: {lang: fr, handle: francediplo}\n"
SMUGGLED = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


@dataclass
class Live:
    """A service and its HTTP server, in this process."""

    service: Service
    server: ThreadingHTTPServer

    @property
    def port(self) -> int:
        port: int = self.server.server_address[1]
        return port

    def exchange(self, raw: bytes, quiet: float = 1.5) -> bytes:
        """Send ``raw`` on one connection; everything received until the server closes it
        or says nothing for ``quiet`` seconds."""
        received = b""
        with socket.create_connection(("127.0.0.1", self.port), timeout=quiet) as sock:
            sock.sendall(raw)
            while True:
                try:
                    chunk = sock.recv(65536)
                except (TimeoutError, ConnectionResetError):
                    break
                if not chunk:
                    break
                received += chunk
        return received

    def get(self, path: str) -> tuple[int, str]:
        url = f"http://127.0.0.1:{self.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status, response.read().decode("utf-8")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode("utf-8")

    def hook(self, body: bytes, headers: dict[str, str]) -> int:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/hooks/git", data=body, method="POST"
        )
        for name, value in headers.items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return exc.code


LiveFactory = Callable[..., Live]


@pytest.fixture
def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveFactory]:
    """Make a service over a one-account content folder (dry run: no X credentials), and its
    HTTP server; ``started`` runs the service's first sync and its scheduler."""
    for name in ("DIPLOBOT_X_API_KEY", "DIPLOBOT_X_API_SECRET", "DIPLOBOT_ALERT_WEBHOOK"):
        monkeypatch.delenv(name, raising=False)
    made: list[Live] = []

    def make(secret: str | None = None, started: bool = False, **http: float) -> Live:
        root = tmp_path / f"content-{len(made)}"
        (root / "schedules").mkdir(parents=True)
        (root / "schedules/accounts.yaml").write_text(ACCOUNTS, encoding="utf-8")
        (root / "content/posts").mkdir(parents=True)
        store = open_store(state_url(root, None))
        settings = ServiceSettings(
            sync_interval=300, webhook_secret=Secret(secret) if secret else None
        )
        service = Service(LocalSource(root), store, root / ".diplobot", settings)
        if started:
            service.start()
        server, _thread = serve(service, "127.0.0.1:0", **http)  # type: ignore[arg-type]
        made.append(Live(service, server))
        return made[-1]

    yield make
    for item in made:
        item.server.shutdown()
        item.server.server_close()
        item.service.stop(timeout=2)


def statuses(raw: bytes) -> list[int]:
    """The status of every response in ``raw``."""
    return [int(code) for code in re.findall(rb"^HTTP/1\.[01] (\d{3}) ", raw, re.MULTILINE)]


@pytest.mark.parametrize(
    ("secret", "head"),
    [
        # No DIPLOBOT_WEBHOOK_SECRET: 404 before the body is looked at.
        (None, "POST /hooks/git HTTP/1.1\r\nContent-Length: {n}\r\n"),
        # Not the webhook's path.
        (SECRET, "POST /elsewhere HTTP/1.1\r\nContent-Length: {n}\r\n"),
        # Larger than the limit: 413 without reading it.
        (SECRET, "POST /hooks/git HTTP/1.1\r\nContent-Length: 9999999\r\n"),
        # Chunked: http.server reads no chunked body; the chunks would be the next request.
        (SECRET, "POST /hooks/git HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"),
        # Two lengths that disagree (a proxy may pick the other one).
        (SECRET, "POST /hooks/git HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: {n}\r\n"),
        # A GET with a body: answered, and its body is no request either.
        (SECRET, "GET /healthz HTTP/1.1\r\nContent-Length: {n}\r\n"),
    ],
    ids=["webhook-disabled", "other-path", "too-large", "chunked", "two-lengths", "get-body"],
)
def test_unread_body_is_never_parsed_as_a_second_request_on_a_kept_alive_connection(
    live: LiveFactory, secret: str | None, head: str
) -> None:
    """A request whose body the server does not read gets one answer and the connection is
    closed: the ``GET /metrics`` hidden in its body is never answered."""
    svc = live(secret=secret)
    raw = head.format(n=len(SMUGGLED)) + "Host: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n"
    received = svc.exchange(raw.encode() + SMUGGLED)
    assert len(statuses(received)) == 1, received
    assert b"diplobot_deliveries" not in received
    assert b"Connection: close" in received


def test_a_refused_post_with_a_read_body_keeps_the_connection_usable(live: LiveFactory) -> None:
    """An unsigned webhook whose body was read is answered 401 and the connection carries the
    client's next request as it should (keep-alive is not simply switched off)."""
    svc = live(secret=SECRET)
    body = b'{"ref": "refs/heads/main"}'
    raw = (
        f"POST /hooks/git HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    received = svc.exchange(raw + SMUGGLED)
    assert statuses(received) == [401, 200]
    assert b"diplobot_deliveries" in received


@pytest.mark.parametrize(
    "header",
    [
        b"X-Hub-Signature-256: sha256=" + "é".encode() * 32,
        b"X-Hub-Signature-256: sha256=\xff\xfe\x00",
        b"X-Gitlab-Token: " + "clé-secrète".encode(),
        b"X-Gitlab-Token: \xe9\xff",
    ],
    ids=["github-utf8", "github-bytes", "gitlab-utf8", "gitlab-bytes"],
)
def test_non_ascii_signature_header_is_refused_with_401(live: LiveFactory, header: bytes) -> None:
    """A signature or token header holding bytes outside ASCII is a bad signature (401),
    not an exception that drops the connection unanswered."""
    svc = live(secret=SECRET)
    raw = (
        b"POST /hooks/git HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n"
        + header
        + b"\r\n\r\n{}"
    )
    assert statuses(svc.exchange(raw)) == [401]


def test_replayed_signed_webhook_is_refused_and_triggers_no_sync(live: LiveFactory) -> None:
    """A signed webhook accepted once is refused (409) when sent again, with its delivery id
    or with a new one (GitHub does not sign the id; the body cannot change); a new push is
    accepted. A replay causes no sync."""
    svc = live(secret=SECRET, started=True)
    syncs = svc.service.stats.syncs

    def github(body: bytes, delivery: str) -> int:
        digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        headers = {"X-Hub-Signature-256": f"sha256={digest}", "X-GitHub-Delivery": delivery}
        return svc.hook(body, headers)

    push = b'{"ref": "refs/heads/main", "after": "1111"}'
    assert github(push, "delivery-1") == 202
    wait_for("the webhook's sync", lambda: svc.service.stats.syncs == syncs + 1)
    assert github(push, "delivery-1") == 409
    assert github(push, "delivery-forged") == 409
    assert github(b'{"ref": "refs/heads/main", "after": "2222"}', "delivery-1") == 409
    assert github(b'{"ref": "refs/heads/main", "after": "2222"}', "delivery-2") == 202
    wait_for("the second push's sync", lambda: svc.service.stats.syncs == syncs + 2)

    gitlab = {"X-Gitlab-Token": SECRET, "X-Gitlab-Event-UUID": "4a1c-uuid"}
    assert svc.hook(b"{}", gitlab) == 202
    wait_for("the GitLab push's sync", lambda: svc.service.stats.syncs == syncs + 3)
    assert svc.hook(b"{}", gitlab) == 409
    # An unsigned request with a known id is refused as unsigned, and remembers nothing.
    assert svc.hook(b"{}", {"X-Gitlab-Event-UUID": "next-uuid"}) == 401
    assert svc.hook(b"{}", {**gitlab, "X-Gitlab-Event-UUID": "next-uuid"}) == 202
    time.sleep(1)
    assert svc.service.stats.syncs == syncs + 4


def test_slow_connections_are_bounded_and_a_health_check_still_gets_through(
    live: LiveFactory,
) -> None:
    """300 clients trickling their headers a byte at a time hold at most the connection
    limit (64 threads, not 300); a health check arriving meanwhile is answered; every slow
    connection is closed by the server once its request deadline has passed."""
    svc = live(request_deadline=3.0)

    def handlers() -> int:  # the server's connection threads (the service has others too)
        return sum("process_request_thread" in t.name for t in threading.enumerate())

    base = handlers()
    slow: list[socket.socket] = []
    for _ in range(300):
        sock = socket.create_connection(("127.0.0.1", svc.port), timeout=5)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        slow.append(sock)
    opened = time.monotonic()
    peak = 0
    closed: set[int] = set()
    checked = False
    while time.monotonic() - opened < 6 and len(closed) < len(slow):
        for i, sock in enumerate(slow):
            if i in closed:
                continue
            try:
                sock.sendall(b"a")
                sock.setblocking(False)
                try:
                    if sock.recv(4096) == b"":
                        closed.add(i)
                except BlockingIOError:
                    pass
                finally:
                    sock.setblocking(True)
            except OSError:
                closed.add(i)
        peak = max(peak, handlers() - base)
        if not checked:
            asked = time.monotonic()
            code, body = svc.get("/readyz")
            assert (code, body) == (503, "no valid content loaded yet\n")
            assert time.monotonic() - asked < 2
            checked = True
        time.sleep(0.25)
    for sock in slow:
        sock.close()
    assert checked
    # 64 held, plus the health check's own, plus one evicted that is still ending.
    assert 0 < peak <= 64 + 2, f"{peak} connection threads for 300 slow connections"
    assert len(closed) == 300, f"{300 - len(closed)} slow connections still open after 6 s"


def _fill(service: Service, rows: int) -> dict[str, dict[str, int]]:
    """``rows`` deliveries in the ledger, across four accounts, most of them POSTED; returns
    how many there are per state and account."""
    now = datetime.now(UTC)
    states = [State.PENDING] * 200 + [State.UNKNOWN] * 20 + [State.FAILED] * 30
    records = []
    expected: dict[str, dict[str, int]] = {}
    for i in range(rows):
        state = states[i] if i < len(states) else State.POSTED
        by_account = expected.setdefault(state.value, {})
        by_account[f"acct_{i % 4}"] = by_account.get(f"acct_{i % 4}", 0) + 1
        moment = now + timedelta(minutes=i - rows // 2)
        records.append(
            {
                "post_id": f"post-{i // 4:05d}",
                "account": f"acct_{i % 4}",
                "part": 1,
                "channel": "x",
                "lang": "fr",
                "due_at": moment,
                "text": f"Publication numéro {i} : " + "texte assez long pour peser. " * 8,
                "media": "[]",
                "content_hash": f"{i:016x}",
                "state": state.value,
                "attempts": 1,
                "created_at": moment,
                "updated_at": moment,
            }
        )
    with service.store.engine.begin() as conn:
        conn.execute(deliveries.insert(), records)
    return expected


def test_status_answers_from_counts_and_pages_at_40000_rows(live: LiveFactory) -> None:
    """At 40,000 deliveries ``/status`` answers in well under the 0.78 s it took when it read
    the whole ledger, allocating a few MB rather than tens: exact counts per state and
    account, and pages of at most ``limit`` rows."""
    svc = live()
    expected = _fill(svc.service, 40_000)

    timings = []
    for _ in range(3):
        asked = time.perf_counter()
        code, body = svc.get("/status")
        timings.append(time.perf_counter() - asked)
        assert code == 200
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        code, body = svc.get("/status")
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert min(timings) < 0.35, f"/status took {min(timings):.2f} s"
    assert peak < 10 * 1024 * 1024, f"/status allocated {peak / 1e6:.0f} MB"

    status = json.loads(body)
    assert status["counts"] == expected
    assert len(status["upcoming"]) == 50 and {r["state"] for r in status["upcoming"]} == {"PENDING"}
    assert [r["due"] for r in status["upcoming"]] == sorted(r["due"] for r in status["upcoming"])
    assert len(status["open"]) == 20 and {r["state"] for r in status["open"]} == {"UNKNOWN"}
    assert len(status["problems"]) == 30
    assert len(status["recent"]) == 50

    code, body = svc.get("/status?limit=5&offset=5")
    paged = json.loads(body)
    assert code == 200 and paged["page"] == {"limit": 5, "offset": 5}
    assert paged["upcoming"] == status["upcoming"][5:10]
    for query in ("limit=0", "limit=501", "limit=abc", "offset=-1"):
        code, body = svc.get(f"/status?{query}")
        assert code == 400 and "limit must be 1 to 500" in body, query


LABEL = re.compile(r'([a-z_]+)="((?:[^"\\\n]|\\[\\"n])*)"')
SAMPLE = re.compile(r"^[a-z_]+(\{%s(?:,%s)*\})? \S+$" % ((LABEL.pattern,) * 2))


def test_metrics_escapes_quote_backslash_and_newline_in_label_values(live: LiveFactory) -> None:
    """An account id holding ``"``, ``\\`` or a line feed gives one well-formed sample line
    per series (the text exposition format's escapes), whose label reads back as the id."""
    svc = live()
    odd = ['fr"acct', "back\\slash", "two\nlines", "plain"]
    due = datetime.now(UTC) + timedelta(hours=1)
    svc.service.store.ledger.ensure(
        NewDelivery(post_id="p", account=a, part=1, channel="x", lang="fr", due_at=due, text="t")
        for a in odd
    )
    code, text = svc.get("/metrics")
    assert code == 200
    samples = [line for line in text.splitlines() if line and not line.startswith("#")]
    for line in samples:
        assert SAMPLE.match(line), f"not a valid sample line: {line!r}"
    found = set()
    for line in samples:
        if line.startswith("diplobot_deliveries{"):
            labels = dict(LABEL.findall(line))
            unescaped = re.sub(r"\\(.)", lambda m: "\n" if m[1] == "n" else m[1], labels["account"])
            found.add(unescaped)
    assert found == set(odd)


def test_replay_memory_is_bounded_in_time_and_size() -> None:
    """Delivery ids are forgotten after the window, and only the newest ``size`` are kept:
    the memory of a long-running service does not grow with its webhooks."""
    now = [0.0]
    guard = ReplayGuard(window=3600, size=3, clock=lambda: now[0])
    assert guard.first_time(["a", "body:1"])
    assert not guard.first_time(["b", "body:1"])  # one known key refuses the delivery...
    assert guard.first_time(["b"])  # ...and remembered none of its keys
    now[0] = 3599
    assert not guard.first_time(["a"])  # still within the window
    now[0] = 3601
    assert guard.first_time(["a"])  # forgotten after it
    for key in ("c", "d", "e"):
        assert guard.first_time([key])
    assert not guard.first_time(["e"])
    assert guard.first_time(["a"])  # the oldest of four, beyond the three kept
