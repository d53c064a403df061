"""The service's role: *active* (it holds the lease: plans, records, dispatches, sweeps and
reconciles) or *standby* (it syncs, validates and answers over HTTP, and polls the lease).

A thread of its own polls the lease (``bot/state/lease.py``) every third of
``DIPLOBOT_ACTIVE_LEASE``: the holder renews it, a standby takes it once it ran out or was
released. It only polls and tells the service: what a takeover does (apply the running
revision, reconcile the previous holder's claims, deliver what is due) runs on the service's
scheduler, so a long apply never delays a renewal. Losing the database loses the lease: no
renewal gets through, and :meth:`ServiceLease.valid` turns false on this process's own clock a
third of the lease before the database's expiry.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime

from loguru import logger

from bot.state.lease import ServiceLease, Takeover

ACTIVE = "active"
STANDBY = "standby"


class Role:
    """Polls ``lease``; ``on_active`` is called (on the polling thread: it must be quick) when
    this start took the lease, ``on_standby`` when it lost it."""

    def __init__(
        self,
        lease: ServiceLease,
        *,
        on_active: Callable[[Takeover], None],
        on_standby: Callable[[], None],
    ) -> None:
        self.lease = lease
        self.on_active, self.on_standby = on_active, on_standby
        self.lock = threading.Lock()
        self.last_poll: datetime | None = None  # the last poll that reached the database
        self.error: str | None = None  # why the last poll failed, if it did
        self.since: datetime | None = None  # when this start last became active or standby
        self._active = False  # as last announced
        self._stop = threading.Event()
        self._polling = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def active(self) -> bool:
        return self.lease.valid()

    @property
    def name(self) -> str:
        """``active`` or ``standby``: the word every view and log line uses."""
        return ACTIVE if self.lease.valid() else STANDBY

    def start(self) -> None:
        """Poll every third of the lease from now on (the first poll is the caller's)."""
        self._thread = threading.Thread(target=self._run, name="lease", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def poll_if_idle(self) -> None:
        """Poll now when no thread polls (a service driven by hand, as the in-process tests
        drive it, calling ``sync()`` and ``sweep()``): its lease is renewed by those calls."""
        if self._thread is None:
            self.poll()

    def _run(self) -> None:
        while not self._stop.wait(self.lease.renew_every):
            self.poll()

    def poll(self) -> None:
        """One poll of the lease, and the change of role it brings, if any (one at a time)."""
        with self._polling:
            self._poll()

    def _poll(self) -> None:
        was = self._active
        try:
            turn = self.lease.poll()
        except Exception as exc:  # the database is unreachable: the lease runs out by itself
            error = _first_line(exc)
            with self.lock:
                first = self.error is None
                self.error = error
            log = logger.bind(role=self.name, error=error)
            (log.error if first else log.debug)("lease.unreachable")
            turn = None
        else:
            with self.lock:
                self.last_poll = datetime.now(UTC)
                self.error = None
        now = datetime.now(UTC)
        if turn is not None and turn.taken is not None:
            self._active = True
            with self.lock:
                self.since = now
            taken = turn.taken
            logger.bind(
                role=ACTIVE, epoch=taken.epoch, previous=taken.previous, released=taken.released
            ).warning("service.active")
            self.on_active(taken)
        elif was and not self.lease.valid():
            self._active = False
            with self.lock:
                self.since = now
            # Forget its epoch: taking it again is a new term (a new epoch, a takeover).
            self.lease.drop()
            logger.bind(role=STANDBY, reason=self.error or "the lease was lost").error(
                "service.standby"
            )
            self.on_standby()
        elif self.since is None:
            with self.lock:
                self.since = now
            logger.bind(role=STANDBY).info("service.standby")


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig if isinstance(orig, BaseException) else exc)
    return (text.strip().splitlines() or [""])[0][:300]
