"""Fixtures: the example repository, a fake X with the example's four accounts, a fake
LibreTranslate, and the environment that points diplobot at both."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from servers.translate import LibreServer
from servers.x import XServer

ROOT = Path(__file__).resolve().parents[2]
APP = ("app-key-CANARY-1a2b", "app-secret-CANARY-3c4d")
ACCOUNTS = {
    "francediplo": ("tok-fr-CANARY-5e6f", "sec-fr-CANARY-7a8b", "francediplo"),
    "francediplo_EN": ("tok-en-CANARY-9c0d", "sec-en-CANARY-1e2f", "francediplo_EN"),
    "francediplo_AR": ("tok-ar-CANARY-3a4b", "sec-ar-CANARY-5c6d", "francediplo_AR"),
    "francediplo_ES": ("tok-es-CANARY-7e8f", "sec-es-CANARY-9a0b", "francediplo_ES"),
}
SECRETS = [*APP, *(v for t in ACCOUNTS.values() for v in t[:2])]


def env_for(x: XServer, libre: LibreServer, **extra: str) -> dict[str, str]:
    env = {
        "DIPLOBOT_X_API_URL": x.url,
        "DIPLOBOT_X_API_KEY": APP[0],
        "DIPLOBOT_X_API_SECRET": APP[1],
        "DIPLOBOT_X_TIMEOUT": "2",
        "DIPLOBOT_TRANSLATOR": "libre",
        "DIPLOBOT_TRANSLATOR_URL": libre.url,
        "DIPLOBOT_LOG_FORMAT": "text",
        "DIPLOBOT_LOG_LEVEL": "WARNING",
    }
    for account, (token, secret, _handle) in ACCOUNTS.items():
        env[f"DIPLOBOT_{account.upper()}_ACCESS_TOKEN"] = token
        env[f"DIPLOBOT_{account.upper()}_ACCESS_SECRET"] = secret
    env.update(extra)
    return env


@pytest.fixture
def live(x: XServer, libre: LibreServer, monkeypatch: pytest.MonkeyPatch) -> XServer:
    """The environment of an installation with credentials for all four accounts."""
    for key, value in env_for(x, libre).items():
        monkeypatch.setenv(key, value)
    return x


class WebhookSink:
    """An incoming-webhook endpoint that records the JSON bodies it receives."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                sink.received.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook(monkeypatch: pytest.MonkeyPatch) -> Iterator[WebhookSink]:
    sink = WebhookSink()
    monkeypatch.setenv("DIPLOBOT_ALERT_WEBHOOK", sink.url)
    yield sink
    sink.close()
