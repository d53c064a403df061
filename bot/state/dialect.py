"""The one place where database kinds differ: which URLs are accepted, how an engine is
made, upserts, the lock a schema change takes, and how a column is altered. SQLite only
today; PostgreSQL is added by adding a branch to each function here (and nothing else in the
state package changes).

SQLite runs with ``synchronous=FULL``: a claim (PENDING → SENDING) is on disk before the API
call it allows, even if the machine loses power. In WAL mode ``NORMAL`` may roll back the last
commits on power loss, and a rolled-back claim is how a post goes out twice.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Float, Table, create_engine, event
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.functions import FunctionElement

from bot.errors import ConfigError, StateError

SQLITE = "sqlite"


def check_url(url: str) -> str:
    """``url`` if this diplobot can keep its state there.

    Raises:
        ConfigError: an unsupported kind of database.
    """
    if url.startswith("sqlite://"):
        return url
    raise ConfigError(
        f"state URL '{url.split('://')[0]}://…' is not supported yet; use sqlite:///PATH"
    )


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL; None for an in-memory database or another kind."""
    return Path(url[len("sqlite:///") :]) if url.startswith("sqlite:///") else None


def engine_for(url: str) -> Engine:
    """A new engine for ``url`` (checked by :func:`check_url`), its connections set up."""
    path = sqlite_file(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        _check_sqlite_file(path)
    engine = create_engine(check_url(url), connect_args={"timeout": 30})
    if engine.dialect.name == SQLITE:
        event.listen(engine, "connect", _sqlite_pragmas)
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
    if tables and "schema_version" not in tables:
        raise StateError(damaged(path, f"it holds other tables: {', '.join(sorted(tables))}"))


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")  # see the module docstring
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def upsert(
    conn: Connection,
    table: Table,
    values: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    *,
    key: Sequence[str] = (),
    update: Sequence[str] = (),
) -> Insert:
    """INSERT ``values`` (one row, or several) into ``table``; when a row with the same
    ``key`` (its unique columns; any unique constraint when empty) is there already, set its
    ``update`` columns to the new values, or leave it as it is when ``update`` is empty."""
    if conn.dialect.name == SQLITE:
        stmt = sqlite_insert(table).values(values)
        if not update:
            return stmt.on_conflict_do_nothing(index_elements=list(key) or None)
        return stmt.on_conflict_do_update(
            index_elements=list(key), set_={c: stmt.excluded[c] for c in update}
        )
    raise _unsupported(conn)


@contextmanager
def exclusive(engine: Engine) -> Iterator[Connection]:
    """A transaction that holds the database's write lock from its start (so that two
    processes changing the schema take turns), committed on exit, rolled back on error."""
    with engine.connect() as conn:
        if conn.dialect.name != SQLITE:
            raise _unsupported(conn)
        # pysqlite would begin a deferred transaction only at the first INSERT/UPDATE, after
        # the schema was read and the DDL run in autocommit mode: begin it here, locked.
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.rollback()
            raise
        conn.commit()


def alter_table(conn: Connection, table: Table) -> None:
    """Make the stored ``table`` match its definition now (a column's type, NOT NULL,
    default or constraints changed, a column gone), keeping its rows: SQLite cannot alter a
    column, so the table is rebuilt (created anew, rows copied, the old one dropped) in the
    caller's transaction. Columns new in the definition take their default."""
    if conn.dialect.name != SQLITE:
        raise _unsupported(conn)
    old = f"{table.name}__before"
    present = {row[1] for row in conn.exec_driver_sql(f'PRAGMA table_info("{table.name}")')}
    kept = ", ".join(f'"{c.name}"' for c in table.columns if c.name in present)
    conn.exec_driver_sql(f'ALTER TABLE "{table.name}" RENAME TO "{old}"')
    table.create(conn)
    conn.exec_driver_sql(f'INSERT INTO "{table.name}" ({kept}) SELECT {kept} FROM "{old}"')
    conn.exec_driver_sql(f'DROP TABLE "{old}"')


_DAMAGED = ("file is not a database", "malformed", "disk image", "no such table", "no such column")


def is_damage(detail: str) -> bool:
    """Whether a driver's message says the database is damaged or not ours."""
    return any(sign in detail.lower() for sign in _DAMAGED)


def damaged(where: object, detail: str) -> str:
    return (
        f"the state database {where} is damaged or is not a diplobot state database "
        f"({detail}). Restore the last backup (docs/deploy.md, 'State, and backing it up'), "
        "or move the file aside, with its -wal and -shm files, to start with an empty one; "
        "an empty ledger does not know what was already published: pause the accounts first "
        "and compare with their timelines (docs/deploy.md, 'Upgrades')"
    )


def _unsupported(conn: Connection) -> StateError:
    return StateError(f"state databases of kind {conn.dialect.name!r} are not supported yet")


class db_seconds(FunctionElement[float]):
    """The database's clock, in seconds since 1970, as a SQL expression: the lease's expiry is
    computed and compared by the database itself (bot/state/lease.py). PostgreSQL's
    ``clock_timestamp()`` (the time at this statement, not at the transaction's start); SQLite's
    ``julianday('now')``: the host's clock, shared by every process on one file."""

    type = Float()
    inherit_cache = True


@compiles(db_seconds)
def _db_seconds_sqlite(element: db_seconds, compiler: Any, **kw: Any) -> str:
    return "((julianday('now') - 2440587.5) * 86400.0)"


@compiles(db_seconds, "postgresql")
def _db_seconds_postgresql(element: db_seconds, compiler: Any, **kw: Any) -> str:
    return "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)"
