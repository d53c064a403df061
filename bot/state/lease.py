"""The service's lease: which of the ``diplobot run`` processes on one state database is the
*active* one (it plans, records, dispatches, sweeps and reconciles); the others are *standby*
(they sync, validate and answer over HTTP) and take over when the lease runs out.

One row of ``service_lease`` per deployment: its ``holder`` (an instance id), ``epoch`` (the
fencing token, +1 at every acquisition) and ``expires_at``, in seconds on the database's own
clock (:class:`bot.state.dialect.db_seconds`: PostgreSQL's ``clock_timestamp()``, the host's
clock for a SQLite file), so replicas' clocks never decide. Every change is one conditional
UPDATE, the same on SQLite and PostgreSQL:

- *renew* (holder, every third of the lease): ``expires_at = now + lease`` where the row is
  still ours, of our epoch, and not expired;
- *take* (anyone, when it expired or was released): ``holder = me, epoch = epoch + 1``; two
  standbys taking it at once cannot both match ``expires_at <= now``;
- *take from the dead* (anyone, before it expired, when its holder is provably dead:
  :func:`bot.instance.gone_reason`, the rules of stale claims): a previous life of this very
  process (same host and pid: the restarted container), or a start of this host and pid
  namespace whose pid is gone. The same ``epoch + 1``, matched on the holder and epoch read,
  so two starts cannot both take it. A holder on another host, or whose pid runs, may be
  alive: only expiry counts. So a single service restarted after a crash publishes at once;
- *release* (a clean stop): ``expires_at = 0``, so a standby takes over at its next poll.

**Fencing.** A claim (PENDING → SENDING, ``bot/state/ledger.py``) made under the lease carries
:data:`FENCE` in its own UPDATE: it only matches while this instance holds an unexpired lease
of its epoch. A holder that was paused or cut off and comes back after another took over can
claim nothing. And the holder stops on its own first: :meth:`ServiceLease.valid` turns false
(on this process's monotonic clock, which no database call can delay) a third of the lease
*before* the database's expiry could pass, counted from the moment the last successful renewal
was sent. So a holder that loses its database stops publishing before another can start.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Row,
    and_,
    bindparam,
    exists,
    select,
    update,
)

from bot.instance import Instance, Owner, gone_reason, this_instance
from bot.state.dialect import db_seconds, upsert
from bot.state.starts import write_instance
from bot.state.tables import instances, service_lease, utc_now

NAME = "service"
"""The lease's row: one per state database (one deployment)."""

_l = service_lease.c
FENCE = exists().where(
    and_(
        _l.name == bindparam("l_name"),
        _l.holder == bindparam("l_holder"),
        _l.epoch == bindparam("l_epoch"),
        _l.expires_at > db_seconds(),
    )
)
"""The condition a fenced claim adds to its UPDATE (parameters: :meth:`ServiceLease.params`)."""


@dataclass(frozen=True, slots=True)
class Takeover:
    """This start took the lease: its ``epoch``, and whom it took it from (``previous``:
    ``INSTANCE@HOST:PID``, "" for the first holder; ``released``: the previous holder let it
    go when it stopped, rather than letting it run out; ``dead``: why it was taken before it
    ran out, its holder being provably dead, "" otherwise)."""

    epoch: int
    previous: str
    released: bool
    dead: str = ""


@dataclass(frozen=True, slots=True)
class Turn:
    """One poll: whether this start holds the lease now; ``taken`` when it took it in this
    poll; ``lost`` when it held it before this poll and does not any more."""

    held: bool
    taken: Takeover | None = None
    lost: bool = False


@dataclass(frozen=True, slots=True)
class LeaseView:
    """The lease as stored, for ``/status``: its holder, epoch, and seconds left (database
    clock; negative: it ran out)."""

    holder: str
    owner: str
    epoch: int
    expires_in: float

    def json(self) -> dict[str, Any]:
        return {
            "holder": self.owner,
            "epoch": self.epoch,
            "expires_in": round(self.expires_in, 3),
        }


