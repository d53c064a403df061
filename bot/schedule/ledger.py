"""The ledger: the truth about every delivery. Nothing twice, nothing lost.

One row per (post, account, part, channel). States::

    PENDING ──claim──▶ SENDING ──▶ POSTED
       ▲                  │  ├──▶ FAILED (reason)            401/403/402/400, or out of attempts
       │                  │  └──▶ UNKNOWN ──reconcile──▶ POSTED (found on the timeline)
       └──── retry_at ◀───┘              └────────────▶ PENDING (not found: retry)
    PENDING ──▶ SKIPPED (policy) | EXPIRED (too late) | RETRACTED (cancelled)
    POSTED ──retract──▶ RETRACTED
    HELD ──text ready──▶ PENDING        recorded, but its translation failed: retried, never
       └──▶ EXPIRED | RETRACTED         claimed; EXPIRED when the lateness window closes first

The claim (PENDING → SENDING) is committed before any API call, with a conditional UPDATE, so
two processes claiming the same row cannot both win. A SENDING row whose owner died (same host,
process gone) or whose lease ran out is ambiguous: it becomes UNKNOWN and is reconciled against
the account's timeline before any retry.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
import weakref
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, Engine, and_, bindparam, case, or_, select, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from bot.store import deliveries, utc_now_iso


class State(StrEnum):
    PENDING = "PENDING"
    SENDING = "SENDING"
    POSTED = "POSTED"
    FAILED = "FAILED"
    UNKNOWN = "UNKNOWN"
    SKIPPED = "SKIPPED"
    EXPIRED = "EXPIRED"
    RETRACTED = "RETRACTED"
    HELD = "HELD"  # awaiting its text (translation failed, retried); never claimed


FINAL = frozenset({State.POSTED, State.FAILED, State.SKIPPED, State.EXPIRED, State.RETRACTED})
DEFAULT_LEASE = timedelta(minutes=5)
"""How long a SENDING claim is trusted when its owner cannot be checked (another host)."""


def owner_id() -> str:
    """This process, as written in ``claimed_by``: host and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _owner_alive(owner: str | None) -> bool | None:
    """True/False when the owner runs on this host; None when it cannot be known."""
    if not owner or ":" not in owner:
        return None
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True, slots=True)
class MediaRef:
    file: str  # path relative to the content root
    alt: str | None


@dataclass(frozen=True, slots=True)
class NewDelivery:
    """What the ledger needs to record a delivery before it is attempted."""

    post_id: str
    account: str
    part: int
    channel: str
    lang: str
    due_at: datetime
    text: str
    media: tuple[MediaRef, ...] = ()
    revision: str | None = None
    author: str | None = None

    @property
    def content_hash(self) -> str:
        payload = json.dumps([self.text, [[m.file, m.alt] for m in self.media]])
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Row:
    id: int
    post_id: str
    account: str
    part: int
    channel: str
    lang: str
    due_at: datetime
    text: str
    media: tuple[MediaRef, ...]
    content_hash: str
    state: State
    attempts: int
    retry_at: datetime | None
    remote_id: str | None
    url: str | None
    last_error: str | None
    revision: str | None
    author: str | None
    claimed_at: datetime | None
    claimed_by: str | None
    updated_at: datetime


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _row(r: Any) -> Row:
    media = tuple(MediaRef(m["file"], m.get("alt")) for m in json.loads(r.media or "[]"))
    due = _dt(r.due_at)
    updated = _dt(r.updated_at)
    assert due is not None and updated is not None
    return Row(
        id=r.id,
        post_id=r.post_id,
        account=r.account,
        part=r.part,
        channel=r.channel,
        lang=r.lang,
        due_at=due,
        text=r.text,
        media=media,
        content_hash=r.content_hash,
        state=State(r.state),
        attempts=r.attempts,
        retry_at=_dt(r.retry_at),
        remote_id=r.remote_id,
        url=r.url,
        last_error=r.last_error,
        revision=r.revision,
        author=r.author,
        claimed_at=_dt(r.claimed_at),
        claimed_by=r.claimed_by,
        updated_at=updated,
    )


def _same_delivery(item: NewDelivery) -> Any:
    c = deliveries.c
    return and_(
        c.post_id == item.post_id,
        c.account == item.account,
        c.part == item.part,
        c.channel == item.channel,
    )


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


