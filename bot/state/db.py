"""The state database: one SQLite file (WAL) by default, through SQLAlchemy Core so that
PostgreSQL can follow. Its schema is versioned: :data:`MIGRATIONS` is applied in order, once.

Tables: ``slot_pins`` (a slot occurrence given to a post, so it never moves),
``translations`` (the machine-translation cache: each unique text is translated once per
target, backend and glossary version, across runs and restarts), ``deliveries`` (the
ledger: one row per post, account, part and channel, with its state) and ``instances`` (one
row per process start that claimed a delivery: its heartbeat, which keeps its claims alive)
and ``by_hand`` (deliveries armed by ``post-now``, which the plan must not move or cancel).

SQLite runs with ``synchronous=FULL``: a claim (PENDING → SENDING) is on disk before the API
call it allows, even if the machine loses power. In WAL mode ``NORMAL`` may roll back the last
commits on power loss, and a rolled-back claim is how a post goes out twice.
"""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing
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
    inspect,
)
from sqlalchemy.exc import DatabaseError, OperationalError

from bot.errors import ConfigError, StateError

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

instances = Table(
    "instances",
    metadata,
    Column("instance", String, primary_key=True),  # random, new at every process start
    Column("host", String, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("pid_space", String, nullable=False),  # the pid namespace, "" where there is none
    Column("started_at", String, nullable=False),  # UTC ISO
    Column("seen_at", String, nullable=False),  # UTC ISO: the heartbeat
)

by_hand = Table(
    "by_hand",
    metadata,
    # A delivery that ``post-now`` armed (a person's explicit act): while it is open, the plan
    # neither moves its due time back nor cancels it because its post is (still) a draft.
    Column("delivery_id", Integer, primary_key=True),  # deliveries.id
    Column("armed_at", String, nullable=False),  # UTC ISO
)

MIGRATIONS: list[list[Table]] = [
    [slot_pins, translations],  # 1
    [deliveries],  # 2
    [runtime_pauses, heartbeat],  # 3
    [instances],  # 4
    [by_hand],  # 5
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
    """Open (creating and migrating when needed) the state database at ``url``.

    Raises:
        StateError: the file is damaged, is not a diplobot state database, or was migrated
            by a newer diplobot.
    """
    path = _sqlite_file(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        _check_sqlite_file(path)
    engine = create_engine(url, connect_args={"timeout": 30})
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    try:
        migrate(engine)
    except DatabaseError as exc:
        engine.dispose()
        raise state_error(exc, url) from None
    except StateError:
        engine.dispose()
        raise
    return engine


def _check_sqlite_file(path: Path) -> None:
    """Refuse an existing file that is not a diplobot state database *before* the first
    connection of the engine writes to it (it turns on WAL mode)."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    try:
        with closing(sqlite3.connect(path, timeout=30)) as conn:
            tables = {
                n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
    except sqlite3.DatabaseError as exc:
        raise StateError(damaged(path, str(exc))) from None
    if tables and schema_version.name not in tables:
        raise StateError(damaged(path, f"it holds other tables: {', '.join(sorted(tables))}"))


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")  # see the module docstring
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


_DAMAGED = ("file is not a database", "malformed", "disk image", "no such table", "no such column")


def state_error(exc: BaseException, url: str) -> StateError:
    """What to tell the operator about a database error from the state at ``url``."""
    detail = str(getattr(exc, "orig", None) or exc).splitlines()[0]
    where = _sqlite_file(url) or url
    if any(sign in detail.lower() for sign in _DAMAGED):
        return StateError(damaged(where, detail))
    return StateError(f"the state database {where} cannot be used: {detail}")


def damaged(where: object, detail: str) -> str:
    return (
        f"the state database {where} is damaged or is not a diplobot state database "
        f"({detail}). Restore the last backup (docs/deploy.md, 'State, and backing it up'), "
        "or move the file aside, with its -wal and -shm files, to start with an empty one; "
        "an empty ledger does not know what was already published: pause the accounts first "
        "and compare with their timelines (docs/deploy.md, 'Upgrades')"
    )


def migrate(engine: Engine, upto: int | None = None) -> int:
    """Bring the schema to the latest version (or to ``upto``: tests build old databases);
    return it. Safe to run concurrently: a process that loses the race to create a table
    sees it exist on its second try.

    Raises:
        StateError: the database holds someone else's tables, or a newer schema.
    """
    target = len(MIGRATIONS) if upto is None else upto
    for attempt in range(3):
        try:
            return _migrate_once(engine, target)
        except OperationalError as exc:
            if attempt == 2 or _is_damage(exc):
                raise
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


def _is_damage(exc: DatabaseError) -> bool:
    return any(sign in str(exc.orig).lower() for sign in _DAMAGED)


def _migrate_once(engine: Engine, target: int) -> int:
    with engine.begin() as conn:
        tables = set(inspect(conn).get_table_names())
        if tables and schema_version.name not in tables:
            # Someone else's database: creating our tables in it would hide the mistake.
            raise StateError(
                damaged(
                    engine.url.database or engine.url,
                    f"it holds other tables: {', '.join(sorted(tables))}",
                )
            )
        schema_version.create(conn, checkfirst=True)
        current = conn.execute(schema_version.select()).scalar() or 0
        if current > len(MIGRATIONS):
            raise StateError(
                f"the state database {engine.url.database} was upgraded by a newer diplobot "
                f"(schema {current}; this version knows {len(MIGRATIONS)}): run the newer "
                "version, or restore the backup taken before the upgrade (docs/deploy.md)"
            )
        for version in range(current + 1, target + 1):
            for table in MIGRATIONS[version - 1]:
                table.create(conn, checkfirst=True)
        if current == 0:
            conn.execute(schema_version.insert().values(version=target))
        elif current < target:
            conn.execute(schema_version.update().values(version=target))
    return max(current, target)


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
