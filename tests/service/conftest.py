"""Fixtures for the service tests: a content repository under git in a temporary folder, the
real ``diplobot run`` in a subprocess following it, and the fake X and LibreTranslate in this
process. Everything is on 127.0.0.1; the tests read what an operator reads (``/status``,
``/healthz``, ``diplobot status``) and what X received."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
from example import keep_platforms
from publish.conftest import ACCOUNTS, WebhookSink, env_for
from servers.translate import LibreServer
from servers.x import XServer

if TYPE_CHECKING:
    from service.clocked import ClockedService

ROOT = Path(__file__).resolve().parents[2]
HANDLES = list(ACCOUNTS)
BRANCH = "desk"  # not git's default branch, so that DIPLOBOT_REPO_BRANCH is really used
T = TypeVar("T")


def wait_for(what: str, check: Callable[[], T | None], timeout: float = 15.0) -> T:
    """Poll ``check`` every 50 ms until it returns something truthy; fail with ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def due_in(seconds: float) -> datetime:
    """A due instant ``seconds`` from now, on a whole second (publish_at has no fractions)."""
    moment = datetime.now(UTC) + timedelta(seconds=seconds)
    return moment.replace(microsecond=0) + timedelta(seconds=1)


def sleep_until(moment: datetime) -> None:
    time.sleep(max(0.0, (moment - datetime.now(UTC)).total_seconds()))


def post_yaml(post_id: str, due: datetime | None, text: str, *, human: bool = True) -> str:
    """A post in French with ``publish_at`` written with an explicit UTC offset; translated by
    hand into en/ar/es, or (``human=False``) left to the machine translator."""
    lines = [f"id: {post_id}", "lang: fr"]
    if due is not None:
        lines.append(f"publish_at: {due.isoformat(timespec='seconds')}")
    lines.append(f"text: {json.dumps(text, ensure_ascii=False)}")
    if human:
        lines.append("translations:")
        for lang, word in (("en", "EN"), ("ar", "بالعربية"), ("es", "ES")):
            lines.append(f"  {lang}: {json.dumps(f'{text} [{word}]', ensure_ascii=False)}")
    return "\n".join(lines) + "\n"


class ContentRepo:
    """The desk's content repository: a real git repository in a temporary folder."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def git(self, *args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(self.path), *args],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
        return done.stdout.strip()

    def write(self, relative: str, text: str) -> None:
        target = self.path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")

    def remove(self, relative: str) -> None:
        self.git("rm", "--quiet", relative)

    def commit(self, message: str) -> str:
        """Commit everything; return the new revision (full sha, as the service shows it)."""
        self.git("add", "--all")
        self.git("commit", "--quiet", "-m", message)
        return self.git("rev-parse", "HEAD")


@pytest.fixture
def content_repo(tmp_path: Path) -> ContentRepo:
    """The example's schedules/ and content/ (glossary, media) under git on branch ``desk``.

    The example's posts are left out: they are dated (November–December 2026), so whether they
    fall due during a test would depend on the day the suite runs; so are its blackouts.
    """
    path = tmp_path / "desk-content"
    for part in ("content", "schedules"):
        shutil.copytree(ROOT / part, path / part)
    keep_platforms(path, {"x"})  # the accounts the fake X knows
    shutil.rmtree(path / "content" / "posts")
    (path / "content" / "posts").mkdir()
    slots = path / "schedules" / "slots.yaml"
    slots.write_text(
        re.sub(r"\nblackouts:\n(?: .*\n)*", "\nblackouts: []\n", slots.read_text()),
        encoding="utf-8",
    )
    (path / "content" / "posts" / ".gitkeep").write_text("")
    repo = ContentRepo(path)
    subprocess.run(
        ["git", "init", "--quiet", "-b", BRANCH, str(path)], check=True, capture_output=True
    )
    repo.git("config", "user.email", "desk@example.org")
    repo.git("config", "user.name", "Desk")
    repo.git("config", "commit.gpgsign", "false")
    repo.commit("example accounts, slots and glossary")
    return repo


@pytest.fixture
def clocked(
    content_repo: ContentRepo,
    x: XServer,
    libre: LibreServer,
    alerts: WebhookSink,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> ClockedService:
    """The service on ``content_repo`` under a test's clock (``service/clocked.py``),
    publishing to the fake X with every account's credentials, alerting ``alerts``."""
    from service.clocked import clocked_service

    return clocked_service(content_repo.path, tmp_path / "state", x, libre, alerts, monkeypatch)


