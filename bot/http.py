"""The service's HTTP endpoints. Nothing over HTTP changes state except the signed webhook.

GET  /healthz   200 while the process is alive and sweeping (the scheduler loop ran recently
                and the ledger is writable; a standby: it polled the lease recently); the
                body ends with the role, ``ok (active)`` or ``ok (standby)``
GET  /readyz    200 when valid content is loaded and the last sync of the source succeeded
                (``ready (standby)``: a standby is ready too, to take over)
GET  /metrics   Prometheus text (``?mission=M``: the per-account figures of M's accounts)
GET  /status    JSON: revision, content errors, sync state, counts per state and account, and
                bounded lists of deliveries (``?limit=50&offset=0``; ``&mission=M``: only M's
                accounts)
GET  /preview/  the editors' preview of the running revision (HTML pages and their images;
                read-only; 404 when ``DIPLOBOT_PREVIEW=off``)
POST /hooks/git 202 and a sync at once, when signed (GitHub X-Hub-Signature-256, or GitLab
                X-Gitlab-Token) and not already received; 401 unsigned, 409 a replay, 404
                when no secret is configured

Built on the standard library's ``http.server``, with what it lacks for a port that may face
the network behind a proxy:

- *framing*: a request body is either read whole or the connection is closed after the
  answer, so an unread body is never parsed as the next request; ``Transfer-Encoding`` and
  repeated or malformed ``Content-Length`` are refused (with the connection closed);
- *limits*: at most :data:`MAX_CONNECTIONS` connections, each with :data:`REQUEST_DEADLINE`
  seconds to send a whole request (line, headers and body) — a deadline for the request, not a
  timeout per read, which a client sending a byte a second would never reach. When every
  connection is taken, the one that has waited longest for its request is closed for the new
  one (a slow client loses its place before a health check does);
- *replays*: the delivery ids of accepted webhooks are remembered (:class:`ReplayGuard`).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import io
import json
import re
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from loguru import logger

from bot.errors import ConfigError
from bot.service import Service, views

MAX_HOOK_BODY = 5 * 1024 * 1024
MAX_CONNECTIONS = 64
REQUEST_DEADLINE = 10.0
"""Seconds a connection has to send a whole request, from its opening or the last answer."""
WRITE_TIMEOUT = 10.0
STATUS_LIMIT, STATUS_MAX_LIMIT = 50, 500
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: 5\r\n\r\nbusy\n"
)


def parse_addr(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"DIPLOBOT_HTTP_ADDR={addr!r} must look like 127.0.0.1:8080")
    return host.strip("[]"), int(port)


class ReplayGuard:
    """Ids of webhook deliveries already accepted, remembered for ``window`` seconds (the
    newest ``size`` of them). Only signed deliveries are remembered: otherwise anyone could
    fill it with the ids of deliveries to come."""

    def __init__(
        self,
        window: float = 24 * 3600,
        size: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window, self.size, self.clock = window, size, clock
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def first_time(self, keys: list[str]) -> bool:
        """Remember ``keys``; False (and nothing remembered) if one was seen already."""
        now = self.clock()
        with self._lock:
            while self._seen and next(iter(self._seen.values())) < now - self.window:
                self._seen.popitem(last=False)
            if any(key in self._seen for key in keys):
                return False
            for key in keys:
                self._seen[key] = now
            while len(self._seen) > self.size:
                self._seen.popitem(last=False)
            return True


class _Conn:
    """One open connection, as the server's accept loop sees it."""

    __slots__ = ("evicted", "sock", "waiting_since")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.waiting_since: float | None = time.monotonic()  # None while a request is handled
        self.evicted = False


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    service: Service
    max_connections: int = MAX_CONNECTIONS
    request_deadline: float = REQUEST_DEADLINE

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(address, _Handler)
        self.replays = ReplayGuard()
        self.conns: dict[int, _Conn] = {}
        self.conns_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.conns_lock:
            live = [c for c in self.conns.values() if not c.evicted]
            if len(live) >= self.max_connections:
                waiting = [c for c in live if c.waiting_since is not None]
                if not waiting:
                    self._refuse(request)
                    return
                victim = min(waiting, key=lambda c: c.waiting_since or 0.0)
                victim.evicted = True
                with contextlib.suppress(OSError):  # its read returns at once; its thread ends
                    victim.sock.shutdown(socket.SHUT_RDWR)
                logger.debug("http.evicted")
            self.conns[id(request)] = _Conn(request)
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self.conns_lock:
                self.conns.pop(id(request), None)

    def _refuse(self, request: socket.socket) -> None:
        """Every connection is busy answering: 503 without a thread, never blocking."""
        try:
            request.setblocking(False)
            request.send(_BUSY)
        except OSError:
            pass
        self.shutdown_request(request)
        logger.warning("http.busy")

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that went away (or was evicted) mid-answer is not an error of ours; the
        # handler answers 500 for its own failures. Never socketserver's traceback on stderr.
        logger.opt(exception=True).debug("http.connection_error")


