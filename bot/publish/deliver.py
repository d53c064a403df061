"""Deliver ledger rows through a publisher: the one code path of ``post-now`` and the service.

For each row: claim it (committed), publish, record the outcome. Ambiguous outcomes are
reconciled against the account's timeline before any retry; retries are bounded; back-off is
data (``retry_at``), never a sleep here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from loguru import logger

from bot.errors import (
    PublishAmbiguous,
    PublishAuthFailed,
    PublishDuplicate,
    PublishError,
    PublishNoCredits,
    PublishRateLimited,
    PublishRejected,
)
from bot.publish.base import MediaItem, Outgoing, Publisher
from bot.schedule.ledger import Ledger, Row, State

MAX_ATTEMPTS = 5
"""Attempts (claims) per delivery before it is FAILED: no retry loop is unbounded."""
RECONCILE_SLACK = timedelta(minutes=2)
"""How far before the claim the timeline is searched (clock skew between us and X)."""


def backoff(attempts: int) -> timedelta:
    """Wait before retry number ``attempts`` when the platform gave no time: 1, 2, 4… ≤ 15 min."""
    return min(timedelta(minutes=2 ** max(0, attempts - 1)), timedelta(minutes=15))


Alert = Callable[[Row, str], None]


def _no_alert(_row: Row, _reason: str) -> None:
    return None


@dataclass
class Deliverer:
    """Delivers rows of one channel; ``alert`` is told of every FAILED/UNKNOWN row."""

    ledger: Ledger
    publisher: Publisher
    root: Path
    handles: dict[str, str]  # account id → handle
    alert: Alert = _no_alert
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    def deliver_chain(self, rows: Sequence[Row]) -> list[Row]:
        """Deliver one account's parts of one post, in order, as a reply chain. Stops at the
        first part that does not end POSTED: later parts wait for it (a thread resumes from
        its last posted part)."""
        done: list[Row] = []
        reply_to: str | None = None
        for row in sorted(rows, key=lambda r: r.part):
            # ``rows`` was just read; a row another process changed since is caught by the
            # claim, which only succeeds on a PENDING row.
            current = row
            if current.state is State.UNKNOWN:
                current = self.reconcile(current)
            if current.state is State.PENDING:
                current = self.deliver(current, reply_to)
            done.append(current)
            if current.state is not State.POSTED:
                break
            reply_to = current.remote_id
        return done

    def deliver(self, row: Row, reply_to: str | None) -> Row:
        now = self.clock()
        log = logger.bind(post=row.post_id, account=row.account, part=row.part, channel=row.channel)
        if row.attempts >= MAX_ATTEMPTS:
            self._fail(row, [State.PENDING], f"gave up after {row.attempts} attempts")
            return self.ledger.get(row.id)
        claimed = self.ledger.claim(row.id, now)
        if claimed is None:
            log.info("publish.not_claimed")  # another process has it, or retry_at is later
            return self.ledger.get(row.id)
        # The claimed copy, never ``row``: an edit may have refreshed the PENDING row since
        # ``row`` was read, and X must receive what the ledger records.
        item = Outgoing(
            account=claimed.account,
            handle=self.handles.get(claimed.account, claimed.account),
            text=claimed.text,
            reply_to=reply_to,
            media=tuple(MediaItem(self.root / m.file, m.alt) for m in claimed.media),
        )
        try:
            receipt = self.publisher.publish(item)
        except PublishRateLimited as exc:
            self.ledger.transition(
                row.id, State.PENDING, expect=[State.SENDING], error=str(exc), retry_at=exc.retry_at
            )
            log.bind(retry_at=exc.retry_at.isoformat()).warning("publish.rate_limited")
        except PublishAmbiguous as exc:
            self.ledger.transition(row.id, State.UNKNOWN, expect=[State.SENDING], error=str(exc))
            log.bind(error=str(exc)).warning("publish.unknown")
            return self.reconcile(self.ledger.get(row.id))
        except PublishDuplicate as exc:
            self.ledger.transition(row.id, State.UNKNOWN, expect=[State.SENDING], error=str(exc))
            log.warning("publish.duplicate")
            return self.reconcile(self.ledger.get(row.id), duplicate=True)
        except (PublishAuthFailed, PublishNoCredits, PublishRejected) as exc:
            self._fail(row, [State.SENDING], str(exc))
            log.bind(error=str(exc)).error("publish.failed")
        except PublishError as exc:
            self._retry_or_fail(row, str(exc))
            log.bind(error=str(exc)).error("publish.error")
        else:
            recorded = self.ledger.transition(
                row.id,
                State.POSTED,
                expect=[State.SENDING],
                remote_id=receipt.remote_id,
                url=receipt.url,
            )
            log.bind(remote_id=receipt.remote_id).info("publish.sent")
            if recorded:  # the common case: no need to read back what was just written
                return replace(
                    claimed,
                    state=State.POSTED,
                    remote_id=receipt.remote_id,
                    url=receipt.url,
                    last_error=None,
                    retry_at=None,
                )
        return self.ledger.get(row.id)

    def reconcile(self, row: Row, *, duplicate: bool = False) -> Row:
        """UNKNOWN → POSTED if the text is on the account's timeline, else back to PENDING
        (or FAILED when out of attempts). A failed look-up leaves it UNKNOWN, alerted."""
        log = logger.bind(post=row.post_id, account=row.account, part=row.part)
        since = (row.claimed_at or row.updated_at) - RECONCILE_SLACK
        try:
            found = self.publisher.find(row.account, row.text, since)
        except PublishError as exc:
            self.alert(row, f"still UNKNOWN: could not read the timeline ({exc})")
            log.bind(error=str(exc)).error("reconcile.failed")
            return self.ledger.get(row.id)
        if found is not None:
            self.ledger.transition(
                row.id,
                State.POSTED,
                expect=[State.UNKNOWN],
                remote_id=found.remote_id,
                url=found.url,
            )
            log.bind(remote_id=found.remote_id).info("reconcile.found")
        elif duplicate:
            self._fail(
                row,
                [State.UNKNOWN],
                "X refused the text as a duplicate of a recent "
                "post, and no such post is on the account's timeline: change the text",
            )
        else:
            self._retry_or_fail(
                row, row.last_error or "not found on the timeline", expect=[State.UNKNOWN]
            )
            log.info("reconcile.absent")
        return self.ledger.get(row.id)

    def _retry_or_fail(
        self, row: Row, error: str, expect: Sequence[State] = (State.SENDING,)
    ) -> None:
        current = self.ledger.get(row.id)
        if current.attempts >= MAX_ATTEMPTS:
            self._fail(current, expect, f"gave up after {current.attempts} attempts: {error}")
            return
        self.ledger.transition(
            row.id,
            State.PENDING,
            expect=expect,
            error=error,
            retry_at=self.clock() + backoff(current.attempts),
        )

    def _fail(self, row: Row, expect: Sequence[State], reason: str) -> None:
        if self.ledger.transition(row.id, State.FAILED, expect=expect, error=reason):
            self.alert(self.ledger.get(row.id), reason)


def recover(ledger: Ledger, deliverers: dict[str, Deliverer], now: datetime) -> list[Row]:
    """After a crash: SENDING rows whose owner is gone (ledger.py says how that is known)
    become UNKNOWN and are reconciled against the timeline."""
    recovered = []
    for row, why in ledger.stale_sending(now):
        if ledger.abandon(row, f"the process that was sending it stopped ({why})"):
            logger.bind(
                post=row.post_id, account=row.account, part=row.part, owner=row.claimed_by
            ).warning("publish.recovered")
            deliverer = deliverers.get(row.channel)
            current = ledger.get(row.id)
            recovered.append(deliverer.reconcile(current) if deliverer else current)
    return recovered
