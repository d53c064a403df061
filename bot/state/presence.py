"""Who runs on this state: each service start's mark (renewed on every tick), the other live
services it reveals, and the sweep's mark that proves the state is writable.

A service start writes its ``instances`` row (shared with the ledger's claims) and
``service:<instance id>`` in ``heartbeat``, which says the instance is a service. Another
start is *live* when it renewed its mark since this one started (a dead one cannot), within
the lease, and is not a previous life of this process (same host and pid: a restarted
container) nor a gone process of this host.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, func, select

from bot.instance import gone_reason
from bot.state.dialect import upsert
from bot.state.ledger import INSTANCES_KEPT, Instance, this_instance, write_instance
from bot.state.tables import heartbeat, instances

SERVICE_MARK = "service:"
"""Prefix of a service start's mark in the ``heartbeat`` table (``service:<instance id>``)."""
SWEEP_MARK = "sweep"


@dataclass(frozen=True, slots=True)
class OtherService:
    instance: str
    host: str
    pid: int
    started_at: str  # as stored (ISO, UTC)
    seen_at: datetime

    def json(self) -> dict[str, Any]:
        return {
            "instance": self.instance,
            "host": self.host,
            "pid": self.pid,
            "started_at": self.started_at,
            "seen_at": self.seen_at.isoformat(timespec="seconds"),
        }


class Presence:
    """This service start's mark in the state database, and the other live ones."""

    def __init__(self, engine: Engine, lease: timedelta, instance: Instance | None = None) -> None:
        self.engine = engine
        self.lease = lease
        self.me = instance or this_instance()
        self.started: datetime | None = None

    def beat(self, now: datetime) -> None:
        """Write or renew the mark: the ``instances`` row and ``service:<id>``."""
        me = self.me
        with self.engine.begin() as conn:
            write_instance(conn, me, now)
            values = {"name": SERVICE_MARK + me.id, "at": now}
            conn.execute(upsert(conn, heartbeat, values, key=["name"], update=["at"]))
            if self.started is None:  # the first mark: forget those of long-gone starts
                conn.execute(
                    delete(heartbeat).where(
                        heartbeat.c.name.startswith(SERVICE_MARK),
                        heartbeat.c.at < now - INSTANCES_KEPT,
                    )
                )
        if self.started is None:
            self.started = now

    def others(self, now: datetime) -> list[OtherService]:
        """Other services live on this state (see the module docstring)."""
        started = self.started
        if started is None:
            return []
        me = self.me
        query = select(
            instances.c.instance,
            instances.c.host,
            instances.c.pid,
            instances.c.pid_space,
            instances.c.started_at,
            instances.c.seen_at,
        ).where(
            instances.c.instance.in_(
                select(func.substr(heartbeat.c.name, len(SERVICE_MARK) + 1)).where(
                    heartbeat.c.name.startswith(SERVICE_MARK)
                )
            ),
            instances.c.instance != me.id,
        )
        with self.engine.connect() as conn:
            found = list(conn.execute(query))
        live = []
        for r in found:
            seen: datetime = r.seen_at
            if seen <= started or now - seen > self.lease:
                continue
            if gone_reason(r.host, r.pid, r.pid_space, me) is not None:
                continue
            started_at = r.started_at.isoformat(timespec="microseconds")
            live.append(OtherService(r.instance, r.host, r.pid, started_at, seen))
        return live


def mark_sweep(engine: Engine, now: datetime) -> None:
    """Renew the sweep's mark (``heartbeat`` row ``sweep``): a write that proves the ledger
    is writable."""
    with engine.begin() as conn:
        values = {"name": SWEEP_MARK, "at": now}
        conn.execute(upsert(conn, heartbeat, values, key=["name"], update=["at"]))
