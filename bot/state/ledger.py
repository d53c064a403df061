"""The ledger: the truth about every delivery. Nothing twice, nothing lost.

One row per (post, account, part, channel). States::

    HELD ──text ready──▶ PENDING ──claim──▶ SENDING ──sent──▶ POSTED ──retract──▶ RETRACTED
                          ▲   ▲               │  │               ▲
                          │   └── retry_at ◀──┘  │ ambiguous     │ found on the timeline
                          │  (429, not sent)     ▼               │
                          └──── not found ──── UNKNOWN ──────────┘
                                                 │ timeline unreadable for 6 h
                                                 ▼
                                               FAILED

Every transition, and what makes it (the rest of this module, ``bot/publish/deliver.py``,
``retract.py``, ``bot/pipeline.py`` and ``bot/service/``)::

    PENDING ──claim──▶ SENDING         committed before any API call (below)
    SENDING ──▶ POSTED                 the platform answered with the post's id
    SENDING ──▶ PENDING (retry_at)     429 (at X's reset), or surely not sent (back-off)
    SENDING ──▶ FAILED (reason)        refused (401/403/402/400), or out of attempts
    SENDING ──▶ UNKNOWN                ambiguous (timeout, 5xx or a cut answer after sending,
                                       X's "duplicate"), a defect raised while sending, or
                                       a stale lease: its owner died mid-send (``abandon``)
    UNKNOWN ──reconcile──▶ POSTED      found on the account's timeline
    UNKNOWN ──reconcile──▶ PENDING     not found: retried after a back-off (FAILED when out
                                       of attempts, or when X called it a duplicate)
    UNKNOWN ──▶ UNKNOWN (retry_at)     the look-up failed: looked for again, growing waits
    UNKNOWN ──▶ FAILED                 given up after 6 h of unreadable timeline ("could
                                       not confirm whether X has it"; never sent blindly)
    PENDING ──▶ FAILED                 out of attempts
    PENDING ──▶ SKIPPED                blackout; a repost whose original ended FAILED,
                                       EXPIRED, RETRACTED or SKIPPED (its reason given)
    PENDING ──▶ PENDING (retry_at)     a repost (``repost_of``) waiting for its original
                                       to be POSTED: no claim, no attempt spent
    PENDING ──▶ EXPIRED                past its lateness window (service only; a paused
                                       account too; a thread's later parts with its part)
    PENDING ──▶ RETRACTED              cancelled ("cancelled: …": its post, part or account
                                       was removed, it became a draft) or by ``retract``
    HELD ──▶ PENDING                   its translation is ready (``ensure``); HELD is
                                       recorded but never claimed
    HELD ──▶ EXPIRED | RETRACTED       the window closed first | cancelled, as PENDING
    PENDING ──▶ HELD                   its post changed and the new translation failed
    RETRACTED ──▶ PENDING | HELD       only "cancelled: …" and never sent: its post is back
    FAILED | EXPIRED | SKIPPED ──post-now──▶ PENDING   re-armed (looked up first if it was
                                       attempted: found, POSTED instead)
    POSTED ──retract──▶ RETRACTED      deleted on the platform
    UNKNOWN ──▶ UNKNOWN ("needs a person: …")   the channel cannot be searched (Telegram):
                                       alerted once, never looked up nor sent again by itself
    SENDING ──▶ UNKNOWN ("task for a person: …", retry_at = the task's end)   a manual
                                       channel (Weibo): a person posts it
    UNKNOWN ──▶ EXPIRED                a manual task nobody recorded by its end (retry_at)
    UNKNOWN | EXPIRED (task) | FAILED ("could not confirm…") ──mark-posted──▶ POSTED   a
                                       person recorded its link (``bot/publish/manual.py``)
    UNKNOWN ──post-now --resend──▶ PENDING   a person checked it is not there
    UNKNOWN (task) ──retract──▶ RETRACTED    the task withdrawn
    UNKNOWN ──retract──▶ POSTED ──▶ RETRACTED   looked up: found, deleted; not found,
                                       RETRACTED at once; look-up failed, left as it is (so
                                       is a FAILED "could not confirm…" row)

POSTED, FAILED, SKIPPED, EXPIRED and RETRACTED are final (:data:`FINAL`) but for the
post-now and "cancelled: …" ways back above. A removed post's SENDING or UNKNOWN row is never
sent again: reconciled, it ends POSTED (alerted) or RETRACTED. A row armed by ``post-now``
(table ``by_hand``) keeps its due time when the plan records its post again, and is not
cancelled because its post is a draft (:meth:`Ledger.arm_by_hand`).

The claim (PENDING → SENDING) is committed before any API call, with a conditional UPDATE, so
two processes claiming the same row cannot both win; it returns the row as it was claimed
(``UPDATE … RETURNING``), and that copy is what gets published: an edit that refreshed the
PENDING row a moment earlier is published as recorded, and one a moment later leaves the
SENDING row alone (:meth:`Ledger.ensure` only changes PENDING rows).

Who holds a claim is a process *start*, never a pid alone: a restarted container is PID 1
again. ``claimed_by`` is ``INSTANCE@HOST:PID``, INSTANCE random for each start; host and pid
are there for people and for the quick checks below. While it holds claims, a process renews
its heartbeat (its row in ``instances``) every lease/6 from a thread of its own, so an X
request may take as long as it takes. A SENDING row is *stale* (its owner died mid-send: it
becomes UNKNOWN and is reconciled against the timeline before any retry) when

- its host and pid are this process's own but its instance is not: the pid is ours now, so
  its owner is dead (the restarted container, recovered at once);
- its owner ran in this host's pid namespace and that pid is gone;
- otherwise, when neither its owner's heartbeat nor the claim itself is younger than the
  lease (``DIPLOBOT_LEASE``, default 60 s).

A claim by this very instance is never stale. Processes that share a state file must not
share both a host name and a pid at the same time (two containers given the same fixed
``hostname`` on one volume): the first rule would take each for the other's restart.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Generic, TypeVar

from loguru import logger
from sqlalchemy import (
    Connection,
    Engine,
    and_,
    bindparam,
    case,
    delete,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.exc import DBAPIError

from bot.instance import Instance as Instance
from bot.instance import this_instance as this_instance
from bot.state.dialect import exclusive, insert_new, upsert
from bot.state.lease import FENCE, ServiceLease
from bot.state.tables import MICROSECONDS, by_hand, deliveries, instances, utc_now


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
INSTANCES_KEPT = timedelta(days=7)
"""Heartbeats older than this are deleted (a claim that old is stale whatever they say)."""


def owner_id() -> str:
    """This process start, as written in ``claimed_by``."""
    return this_instance().owner


@dataclass(frozen=True, slots=True)
class Owner:
    """``claimed_by`` read back; ``instance`` is "" in a claim written before instances
    existed (``HOST:PID``)."""

    instance: str
    host: str
    pid: int | None

    @classmethod
    def parse(cls, text: str | None) -> Owner | None:
        if not text:
            return None
        instance, at, rest = text.partition("@")
        if not at:
            instance, rest = "", text
        host, colon, pid = rest.rpartition(":")
        if not colon:
            return None
        return cls(instance, host, int(pid) if pid.isdigit() else None)


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """An instance's row in ``instances``."""

    pid_space: str
    seen_at: datetime


def pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:  # not a valid pid here
        return False
    return True


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    return f"{seconds // 60} min" if seconds >= 120 else f"{seconds} s"


def stale_reason(
    row: Row, now: datetime, me: Instance, beat: Heartbeat | None, lease: timedelta
) -> str | None:
    """Why ``row``'s claim is stale (see the module docstring), or None while it holds."""
    if row.state is not State.SENDING:
        return None
    owner = Owner.parse(row.claimed_by)
    if owner is not None and owner.instance == me.id:
        return None
    if owner is not None and owner.host == me.host and owner.pid is not None:
        if owner.pid == me.pid:
            return (
                f"process {owner.pid} on {owner.host} is another start now: the one that "
                "claimed it was restarted"
            )
        # A claim from before instances existed was made by the pid check's own rules.
        same_space = beat.pid_space == me.pid_space if beat else owner.instance == ""
        if same_space and not pid_running(owner.pid):
            return f"process {owner.pid} on {owner.host} is gone"
    signs = [t for t in (row.claimed_at, beat.seen_at if beat else None) if t is not None]
    last = max(signs, default=None)
    if last is None:
        return "its owner is unknown"
    if now - last > lease:
        return f"no heartbeat from {row.claimed_by} for {_span(now - last)}"
    return None


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
    # A repost: the original's delivery key (``post#1@account``); its text is "".
    repost_of: str | None = None

    @property
    def content_hash(self) -> str:
        fields: list[Any] = [self.text, [[m.file, m.alt] for m in self.media]]
        if self.repost_of is not None:  # a repost of another original is another delivery
            fields.append(self.repost_of)
        payload = json.dumps(fields)
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
    repost_of: str | None = None  # a repost: the original's delivery key


