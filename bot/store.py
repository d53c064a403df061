"""The state database: one SQLite file (WAL) by default, through SQLAlchemy Core so that
PostgreSQL can follow. Its schema is versioned: :data:`MIGRATIONS` is applied in order, once.

Tables: ``slot_pins`` (a slot occurrence given to a post, so it never moves),
``translations`` (the machine-translation cache: each unique text is translated once per
target, backend and glossary version, across runs and restarts) and ``deliveries`` (the
ledger: one row per post, account, part and channel, with its state).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import (
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.exc import OperationalError

from bot.errors import ConfigError

metadata = MetaData()

schema_version = Table("schema_version", metadata, Column("version", Integer, nullable=False))
slot_pins = Table(
    "slot_pins",
    metadata,
    Column("post_id", String, primary_key=True),
    Column("slot", String, nullable=False),
    Column("local", String, nullable=False),  # wall time of the occurrence, ISO, no offset
    Column("pinned_at", String, nullable=False),  # UTC ISO
)
translations = Table(
    "translations",
    metadata,
    Column("backend", String, primary_key=True),
    Column("source_lang", String, primary_key=True),
    Column("target_lang", String, primary_key=True),
    Column("source_hash", String, primary_key=True),  # sha256 of the normalized source text
    Column("glossary_version", String, primary_key=True),
    Column("text", Text, nullable=False),  # restored and checked: what will be published
    Column("created_at", String, nullable=False),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("post_id", String, nullable=False),
    Column("account", String, nullable=False),
    Column("part", Integer, nullable=False),  # 1-based position in the account's reply chain
    Column("channel", String, nullable=False),  # "x", or "outbox" for dry runs
    Column("lang", String, nullable=False),
    Column("due_at", String, nullable=False),  # UTC ISO
    Column("text", Text, nullable=False),  # stored before the first attempt: retries match
    Column("media", Text, nullable=False, default="[]"),  # JSON [{file, alt}]
    Column("content_hash", String, nullable=False),
    Column("state", String, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("retry_at", String),
    Column("remote_id", String),
    Column("url", String),
    Column("last_error", Text),
    Column("revision", String),  # git commit the content came from
    Column("author", String),  # its author
    Column("claimed_at", String),
    Column("claimed_by", String),
    Column("created_at", String, nullable=False),
    Column("updated_at", String, nullable=False),
    UniqueConstraint("post_id", "account", "part", "channel", name="uq_delivery"),
)

runtime_pauses = Table(
    "runtime_pauses",
    metadata,
    Column("account", String, primary_key=True),  # "*" pauses every account
    Column("reason", String, nullable=False),
    Column("at", String, nullable=False),
)
heartbeat = Table(
    "heartbeat",
    metadata,
    Column("name", String, primary_key=True),
    Column("at", String, nullable=False),
)

MIGRATIONS: list[list[Table]] = [
    [slot_pins, translations],  # 1
    [deliveries],  # 2
    [runtime_pauses, heartbeat],  # 3
]
"""Version N creates MIGRATIONS[N-1]. Append, never edit: a deployed database is at some N."""


def state_url(root: Path, state: str | None) -> str:
    """The SQLAlchemy URL for ``--state`` (a path or a URL), default ROOT/.diplobot/state.sqlite.

    Raises:
        ConfigError: an unsupported URL scheme.
    """
    if not state:
        return f"sqlite:///{(root / '.diplobot' / 'state.sqlite').resolve()}"
    if "://" not in state:
        return f"sqlite:///{Path(state).resolve()}"
    if state.startswith("sqlite://"):
        return state
    raise ConfigError(
        f"state URL '{state.split('://')[0]}://…' is not supported yet; use sqlite:///PATH"
    )


def _sqlite_file(url: str) -> Path | None:
    return Path(url[len("sqlite:///") :]) if url.startswith("sqlite:///") else None


def state_dir(url: str, root: Path) -> Path:
    """The folder for files kept beside the state: the outbox, the followed git clone."""
    path = _sqlite_file(url)
    return path.parent if path is not None else root / ".diplobot"


def state_exists(url: str) -> bool:
    """Whether a SQLite state file is already there (other databases always exist)."""
    path = _sqlite_file(url)
    return path is None or path.exists()


def open_store(url: str) -> Engine:
    """Open (creating and migrating when needed) the state database at ``url``."""
    path = _sqlite_file(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30})
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    migrate(engine)
    return engine


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def migrate(engine: Engine) -> int:
    """Bring the schema to the latest version; return it. Safe to run concurrently: a
    process that loses the race to create a table sees it exist on its second try."""
    for attempt in range(3):
        try:
            return _migrate_once(engine)
        except OperationalError:
            if attempt == 2:
                raise
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


def _migrate_once(engine: Engine) -> int:
    with engine.begin() as conn:
        schema_version.create(conn, checkfirst=True)
        current = conn.execute(schema_version.select()).scalar() or 0
        for version in range(current + 1, len(MIGRATIONS) + 1):
            for table in MIGRATIONS[version - 1]:
                table.create(conn, checkfirst=True)
        if current == 0:
            conn.execute(schema_version.insert().values(version=len(MIGRATIONS)))
        elif current < len(MIGRATIONS):
            conn.execute(schema_version.update().values(version=len(MIGRATIONS)))
    return len(MIGRATIONS)


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
