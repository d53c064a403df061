"""Another publisher on our accounts, or on our state: made visible, since it cannot be stopped.

Two deployments with separate state databases on the same accounts each believe they are the
only one: each publishes every post, and X gets everything twice. Neither can prevent the other
(nothing is shared between them but the accounts), so each *detects* it:

- **the timeline** — every ``DIPLOBOT_WATCH_INTERVAL`` (and soon after a burst of deliveries
  ends), each account's posts since the last look are read. A post whose id no row of the
  ledger holds but whose text is one of our deliveries of that account (``match.same_text``, as
  many images) — POSTED here with another id, or still PENDING — was sent by another publisher
  of our content: one alert per such post (``account.foreign_publisher``), in ``/status`` and
  ``/metrics``. A post that matches none of our texts is someone posting by hand: logged at
  debug only. A match with a row still SENDING or UNKNOWN here may be our own post whose answer
  was lost: it is judged again once that row is settled (reconciled), never alerted before.
- **the state** — each service start registers itself in the state database and renews that
  mark on every tick; the other *live* services on the same state (renewed since we started,
  and not a previous life of this container) are listed in ``/status``. They are replicas:
  one holds the lease and publishes, the others stand by (``bot/state/lease.py``), so they
  are not alerted (``service.replica_seen`` in the log).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection
from datetime import UTC, datetime, timedelta
from typing import Any

from loguru import logger
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from bot.errors import PublishError, PublishRateLimited
from bot.notify import Notifier
from bot.publish.base import Foreign, Published
from bot.publish.match import same_text
from bot.publish.session import Publishing
from bot.settings import DEFAULT_WATCH_INTERVAL
from bot.state import Store
from bot.state.ledger import Row, State
from bot.state.presence import OtherService

OVERLAP = timedelta(seconds=30)
"""Each read goes this far back before the previous one: X's clock, and a post that appears on
the timeline a moment after it was created."""
KNOWN_WINDOW = timedelta(days=1)
"""Rows changed this recently are compared with the timeline (a post of ours is always in it)."""
SHOWN = 50
"""At most this many foreign posts are listed in ``/status`` (the counter counts them all)."""
OPEN = (State.PENDING, State.SENDING, State.UNKNOWN)
UNSETTLED = (State.SENDING, State.UNKNOWN)  # may be our own post, its answer lost


class Watch:
    """The service's watch (one per service): its :meth:`tick` runs every sweep interval."""

    def __init__(
        self, store: Store, lease: timedelta, interval: float = DEFAULT_WATCH_INTERVAL
    ) -> None:
        self.presence = store.presence(lease)
        self.interval = timedelta(seconds=interval)
        self.lock = threading.Lock()
        self.since: dict[str, datetime] = {}  # account → when its timeline was last read
        self.next_read: datetime | None = None
        self.last_posted: datetime | None = None  # the latest POSTED row seen changed
        self.burst = False  # posts went out since the last read
        self.judged: dict[tuple[str, str], datetime] = {}  # (account, remote id) → when
        # Posts that match a row still SENDING or UNKNOWN: judged again at each read.
        self.deferred: dict[tuple[str, str], Published] = {}
        self.found: list[Foreign] = []
        self.counts: dict[str, int] = {}  # account → foreign posts found
        self.services: dict[str, OtherService] = {}  # instance → last seen live
        self.retry_at: datetime | None = None  # X's rate limit on reading

    # -- the tick --------------------------------------------------------------------------

    def tick(
        self,
        pub: Publishing | None,
        notifier: Notifier,
        *,
        publishing: bool,
        now: datetime,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        """Renew our mark and look for other services; read the timelines when their time
        has come, or once the burst of deliveries that just went out is over."""
        self.presence.beat(now)
        for other in self.presence.others(now):
            with self.lock:
                new = other.instance not in self.services
                self.services[other.instance] = other
            if new:  # a replica: one of them holds the lease, the others stand by
                logger.bind(instance=other.instance, host=other.host, pid=other.pid).info(
                    "service.replica_seen"
                )
        if pub is None:
            return
        if self.next_read is None:  # the first read covers the time since the start
            self.next_read = now + self.interval
        latest = pub.ledger.page([State.POSTED], limit=1, recent_first=True)
        if latest and (self.last_posted is None or latest[0].updated_at > self.last_posted):
            if self.last_posted is not None:
                self.burst = True
            self.last_posted = latest[0].updated_at
        if self.retry_at is not None and now < self.retry_at:
            return
        if now >= self.next_read or (self.burst and not publishing):
            self.burst = False
            self.next_read = now + self.interval
            self.read(pub, now, stopping)

    def read(
        self, pub: Publishing, now: datetime, stopping: Callable[[], bool] = lambda: False
    ) -> list[Foreign]:
        """Read each account's timeline since the last read and judge each post once
        (``stopping``: the service is shutting down, read no further)."""
        timelines: dict[str, tuple[str, str, list[Published]]] = {}
        for account, channel in sorted(pub.channel_of.items()):
            deliverer = pub.deliverers.get(channel)
            if deliverer is None:
                continue
            if stopping():
                break
            since = self.since.get(account, self.presence.started or now) - OVERLAP
            try:
                posts = deliverer.publisher.recent(account, since)
            except PublishRateLimited as exc:
                self.retry_at = exc.retry_at
                logger.bind(account=account, retry_at=_iso(exc.retry_at)).warning(
                    "watch.rate_limited"
                )
                break
            except PublishError as exc:
                logger.bind(account=account, error=str(exc)).warning("watch.unreadable")
                continue
            self.since[account] = now
            timelines[account] = (channel, deliverer.handles.get(account, account), posts)
        # The ledger is read after the timelines: a post of ours seen there is, by now,
        # SENDING, UNKNOWN or POSTED with its id here (the claim comes before the post).
        rows = self._ours(pub, now)
        found: list[Foreign] = []
        for account, (channel, handle, posts) in timelines.items():
            mine = [r for r in rows if r.account == account and r.channel == channel]
            read = {p.remote_id for p in posts}
            again = [p for (a, i), p in self.deferred.items() if a == account and i not in read]
            for post in [*again, *reversed(posts)]:  # oldest first
                foreign = self._judge(account, handle, post, mine, now)
                if foreign is not None:
                    found.append(foreign)
                    self._alert(pub.notifier, foreign)
        for key, at in list(self.judged.items()):  # forget what no read can show again
            if at < now - KNOWN_WINDOW:
                del self.judged[key]
        return found

    # -- judging one post ------------------------------------------------------------------

    def _ours(self, pub: Publishing, now: datetime) -> list[Row]:
        """Our deliveries that a post on the timeline may be: the open ones, and every row
        changed within ``KNOWN_WINDOW`` (our own posts among them: their ids are known)."""
        rows = {r.id: r for r in pub.ledger.rows(states=list(OPEN))}
        offset, size = 0, 500
        while True:
            page = pub.ledger.page(list(State), limit=size, offset=offset, recent_first=True)
            rows.update((r.id, r) for r in page if r.updated_at >= now - KNOWN_WINDOW)
            if len(page) < size or page[-1].updated_at < now - KNOWN_WINDOW:
                return list(rows.values())
            offset += size

    def _judge(
        self, account: str, handle: str, post: Published, mine: list[Row], now: datetime
    ) -> Foreign | None:
        key = (account, post.remote_id)
        if key in self.judged:
            return None
        self.deferred.pop(key, None)
        log = logger.bind(account=account, remote_id=post.remote_id)
        if any(r.remote_id == post.remote_id for r in mine):
            self.judged[key] = now  # ours
            return None
        same = [
            r
            for r in mine
            if r.state in (State.POSTED, *OPEN)
            and len(r.media) == post.media
            and same_text(post.text, r.text)
        ]
        if not same:
            self.judged[key] = now
            log.debug("watch.other_post")  # someone posting by hand
            return None
        if any(r.state in UNSETTLED for r in same):
            self.deferred[key] = post
            log.bind(post=same[0].post_id).debug("watch.deferred")  # ours, its answer lost?
            return None
        self.judged[key] = now
        created = post.created_at or now
        row = min(
            same,
            key=lambda r: (r.state is not State.POSTED, abs((r.due_at - created).total_seconds())),
        )
        return Foreign(
            account,
            handle,
            row.post_id,
            row.part,
            str(row.state),
            row.remote_id,
            row.url,
            post.remote_id,
            post.url,
            post.created_at,
            now,
        )

    def _alert(self, notifier: Notifier, foreign: Foreign) -> None:
        with self.lock:
            self.found = [*self.found, foreign][-SHOWN:]
            self.counts[foreign.account] = self.counts.get(foreign.account, 0) + 1
        logger.bind(
            account=foreign.account,
            post=foreign.post,
            part=foreign.part,
            ours=foreign.ours,
            theirs=foreign.theirs,
        ).error("account.foreign_publisher")
        notifier.foreign_publisher(foreign)

    # -- what /status and /metrics show ----------------------------------------------------

    def status(self) -> dict[str, Any]:
        with self.lock:
            return {
                "foreign_posts": [f.json() for f in self.found],
                "other_services": [s.json() for s in self.services.values()],
            }

    def metrics(
        self,
        mission_of: Callable[[str], str] | None = None,
        accounts: Collection[str] | None = None,
    ) -> list[Metric]:
        """What ``/metrics`` shows of the watch (``bot/service/views.py``): each account with
        its mission (``mission_of``; "" when unknown), only ``accounts`` when given."""
        with self.lock:
            counts = dict(self.counts)
            services = len(self.services)
        foreign = CounterMetricFamily(
            "diplobot_foreign_posts",
            "Posts of our deliveries on our accounts that another publisher sent.",
            labels=["account", "mission"],
        )
        for account, n in sorted(counts.items()):
            if accounts is not None and account not in accounts:
                continue
            foreign.add_metric([account, mission_of(account) if mission_of else ""], n)
        others = GaugeMetricFamily(
            "diplobot_other_services",
            "Other services seen live on this state database.",
            value=services,
        )
        return [foreign, others]


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat(timespec="seconds") if moment else None