def _row(r: Any) -> Row:
    media = tuple(MediaRef(m["file"], m.get("alt")) for m in json.loads(r.media or "[]"))
    return Row(
        id=r.id,
        post_id=r.post_id,
        account=r.account,
        part=r.part,
        channel=r.channel,
        lang=r.lang,
        due_at=r.due_at,
        text=r.text,
        media=media,
        content_hash=r.content_hash,
        state=State(r.state),
        attempts=r.attempts,
        retry_at=r.retry_at,
        remote_id=r.remote_id,
        url=r.url,
        last_error=r.last_error,
        revision=r.revision,
        author=r.author,
        claimed_at=r.claimed_at,
        claimed_by=r.claimed_by,
        updated_at=r.updated_at,
        repost_of=r.repost_of,
    )


def _new_row(item: NewDelivery, now: datetime) -> dict[str, Any]:
    """The row of a delivery recorded for the first time (PENDING)."""
    media = json.dumps([{"file": m.file, "alt": m.alt} for m in item.media], ensure_ascii=False)
    return {
        "post_id": item.post_id,
        "account": item.account,
        "part": item.part,
        "channel": item.channel,
        "lang": item.lang,
        "due_at": item.due_at,
        "text": item.text,
        "media": media,
        "content_hash": item.content_hash,
        "state": State.PENDING.value,
        "attempts": 0,
        "revision": item.revision,
        "author": item.author,
        "created_at": now,
        "updated_at": now,
        "repost_of": item.repost_of,
    }


def _same_delivery(item: NewDelivery) -> Any:
    c = deliveries.c
    return and_(
        c.post_id == item.post_id,
        c.account == item.account,
        c.part == item.part,
        c.channel == item.channel,
    )


def _revivable(item: NewDelivery) -> Any:
    """The id of ``item``'s row if it was cancelled because its post disappeared (it comes
    back with the post)."""
    c = deliveries.c
    return select(c.id).where(
        and_(
            _same_delivery(item),
            c.state == State.RETRACTED.value,
            c.remote_id.is_(None),
            c.last_error.like("cancelled:%"),
        )
    )


_ARMED = deliveries.c.id.in_(select(by_hand.c.delivery_id))
"""The row was armed by ``post-now`` (see :meth:`Ledger.arm_by_hand`)."""