# Statements built once and executed with parameters: building a SQLAlchemy statement costs
# more than running it on SQLite, and these run several times per delivery.
_c = deliveries.c
_ORDER = (_c.due_at, _c.post_id, _c.account, _c.part)
_GET = select(deliveries).where(_c.id == bindparam("row_id"))
_FOR_POST = (
    select(deliveries)
    .where(and_(_c.post_id == bindparam("p_post"), _c.channel == bindparam("p_channel")))
    .order_by(*_ORDER)
)
_CLAIM = (
    update(deliveries)
    .where(
        and_(
            _c.id == bindparam("row_id"),
            _c.state == State.PENDING.value,
            or_(_c.retry_at.is_(None), _c.retry_at <= bindparam("now_iso")),
        )
    )
    .values(
        state=State.SENDING.value,
        attempts=_c.attempts + 1,
        claimed_at=bindparam("now_iso"),
        claimed_by=bindparam("owner"),
        updated_at=bindparam("now_iso"),
    )
)


def _transition_statement(with_remote: bool, with_error: bool) -> Any:
    values: dict[str, Any] = {
        "state": bindparam("to_state"),
        "updated_at": bindparam("ts"),
        "retry_at": bindparam("retry"),
    }
    if with_remote:
        values["remote_id"] = bindparam("remote")
        values["url"] = bindparam("remote_url")
    if with_error:
        values["last_error"] = bindparam("error")
    return (
        update(deliveries)
        .where(
            and_(
                _c.id == bindparam("row_id"),
                _c.state.in_(bindparam("expect", expanding=True)),
            )
        )
        .values(**values)
    )


_TRANSITIONS = {(r, e): _transition_statement(r, e) for r in (False, True) for e in (False, True)}


