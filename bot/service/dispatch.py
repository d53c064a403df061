"""Dispatch: the ledger's due rows → one chain per (post, account), delivered in parallel with
a bound per account, the lateness window applied, paused accounts held (nothing sent, the
window still running).

No due trigger is ever lost. One run delivers at a time (``lock``); a trigger that fires while
it runs (a post due during a burst) is a *request* the run under way takes up at once: the rows
due now join the chains in flight, on the same pool, so the post goes out on time instead of
waiting for the burst to end and the next sweep. A request that comes as the run ends makes it
run once more."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial

from loguru import logger

from bot import pipeline
from bot.content.types import ContentSet
from bot.publish.session import Publishing
from bot.schedule.pauses import paused_accounts
from bot.state.ledger import Ledger, Row, State
from bot.state.pauses import Pauses

Key = tuple[str, str]
"""A chain: (post, account)."""


@dataclass(frozen=True, slots=True)
class _Request:
    """A run asked for, with what was running when it was asked."""

    pub: Publishing | None
    content: ContentSet | None
    removed: Mapping[int, str]
    look_now: bool


class Dispatch:
    """``parallel`` chains at once, all accounts together, at most ``per_account`` on one;
    ``max_late``: the lateness window. One run at a time (``lock``); see the module's
    docstring for the triggers that come during a run."""

    def __init__(
        self,
        ledger: Ledger,
        pauses: Pauses,
        *,
        max_late: timedelta,
        parallel: int,
        per_account: int,
        stopping: threading.Event,
        may_publish: Callable[[], bool] = lambda: True,
    ) -> None:
        """``may_publish``: whether this service holds the lease (``bot/state/lease.py``);
        a run starts nothing without it (and the ledger claims nothing)."""
        self.ledger, self.pauses = ledger, pauses
        self.may_publish = may_publish
        self.max_late, self.parallel, self.per_account = max_late, parallel, per_account
        self.stopping = stopping
        self.lock = threading.Lock()  # held while delivering
        # Guards what follows; notified by a request and by a chain that ends.
        self._wake = threading.Condition()
        self._request: _Request | None = None  # asked for, not taken up yet
        self._in_flight: set[Key] = set()  # chains submitted in this run, not ended
        self._recheck: set[Key] = set()  # found due again while in flight
        self._given: dict[Key, set[int]] = {}  # the rows each chain in flight was given
        self._last: _Request | None = None  # the request of the round under way

    def paused(self, content: ContentSet) -> dict[str, str]:
        """Accounts paused now (committed switch or ``diplobot pause``) → reason."""
        return paused_accounts(content, self.pauses.current())

    def run(
        self,
        pub: Publishing | None,
        content: ContentSet | None,
        removed: Mapping[int, str],
        look_now: bool = False,
    ) -> None:
        """Deliver every PENDING row that is due, one chain per (post, account); look UNKNOWN
        ones up when their ``retry_at`` has come (``look_now``: all of them). ``removed``: rows
        never to be sent. While a run is under way, this hands it the request and returns at
        once: that run delivers what is due now too (never dropped, never delivered twice)."""
        if self.stopping.is_set() or not self.may_publish():
            return
        with self._wake:
            earlier = self._request
            look_now = look_now or (earlier is not None and earlier.look_now)
            self._request = _Request(pub, content, removed, look_now)
            self._wake.notify_all()
        # Whoever holds the lock serves every request made before it lets go: one made as
        # the run under way ends (after its last look, before it lets go) is served here.
        while self.lock.acquire(blocking=False):
            try:
                self._serve()
            finally:
                self.lock.release()
            with self._wake:
                if self._request is None or self.stopping.is_set():
                    return

    def _serve(self) -> None:
        """Take requests up until none is left and every chain started has ended."""
        slots: dict[str, threading.Semaphore] = defaultdict(
            lambda: threading.Semaphore(self.per_account)
        )
        try:
            with ThreadPoolExecutor(
                max_workers=max(1, self.parallel), thread_name_prefix="publish"
            ) as pool:
                while True:
                    with self._wake:
                        while self._request is None and self._in_flight:
                            self._wake.wait()
                        request, self._request = self._request, None
                        if request is None or self.stopping.is_set() or not self.may_publish():
                            break  # all ended; or stopping: those in flight end, none starts
                        self._last = request
                    if request.pub is not None and request.content is not None:
                        self._round(pool, slots, request, request.pub, request.content)
        finally:
            with self._wake:
                self._in_flight.clear()
                self._recheck.clear()
                self._given.clear()
                self._last = None

    def _round(
        self,
        pool: ThreadPoolExecutor,
        slots: Mapping[str, threading.Semaphore],
        request: _Request,
        pub: Publishing,
        content: ContentSet,
    ) -> None:
        """Read what is due now and start its chains; a chain in flight is left to end (and
        looked at again when it has)."""
        now = datetime.now(UTC)
        paused = self.paused(content)
        groups: dict[Key, list[Row]] = defaultdict(list)
        for row in self.ledger.rows(states=[State.PENDING, State.UNKNOWN], due_by=now):
            if row.channel == pub.channel_of.get(row.account):
                groups[(row.post_id, row.account)].append(row)
        with self._wake:
            busy = {key for key in groups if key in self._in_flight}
            # A chain in flight delivers the rows it was started with (as they are when it
            # claims them); one with a row it was not given (a part recorded since) is looked
            # at again when it ends.
            self._recheck |= {
                key for key in busy if {r.id for r in groups[key]} - self._given.get(key, set())
            }
        max_late = self.max_late
        chains: list[tuple[datetime, str, str]] = []
        for (post_id, account), rows in groups.items():
            if (post_id, account) in busy:
                continue
            if account in paused:
                # Waits visibly; the lateness window still applies (nothing is sent).
                pipeline.hold(pub, post_id, account, rows, max_late)
                continue
            chains.append((min(r.due_at for r in rows), post_id, account))

        # Each chain (one post's parts on one account) is sequential; chains run in parallel,
        # in due order, at most ``per_account`` at a time on one account.
        def deliver_chain(post_id: str, account: str) -> None:
            with slots[account]:
                if not self.stopping.is_set():
                    # A chain that starts at its first part has nothing POSTED yet: the rows
                    # just read are all of it. One resuming a thread is read again.
                    # The lateness window applies to every attempt, first or retry (see
                    # bot/publish/deliver.py); a thread under way is completed.
                    pipeline.deliver(
                        pub,
                        post_id,
                        account,
                        groups[(post_id, account)],
                        removed=request.removed,
                        max_late=max_late,
                        look_now=request.look_now,
                    )

        for _due, post_id, account in sorted(chains):
            key = (post_id, account)
            with self._wake:
                self._in_flight.add(key)
                self._given[key] = {r.id for r in groups[key]}
            future = pool.submit(deliver_chain, post_id, account)
            future.add_done_callback(partial(self._ended, key))

    def _ended(self, key: Key, done: Future[None]) -> None:
        """A chain ended: wake the run; a chain that fell due again meanwhile is looked at
        again (its rows were read while it ran)."""
        error = done.exception()
        if error is not None:  # logged here: nothing waits for the chain's result
            post_id, account = key
            logger.opt(exception=error).bind(post=post_id, account=account).error(
                "publish.chain_failed"
            )
        with self._wake:
            self._in_flight.discard(key)
            self._given.pop(key, None)
            if key in self._recheck:
                self._recheck.discard(key)
                last = self._last
                if self._request is None and last is not None:
                    self._request = _Request(last.pub, last.content, last.removed, False)
            self._wake.notify_all()
