"""The state's tables, and the column types that turn its stored text into Python values.

Instants are aware UTC ``datetime``s in code. In SQLite they are ISO-8601 text
(``UTCDateTime``), exactly as written before the type existed: existing state files keep
working, and the ledger's text comparisons (``due_at <= now``) stay correct because every
value of a column has the same width. In PostgreSQL they are ``timestamptz`` (wall times
``timestamp``), compared as instants, with the database's clock too
(:func:`bot.state.dialect.instant_type`).

Tables: ``slot_pins`` (a slot occurrence given to a post, so it never moves),
``translations`` (the machine-translation cache), ``deliveries`` (the ledger: one row per
post, account, part and channel, with its state), ``runtime_pauses`` (``diplobot pause``),
``heartbeat`` (the sweep's and each service start's mark), ``instances`` (one row per process
start that claimed a delivery or runs the service: its heartbeat keeps its claims alive) and
``by_hand`` (deliveries armed by ``post-now``, which the plan must not move or cancel),
``service_lease`` (which service start is the active one: ``bot/state/lease.py``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import (
    Column,
    Dialect,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator, TypeEngine

from bot.state.dialect import instant_type, native_instants


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC ``datetime`` stored as ISO-8601 text with its offset
    (``2026-11-24T08:00:00.000000+00:00``), or as ``timestamptz`` where the database has it.
    ``precision``: the width of a column's values, as each was written before this type
    (``seconds`` drops the fraction, in either form)."""

    impl = String
    cache_ok = True

    def __init__(self, precision: Literal["seconds", "microseconds"] = "microseconds") -> None:
        super().__init__()
        self.precision = precision

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        return dialect.type_descriptor(instant_type(dialect, aware=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> str | datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"a naive datetime ({value}) for a UTC column: give its zone")
        moment = value.astimezone(UTC)
        if native_instants(dialect):
            return moment.replace(microsecond=0) if self.precision == "seconds" else moment
        return moment.isoformat(timespec=self.precision)

    def process_result_value(
        self, value: str | datetime | None, dialect: Dialect
    ) -> datetime | None:
        if not value:
            return None
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class WallTime(TypeDecorator[datetime]):
    """A naive local wall time (no zone) stored as ISO-8601 text, or as ``timestamp``
    where the database has it: a slot occurrence."""

    impl = String
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        return dialect.type_descriptor(instant_type(dialect, aware=False))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> str | datetime | None:
        if value is None or native_instants(dialect):
            return value
        return value.isoformat()

    def process_result_value(
        self, value: str | datetime | None, dialect: Dialect
    ) -> datetime | None:
        if isinstance(value, datetime):
            return value
        return datetime.fromisoformat(value) if value else None


SECONDS = UTCDateTime("seconds")
MICROSECONDS = UTCDateTime("microseconds")

metadata = MetaData()

schema_version = Table("schema_version", metadata, Column("version", Integer, nullable=False))
slot_pins = Table(
    "slot_pins",
    metadata,
    Column("post_id", String, primary_key=True),
    Column("slot", String, nullable=False),
    Column("local", WallTime, nullable=False),  # wall time of the occurrence
    Column("pinned_at", SECONDS, nullable=False),
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
    Column("created_at", SECONDS, nullable=False),
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
    Column("due_at", MICROSECONDS, nullable=False),
    Column("text", Text, nullable=False),  # stored before the first attempt: retries match
    Column("media", Text, nullable=False, default="[]"),  # JSON [{file, alt}]
    Column("content_hash", String, nullable=False),
    Column("state", String, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("retry_at", MICROSECONDS),
    Column("remote_id", String),
    Column("url", String),
    Column("last_error", Text),
    Column("revision", String),  # git commit the content came from
    Column("author", String),  # its author
    Column("claimed_at", MICROSECONDS),
    Column("claimed_by", String),
    Column("created_at", SECONDS, nullable=False),
    Column("updated_at", SECONDS, nullable=False),
    # A repost (amplification): the original's delivery key, ``post#1@account``; None for a
    # post of its own. Published only once the original is POSTED, as a repost of it.
    Column("repost_of", String),
    UniqueConstraint("post_id", "account", "part", "channel", name="uq_delivery"),
)
due_index = Index("ix_deliveries_state_due", deliveries.c.state, deliveries.c.due_at)
"""What the sweep and every due trigger ask: the rows in some states due by now."""

runtime_pauses = Table(
    "runtime_pauses",
    metadata,
    Column("account", String, primary_key=True),  # "*" pauses every account
    Column("reason", String, nullable=False),
    Column("at", SECONDS, nullable=False),
)
heartbeat = Table(
    "heartbeat",
    metadata,
    Column("name", String, primary_key=True),
    Column("at", MICROSECONDS, nullable=False),
)

instances = Table(
    "instances",
    metadata,
    Column("instance", String, primary_key=True),  # random, new at every process start
    Column("host", String, nullable=False),
    Column("pid", Integer, nullable=False),
    Column("pid_space", String, nullable=False),  # the pid namespace, "" where there is none
    Column("started_at", MICROSECONDS, nullable=False),
    Column("seen_at", MICROSECONDS, nullable=False),  # the heartbeat
)

by_hand = Table(
    "by_hand",
    metadata,
    # A delivery that ``post-now`` armed (a person's explicit act): while it is open, the plan
    # neither moves its due time back nor cancels it because its post is (still) a draft.
    Column("delivery_id", Integer, primary_key=True),  # deliveries.id
    Column("armed_at", SECONDS, nullable=False),
)

service_lease = Table(
    "service_lease",
    metadata,
    # One row per deployment: the service start that may publish (bot/state/lease.py).
    Column("name", String, primary_key=True),
    Column("holder", String, nullable=False),  # its instance id; "" before the first holder
    Column("owner", String, nullable=False),  # INSTANCE@HOST:PID, for people
    Column("epoch", Integer, nullable=False),  # the fencing token: +1 at every acquisition
    # Seconds since 1970 on the *database's* clock (PostgreSQL's clock_timestamp(); SQLite's
    # is the host's): the replicas' own clocks never decide whether the lease ran out.
    Column("expires_at", Float, nullable=False),
    Column("acquired_at", Float, nullable=False),
)


def utc_now() -> datetime:
    return datetime.now(UTC)
