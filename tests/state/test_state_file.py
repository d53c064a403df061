"""The state file when it is not what diplobot expects: damaged, someone else's, or newer.
Every command that opens it says which file, what is wrong and what to do; never a
traceback. And what a committed claim is worth on power loss (``synchronous``)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.state import open_store, state_url
from bot.state.ledger import NewDelivery

ROOT = Path(__file__).resolve().parents[2]
ADVICE = "Restore the last backup (docs/deploy.md, 'State, and backing it up')"
CliRun = Callable[..., Any]  # the `run_cli` fixture of tests/conftest.py
STATE_COMMANDS = [
    ("plan",),
    ("translate", "entretien-liban"),
    ("post-now", "entretien-liban", "--lang", "fr"),
    ("status",),
    ("status", "entretien-liban", "--format", "json"),
    ("retract", "entretien-liban", "--yes"),
    ("pause",),
    ("resume", "francediplo"),
]


def state_file(repo: Path) -> Path:
    path = repo / ".diplobot" / "state.sqlite"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def assert_told(result: Any, path: Path, what: str) -> None:
    assert result.code == 1, result
    assert result.err.startswith(f"diplobot: the state database {path} {what}"), result.err
    assert "Traceback" not in result.err and "sqlalchemy" not in result.err.lower()


@pytest.mark.parametrize("argv", STATE_COMMANDS, ids=lambda a: " ".join(a))
def test_state_file_that_is_not_a_database_is_named_with_what_to_do(
    repo: Path, run_cli: CliRun, argv: tuple[str, ...]
) -> None:
    """Garbage in state.sqlite: exit 1, the file, 'damaged or not a diplobot state
    database', and the way out (restore the backup, or move it aside), from every command
    that opens the state."""
    path = state_file(repo)
    path.write_bytes(b"not a database, a text file saved over it\n" * 200)
    result = run_cli(*argv, "--root", str(repo))
    assert_told(result, path, "is damaged or is not a diplobot state database")
    assert "(file is not a database)" in result.err
    assert ADVICE in result.err and "move the file aside, with its -wal and -shm" in result.err


def test_damage_inside_the_file_is_reported_when_it_is_read(repo: Path, run_cli: CliRun) -> None:
    """The header is intact, a page of the ledger is not: found only when `status` reads
    the ledger, and told the same way."""
    path = state_file(repo)
    store = open_store(state_url(repo, None))
    due = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
    store.ledger.ensure(
        NewDelivery(f"post-{n}", "francediplo", 1, "x", "fr", due, "Bonjour " * 40)
        for n in range(400)
    )
    store.close()  # the last connection closes: the WAL is written back into the file
    size = path.stat().st_size
    with path.open("r+b") as handle:
        handle.seek(size // 2)
        # Eight pages: some of the ledger's own (not only its indexes') whatever the layout
        handle.write(b"\xa5" * 8 * 4096)
    result = run_cli("status", "--root", str(repo))
    assert_told(result, path, "is damaged or is not a diplobot state database")
    assert "malformed" in result.err and ADVICE in result.err


def test_database_of_another_program_is_refused_and_left_untouched(
    repo: Path, run_cli: CliRun
) -> None:
    """A SQLite file with someone else's tables (a wrong --state): refused, not filled with
    diplobot's tables."""
    path = state_file(repo)
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    before = path.read_bytes()
    result = run_cli("status", "--root", str(repo))
    assert_told(result, path, "is damaged or is not a diplobot state database")
    assert "(it holds other tables: invoices)" in result.err
    assert path.read_bytes() == before


def test_state_migrated_by_a_newer_diplobot_is_refused(repo: Path, run_cli: CliRun) -> None:
    """A schema version this diplobot does not know: run the newer one, or restore."""
    path = state_file(repo)
    open_store(state_url(repo, None)).close()
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("UPDATE schema_version SET version = 99")
    result = run_cli("status", "--root", str(repo))
    assert_told(result, path, "was upgraded by a newer diplobot (schema 99; this version")
    assert "restore the backup taken before the upgrade" in result.err


def test_run_with_a_damaged_state_file_stops_at_once_with_the_message(repo: Path) -> None:
    """`diplobot run` (the real process) on a damaged state: exit 1 with the message, no
    traceback, no service started."""
    path = state_file(repo)
    path.write_bytes(b"\x00garbage" * 1000)
    done = subprocess.run(
        [sys.executable, "-m", "bot", "run", "--root", str(repo)],
        env={"PATH": "/usr/bin:/bin", "DIPLOBOT_HTTP_ADDR": "127.0.0.1:0"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert f"diplobot: the state database {path} is damaged or is not a diplobot" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_committed_claim_is_on_disk_before_the_call_it_allows(tmp_path: Path) -> None:
    """synchronous=FULL on every connection: in WAL mode, NORMAL may lose the last commits
    (a claim) on power loss, and a lost claim is a post sent twice."""
    store = open_store(state_url(tmp_path, None))
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
