"""A throwaway PostgreSQL server for the tests, and the state URLs they run on.

:class:`PostgresServer` runs the machine's own PostgreSQL server binaries (Debian's
``postgresql`` package: ``/usr/lib/postgresql/<version>/bin``, or where ``pg_config --bindir``
says) on ``127.0.0.1`` and a free port: ``initdb`` into a temporary folder, ``pg_ctl start -w``,
and ``pg_ctl stop`` at the end. PostgreSQL refuses to run as root: as root, the server runs as
the ``postgres`` user (the package creates it), its folder given to that user. Each test gets
a database of its own (``CREATE DATABASE t_<n>``), dropped after it. Every role is trusted
but :data:`PASSWORD_ROLE`, which must give its password.

The server trades durability for speed (``fsync=off``: the tests SIGKILL diplobot, never the
machine), and uses the C collation, whose order is SQLite's; ``DIPLOBOT_TEST_PG_ICU_LOCALE=en-US``
makes each database with that ICU collation instead, as a production server's may be.

Fixtures (imported by ``tests/conftest.py``, so every test may ask for them):

=================  ==============================================================================
``postgres``       the session's server (started at the first test that needs it)
``pg_url``         a new, empty database on it: ``postgresql+psycopg://postgres@127.0.0.1:P/t_N``
``state_url``      parametrized ``sqlite`` | ``postgresql``: a state URL of each kind, empty
                   (the SQLite file is ``tmp_path/.diplobot/state.sqlite``, as ``--root tmp_path``
                   would make it)
``state_urls``     parametrized the same way: ``state_urls(name)`` → a new empty state of that
                   kind for each name (a test that compares two ledgers)
=================  ==============================================================================

Close the stores a test opens (``store.close()``): a claim left SENDING keeps its heartbeat
thread beating, and once the test's database is dropped it logs its failures into the tests
that come after.

Without the server binaries these fixtures skip, saying why — except when ``CI`` is set,
where they fail: CI must run the PostgreSQL tests (``scripts/setup`` installs the package
when it runs as root).
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bot.state import state_url as sqlite_state_url

SERVER_USER = "postgres"
"""Who runs the server when the tests run as root."""
PASSWORD_ROLE, PASSWORD = "diplobot_pw", "pw-CANARY-5150"
"""A role that must give its password (every other role is trusted): for the tests of
``DIPLOBOT_STATE_PASSWORD`` and of URLs never shown with theirs."""


def find_bindir() -> Path | None:
    """The folder of the server binaries (``initdb``, ``pg_ctl``, ``postgres``), newest
    version first; None when the machine has none."""
    candidates: list[str] = []
    if env := os.environ.get("DIPLOBOT_TEST_PG_BINDIR"):
        candidates.append(env)
    try:
        found = subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True, timeout=10, check=True
        )
        candidates.append(found.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += sorted(versions, key=lambda p: int(Path(p).parent.name), reverse=True)
    for folder in candidates:
        if all((Path(folder) / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return Path(folder)
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """One PostgreSQL server in a temporary folder, on 127.0.0.1 and a free port."""

    host = "127.0.0.1"

    def __init__(self, bindir: Path, *, durable: bool = False) -> None:
        """``durable``: every commit synced to disk, as a production server does (the
        benchmarks); the tests' server does not sync."""
        self.bindir = bindir
        self.durable = durable
        self.port = 0
        self.folder = Path(tempfile.mkdtemp(prefix="diplobot-pg-"))
        self.data = self.folder / "data"
        self.log = self.folder / "server.log"
        self._as: dict[str, Any] = {}
        if os.geteuid() == 0:
            try:
                who = pwd.getpwnam(SERVER_USER)
            except KeyError:
                raise RuntimeError(
                    f"PostgreSQL refuses to run as root and there is no {SERVER_USER!r} user "
                    "(Debian's postgresql package creates it)"
                ) from None
            os.chown(self.folder, who.pw_uid, who.pw_gid)
            self._as = {"user": who.pw_uid, "group": who.pw_gid, "extra_groups": []}
        self._names = itertools.count(1)

    def _run(self, *argv: str) -> None:
        done = subprocess.run(
            [str(self.bindir / argv[0]), *argv[1:]],
            cwd=self.folder,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            **self._as,
        )
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(argv[:2])} failed: {done.stderr}{done.stdout}\n{log}")

    def start(self) -> PostgresServer:
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            *([] if self.durable else ["--no-sync"]),
        )
        # trust for every role but PASSWORD_ROLE, which must give its password (scram)
        (self.data / "pg_hba.conf").write_text(
            "local all all trust\n"
            f"host all {PASSWORD_ROLE} {self.host}/32 scram-sha-256\n"
            f"host all all {self.host}/32 trust\n",
            encoding="utf-8",
        )
        for attempt in range(5):  # the free port may be taken between its choice and use
            self.port = free_port()
            options = " ".join(
                [
                    f"-p {self.port}",
                    f"-c listen_addresses={self.host}",
                    f"-c unix_socket_directories={self.folder}",
                    *([] if self.durable else ["-c fsync=off", "-c full_page_writes=off"]),
                    "-c max_connections=300",
                    "-c shared_buffers=32MB",
                ]
            )
            try:
                self._run(
                    "pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data),
                    "-l", str(self.log), "-o", options,
                )  # fmt: skip
            except RuntimeError:
                if attempt == 4:
                    raise
            else:
                break
        with self.admin() as conn:
            conn.execute(f"CREATE ROLE {PASSWORD_ROLE} LOGIN PASSWORD '{PASSWORD}'")
        return self

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "stop", "-m", "immediate", "-w", "-D", str(self.data))
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def url(self, database: str, *, user: str = "postgres", password: str = "") -> str:
        who = f"{user}:{password}" if password else user
        return f"postgresql+psycopg://{who}@{self.host}:{self.port}/{database}"

    def admin(self) -> psycopg.Connection[Any]:
        """A connection to the ``postgres`` database, in autocommit mode (CREATE DATABASE)."""
        return psycopg.connect(
            host=self.host, port=self.port, user="postgres", dbname="postgres", autocommit=True
        )

    def create_database(self, owner: str = "postgres") -> str:
        """A new, empty database (of ``owner``): its name."""
        name = f"t_{os.getpid()}_{next(self._names)}"
        icu = os.environ.get("DIPLOBOT_TEST_PG_ICU_LOCALE")  # e.g. en-US: a production-like
        collation = f" TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE '{icu}'" if icu else ""
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}" OWNER {owner}{collation}')
        return name

    def drop_database(self, name: str) -> None:
        """Drop ``name``, closing whatever connections are still on it (an engine a test
        did not dispose of, a process it killed)."""
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def restart(self) -> None:
        """Stop the server (every connection cut) and start it again on the same port."""
        self._run(
            "pg_ctl", "restart", "-m", "fast", "-w", "-t", "60", "-D", str(self.data),
            "-l", str(self.log),  # else the server's output holds the pipe open
        )  # fmt: skip


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL tests cannot run: {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL tests skipped: {reason}")


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """The session's throwaway PostgreSQL server."""
    bindir = find_bindir()
    if bindir is None:
        _unavailable(
            "no PostgreSQL server binaries (initdb, pg_ctl) in /usr/lib/postgresql/*/bin or "
            "`pg_config --bindir`: install Debian's postgresql package (scripts/setup does, "
            "as root)"
        )
        raise AssertionError("unreachable")
    try:
        server = PostgresServer(bindir).start()
    except RuntimeError as exc:
        _unavailable(str(exc))
        raise AssertionError("unreachable") from exc
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(postgres: PostgresServer) -> Iterator[str]:
    """A new, empty PostgreSQL database for this test (dropped after it)."""
    name = postgres.create_database()
    try:
        yield postgres.url(name)
    finally:
        postgres.drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty state of each kind: the test runs once on SQLite, once on PostgreSQL."""
    if request.param == "sqlite":
        return sqlite_state_url(tmp_path, None)
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def state_urls(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """``make(name)``: a new, empty state of each kind per name (SQLite: tmp_path/NAME.sqlite)."""
    made: list[str] = []
    server: PostgresServer | None = None
    if request.param == "postgresql":
        server = request.getfixturevalue("postgres")

    def make(name: str) -> str:
        if server is None:
            return sqlite_state_url(tmp_path, str(tmp_path / f"{name}.sqlite"))
        made.append(server.create_database())
        return server.url(made[-1])

    yield make
    for database in made:
        assert server is not None
        server.drop_database(database)
