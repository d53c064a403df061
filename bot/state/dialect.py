"""The one place where database kinds differ: which URLs are accepted, how an engine is
made, how instants are stored, upserts, the lock a schema change takes, how a column is
altered, and what to tell the operator when a database is damaged. SQLite (the embedded
default) and PostgreSQL (``postgresql+psycopg://``, through psycopg 3).

SQLite runs with ``synchronous=FULL``: a claim (PENDING → SENDING) is on disk before the API
call it allows, even if the machine loses power. In WAL mode ``NORMAL`` may roll back the last
commits on power loss, and a rolled-back claim is how a post goes out twice. PostgreSQL's
default (``synchronous_commit = on``) gives the same guarantee: leave it on.

PostgreSQL keeps instants as ``timestamptz`` (SQLite as ISO-8601 text, see
:mod:`bot.state.tables`), so the database's own clock (``now()``) compares with them; several
processes share one database, each with its own connections, and take turns through the
database itself: conditional UPDATEs for claims, and a transaction-scoped advisory lock
(:func:`exclusive`) for schema changes and :meth:`bot.state.ledger.Ledger.record_new`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Dialect,
    Engine,
    Float,
    String,
    Table,
    UniqueConstraint,
    create_engine,
    event,
    func,
    select,
)
from sqlalchemy import inspect as inspect_db
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import CreateColumn
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeEngine

from bot.errors import ConfigError, StateError

SQLITE = "sqlite"
POSTGRESQL = "postgresql"
POSTGRESQL_SCHEMES = ("postgresql+psycopg://", "postgresql://", "postgres://")
"""Accepted spellings of a PostgreSQL URL; each is opened with psycopg 3."""

ADVISORY_KEY = int.from_bytes(b"diplobot", "big")
"""The PostgreSQL advisory lock :func:`exclusive` holds (one key per database: every
diplobot process on a database takes turns on it, and nothing else uses it)."""

POOL = {"pool_size": 5, "max_overflow": 10, "pool_timeout": 30, "pool_recycle": 1800}
"""A PostgreSQL engine's connection pool: the service's threads (the shared connection of
the ledger, the HTTP views, the sweep, the heartbeat) and room for a burst; connections older
than half an hour are replaced (a firewall may drop idle ones silently)."""

CONNECT = {
    "application_name": "diplobot",
    "connect_timeout": 10,
    # A server gone without a word (a firewall's silent drop, a dead host): found within about
    # a minute while idle (keepalives), 30 s when a statement waits for its answer, instead of
    # the system's TCP timeouts (up to 15 min). The ledger's shared connection is never
    # returned to the pool, so the pool's checks never see it.
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
    "tcp_user_timeout": 30_000,
}
"""libpq parameters of every PostgreSQL connection; the URL's own (``?connect_timeout=5``)
win."""


IDLE_IN_TRANSACTION_MS = 5000
"""PostgreSQL ends a session idle in a transaction this long (see :func:`engine_for`)."""


def check_url(url: str) -> str:
    """``url`` if this diplobot can keep its state there (a PostgreSQL URL in any accepted
    spelling comes back as ``postgresql+psycopg://…``).

    Raises:
        ConfigError: an unsupported kind of database, or a PostgreSQL URL that cannot be read.
    """
    if url.startswith("sqlite://"):
        return url
    for scheme in POSTGRESQL_SCHEMES:
        if url.startswith(scheme):
            url = "postgresql+psycopg://" + url[len(scheme) :]
            try:
                parsed = make_url(url)
            except ArgumentError:
                raise ConfigError(f"the state URL {shown(url)} cannot be read: {FORMS}") from None
            if not parsed.database:
                raise ConfigError(f"the state URL {shown(url)} names no database: {FORMS}")
            return url
    raise ConfigError(f"state URL '{url.split('://')[0]}://…' is not supported; {FORMS}")


FORMS = "use sqlite:///PATH or postgresql+psycopg://USER:PASSWORD@HOST:PORT/DATABASE"


def shown(url: str) -> str:
    """``url`` as it may be shown and logged: its password replaced by ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url.split("://")[0] + "://…"


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL; None for an in-memory database or another kind."""
    return Path(url[len("sqlite:///") :]) if url.startswith("sqlite:///") else None


def location(url: str) -> Path | str:
    """Where the state at ``url`` is, for the operator: the SQLite file, or the URL without
    its password."""
    return sqlite_file(url) or shown(url)


def engine_for(url: str, *, password: str | None = None) -> Engine:
    """A new engine for ``url`` (checked by :func:`check_url`), its connections set up;
    ``password``: a PostgreSQL URL's, when the URL has none."""
    url = check_url(url)
    path = sqlite_file(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        _check_sqlite_file(path)
    if url.startswith("postgresql"):
        # pre-ping: a connection the server or a firewall dropped is replaced at checkout
        # instead of failing the statement; the connect timeout bounds a dead server.
        target = make_url(url)
        if password and target.password is None:
            target = target.set(password=password)
        given = set(target.query)
        return create_engine(
            target,
            pool_pre_ping=True,
            **POOL,
            connect_args={
                **{k: v for k, v in CONNECT.items() if k not in given},
                # A replica frozen (SIGSTOP, a paused VM) or cut off in the middle of a
                # transaction would keep its row locks, and the others waiting, for as long as
                # its connection lives: the server ends such a session after a few seconds
                # instead (no transaction of diplobot waits between two of its statements).
                # (after the URL's own options, e.g. a search_path, which connect_args replace)
                "options": " ".join(
                    filter(
                        None,
                        [
                            str(target.query.get("options", "")),
                            f"-c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_MS}",
                        ],
                    )
                ),
            },
        )
    engine = create_engine(url, connect_args={"timeout": 30})
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


def native_instants(dialect: Dialect) -> bool:
    """Whether instants are kept in the database's own timestamp types (PostgreSQL) rather
    than as ISO-8601 text (SQLite)."""
    return dialect.name == POSTGRESQL


def instant_type(dialect: Dialect, *, aware: bool) -> TypeEngine[Any]:
    """The stored type of an instant (``aware``: a UTC instant; else a naive wall time)."""
    if native_instants(dialect):
        from sqlalchemy.dialects.postgresql import TIMESTAMP  # a SQLite-only process: never

        return TIMESTAMP(timezone=aware)
    return String()


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
    name = conn.dialect.name
    if name not in (SQLITE, POSTGRESQL):
        raise _unsupported(conn)
    if name == SQLITE:
        stmt: Any = sqlite_insert(table).values(values)
    else:  # the same ON CONFLICT clause
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        stmt = postgresql_insert(table).values(values)
    done: Insert
    if not update:
        done = stmt.on_conflict_do_nothing(index_elements=list(key) or None)
    else:
        done = stmt.on_conflict_do_update(
            index_elements=list(key), set_={c: stmt.excluded[c] for c in update}
        )
    return done


def upsert_rows(
    conn: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    key: Sequence[str] = (),
    update: Sequence[str] = (),
    per: int = 100,
) -> None:
    """:func:`upsert` of ``rows``, ``per`` rows a statement: one statement a row costs its
    building each time, one for thousands would pass SQLite's bound-parameter limit (100 rows
    of up to 9 columns stay under its lowest, 999). With ``update``, no two rows may share
    ``key``: PostgreSQL refuses a statement that would update a row twice."""
    for i in range(0, len(rows), per):
        conn.execute(upsert(conn, table, rows[i : i + per], key=key, update=update))


def insert_new(conn: Connection, table: Table) -> Insert:
    """An INSERT into ``table``, executed with many rows, that skips a row whose unique key
    is there already (another process recorded it a moment earlier: on PostgreSQL,
    :func:`exclusive` does not keep other writers out as SQLite's write lock does)."""
    name = conn.dialect.name
    if name == SQLITE:
        return sqlite_insert(table).on_conflict_do_nothing()
    if name == POSTGRESQL:
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        return postgresql_insert(table).on_conflict_do_nothing()
    raise _unsupported(conn)


@contextmanager
def exclusive(engine: Engine) -> Iterator[Connection]:
    """A transaction that holds the database's write lock from its start (so that two
    processes changing the schema, or recording new deliveries, take turns), committed on
    exit, rolled back on error. PostgreSQL: the advisory lock :data:`ADVISORY_KEY`, released
    with the transaction (other writers, such as claims, do not wait for it)."""
    with engine.connect() as conn:
        if conn.dialect.name == SQLITE:
            # pysqlite would begin a deferred transaction only at the first INSERT/UPDATE,
            # after the schema was read and the DDL run in autocommit mode: begin it here.
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        elif conn.dialect.name == POSTGRESQL:
            conn.execute(select(func.pg_advisory_xact_lock(ADVISORY_KEY)))
        else:
            raise _unsupported(conn)
        try:
            yield conn
        except BaseException:
            conn.rollback()
            raise
        conn.commit()


def alter_table(conn: Connection, table: Table) -> None:
    """Make the stored ``table`` match its definition now (a column's type, NOT NULL,
    default or constraints changed, a column gone), keeping its rows, in the caller's
    transaction. Columns new in the definition take their default.

    SQLite cannot alter a column: the table is rebuilt (created anew, rows copied, the old one
    dropped). PostgreSQL alters it in place (ALTER TABLE), which keeps its id sequence,
    indexes and the rows where they are."""
    if conn.dialect.name == POSTGRESQL:
        _alter_postgresql(conn, table)
        return
    if conn.dialect.name != SQLITE:
        raise _unsupported(conn)
    old = f"{table.name}__before"
    present = {row[1] for row in conn.exec_driver_sql(f'PRAGMA table_info("{table.name}")')}
    kept = ", ".join(f'"{c.name}"' for c in table.columns if c.name in present)
    conn.exec_driver_sql(f'ALTER TABLE "{table.name}" RENAME TO "{old}"')
    table.create(conn)
    conn.exec_driver_sql(f'INSERT INTO "{table.name}" ({kept}) SELECT {kept} FROM "{old}"')
    conn.exec_driver_sql(f'DROP TABLE "{old}"')


def _alter_postgresql(conn: Connection, table: Table) -> None:
    prep = conn.dialect.identifier_preparer
    name = prep.quote(table.name)
    inspector = inspect_db(conn)
    stored = {c["name"]: c for c in inspector.get_columns(table.name)}
    changes: list[str] = []
    for column in table.columns:
        col = prep.quote(column.name)
        if column.name not in stored:
            changes.append(f"ADD COLUMN {CreateColumn(column).compile(dialect=conn.dialect)}")
            continue
        if column is table.autoincrement_column:
            continue  # its sequence is its default: keep both
        kind = column.type.compile(dialect=conn.dialect)
        if stored[column.name]["type"].compile(dialect=conn.dialect) != kind:
            # only when it changed: a type change rewrites the whole table under the lock
            changes.append(f"ALTER COLUMN {col} TYPE {kind} USING {col}::{kind}")
        changes.append(f"ALTER COLUMN {col} {'DROP' if column.nullable else 'SET'} NOT NULL")
        default = getattr(column.server_default, "arg", None)
        if default is None:
            changes.append(f"ALTER COLUMN {col} DROP DEFAULT")
        else:
            sql = default.text if hasattr(default, "text") else _quoted(str(default))
            changes.append(f"ALTER COLUMN {col} SET DEFAULT {sql}")
    for gone in sorted(stored.keys() - {c.name for c in table.columns}):
        changes.append(f"DROP COLUMN {prep.quote(gone)}")
    # Unique constraints, by name: those gone dropped, those new added.
    wanted = {
        str(c.name): c for c in table.constraints if isinstance(c, UniqueConstraint) and c.name
    }
    have = {str(u["name"]) for u in inspector.get_unique_constraints(table.name)}
    for gone in sorted(have - wanted.keys()):
        changes.append(f"DROP CONSTRAINT {prep.quote(gone)}")
    for new in sorted(wanted.keys() - have):
        cols = ", ".join(prep.quote(c.name) for c in wanted[new].columns)
        changes.append(f"ADD CONSTRAINT {prep.quote(new)} UNIQUE ({cols})")
    if changes:
        conn.exec_driver_sql(f"ALTER TABLE {name} " + ", ".join(changes))


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


_DAMAGED = (
    # SQLite
    "file is not a database",
    "malformed",
    "disk image",
    "no such table",
    "no such column",
)


def is_damage(detail: str) -> bool:
    """Whether a driver's message says the database is damaged or not ours."""
    lowered = detail.lower()
    if any(sign in lowered for sign in _DAMAGED):
        return True
    # PostgreSQL: relation "deliveries" does not exist / column "x" of … does not exist
    return ("relation " in lowered or "column " in lowered) and "does not exist" in lowered


def damaged(where: Path | str, detail: str) -> str:
    """What to tell the operator about a damaged state database, or one that is not ours:
    ``where`` is a SQLite file or a URL shown by :func:`location`."""
    if isinstance(where, Path):
        return (
            f"the state database {where} is damaged or is not a diplobot state database "
            f"({detail}). Restore the last backup (docs/deploy.md, 'State, and backing it "
            "up'), or move the file aside, with its -wal and -shm files, to start with an "
            "empty one; an empty ledger does not know what was already published: pause the "
            "accounts first and compare with their timelines (docs/deploy.md, 'Upgrades')"
        )
    return (
        f"the state database {where} is damaged or is not a diplobot state database "
        f"({detail}). Give diplobot a database of its own (an empty one is set up at the "
        "first start), or restore the last pg_dump backup into it (docs/deploy.md, "
        "'PostgreSQL'); an empty ledger does not know what was already published: pause the "
        "accounts first and compare with their timelines (docs/deploy.md, 'Upgrades')"
    )


def _unsupported(conn: Connection) -> StateError:
    return StateError(f"state databases of kind {conn.dialect.name!r} are not supported")


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