@pytest.fixture
def alerts() -> Iterator[WebhookSink]:
    sink = WebhookSink()
    yield sink
    sink.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ServiceProcess:
    """``diplobot run`` in a subprocess, following the content repository on ``BRANCH``; its
    state (the SQLite ledger, the clone, the logs) under ``state_dir``. Start, stop and
    restart it; read its HTTP endpoints; run other ``diplobot`` commands on the same state."""

    state_dir: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    runs: int = 0
    url: str | None = None  # the state's URL when it is not the SQLite file (PostgreSQL)

    @property
    def state(self) -> Path:
        return self.state_dir / "state.sqlite"

    @property
    def clone(self) -> Path:
        """Where the service checks the repository out (its content root)."""
        return self.state_dir / "repo"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self, *args: str, root: Path | None = None) -> list[str]:
        where = root or self.state_dir
        return [
            sys.executable,
            "-m",
            "bot",
            *args,
            "--root",
            str(where),
            "--state",
            self.url or str(self.state),
        ]

    def start(self) -> None:
        """Start it; return once it has loaded the content (``/readyz`` answers 200)."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.runs += 1
        log = (self.state_dir / f"service-{self.runs}.log").open("wb")
        env = {**self.env, "DIPLOBOT_HTTP_ADDR": f"127.0.0.1:{self.port}"}
        self.proc = subprocess.Popen(
            self.command("run"), env=env, cwd=self.state_dir, stdout=log, stderr=log
        )
        log.close()
        wait_for("the service to load its content", lambda: self.get("/readyz")[0] == 200)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM; SIGKILL if it has not exited within ``timeout``. Returns the exit code."""
        proc = self.proc
        assert proc is not None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                return proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
                raise AssertionError(f"no exit {timeout:.0f} s after SIGTERM: killed") from None
        return proc.returncode

    def get(self, path: str) -> tuple[int, str]:
        """GET ``path``: (status, body); (0, error) while nothing listens."""
        try:
            with urllib.request.urlopen(self.base + path, timeout=5) as response:
                return response.status, response.read().decode("utf-8")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode("utf-8")
        except (urllib.error.URLError, OSError) as exc:
            return 0, str(exc)

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
        request = urllib.request.Request(self.base + path, data=body, method="POST")
        for name, value in headers.items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, response.read().decode("utf-8")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode("utf-8")

    def post_raw(self, path: str, content_length: str, body: bytes = b"{}") -> int:
        """POST with a ``Content-Length`` header as given (urllib would not send a wrong one);
        the status answered within 3 s, 0 when none came."""
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {content_length}\r\n\r\n"
        )
        with socket.create_connection(("127.0.0.1", self.port), timeout=3) as sock:
            sock.sendall(head.encode() + body)
            try:
                line = sock.recv(64).decode("latin-1")
            except TimeoutError:
                return 0
        return int(line.split()[1]) if line.startswith("HTTP/") else 0

    def status(self) -> dict[str, Any]:
        code, body = self.get("/status")
        assert code == 200, body
        result: dict[str, Any] = json.loads(body)
        return result

    def rows(self, post: str) -> list[dict[str, Any]]:
        """This post's deliveries in /status (upcoming and recent)."""
        status = self.status()
        return [r for r in status["upcoming"] + status["recent"] if r["post"] == post]

    def cli(self, *args: str, root: Path | None = None) -> subprocess.CompletedProcess[str]:
        """Another ``diplobot`` command against the same state, as an operator runs it."""
        return subprocess.run(
            self.command(*args, root=root),
            env=self.env,
            cwd=self.state_dir,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def ledger(self, post: str) -> list[dict[str, Any]]:
        """``diplobot status POST --format json``."""
        done = self.cli("status", post, "--format", "json")
        assert done.returncode == 0, done.stderr
        rows: list[dict[str, Any]] = json.loads(done.stdout)
        return rows

    def log(self) -> str:
        return "\n".join(
            p.read_text(errors="replace") for p in sorted(self.state_dir.glob("service-*.log"))
        )

    def events(self) -> list[dict[str, Any]]:
        """The JSON log lines of every run: loguru's ``record`` (message, extra, level)."""
        found = []
        for line in self.log().splitlines():
            if line.startswith("{"):
                found.append(json.loads(line)["record"])
        return found


ServiceFactory = Callable[..., ServiceProcess]


@pytest.fixture
def service(
    tmp_path: Path, content_repo: ContentRepo, x: XServer, libre: LibreServer
) -> Iterator[ServiceFactory]:
    """Make the service (not started) with extra environment; every one made is stopped at the
    end of the test, with SIGTERM and then SIGKILL."""
    made: list[ServiceProcess] = []

    def make(*, state_url: str | None = None, **extra: str) -> ServiceProcess:
        state_dir = tmp_path / f"state-{len(made)}"
        state_dir.mkdir()
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("DIPLOBOT_")}
        env = {
            **inherited,
            **env_for(
                x,
                libre,
                DIPLOBOT_REPO_URL=str(content_repo.path),
                DIPLOBOT_REPO_BRANCH=BRANCH,
                DIPLOBOT_SYNC_INTERVAL="1",
                DIPLOBOT_SWEEP_INTERVAL="1",
                DIPLOBOT_LOG_FORMAT="json",
                DIPLOBOT_LOG_LEVEL="INFO",
            ),
            **extra,
        }
        made.append(ServiceProcess(state_dir, env, url=state_url))
        return made[-1]

    yield make
    for process in made:
        proc = process.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def wait_out_backoff(url: str) -> None:
    """Retries and look-ups waiting for their back-off (1, 2, 4… minutes) in the state at
    ``url`` are due now, as if that time had passed (a state not set up yet: nothing)."""
    from sqlalchemy import update
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from bot.state.dialect import engine_for
    from bot.state.tables import deliveries

    now = datetime.now(UTC) - timedelta(seconds=1)
    engine = engine_for(url)
    try:
        with engine.begin() as conn:
            c = deliveries.c
            conn.execute(
                update(deliveries)
                .where(c.state.in_(["PENDING", "UNKNOWN"]), c.retry_at > now)
                .values(retry_at=now)
            )
    except (OperationalError, ProgrammingError):
        pass  # no deliveries table yet
    finally:
        engine.dispose()
