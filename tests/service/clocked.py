"""The service in this process on a controlled clock, for policies measured in minutes and
hours (the lateness window, retry and look-up back-off, the UNKNOWN bound) that a subprocess on
the real clock cannot wait for.

It is the same :class:`~bot.service.Service` that ``diplobot run`` runs, on a real content
folder, a real SQLite ledger, the fake X and the alert webhook over HTTP; only its scheduler,
HTTP server and signals are left out: the test calls ``sync()`` and ``sweep()`` at the instants
it chooses (time-machine moves the clock of this whole process, the fake X's included, so OAuth
timestamps and post times agree). ``cli()`` runs another ``diplobot`` command on the same
state at a chosen instant.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from publish.conftest import WebhookSink, env_for
from servers.translate import LibreServer
from servers.x import XServer

from bot.cli import main
from bot.service import Service
from bot.settings import ServiceSettings, Settings
from bot.source import LocalSource
from bot.state import open_store, state_url
from bot.state.ledger import Ledger, Row
from bot.wiring import Wiring

FR = "francediplo"


def fr_post(post_id: str, due: datetime | None, text: str, *thread: str) -> str:
    """A post for the French account only (no translation), due at ``due`` (UTC offset
    written out; None: a draft, which only ``post-now`` publishes); ``thread``: the texts of
    its further parts."""
    lines = [f"id: {post_id}", "lang: fr"]
    if due is not None:
        lines.append(f"publish_at: {due.isoformat(timespec='seconds')}")
    lines += [f"text: {json.dumps(text, ensure_ascii=False)}", "languages: [fr]"]
    if thread:
        lines.append("thread:")
        lines += [f"  - text: {json.dumps(part, ensure_ascii=False)}" for part in thread]
    return "\n".join(lines) + "\n"


def whole_hour_ahead() -> datetime:
    """A due instant on a whole hour, 2 to 3 hours from now: inside the planning horizon and
    clear of the example's dated posts."""
    return (datetime.now(UTC) + timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)


@dataclass
class ClockedService:
    root: Path
    state: Path
    service: Service
    ledger: Ledger

    @contextmanager
    def at(self, moment: datetime) -> Iterator[None]:
        """The clock stands still at ``moment`` (timeouts run on the monotonic clock, which
        time-machine leaves alone), so waits computed by the service are exact."""
        with time_machine.travel(moment, tick=False):
            yield

    def sync(self, moment: datetime) -> None:
        with self.at(moment):
            self.service.sync()

    def sweep(self, moment: datetime) -> None:
        with self.at(moment):
            self.service.sweep()

    def pause(self, account: str, paused: bool = True) -> None:
        self.service.store.pauses.set(account, "test", paused)

    def rows(self, post: str) -> list[Row]:
        return self.ledger.rows(post)

    def row(self, post: str, part: int = 1) -> Row:
        return next(r for r in self.rows(post) if r.part == part)

    def cli(
        self, capsys: pytest.CaptureFixture[str], moment: datetime, *args: str
    ) -> tuple[int, str]:
        """``diplobot ARGS`` on this root and state at ``moment``: exit code and stdout."""
        capsys.readouterr()
        with self.at(moment):
            code = main([*args, "--root", str(self.root), "--state", str(self.state)])
        return code, capsys.readouterr().out


def clocked_service(
    root: Path,
    state_dir: Path,
    x: XServer,
    libre: LibreServer,
    alerts: WebhookSink,
    monkeypatch: pytest.MonkeyPatch,
    *,
    max_late: timedelta = timedelta(minutes=15),
) -> ClockedService:
    """The service on ``root`` (a content folder), its ledger in ``state_dir``, publishing to
    the fake X with every account's credentials, alerting ``alerts``."""
    for key, value in env_for(x, libre, DIPLOBOT_ALERT_WEBHOOK=alerts.url).items():
        monkeypatch.setenv(key, value)
    state_dir.mkdir(parents=True, exist_ok=True)
    state = state_dir / "state.sqlite"
    store = open_store(state_url(root, str(state)))
    settings = ServiceSettings(max_late=max_late, sweep_interval=1.0)
    wiring = Wiring(Settings.from_env(os.environ))
    service = Service(LocalSource(root), store, state_dir, settings, wiring=wiring)
    return ClockedService(root, state, service, store.ledger)


def alerts_of(sink: WebhookSink, event: str) -> list[dict[str, Any]]:
    return [a for a in sink.received if a["event"] == event]


def x_posts(x: XServer) -> int:
    """How many ``POST /2/tweets`` X received (answered or not)."""
    return sum(1 for r in x.requests if r.method == "POST" and r.path == "/2/tweets")


def lookups(x: XServer) -> int:
    """How many times X's timeline was read (reconciliation)."""
    return sum(1 for r in x.requests if r.method == "GET" and r.path.endswith("/tweets"))
