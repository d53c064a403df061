"""The state: one database (a SQLite file today), its tables and versioned migrations, and the
only SQL of diplobot. Everything else receives a :class:`Store` (or one of its parts), never
an engine.

    tables.py      the tables, and the UTC datetime column type
    migrations.py  the ordered schema steps, each run once
    dialect.py     the only place where database kinds differ (URLs, upserts, locks)
    db.py          ``--state`` → URL, opening, the operator's messages
    ledger.py      the deliveries and their state machine
    pins.py, translations.py, pauses.py, presence.py   the other parts
    lease.py       which service start is the active one (fencing its claims)
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from bot.settings import DEFAULT_LEASE
from bot.state.db import database_problem, open_engine, state_dir, state_exists, state_url
from bot.state.ledger import Instance, Ledger, Shared, this_instance

if TYPE_CHECKING:
    from bot.state.lease import ServiceLease
    from bot.state.pauses import Pauses
    from bot.state.pins import Pins
    from bot.state.presence import Presence
    from bot.state.translations import TranslationCache

__all__ = [
    "Store",
    "database_problem",
    "open_store",
    "state_dir",
    "state_exists",
    "state_url",
]


class Store:
    """One opened state database and its parts: ``ledger``, ``pins``, ``translations``,
    ``pauses``, and :meth:`presence` for a service start. The parts are imported when first
    used: ``diplobot validate`` and ``count`` start without the plan's or the text's modules."""

    def __init__(self, engine: Engine, *, lease: timedelta | None = None) -> None:
        """``lease``: the ledger's (the wiring passes ``DIPLOBOT_LEASE``; default 60 s)."""
        self.engine = engine
        self.lease = lease if lease is not None else DEFAULT_LEASE
        self.url = engine.url.render_as_string(hide_password=False)
        # The connection and lock the ledger's hot statements share (see ledger.Shared).
        self._shared = Shared(engine)
        self._lock = threading.Lock()

    @cached_property
    def pins(self) -> Pins:
        from bot.state.pins import Pins

        return Pins(self.engine)

    @cached_property
    def translations(self) -> TranslationCache:
        from bot.state.translations import TranslationCache

        return TranslationCache(self.engine)

    @cached_property
    def pauses(self) -> Pauses:
        from bot.state.pauses import Pauses

        return Pauses(self.engine)

    @cached_property
    def ledger(self) -> Ledger:
        """The ledger as this process start sees it, with the store's lease."""
        return self.ledger_as(lease=self.lease)

    def ledger_as(
        self, instance: Instance | None = None, *, lease: timedelta | None = None
    ) -> Ledger:
        """The ledger as ``instance`` (default: this process start) sees it, with ``lease``
        (default: the store's): tests play a second process this way."""
        with self._lock:
            return Ledger(
                self._shared,
                lease=lease if lease is not None else self.lease,
                instance=instance or this_instance(),
            )

    def presence(self, lease: timedelta, instance: Instance | None = None) -> Presence:
        """A service start's mark in this state (one per service)."""
        from bot.state.presence import Presence

        return Presence(self.engine, lease, instance)

    def service_lease(self, duration: timedelta, instance: Instance | None = None) -> ServiceLease:
        """The service's lease in this state (``bot/state/lease.py``), as ``instance`` (default:
        this process start) sees it; ``duration``: ``DIPLOBOT_ACTIVE_LEASE``."""
        from bot.state.lease import ServiceLease

        return ServiceLease(self.engine, duration, instance)

    def mark_sweep(self, now: datetime) -> None:
        """A write that proves the state is writable (the sweep's heartbeat)."""
        from bot.state.presence import mark_sweep

        mark_sweep(self.engine, now)

    def close(self) -> None:
        """Close the database's connections; the heartbeats of claims still held stop."""
        self._shared.closed.set()
        self.engine.dispose()


def open_store(url: str, *, lease: timedelta | None = None, password: str | None = None) -> Store:
    """Open (creating and migrating when needed) the state database at ``url``; ``lease``:
    the ledger's (the wiring passes the settings' ``DIPLOBOT_LEASE``); ``password``: a
    PostgreSQL URL's when it has none (``DIPLOBOT_STATE_PASSWORD``).

    Raises:
        StateError: the file is damaged, is not a diplobot state database, or was migrated
            by a newer diplobot.
    """
    return Store(open_engine(url, password=password), lease=lease)