class _DeadlineReader(io.RawIOBase):
    """The socket's input, every read bounded by the handler's current request deadline."""

    def __init__(self, handler: _Handler) -> None:
        self.handler = handler

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        remaining = self.handler.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("request deadline passed")
        sock: socket.socket = self.handler.connection
        sock.settimeout(remaining)
        return sock.recv_into(buffer)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    deadline: float = 0.0

    def setup(self) -> None:
        super().setup()
        self.rfile.close()
        self.rfile = io.BufferedReader(_DeadlineReader(self))
        self.conn = self.server.conns.get(id(self.request)) or _Conn(self.request)

    def handle_one_request(self) -> None:
        self.deadline = time.monotonic() + self.server.request_deadline
        self.conn.waiting_since = time.monotonic()
        self.body_unread = False
        super().handle_one_request()

    def parse_request(self) -> bool:
        if not super().parse_request():
            return False
        lengths = self.headers.get_all("Content-Length") or []
        self.body_unread = (
            "Transfer-Encoding" in self.headers
            or len(lengths) > 1
            or any(length.strip() != "0" for length in lengths)
        )
        return True

    def log_message(self, format: str, *args: Any) -> None:
        logger.bind(path=self.path, client=self.client_address[0]).debug("http.request")

    def _send(
        self,
        status: int,
        body: str | bytes,
        content_type: str = "text/plain",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.conn.waiting_since = None
        data = body.encode("utf-8") if isinstance(body, str) else body
        self.connection.settimeout(WRITE_TIMEOUT)
        self.send_response(status)
        binary = content_type.startswith("image/") or content_type == "application/octet-stream"
        if "charset=" not in content_type and not binary:
            content_type += "; charset=utf-8"
        self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        if self.body_unread:  # what follows on this connection is not a request
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def _answer(self, route: Callable[[], None]) -> None:
        try:
            route()
        except (TimeoutError, OSError):
            raise  # the client's connection: socketserver closes it
        except Exception:
            logger.opt(exception=True).bind(path=self.path).error("http.failed")
            self.body_unread = True  # answer and close: the request may be half read
            self._send(500, "internal error\n")

    def do_GET(self) -> None:
        self.conn.waiting_since = None
        self._answer(self._get)

    def _get(self) -> None:
        service = self.server.service
        path, _, query = self.path.partition("?")
        if path == "/healthz":
            ok = views.healthy(service)
            role = service.role.name
            text = f"ok ({role})\n" if ok else f"scheduler loop is not running ({role})\n"
            self._send(200 if ok else 503, text)
        elif path == "/readyz":
            reason = views.not_ready(service)
            role = service.role.name
            if reason:
                self._send(503, f"{reason}\n")
            else:
                self._send(200, f"ready ({role})\n")
        elif path == "/metrics":
            try:
                figures = views.metrics(service, _mission(query))
            except KeyError as exc:
                self._send(404, f"{exc.args[0]}\n")
                return
            self._send(200, figures, views.CONTENT_TYPE)
        elif path == "/status":
            page = _page(query)
            if page is None:
                self._send(
                    400, f"limit must be 1 to {STATUS_MAX_LIMIT}, offset 0 or more (?limit=50)\n"
                )
                return
            try:
                status = views.status(
                    service, limit=page[0], offset=page[1], mission=_mission(query)
                )
            except KeyError as exc:
                self._send(404, f"{exc.args[0]}\n")
                return
            self._send(200, json.dumps(status, ensure_ascii=False, indent=2), "application/json")
        elif path == "/preview" or path.startswith("/preview/"):
            self._preview(path)
        else:
            self._send(404, "not found\n")

    def _preview(self, path: str) -> None:
        service = self.server.service
        if not service.settings.preview:
            self._send(404, "the preview is off (DIPLOBOT_PREVIEW=off)\n")
            return
        if path == "/preview":  # the pages link to each other relatively: from /preview/
            self._send(301, "moved\n", headers={"Location": "/preview/"})
            return
        from bot.service.preview import CSP, previews

        answer = previews(service).answer(service, path.removeprefix("/preview/"))
        self._send(
            answer.status,
            answer.body,
            answer.content_type,
            headers={
                "Content-Security-Policy": CSP,
                "X-Content-Type-Options": "nosniff",
                "Cache-Control": "no-store",
            },
        )

    def do_POST(self) -> None:
        self._answer(self._post)

    def _post(self) -> None:
        service = self.server.service
        if self.path.split("?", 1)[0] != "/hooks/git":
            self._send(404, "not found\n")
            return
        secret = service.settings.webhook_secret
        if not secret:
            self._send(404, "webhook disabled: set DIPLOBOT_WEBHOOK_SECRET\n")
            return
        if "Transfer-Encoding" in self.headers:  # git hosts send Content-Length
            self._send(411, "send the body with a Content-Length\n")
            return
        lengths = self.headers.get_all("Content-Length") or ["0"]
        if len(lengths) != 1 or not re.fullmatch(r"[0-9]{1,10}", lengths[0].strip()):
            self._send(400, "bad Content-Length\n")
            return
        length = int(lengths[0])
        if length > MAX_HOOK_BODY:
            self._send(413, "too large\n")
            return
        body = self.rfile.read(length)
        if len(body) < length:  # the client closed before sending all of it
            self.close_connection = True
            return
        self.body_unread = False
        self.conn.waiting_since = None
        key = secret.reveal().encode("utf-8")
        github = verify_signature(key, body, self.headers.get("X-Hub-Signature-256"))
        if not github and not verify_token(key, self.headers.get("X-Gitlab-Token")):
            logger.bind(client=self.client_address[0]).warning("webhook.refused")
            self._send(401, "bad or missing signature\n")
            return
        if not self.server.replays.first_time(self._delivery_keys(github, body)):
            logger.bind(client=self.client_address[0]).warning("webhook.replayed")
            self._send(409, "this delivery was already received\n")
            return
        service.trigger_sync()
        self._send(202, "sync started\n")

    def _delivery_keys(self, github: bool, body: bytes) -> list[str]:
        """What identifies a delivery: its id header, and for GitHub the signed body too (the
        id is not signed, so a replay could carry a new one; the body cannot change)."""
        if github:
            keys = ["body:" + hashlib.sha256(body).hexdigest()]
            delivery = self.headers.get("X-GitHub-Delivery")
            return keys + ([f"github:{delivery}"] if delivery else [])
        event = self.headers.get("X-Gitlab-Event-UUID")
        return [f"gitlab:{event}"] if event else []


def _mission(query: str) -> str | None:
    """``?mission=`` of ``/status`` and ``/metrics`` (None: every mission)."""
    found = parse_qs(query).get("mission")
    return found[-1] if found else None


def _page(query: str) -> tuple[int, int] | None:
    """``limit`` and ``offset`` from ``/status``'s query; None when out of bounds."""
    params = parse_qs(query)
    try:
        limit = int(params.get("limit", [str(STATUS_LIMIT)])[-1])
        offset = int(params.get("offset", ["0"])[-1])
    except ValueError:
        return None
    if not 1 <= limit <= STATUS_MAX_LIMIT or not 0 <= offset <= 10**9:
        return None
    return limit, offset


def verify_signature(secret: bytes, body: bytes, header: str | None) -> bool:
    """GitHub's ``X-Hub-Signature-256: sha256=<hex HMAC of the body>``. Compared as bytes:
    a header may carry any byte (http.server decodes it as Latin-1), and ``compare_digest``
    refuses str with non-ASCII characters."""
    if not header or not header.startswith("sha256="):
        return False
    expected = hmac.new(secret, body, hashlib.sha256).hexdigest().encode("ascii")
    return hmac.compare_digest(expected, _raw(header[len("sha256=") :]))


def verify_token(secret: bytes, header: str | None) -> bool:
    """GitLab's ``X-Gitlab-Token: <the shared secret>``."""
    return bool(header) and hmac.compare_digest(secret, _raw(header or ""))


def _raw(value: str) -> bytes:
    """A header's value as bytes, whatever it holds (no exception for any input)."""
    return value.encode("utf-8", "surrogatepass")


def serve(
    service: Service,
    addr: str,
    *,
    max_connections: int = MAX_CONNECTIONS,
    request_deadline: float = REQUEST_DEADLINE,
) -> tuple[ThreadingHTTPServer, threading.Thread]:
    host, port = parse_addr(addr)
    server = _Server((host, port))
    server.service = service
    server.max_connections = max_connections
    server.request_deadline = request_deadline
    thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    thread.start()
    logger.bind(addr=f"{host}:{server.server_address[1]}").info("http.listening")
    return server, thread
