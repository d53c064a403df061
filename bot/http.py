"""The service's HTTP endpoints. Nothing over HTTP changes state except the signed webhook.

GET  /healthz   200 when the scheduler loop ran recently and the ledger is writable
GET  /readyz    200 once content is loaded
GET  /metrics   Prometheus text
GET  /status    JSON: revision, content errors, upcoming and recent deliveries
POST /hooks/git 202 and a sync at once, when signed (GitHub X-Hub-Signature-256, or GitLab
                X-Gitlab-Token); 401 otherwise, 404 when no secret is configured
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from loguru import logger

from bot.errors import ConfigError
from bot.service import Service
from bot.sync import verify_signature, verify_token

MAX_HOOK_BODY = 5 * 1024 * 1024


def parse_addr(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"DIPLOBOT_HTTP_ADDR={addr!r} must look like 127.0.0.1:8080")
    return host.strip("[]"), int(port)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    service: Service


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = 30  # a client that stops sending does not hold a thread for ever

    def log_message(self, format: str, *args: Any) -> None:
        logger.bind(path=self.path, client=self.client_address[0]).debug("http.request")

    def _send(self, status: int, body: str | bytes, content_type: str = "text/plain") -> None:
        data = body.encode("utf-8") if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", f"{content_type}; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        service = self.server.service
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            ok = service.healthy()
            self._send(200 if ok else 503, "ok\n" if ok else "scheduler loop is not running\n")
        elif path == "/readyz":
            ok = service.ready()
            self._send(200 if ok else 503, "ready\n" if ok else "no valid content loaded yet\n")
        elif path == "/metrics":
            self._send(200, service.metrics(), "text/plain; version=0.0.4")
        elif path == "/status":
            self._send(
                200, json.dumps(service.status(), ensure_ascii=False, indent=2), "application/json"
            )
        else:
            self._send(404, "not found\n")

    def do_POST(self) -> None:
        service = self.server.service
        if self.path.split("?", 1)[0] != "/hooks/git":
            self._send(404, "not found\n")
            return
        secret = service.settings.webhook_secret
        if not secret:
            self._send(404, "webhook disabled: set DIPLOBOT_WEBHOOK_SECRET\n")
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:  # read(-1) would read until the client closes, past MAX_HOOK_BODY
            self._send(400, "bad Content-Length\n")
            return
        if length > MAX_HOOK_BODY:
            self._send(413, "too large\n")
            return
        body = self.rfile.read(length)
        key = secret.reveal().encode("utf-8")
        signed = verify_signature(key, body, self.headers.get("X-Hub-Signature-256")) or (
            verify_token(key, self.headers.get("X-Gitlab-Token"))
        )
        if not signed:
            logger.bind(client=self.client_address[0]).warning("webhook.refused")
            self._send(401, "bad or missing signature\n")
            return
        service.trigger_sync()
        self._send(202, "sync started\n")


def serve(service: Service, addr: str) -> tuple[ThreadingHTTPServer, threading.Thread]:
    host, port = parse_addr(addr)
    server = _Server((host, port), _Handler)
    server.service = service
    thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    thread.start()
    logger.bind(addr=f"{host}:{server.server_address[1]}").info("http.listening")
    return server, thread