def _due(moment: datetime) -> Any:
    """``moment`` as a value of ``due_at`` where no column gives it its type (``case``)."""
    return literal(moment, MICROSECONDS)


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
_NOW = bindparam("now", type_=MICROSECONDS)  # one type: bound once, used three times
_CLAIM = (
    update(deliveries)
    .where(
        and_(
            _c.id == bindparam("row_id"),
            _c.state == State.PENDING.value,
            or_(_c.retry_at.is_(None), _c.retry_at <= _NOW),
        )
    )
    .values(
        state=State.SENDING.value,
        attempts=_c.attempts + 1,
        claimed_at=_NOW,
        claimed_by=bindparam("owner"),
        updated_at=_NOW,
    )
    .returning(*deliveries.c)  # the row as claimed: what will be published
)
_CLAIM_FENCED = _CLAIM.where(FENCE)
"""The claim of a service under the lease: only while it holds it (bot/state/lease.py)."""
_ABANDON = (
    update(deliveries)
    .where(
        and_(
            _c.id == bindparam("row_id"),
            _c.state == State.SENDING.value,
            # Still that very claim: another process may have recovered and claimed it anew.
            _c.claimed_by == bindparam("owner"),
            _c.attempts == bindparam("b_attempts"),
        )
    )
    .values(state=State.UNKNOWN.value, last_error=bindparam("error"), updated_at=bindparam("now"))
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


class Shared:
    """One per opened state (:class:`bot.state.Store`): one connection for the statements
    run several times per delivery (claim, transition, get, a post's rows), and the lock
    every writer of this process takes.

    Checking a connection out of the pool and back costs about twice the statement itself
    (the pool rolls back on check-in), which mattered when 500 deliveries fall due at once.
    The lock also makes threads take turns to write: SQLite would otherwise make them wait in
    its busy handler, which sleeps in steps of several milliseconds."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.lock = threading.RLock()
        self._conn: Connection | None = None
        self.heartbeats: dict[str, _Heartbeat] = {}  # instance id → its heartbeat here
        self.heartbeats_lock = threading.Lock()
        self.closed = threading.Event()  # the store was closed: no heartbeat any more
        self._queue: list[_Work[Any]] = []  # statements waiting for the next shared commit
        self._leading = False  # a thread is committing a batch
        self._queued = threading.Condition()

    def together(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` on the shared connection and return its result once *committed*, in
        one transaction with the work other threads ask for at the same time (claims and
        outcomes when hundreds of deliveries fall due at once): one commit, so one sync to
        disk, for all of them instead of one each. Nothing is returned before its commit, so a
        claim is on disk before its caller publishes, as with a transaction of its own.

        A batch that fails is rolled back, and each of its works run again alone: each caller
        gets the result or the error it would have had by itself. A batch whose connection was
        lost is not run again (its commit may have been made): each caller gets the error."""
        item = _Work(work)
        with self._queued:
            self._queue.append(item)
            while not item.done:
                if not self._leading:
                    self._leading = True
                    break
                self._queued.wait()
        if not item.done:  # this thread commits the batch queued so far (its own included)
            try:
                with self._queued:
                    batch, self._queue = self._queue, []
                self._commit(batch)
            finally:
                with self._queued:
                    self._leading = False
                    self._queued.notify_all()
        if item.error is not None:
            raise item.error
        return item.result  # type: ignore[return-value]

    def _commit(self, batch: list[_Work[Any]]) -> None:
        try:
            with self.connection() as conn:
                for item in batch:
                    item.result = item.work(conn)
        except BaseException as exc:
            if len(batch) == 1 or connection_lost(exc):
                # A lost connection may have taken the answer of a commit the server made:
                # run again, a claim would find its own row SENDING and give it up. Each
                # caller reads back what became of its work (Ledger.claim, transition).
                for item in batch:
                    item.error = exc
            else:
                for item in batch:
                    item.result = None
                    try:
                        with self.connection() as conn:
                            item.result = item.work(conn)
                    except BaseException as alone:
                        item.error = alone
        for item in batch:
            item.done = True

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """The shared connection, under the lock; what was run is committed on exit."""
        with self.lock:
            if self._conn is not None and self._conn.invalidated:
                # Its database connection was lost (a PostgreSQL server restarted, a
                # firewall cut it): a new one from the pool, checked by its pre-ping.
                self._conn.close()
            if self._conn is None or self._conn.closed:
                self._conn = self.engine.connect()
            conn = self._conn
            try:
                yield conn
            except BaseException:
                conn.rollback()
                raise
            conn.commit()


T = TypeVar("T")


def connection_lost(exc: BaseException) -> bool:
    """Whether ``exc`` is the database connection lost (server gone, network cut): what was
    being committed may or may not have been."""
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


class _Work(Generic[T]):
    """Statements one thread asked :meth:`Shared.together` to run, and what came of them."""

    __slots__ = ("done", "error", "result", "work")

    def __init__(self, work: Callable[[Connection], T]) -> None:
        self.work = work
        self.result: T | None = None
        self.error: BaseException | None = None
        self.done = False


_EXITING = threading.Event()
atexit.register(_EXITING.set)  # no heartbeat is written while the interpreter shuts down


def write_instance(conn: Connection, me: Instance, at: datetime) -> None:
    """Write or renew ``me``'s row in ``instances`` (its ``seen_at``), in ``conn``'s
    transaction: the claims' heartbeat, and the service's mark (bot/state/presence.py)."""
    values = {
        "instance": me.id,
        "host": me.host,
        "pid": me.pid,
        "pid_space": me.pid_space,
        "started_at": at,
        "seen_at": at,
    }
    conn.execute(upsert(conn, instances, values, key=["instance"], update=["seen_at"]))


class _Heartbeat:
    """One instance's sign of life in one state database: its ``instances`` row, written
    with its first claim and renewed every ``every`` seconds while it holds claims, by a
    thread of its own (so during an X request too). No claim held, no thread."""

    def __init__(self, hot: Shared, instance: Instance, every: float) -> None:
        self.hot, self.instance, self.every = hot, instance, every
        self.registered = False
        self._held: set[int] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def register(self, conn: Connection, now: datetime) -> None:
        """Write the instance's row (in the transaction of its first claim)."""
        if self.registered:
            return
        self.beat(conn, now)
        conn.execute(delete(instances).where(instances.c.seen_at < now - INSTANCES_KEPT))

    def beat(self, conn: Connection, now: datetime) -> None:
        """Write or renew the row (an upsert: another process may have pruned it after a
        long idle time)."""
        write_instance(conn, self.instance, now)

    def hold(self, row_id: int) -> None:
        self.registered = True  # the claim that registered it is committed
        with self._lock:
            self._held.add(row_id)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="ledger-heartbeat", daemon=True
                )
                self._thread.start()

    def release(self, row_id: int) -> None:
        with self._lock:
            self._held.discard(row_id)

    def _run(self) -> None:
        while not _EXITING.wait(self.every):
            with self._lock:
                if not self._held or self.hot.closed.is_set():
                    self._thread = None
                    return
            try:
                with self.hot.connection() as conn:
                    self.beat(conn, utc_now())
            except Exception as exc:
                # The next beat tries again; a lease spans six of them.
                logger.bind(error=str(exc)).warning("ledger.heartbeat_failed")


