"""A git host on 127.0.0.1: git's smart HTTP protocol, served by the real ``git http-backend``
run as a CGI program for each request (as Apache or nginx run it for a real host).

Like a real host with a private repository, it answers 401 with ``WWW-Authenticate: Basic``
until the right user and password come (``auth``), which is when git asks its credential
helpers. ``delay`` holds every answer that many seconds (a slow or unreachable host), released
at once by :meth:`close`. Every request is recorded with its ``Authorization`` header, so a
test can see which credentials git sent.
"""

from __future__ import annotations

import base64
import os
import subprocess
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class GitRequest:
    method: str
    path: str
    authorization: str | None


class GitHttpServer:
    def __init__(self, project_root: Path, auth: tuple[str, str] | None = None) -> None:
        self.project_root = project_root
        self.auth = auth
        self.delay = 0.0
        self.requests: list[GitRequest] = []
        self._closing = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                fake._serve(self)

            def do_POST(self) -> None:
                fake._serve(self)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, repo: str, userinfo: str = "") -> str:
        """The URL of ``repo`` (a folder under ``project_root``), with ``user:password@``."""
        at = f"{userinfo}@" if userinfo else ""
        return f"http://{at}127.0.0.1:{self.port}/{repo}"

    def close(self) -> None:
        self._closing.set()
        self.server.shutdown()
        self.server.server_close()

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        authorization = handler.headers.get("Authorization")
        self.requests.append(GitRequest(handler.command, handler.path, authorization))
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        if self.delay and self._closing.wait(self.delay):
            handler.close_connection = True
            return
        if self.auth is not None:
            expected = "Basic " + base64.b64encode(":".join(self.auth).encode()).decode()
            if authorization != expected:
                self._reply(handler, 401, b"authentication required\n", realm=True)
                return
        path, _, query = handler.path.partition("?")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(self.project_root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": handler.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": handler.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": "127.0.0.1",
            "REMOTE_USER": self.auth[0] if self.auth else "",
        }
        for header in ("Git-Protocol", "Content-Encoding"):
            if handler.headers.get(header):
                env["HTTP_" + header.upper().replace("-", "_")] = handler.headers[header]
        done = subprocess.run(
            ["git", "http-backend"], input=body, env=env, capture_output=True, timeout=60
        )
        head, _, payload = done.stdout.partition(b"\r\n\r\n")
        status, headers = 200, []
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers.append((name, value.strip()))
        self._reply(handler, status, payload, headers=headers)

    @staticmethod
    def _reply(
        handler: BaseHTTPRequestHandler,
        status: int,
        payload: bytes,
        headers: list[tuple[str, str]] | None = None,
        realm: bool = False,
    ) -> None:
        handler.send_response(status)
        for name, value in headers or []:
            handler.send_header(name, value)
        if realm:
            handler.send_header("WWW-Authenticate", 'Basic realm="desk"')
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)