class ServiceLease:
    """The lease as one service start (``instance``) sees it: :meth:`poll` every
    :attr:`renew_every` seconds, :meth:`valid` before anything that publishes."""

    def __init__(
        self,
        engine: Engine,
        duration: timedelta,
        instance: Instance | None = None,
        *,
        name: str = NAME,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.duration = duration.total_seconds()
        self.renew_every = self.duration / 3
        self.margin = self.duration / 3
        """How long before the database's expiry this start stops on its own."""
        self.me = instance or this_instance()
        self.name = name
        self.monotonic = monotonic
        self._lock = threading.Lock()
        self._polling = threading.Lock()  # one poll at a time: each reads the epoch it renews
        self._epoch: int | None = None
        self._deadline = 0.0  # monotonic: valid until then

    @property
    def epoch(self) -> int | None:
        """This start's epoch while it holds the lease (valid or not), else None."""
        with self._lock:
            return self._epoch

    def valid(self) -> bool:
        """Whether this start may publish now: it holds the lease and its own deadline (a
        third of the lease before the database's expiry) has not passed."""
        with self._lock:
            return self._epoch is not None and self.monotonic() < self._deadline

    def params(self) -> dict[str, Any]:
        """The parameters of :data:`FENCE` for this start (epoch -1 when it holds nothing:
        no row matches)."""
        with self._lock:
            epoch = self._epoch if self._epoch is not None else -1
        return {"l_name": self.name, "l_holder": self.me.id, "l_epoch": epoch}

    def poll(self) -> Turn:
        """Renew the lease if this start holds it, else take it if it ran out or was
        released. A database error is raised: the caller counts it as not holding (and
        :meth:`valid` runs out by itself)."""
        with self._polling:
            return self._poll()

    def _poll(self) -> Turn:
        sent = self.monotonic()
        seconds = self.duration
        with self._lock:
            mine = self._epoch
        with self.engine.begin() as conn:
            first = {
                "name": self.name,
                "holder": "",
                "owner": "",
                "epoch": 0,
                "expires_at": 0.0,
                "acquired_at": 0.0,
            }
            conn.execute(upsert(conn, service_lease, first, key=["name"]))
            if mine is not None:
                renewed = conn.execute(
                    update(service_lease)
                    .where(
                        and_(
                            _l.name == self.name,
                            _l.holder == self.me.id,
                            _l.epoch == mine,
                            _l.expires_at > db_seconds(),
                        )
                    )
                    .values(expires_at=db_seconds() + seconds)
                ).rowcount
                if renewed == 1:
                    with self._lock:
                        self._deadline = sent + seconds - self.margin
                    return Turn(True)
            before = conn.execute(select(_l.owner, _l.expires_at).where(_l.name == self.name)).one()
            taken = self._take(conn, _l.expires_at <= db_seconds(), seconds)
            dead = ""
            if taken is None:
                dead, taken = self._take_from_the_dead(conn, seconds)
            if taken is not None:  # its pid namespace, for the next start's rules above
                write_instance(conn, self.me, utc_now())
        lost = mine is not None
        if taken is None:
            with self._lock:
                self._epoch, self._deadline = None, 0.0
            return Turn(False, lost=lost)
        epoch = int(taken[0])
        with self._lock:
            self._epoch, self._deadline = epoch, sent + seconds - self.margin
        released = before.expires_at == 0.0 and bool(before.owner)
        return Turn(True, Takeover(epoch, before.owner, released, dead), lost=lost)

    def _take_from_the_dead(self, conn: Connection, seconds: float) -> tuple[str, Row[Any] | None]:
        """Take the unexpired lease if its holder is provably dead (module docstring): why,
        and the new epoch; ("", None) when it may be alive or another took it first."""
        held = conn.execute(
            select(_l.holder, _l.owner, _l.epoch, instances.c.pid_space)
            .select_from(service_lease.outerjoin(instances, instances.c.instance == _l.holder))
            .where(_l.name == self.name)
        ).one()
        owner = Owner.parse(held.owner)
        if not held.holder or held.holder == self.me.id or owner is None:
            return "", None
        why = gone_reason(owner.host, owner.pid, held.pid_space, self.me)
        if why is None:
            return "", None
        taken = self._take(conn, and_(_l.holder == held.holder, _l.epoch == held.epoch), seconds)
        return (why, taken) if taken is not None else ("", None)

    def _take(
        self, conn: Connection, condition: ColumnElement[bool], seconds: float
    ) -> Row[Any] | None:
        """Make this start the holder, with the next epoch, if the lease row still meets
        ``condition`` (one conditional UPDATE: of two racers, one wins); the new epoch."""
        return conn.execute(
            update(service_lease)
            .where(and_(_l.name == self.name, condition))
            .values(
                holder=self.me.id,
                owner=self.me.owner,
                epoch=_l.epoch + 1,
                expires_at=db_seconds() + seconds,
                acquired_at=db_seconds(),
            )
            .returning(_l.epoch)
        ).first()

    def drop(self) -> None:
        """Forget the lease here at once (the database could not be reached to renew it):
        nothing is claimed under it any more; the row runs out by itself."""
        with self._lock:
            self._epoch, self._deadline = None, 0.0

    def release(self) -> bool:
        """Let the lease go (a clean stop): a standby takes it at its next poll. Whether
        this start held it."""
        with self._lock:
            mine, self._epoch, self._deadline = self._epoch, None, 0.0
        if mine is None:
            return False
        with self.engine.begin() as conn:
            done = conn.execute(
                update(service_lease)
                .where(and_(_l.name == self.name, _l.holder == self.me.id, _l.epoch == mine))
                .values(expires_at=0.0)
            ).rowcount
        return bool(done == 1)

    def view(self) -> LeaseView | None:
        """The lease as stored now; None before any service polled it."""
        query = select(_l.holder, _l.owner, _l.epoch, _l.expires_at - db_seconds()).where(
            _l.name == self.name
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        return LeaseView(row[0], row[1], int(row[2]), float(row[3]))
