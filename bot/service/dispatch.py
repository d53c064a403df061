"""Dispatch: the ledger's due rows → one chain per (post, account), delivered in parallel with
a bound per account, the lateness window applied, paused accounts held (nothing sent, the
window still running)."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from bot import pipeline
from bot.content.types import ContentSet
from bot.publish.session import Publishing
from bot.schedule.pauses import paused_accounts
from bot.state.ledger import Ledger, Row, State
from bot.state.pauses import Pauses


class Dispatch:
    """``parallel`` chains at once, all accounts together, at most ``per_account`` on one;
    ``max_late``: the lateness window. One run at a time (``lock``)."""

    def __init__(
        self,
        ledger: Ledger,
        pauses: Pauses,
        *,
        max_late: timedelta,
        parallel: int,
        per_account: int,
        stopping: threading.Event,
    ) -> None:
        self.ledger, self.pauses = ledger, pauses
        self.max_late, self.parallel, self.per_account = max_late, parallel, per_account
        self.stopping = stopping
        self.lock = threading.Lock()  # held while delivering

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
        never to be sent. A run already under way makes this one a no-op."""
        if self.stopping.is_set() or not self.lock.acquire(blocking=False):
            return
        try:
            if pub is not None and content is not None:
                self._run(pub, content, removed, look_now)
        finally:
            self.lock.release()

    def _run(
        self, pub: Publishing, content: ContentSet, removed: Mapping[int, str], look_now: bool
    ) -> None:
        now = datetime.now(UTC)
        paused = self.paused(content)
        groups: dict[tuple[str, str], list[Row]] = defaultdict(list)
        for row in self.ledger.rows(states=[State.PENDING, State.UNKNOWN], due_by=now):
            if row.channel == pub.channel_of.get(row.account):
                groups[(row.post_id, row.account)].append(row)
        by_account: dict[str, list[tuple[str, list[Row]]]] = defaultdict(list)
        max_late = self.max_late
        for (post_id, account), rows in groups.items():
            if account in paused:
                # Waits visibly; the lateness window still applies (nothing is sent).
                pipeline.hold(pub, post_id, account, rows, max_late)
                continue
            by_account[account].append((post_id, rows))
        if not by_account:
            return

        # Each chain (one post's parts on one account) is sequential; chains run in parallel,
        # in due order, at most ``per_account`` at a time on one account.
        chains = sorted(
            (
                (min(r.due_at for r in rows), post_id, account)
                for account, items in by_account.items()
                for post_id, rows in items
            ),
        )
        slots: dict[str, threading.Semaphore] = defaultdict(
            lambda: threading.Semaphore(self.per_account)
        )

        def deliver_chain(item: tuple[datetime, str, str]) -> None:
            _due, post_id, account = item
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
                        removed=removed,
                        max_late=max_late,
                        look_now=look_now,
                    )

        workers = max(1, min(self.parallel, len(chains)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="publish") as pool:
            list(pool.map(deliver_chain, chains))