class Ledger:
    """The deliveries of one state database, as one process start (``instance``) sees them.
    Built by :class:`bot.state.Store` (``store.ledger``, or ``store.ledger_as(...)`` for a
    test that plays a second process)."""

    def __init__(self, shared: Shared, *, lease: timedelta, instance: Instance) -> None:
        self.engine: Engine = shared.engine
        self._hot = shared  # shared by every Ledger of this store in the process
        self.lease = lease
        self.instance = instance
        with self._hot.heartbeats_lock:
            beat = self._hot.heartbeats.get(self.instance.id)
            if beat is None:
                every = min(max(self.lease.total_seconds() / 6, 0.1), 10.0)
                beat = self._hot.heartbeats[self.instance.id] = _Heartbeat(
                    self._hot, self.instance, every
                )
        self._beat = beat
        self.fence: ServiceLease | None = None
        """Set by a service: its claims are made only while it holds the lease."""

    def ensure(self, items: Iterable[NewDelivery]) -> list[Row]:
        """Record deliveries that are not in the ledger yet; refresh PENDING ones whose text,
        media or due time changed. Rows in any other state are left as they are."""
        now = utc_now()
        keys = []
        with self._hot.lock, self.engine.begin() as conn:
            for item in items:
                new = _new_row(item, now)
                media = new["media"]
                conn.execute(upsert(conn, deliveries, new))
                # A delivery cancelled because its post disappeared comes back with the post,
                # as the plan's (no longer armed by hand).
                revived = _revivable(item)
                conn.execute(delete(by_hand).where(by_hand.c.delivery_id.in_(revived)))
                conn.execute(
                    update(deliveries)
                    .where(deliveries.c.id.in_(revived))
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
                                and_(deliveries.c.due_at != item.due_at, ~_ARMED),
                            ),
                        )
                    )
                    .values(
                        text=item.text,
                        media=media,
                        content_hash=item.content_hash,
                        # post-now's due (now, or X's reset) stands: the plan's is past or later
                        due_at=case((_ARMED, deliveries.c.due_at), else_=_due(item.due_at)),
                        revision=item.revision,
                        author=item.author,
                        repost_of=item.repost_of,
                        updated_at=now,
                    )
                )
                keys.append((item.post_id, item.account, item.part, item.channel))
        return [r for r in (self.find(*k) for k in keys) if r is not None]

    def record_new(self, groups: Sequence[Sequence[NewDelivery]]) -> list[bool]:
        """Record each group of deliveries (one post's parts on one account and channel) that
        has no row yet, all in one transaction holding the write lock, with one prepared
        INSERT for them all: what :meth:`ensure` does for a delivery not in the ledger, without
        its statements for rows already there. Returns, for each group, whether it was
        recorded; a group with a row already is left to :meth:`ensure` (it may refresh it).
        A row another process recorded meanwhile (on PostgreSQL the lock keeps other
        ``record_new`` out, not another's ``ensure``) is left as that process wrote it."""
        if not groups:
            return []
        c = deliveries.c
        posts = sorted({item.post_id for group in groups for item in group})
        now = utc_now()
        with self._hot.lock, exclusive(self.engine) as conn:
            present: set[tuple[str, str, str]] = set()
            for start in range(0, len(posts), 500):  # SQLite's bound-parameter limit (the lowest)
                chunk = posts[start : start + 500]
                query = select(c.post_id, c.account, c.channel).where(c.post_id.in_(chunk))
                present.update((p, a, ch) for p, a, ch in conn.execute(query))
            fresh = [
                bool(group) and all((i.post_id, i.account, i.channel) not in present for i in group)
                for group in groups
            ]
            rows = [
                _new_row(item, now)
                for group, new in zip(groups, fresh, strict=True)
                if new
                for item in group
            ]
            if rows:
                conn.execute(insert_new(conn, deliveries), rows)
        return fresh

    def hold(self, items: Iterable[NewDelivery], reason: str, retry_at: datetime) -> None:
        """Record deliveries whose text is not ready (their translation failed) as HELD: in
        the ledger, with ``reason`` and the next try at ``retry_at``, but never claimed. A
        PENDING one (its post changed and the new text failed) is held too, so that the old
        text is not published; rows in any other state are left as they are."""
        now = utc_now()
        with self._hot.lock, self.engine.begin() as conn:
            for item in items:
                values = {
                    "state": State.HELD.value,
                    "last_error": reason,
                    "retry_at": retry_at,
                    "updated_at": now,
                }
                new = {
                    "post_id": item.post_id,
                    "account": item.account,
                    "part": item.part,
                    "channel": item.channel,
                    "lang": item.lang,
                    "text": item.text,
                    "media": "[]",
                    "content_hash": "",
                    "attempts": 0,
                    "revision": item.revision,
                    "author": item.author,
                    "created_at": now,
                    "due_at": item.due_at,
                    "repost_of": item.repost_of,
                    **values,
                }
                conn.execute(upsert(conn, deliveries, new))
                c = deliveries.c
                # cancelled because its post disappeared: back with the post, as the plan's
                revived = _revivable(item)
                conn.execute(delete(by_hand).where(by_hand.c.delivery_id.in_(revived)))
                conn.execute(
                    update(deliveries)
                    .where(
                        and_(
                            _same_delivery(item),
                            or_(
                                c.state.in_([State.PENDING.value, State.HELD.value]),
                                c.id.in_(revived),
                            ),
                        )
                    )
                    # held with the new text's failure, but post-now's due time stands
                    .values(**values, due_at=case((_ARMED, c.due_at), else_=_due(item.due_at)))
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
            query = query.where(c.due_at <= due_by)
        query = query.order_by(c.due_at, c.post_id, c.account, c.part)
        with self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(query)]

    def claim(self, row_id: int, now: datetime) -> Row | None:
        """PENDING → SENDING for this instance, committed; the row exactly as claimed (publish
        that copy: it is what the ledger holds). None when another process got it first, it is
        not due for retry yet, or (:attr:`fence` set) this service does not hold the lease."""
        params: dict[str, Any] = {"row_id": row_id, "now": now, "owner": self.instance.owner}
        statement = _CLAIM
        fence = self.fence
        if fence is not None:  # a service: only while it holds the lease (lease.py)
            if not fence.valid():
                return None
            params.update(fence.params())
            statement = _CLAIM_FENCED

        def run(conn: Connection) -> Any:
            self._beat.register(conn, now)
            return conn.execute(statement, params).first()

        try:
            claimed = self._hot.together(run)
        except DBAPIError as exc:
            if not connection_lost(exc):
                raise
            # The connection was lost around the commit (a PostgreSQL server restarted, a
            # network cut): the claim may be committed with its answer lost. Read back on a
            # new connection: left SENDING by this instance at this very ``now``, it is ours
            # (never stale for us: unclaimed, it would stay SENDING until a restart);
            # otherwise it was not committed and the error stands.
            found = self.get(row_id)
            mine = found.claimed_by == self.instance.owner and found.claimed_at == now
            if found.state is not State.SENDING or not mine:
                raise
            self._beat.hold(row_id)
            return found
        if claimed is None:
            return None
        self._beat.hold(row_id)
        if fence is not None and not fence.valid():
            # The lease ran out while the claim was being written: nothing was sent, so the
            # row goes back to PENDING for the service that holds the lease now.
            self.transition(
                row_id,
                State.PENDING,
                expect=[State.SENDING],
                error="not sent: this service lost its lease as it claimed it",
            )
            return None
        return _row(claimed)

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
            "ts": utc_now(),
            "retry": retry_at,
            "remote": remote_id,
            "remote_url": url,
            "error": error,
        }
        statement = _TRANSITIONS[(with_remote, with_error)]

        def run(conn: Connection) -> bool:
            return bool(conn.execute(statement, params).rowcount == 1)

        try:
            moved = self._hot.together(run)
        except DBAPIError as exc:
            if not connection_lost(exc):
                raise
            # Committed or not, its answer lost with the connection: read back on a new one.
            found = self.get(row_id)
            if found.state in expect:  # not committed (or a move to the same state): again
                moved = self._hot.together(run)
            elif found.state is to and (remote_id is None or found.remote_id == remote_id):
                moved = True  # committed
            else:
                raise
        if moved and State.SENDING in expect:
            for beat in list(self._hot.heartbeats.values()):
                beat.release(row_id)
        return moved

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
                    due_at=due,
                    retry_at=None,
                    attempts=case(
                        (c.attempts > attempts_at_most, attempts_at_most), else_=c.attempts
                    ),
                    updated_at=utc_now(),
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
                .values(due_at=due, updated_at=utc_now())
            )
            return result.rowcount == 1

    def arm_by_hand(self, row_ids: Iterable[int]) -> None:
        """``post-now`` armed these rows (a person's explicit act): while they are open,
        :meth:`ensure` and :meth:`hold` keep their due time (now, or X's reset) instead of the
        plan's, and the service does not cancel them because their post is a draft. A row
        cancelled with its post and brought back with it is the plan's again."""
        now = utc_now()
        with self._hot.lock, self.engine.begin() as conn:
            for row_id in row_ids:
                values = {"delivery_id": row_id, "armed_at": now}
                conn.execute(upsert(conn, by_hand, values))

    def armed_by_hand(self) -> set[int]:
        """Ids of the open rows (PENDING, HELD, SENDING, UNKNOWN) armed by ``post-now``."""
        c = deliveries.c
        open_states = [State.PENDING, State.HELD, State.SENDING, State.UNKNOWN]
        query = select(by_hand.c.delivery_id).join(deliveries, c.id == by_hand.c.delivery_id)
        query = query.where(c.state.in_([s.value for s in open_states]))
        with self.engine.connect() as conn:
            return set(conn.execute(query).scalars())

    def stale_claims(self, now: datetime, rows: Iterable[Row] | None = None) -> dict[int, str]:
        """Row id → why its claim is stale, for the SENDING rows of ``rows`` (default: every
        SENDING row) whose owner is gone (see the module docstring)."""
        sending = [
            r
            for r in (rows if rows is not None else self.rows(states=[State.SENDING]))
            if r.state is State.SENDING
        ]
        if not sending:
            return {}
        ids = {o.instance for r in sending if (o := Owner.parse(r.claimed_by)) and o.instance}
        with self.engine.connect() as conn:
            found = conn.execute(
                select(instances.c.instance, instances.c.pid_space, instances.c.seen_at).where(
                    instances.c.instance.in_(sorted(ids))
                )
            ).all()
        beats = {i: Heartbeat(space, seen) for i, space, seen in found}
        stale = {}
        for row in sending:
            owner = Owner.parse(row.claimed_by)
            beat = beats.get(owner.instance) if owner is not None else None
            reason = stale_reason(row, now, self.instance, beat, self.lease)
            if reason is not None:
                stale[row.id] = reason
        return stale

    def counts(self) -> dict[tuple[State, str], int]:
        """(state, account) → how many deliveries, by one aggregate query (``/status``,
        ``/metrics``: cheap however long the ledger)."""
        c = deliveries.c
        query = select(c.state, c.account, func.count()).group_by(c.state, c.account)
        with self.engine.connect() as conn:
            return {(State(s), a): n for s, a, n in conn.execute(query)}

    def next_due(self) -> datetime | None:
        """When the earliest PENDING delivery is due (``/metrics``)."""
        c = deliveries.c
        query = select(func.min(c.due_at)).where(c.state == State.PENDING.value)
        with self.engine.connect() as conn:
            due: datetime | None = conn.execute(query).scalar()
        return due

    def page(
        self,
        states: Sequence[State],
        *,
        limit: int,
        offset: int = 0,
        recent_first: bool = False,
        accounts: Collection[str] | None = None,
    ) -> list[Row]:
        """At most ``limit`` rows in ``states``, after ``offset``: by due time, or most
        recently changed first. ``accounts``: only theirs (one mission's: ``?mission=``)."""
        c = deliveries.c
        order = (c.updated_at.desc(), c.id.desc()) if recent_first else (*_ORDER, c.id)
        # Sorting ids only, then reading those rows: SQLite would otherwise decode every
        # matching row (texts included) to sort it, 5x slower at 40,000 rows.
        chosen = select(c.id).where(c.state.in_([s.value for s in states]))
        if accounts is not None:
            chosen = chosen.where(c.account.in_(sorted(accounts)))
        chosen = chosen.order_by(*order).limit(limit).offset(offset)
        query = select(deliveries).where(c.id.in_(chosen.scalar_subquery())).order_by(*order)
        with self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(query)]

    def stale_sending(self, now: datetime) -> list[tuple[Row, str]]:
        """SENDING rows whose owner is gone, each with why (see :meth:`stale_claims`)."""
        rows = self.rows(states=[State.SENDING])
        reasons = self.stale_claims(now, rows)
        return [(r, reasons[r.id]) for r in rows if r.id in reasons]

    def abandon(self, row: Row, reason: str) -> bool:
        """A stale claim (``row`` as read) → UNKNOWN, if it is still that same claim."""
        params = {
            "row_id": row.id,
            "owner": row.claimed_by,
            "b_attempts": row.attempts,
            "error": reason,
            "now": utc_now(),
        }
        with self._hot.connection() as conn:
            return conn.execute(_ABANDON, params).rowcount == 1
