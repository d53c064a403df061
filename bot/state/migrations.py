"""Versioned migrations of the state's schema: an ordered list of steps, each run once.

A database records its version in ``schema_version``. Opening it runs the steps above that
version, in order, in *one* transaction that holds the write lock from its start: a step that
fails leaves the database exactly as it was (SQLite and PostgreSQL both change their schema
transactionally), and two processes upgrading at once take turns (PostgreSQL: on the
advisory lock of :func:`bot.state.dialect.exclusive`). A database newer than this code is refused.

Append steps, never edit one: a deployed database is at some version. A step receives the
connection; it may create tables, add columns (:func:`add_column`), alter them
(:func:`bot.state.dialect.alter_table`: the table as defined now, rows kept) and rewrite rows.
Steps that create a table create its *current* definition (:mod:`bot.state.tables`), so a
step that adds a column later must skip a column already there (:func:`add_column` does).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Column, Connection, Engine, Index, Table, inspect
from sqlalchemy.exc import DatabaseError, OperationalError
from sqlalchemy.schema import CreateColumn

from bot.errors import StateError
from bot.state.dialect import damaged, exclusive, is_damage, location
from bot.state.tables import (
    by_hand,
    deliveries,
    due_index,
    heartbeat,
    instances,
    runtime_pauses,
    schema_version,
    service_lease,
    slot_pins,
    translations,
)


@dataclass(frozen=True, slots=True)
class Step:
    """One version of the schema: what it changes, and how."""

    what: str
    run: Callable[[Connection], None]


def create(*tables: Table) -> Callable[[Connection], None]:
    """A step that creates ``tables`` (as they are defined now) where they are missing."""

    def run(conn: Connection) -> None:
        for table in tables:
            table.create(conn, checkfirst=True)

    return run


def create_index(index: Index) -> Callable[[Connection], None]:
    """A step that creates ``index`` where it is missing (a table created after the index
    joined its definition has it already)."""

    def run(conn: Connection) -> None:
        index.create(conn, checkfirst=True)

    return run


def add_column(conn: Connection, table: Table, column: Column[object]) -> None:
    """``ALTER TABLE … ADD COLUMN``, unless ``table`` has that column already (it was
    created after the column joined its definition)."""
    present = {c["name"] for c in inspect(conn).get_columns(table.name)}
    if column.name in present:
        return
    ddl = CreateColumn(column).compile(dialect=conn.dialect)
    conn.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN {ddl}")


def add_columns(table: Table, *names: str) -> Callable[[Connection], None]:
    """A step that adds ``table``'s columns ``names`` (as they are defined now) where they
    are missing."""

    def run(conn: Connection) -> None:
        for name in names:
            add_column(conn, table, table.c[name])

    return run


STEPS: tuple[Step, ...] = (
    Step("slot pins and the translation cache", create(slot_pins, translations)),  # 1
    Step("the ledger", create(deliveries)),  # 2
    Step("runtime pauses and the sweep's heartbeat", create(runtime_pauses, heartbeat)),  # 3
    Step("process starts and their heartbeats", create(instances)),  # 4
    Step("deliveries armed by post-now", create(by_hand)),  # 5
    Step("an index of deliveries by state and due time", create_index(due_index)),  # 6
    Step("reposts: the original a delivery reposts", add_columns(deliveries, "repost_of")),  # 7
    Step("the service's lease: one active replica", create(service_lease)),  # 8
)
"""Version N is reached by running STEPS[N-1]. Append, never edit."""


def migrate(engine: Engine, upto: int | None = None, steps: Sequence[Step] = STEPS) -> int:
    """Bring the schema to the latest version (or to ``upto``: tests build old databases);
    return the version it is at. ``steps``: tests pass their own list.

    Raises:
        StateError: the database holds someone else's tables, or a newer schema, or a step
            failed (the database is left as it was).
    """
    target = len(steps) if upto is None else upto
    for attempt in range(3):
        try:
            return _migrate_once(engine, target, steps)
        except OperationalError as exc:
            if attempt == 2 or is_damage(str(exc.orig)):
                raise
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


def _migrate_once(engine: Engine, target: int, steps: Sequence[Step]) -> int:
    where = location(engine.url.render_as_string(hide_password=False))
    with exclusive(engine) as conn:
        tables = set(inspect(conn).get_table_names())
        if tables and schema_version.name not in tables:
            # Someone else's database: creating our tables in it would hide the mistake.
            raise StateError(damaged(where, f"it holds other tables: {', '.join(sorted(tables))}"))
        schema_version.create(conn, checkfirst=True)
        found = conn.execute(schema_version.select()).scalar()
        current = found or 0
        if current > len(steps):
            raise StateError(
                f"the state database {where} was upgraded by a newer diplobot "
                f"(schema {current}; this version knows {len(steps)}): run the newer "
                "version, or restore the backup taken before the upgrade (docs/deploy.md)"
            )
        for version in range(current + 1, target + 1):
            step = steps[version - 1]
            try:
                step.run(conn)
            except DatabaseError as exc:
                if is_damage(str(exc.orig)):
                    raise
                raise StateError(
                    f"the state database {where} could not be upgraded to "
                    f"schema {version} ({step.what}): {str(exc.orig).splitlines()[0]}; it was "
                    "left as it was"
                ) from exc
        if found is None:
            conn.execute(schema_version.insert().values(version=target))
        elif current < target:
            conn.execute(schema_version.update().values(version=target))
    return max(current, target)