class _Hot:
    """One connection per engine for the statements run several times per delivery (claim,
    transition, get, a post's rows), and the lock every writer of this process takes.

    Checking a connection out of the pool and back costs about twice the statement itself
    (the pool rolls back on check-in), which mattered when 500 deliveries fall due at once.
    The lock also makes threads take turns to write: SQLite would otherwise make them wait in
    its busy handler, which sleeps in steps of several milliseconds."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.lock = threading.RLock()
        self._conn: Connection | None = None

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """The shared connection, under the lock; what was run is committed on exit."""
        with self.lock:
            if self._conn is None or self._conn.closed:
                self._conn = self.engine.connect()
            conn = self._conn
            try:
                yield conn
            except BaseException:
                conn.rollback()
                raise
            conn.commit()


_HOT: weakref.WeakKeyDictionary[Engine, _Hot] = weakref.WeakKeyDictionary()
_HOT_LOCK = threading.Lock()


def _hot(engine: Engine) -> _Hot:
    with _HOT_LOCK:
        hot = _HOT.get(engine)
        if hot is None:
            hot = _HOT[engine] = _Hot(engine)
        return hot


class Ledger:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._hot = _hot(engine)  # shared by every Ledger of this engine in the process

    def ensure(self, items: Iterable[NewDelivery]) -> list[Row]:
        """Record deliveries that are not in the ledger yet; refresh PENDING ones whose text,
        media or due time changed. Rows in any other state are left as they are."""
        now = utc_now_iso()
        keys = []
        with self._hot.lock, self.engine.begin() as conn:
            for item in items:
                media = json.dumps(
                    [{"file": m.file, "alt": m.alt} for m in item.media], ensure_ascii=False
                )
                stmt = sqlite_insert(deliveries).values(
                    post_id=item.post_id,
                    account=item.account,
                    part=item.part,
                    channel=item.channel,
                    lang=item.lang,
                    due_at=_iso(item.due_at),
                    text=item.text,
                    media=media,
                    content_hash=item.content_hash,
                    state=State.PENDING.value,
                    attempts=0,
                    revision=item.revision,
                    author=item.author,
                    created_at=now,
                    updated_at=now,
                )
                conn.execute(stmt.on_conflict_do_nothing())
                # A delivery cancelled because its post disappeared comes back with the post.
                conn.execute(
                    update(deliveries)
                    .where(
                        and_(
                            _same_delivery(item),
                            deliveries.c.state == State.RETRACTED.value,
                            deliveries.c.remote_id.is_(None),
                            deliveries.c.last_error.like("cancelled:%"),
                        )
                    )
                    .values(state=State.PENDING.value, last_error=None, updated_at=now)
                )
                # A delivery that waited for its translation has its text now.
                conn.execute(
                    update(deliveries)
                    .where(and_(_same_delivery(item), deliveries.c.state == State.HELD.value))
                    .values(
                        state=State.PENDING.value,
                        retry_at=None,
                        last_error=None,
                        content_hash="",  # so that the text is written just below
                        updated_at=now,
                    )
                )
                conn.execute(
                    update(deliveries)
                    .where(
                        and_(
                            _same_delivery(item),
                            deliveries.c.state == State.PENDING.value,
                            or_(
                                deliveries.c.content_hash != item.content_hash,
                                deliveries.c.due_at != _iso(item.due_at),
                            ),
                        )
                    )
                    .values(
                        text=item.text,
                        media=media,
                        content_hash=item.content_hash,
                        due_at=_iso(item.due_at),
                        revision=item.revision,
                        author=item.author,
                        updated_at=now,
                    )
                )
                keys.append((item.post_id, item.account, item.part, item.channel))
        return [r for r in (self.find(*k) for k in keys) if r is not None]

    def hold(self, items: Iterable[NewDelivery], reason: str, retry_at: datetime) -> None:
        """Record deliveries whose text is not ready (their translation failed) as HELD: in
        the ledger, with ``reason`` and the next try at ``retry_at``, but never claimed. A
        PENDING one (its post changed and the new text failed) is held too, so that the old
        text is not published; rows in any other state are left as they are."""
        now = utc_now_iso()
        with self._hot.lock, self.engine.begin() as conn:
            for item in items:
                values = {
                    "state": State.HELD.value,
                    "due_at": _iso(item.due_at),
                    "last_error": reason,
                    "retry_at": _iso(retry_at),
                    "updated_at": now,
                }
                conn.execute(
                    sqlite_insert(deliveries)
                    .values(
                        post_id=item.post_id,
                        account=item.account,
                        part=item.part,
                        channel=item.channel,
                        lang=item.lang,
                        text=item.text,
                        media="[]",
                        content_hash="",
                        attempts=0,
                        revision=item.revision,
                        author=item.author,
                        created_at=now,
                        **values,
                    )
                    .on_conflict_do_nothing()
                )
                c = deliveries.c
                conn.execute(
                    update(deliveries)
                    .where(
                        and_(
                            _same_delivery(item),
                            or_(
                                c.state.in_([State.PENDING.value, State.HELD.value]),
                                # cancelled because its post disappeared: back with the post
                                and_(
                                    c.state == State.RETRACTED.value,
                                    c.remote_id.is_(None),
                                    c.last_error.like("cancelled:%"),
                                ),
                            ),
                        )
                    )
                    .values(**values)
                )

    def find(self, post_id: str, account: str, part: int, channel: str) -> Row | None:
        c = deliveries.c
        with self.engine.connect() as conn:
            r = conn.execute(
                select(deliveries).where(
                    and_(
                        c.post_id == post_id,
                        c.account == account,
                        c.part == part,
                        c.channel == channel,
                    )
                )
            ).first()
        return _row(r) if r is not None else None

    def get(self, row_id: int) -> Row:
        with self._hot.connection() as conn:
            r = conn.execute(_GET, {"row_id": row_id}).one()
        return _row(r)

    def rows(
        self,
        post_id: str | None = None,
        *,
        channel: str | None = None,
        states: Sequence[State] | None = None,
        due_by: datetime | None = None,
    ) -> list[Row]:
        c = deliveries.c
        if post_id is not None and channel is not None and states is None and due_by is None:
            with self._hot.connection() as conn:
                found = conn.execute(_FOR_POST, {"p_post": post_id, "p_channel": channel})
                return [_row(r) for r in found]
        query = select(deliveries)
        if post_id is not None:
            query = query.where(c.post_id == post_id)
        if channel is not None:
            query = query.where(c.channel == channel)
        if states is not None:
            query = query.where(c.state.in_([s.value for s in states]))
        if due_by is not None:  # only what is due: the sweep runs every few seconds
            query = query.where(c.due_at <= _iso(due_by))
        query = query.order_by(c.due_at, c.post_id, c.account, c.part)
        with self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(query)]

    def claim(
        self, row_id: int, now: datetime, owner: str | None = None, current: Row | None = None
    ) -> Row | None:
        """PENDING → SENDING, committed; None when another process got it first or it is not
        due for retry yet. ``current`` (the row as last read) spares reading it back."""
        owner = owner or owner_id()
        params = {"row_id": row_id, "now_iso": _iso(now), "owner": owner}
        with self._hot.connection() as conn:
            result = conn.execute(_CLAIM, params)
            won = result.rowcount == 1
        if not won:
            return None
        if current is None or current.state is not State.PENDING:
            return self.get(row_id)
        return replace(
            current,
            state=State.SENDING,
            attempts=current.attempts + 1,
            claimed_at=datetime.fromisoformat(_iso(now)),
            claimed_by=owner,
            updated_at=datetime.fromisoformat(_iso(now)),
        )

    def transition(
        self,
        row_id: int,
        to: State,
        *,
        expect: Sequence[State],
        remote_id: str | None = None,
        url: str | None = None,
        error: str | None = None,
        retry_at: datetime | None = None,
    ) -> bool:
        """Move a row from one of ``expect`` to ``to``; False if it was in another state."""
        with_remote = remote_id is not None
        with_error = error is not None or to in (State.POSTED, State.PENDING)
        params = {
            "row_id": row_id,
            "expect": [s.value for s in expect],
            "to_state": to.value,
            "ts": utc_now_iso(),
            "retry": _iso(retry_at) if retry_at else None,
            "remote": remote_id,
            "remote_url": url,
            "error": error,
        }
        statement = _TRANSITIONS[(with_remote, with_error)]
        with self._hot.connection() as conn:
            result = conn.execute(statement, params)
            return result.rowcount == 1

    def rearm(
        self, row_id: int, *, expect: Sequence[State], due: datetime, attempts_at_most: int
    ) -> bool:
        """``post-now`` on a delivery that ended (FAILED, EXPIRED, SKIPPED): PENDING again, due
        ``due``, no ``retry_at``, its attempts lowered to ``attempts_at_most`` so that at least
        one is left."""
        c = deliveries.c
        with self._hot.lock, self.engine.begin() as conn:
            result = conn.execute(
                update(deliveries)
                .where(and_(c.id == row_id, c.state.in_([s.value for s in expect])))
                .values(
                    state=State.PENDING.value,
                    due_at=_iso(due),
                    retry_at=None,
                    attempts=case(
                        (c.attempts > attempts_at_most, attempts_at_most), else_=c.attempts
                    ),
                    updated_at=utc_now_iso(),
                )
            )
            return result.rowcount == 1

    def reschedule(self, row_id: int, due: datetime) -> bool:
        """Move a PENDING (or HELD) delivery to a new due time (its post's time changed)."""
        c = deliveries.c
        with self._hot.lock, self.engine.begin() as conn:
            result = conn.execute(
                update(deliveries)
                .where(and_(c.id == row_id, c.state.in_([State.PENDING.value, State.HELD.value])))
                .values(due_at=_iso(due), updated_at=utc_now_iso())
            )
            return result.rowcount == 1

    def stale_sending(self, now: datetime, lease: timedelta = DEFAULT_LEASE) -> list[Row]:
        """SENDING rows whose owner is gone (same host) or whose lease has run out."""
        stale = []
        for row in self.rows(states=[State.SENDING]):
            alive = _owner_alive(row.claimed_by)
            expired = row.claimed_at is None or row.claimed_at + lease < now
            if alive is False or (alive is None and expired):
                stale.append(row)
        return stale

    def counts(self) -> dict[tuple[State, str], int]:
        """(state, account) → how many deliveries, by one aggregate query (``/status``,
        ``/metrics``: cheap however long the ledger)."""
        from sqlalchemy import func

        c = deliveries.c
        query = select(c.state, c.account, func.count()).group_by(c.state, c.account)
        with self.engine.connect() as conn:
            return {(State(s), a): n for s, a, n in conn.execute(query)}

    def page(
        self,
        states: Sequence[State],
        *,
        limit: int,
        offset: int = 0,
        recent_first: bool = False,
    ) -> list[Row]:
        """At most ``limit`` rows in ``states``, after ``offset``: by due time, or most
        recently changed first."""
        c = deliveries.c
        order = (c.updated_at.desc(), c.id.desc()) if recent_first else (*_ORDER, c.id)
        # Sorting ids only, then reading those rows: SQLite would otherwise decode every
        # matching row (texts included) to sort it, 5x slower at 40,000 rows.
        chosen = (
            select(c.id)
            .where(c.state.in_([s.value for s in states]))
            .order_by(*order)
            .limit(limit)
            .offset(offset)
        )
        query = select(deliveries).where(c.id.in_(chosen.scalar_subquery())).order_by(*order)
        with self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(query)]
