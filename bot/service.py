"""``diplobot run``: the long-running service — sync, plan, translate ahead, publish on time.

APScheduler is only the clock; the ledger is the truth. On every start and every content
change the schedule is rebuilt from content + ledger (never from pickled jobs):

- *sync* (every ``DIPLOBOT_SYNC_INTERVAL`` s, and at once on a signed webhook): refresh the
  source; an invalid revision is reported and the last good one keeps running;
- *apply* (when the revision changed): plan, translate ahead of time, record deliveries in the
  ledger, cancel those of deleted posts, and set a clock job at each due instant;
- *run_due* (at each due instant, and every sweep): deliver what is due, through the same
  function as ``post-now``, with the lateness window, blackouts and pauses applied;
- *sweep* (every few seconds): heartbeat, crash recovery, retries whose ``retry_at`` passed.
"""

from __future__ import annotations

import os
import re
import threading
from collections import defaultdict
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from loguru import logger
from sqlalchemy import Engine, func, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from bot.config import Secret, read_secret
from bot.content.loader import ContentSet, LoadCache, validate
from bot.errors import BotError, ConfigError, Problem
from bot.publish.session import Publishing
from bot.schedule.ledger import Ledger, Row, State
from bot.schedule.pins import PinStore
from bot.schedule.plan import Pin, due_for, plan
from bot.store import deliveries, heartbeat, runtime_pauses, utc_now_iso
from bot.sync import Source
from bot.translate.base import Translator
from bot.translate.localize import localize

LOOKBACK = timedelta(days=1)
"""How far back a (re)started service looks for deliveries it has not recorded yet."""


def _duration(env: Mapping[str, str], name: str, default: float) -> float:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smh]?)", raw)
    if not match:
        raise ConfigError(f"{name}={raw!r}: give seconds, or a number with s, m or h (15m)")
    return float(match[1]) * {"": 1, "s": 1, "m": 60, "h": 3600}[match[2]]


@dataclass(frozen=True)
class ServiceSettings:
    sync_interval: float = 30.0
    max_late: timedelta = timedelta(minutes=15)
    horizon_days: int = 7
    sweep_interval: float = 5.0
    http_addr: str = "127.0.0.1:8080"
    webhook_secret: Secret | None = field(default=None, repr=False)
    publish_parallel: int = 16  # chains delivered at once, all accounts together
    per_account: int = 4  # chains delivered at once on one account

    @classmethod
    def from_env(cls) -> ServiceSettings:
        env = os.environ
        return cls(
            sync_interval=_duration(env, "DIPLOBOT_SYNC_INTERVAL", 30.0),
            max_late=timedelta(seconds=_duration(env, "DIPLOBOT_MAX_LATE", 900.0)),
            horizon_days=int(_duration(env, "DIPLOBOT_HORIZON_DAYS", 7)),
            sweep_interval=_duration(env, "DIPLOBOT_SWEEP_INTERVAL", 5.0),
            http_addr=env.get("DIPLOBOT_HTTP_ADDR") or "127.0.0.1:8080",
            webhook_secret=read_secret("DIPLOBOT_WEBHOOK_SECRET"),
        )


@dataclass
class Stats:
    engine_calls: int = 0
    cache_hits: int = 0
    syncs: int = 0


class Service:
    def __init__(
        self,
        source: Source,
        engine: Engine,
        state_dir: Path,
        settings: ServiceSettings,
        translator: Translator | None = None,
    ) -> None:
        self.source = source
        self.engine = engine
        self.state_dir = state_dir
        self.settings = settings
        self.translator = translator
        self.ledger = Ledger(engine)
        self.pins = PinStore(engine)
        self.lock = threading.RLock()
        self.publish_lock = threading.Lock()
        self.sync_lock = threading.Lock()
        self.sync_requested = threading.Event()
        self.stopping = threading.Event()
        self.content: ContentSet | None = None
        self.pub: Publishing | None = None
        self.revision: str | None = None  # last good, running
        self.seen_revision: str | None = None  # last synced, good or not
        self.problems: list[Problem] = []  # errors of seen_revision when it is invalid
        self.sync_error: str | None = None
        self.last_sync: datetime | None = None
        self.last_sweep: datetime | None = None
        self.warnings: list[str] = []
        self.held_alerted: set[tuple[str, str, str]] = set()
        # (post, account) → (fingerprint, due) last recorded: unchanged posts are skipped.
        self.recorded: dict[tuple[str, str], tuple[str, datetime]] = {}
        self.load_cache = LoadCache()
        self.recorded_setup = ""
        self.stats = Stats()
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        self.sync_now = threading.Event()

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        self.sync()
        self.sweep()
        self.scheduler.add_job(
            self.sync, IntervalTrigger(seconds=self.settings.sync_interval), id="sync"
        )
        self.scheduler.add_job(
            self.sweep, IntervalTrigger(seconds=self.settings.sweep_interval), id="sweep"
        )
        self.scheduler.start()
        self._schedule_due()
        logger.bind(revision=self.revision).info("service.started")

    def stop(self, timeout: float = 8.0) -> None:
        """Take no new work; let an in-flight publish finish (bounded by ``timeout``)."""
        self.stopping.set()
        waiter = threading.Thread(
            target=self.scheduler.shutdown, kwargs={"wait": True}, daemon=True
        )
        waiter.start()
        waiter.join(timeout)
        logger.bind(clean=not waiter.is_alive()).info("service.stopped")

    def trigger_sync(self) -> None:
        """Sync at once (the webhook), on the scheduler's thread pool. A webhook that arrives
        while a sync runs is not lost: that sync runs once more when it ends."""
        if self.stopping.is_set():
            return
        self.sync_requested.set()
        self.scheduler.add_job(self.sync, id="sync-now", replace_existing=True)

    # -- sync and apply ------------------------------------------------------------------

    def sync(self) -> None:
        """One sync at a time. The interval job and the webhook's ``sync-now`` are two jobs
        and may overlap: an older revision still being applied (translating) must not finish
        after, and over, a newer one (it would cancel the newer one's posts)."""
        with self.sync_lock:
            for _ in range(3):  # bounded: pushes arriving during a sync cost one more run
                self.sync_requested.clear()
                self._sync()
                if not self.sync_requested.is_set():
                    break

    def _sync(self) -> None:
        if self.stopping.is_set():
            return
        now = datetime.now(UTC)
        try:
            rev = self.source.refresh()
        except (BotError, OSError) as exc:
            with self.lock:
                self.sync_error = str(exc)
                self.last_sync = now
            logger.bind(error=str(exc)).error("sync.failed")
            return
        with self.lock:
            self.last_sync = now
            self.sync_error = None
            self.stats.syncs += 1
            unchanged = rev == self.seen_revision
            self.seen_revision = rev
        if unchanged:
            return
        content, problems = validate(self.source.root, self.load_cache)
        if content is None:
            errors = [p for p in problems if p.severity == "error"]
            with self.lock:
                self.problems = errors
            logger.bind(
                revision=rev, errors=len(errors), first=str(errors[0]) if errors else ""
            ).error("content.invalid")
            if self.pub is not None:
                self.pub.notifier.send(
                    {
                        "text": f"diplobot: content revision {rev} is invalid ({len(errors)} "
                        f"error(s)); still running {self.revision}. First: {errors[0]}",
                        "event": "content.invalid",
                        "revision": rev,
                        "reason": str(errors[0]) if errors else "",
                    }
                )
            return
        with self.lock:
            self.problems = []
        self.apply(content, rev)

    def apply(self, content: ContentSet, rev: str) -> None:
        now = datetime.now(UTC)
        pub = Publishing.build(content, self.engine, self.state_dir, translator=self.translator)
        self.translator = pub.translator
        pub.recover(now)
        pinned = self.pins.load()
        result = plan(content, now, self.settings.horizon_days, pinned=pinned, since=now - LOOKBACK)
        if result.new_pins or set(pinned) - set(result.pins):
            self.pins.save(result.pins, keep=set(result.pins))
        wanted: dict[tuple[str, str], datetime] = {}
        for d in result.deliveries:
            if d.status == "blackout":
                continue  # recorded below as SKIPPED
            wanted.setdefault((d.post, d.account), d.due)
        # Only posts that are new or changed (file, due time, or the translation setup) need
        # translating and recording again: a commit that changes one post of 10,000 costs
        # one post's work.
        setup = pub.translator.name + str(pub.channel_of)
        if setup != self.recorded_setup:
            self.recorded, self.recorded_setup = {}, setup
        todo = {
            key: due
            for key, due in wanted.items()
            if self.recorded.get(key) != (content.posts[key[0]].fingerprint, due)
        }
        post_ids = sorted({p for p, _a in todo})
        loc = localize(
            content, pub.translator, pub.cache, post_ids=post_ids, parallel=pub.translate_parallel
        )
        with self.lock:
            self.stats.engine_calls += loc.stats.engine_calls
            self.stats.cache_hits += loc.stats.cache_hits
        for (post_id, account), due in sorted(todo.items()):
            entry = content.posts[post_id]
            why = pub.record(entry, [account], due, loc.variants, alert_held=False)
            reason = why.get(account, "")
            if reason.startswith("not published"):
                key = (post_id, account, reason)
                if key not in self.held_alerted:
                    self.held_alerted.add(key)
                    pub.notifier.held(post_id, account, reason)
            else:
                self.recorded[(post_id, account)] = (entry.fingerprint, due)
        for gone in set(self.recorded) - set(wanted):
            del self.recorded[gone]
        for d in result.deliveries:
            if d.status == "blackout":
                self._skip_blackout(pub, content, d.post, d.account, d.due, d.note)
        self._cancel_removed(content, set(wanted), result.pins)
        with self.lock:
            self.content = content
            self.pub = pub
            self.revision = rev
            self.warnings = [w.message for w in result.warnings] + pub.warnings
        for warning in pub.warnings:
            logger.bind(warning=warning).warning("service.dry_run")
        logger.bind(revision=rev, posts=len(content.posts), deliveries=len(result.deliveries)).info(
            "content.applied"
        )
        if self.scheduler.running:
            self._schedule_due()

    def _skip_blackout(
        self,
        pub: Publishing,
        content: ContentSet,
        post_id: str,
        account: str,
        due: datetime,
        reason: str,
    ) -> None:
        pub.record(content.posts[post_id], [account], due, alert_held=False)
        for row in self.ledger.rows(post_id, channel=pub.channel_of[account]):
            if row.account == account and row.state is State.PENDING:
                self.ledger.transition(
                    row.id, State.SKIPPED, expect=[State.PENDING], error=f"blackout: {reason}"
                )

    def _cancel_removed(
        self, content: ContentSet, wanted: set[tuple[str, str]], pins: dict[str, Pin]
    ) -> None:
        """PENDING deliveries not wanted any more: cancelled (RETRACTED, with the reason) when
        the post, its language or its account is gone or it became a draft; moved to the new
        time when the post's time moved out of the window."""
        for row in self.ledger.rows(states=[State.PENDING]):
            if (row.post_id, row.account) in wanted:
                continue
            entry = content.posts.get(row.post_id)
            account = content.accounts.accounts.get(row.account)
            new_due = due_for(content, entry, row.account, pins) if entry and account else None
            if entry is None:
                reason = "the post was removed from the content"
            elif account is None or account.lang not in entry.languages:
                reason = "the post no longer goes to this account"
            elif entry.is_draft:
                reason = "the post became a draft"
            elif new_due is not None:
                if new_due != row.due_at:
                    self.ledger.reschedule(row.id, new_due)
                continue
            else:
                reason = "the post has no time any more"
            self.ledger.transition(
                row.id, State.RETRACTED, expect=[State.PENDING], error=f"cancelled: {reason}"
            )
            logger.bind(post=row.post_id, account=row.account, reason=reason).info(
                "delivery.cancelled"
            )

    def _schedule_due(self) -> None:
        now = datetime.now(UTC)
        dues = {r.due_at for r in self.ledger.rows(states=[State.PENDING]) if r.due_at > now}
        wanted = {f"due-{d.isoformat()}": d for d in dues}
        for job in self.scheduler.get_jobs():
            if job.id.startswith("due-") and job.id not in wanted:
                job.remove()
        for job_id, due in wanted.items():
            if self.scheduler.get_job(job_id) is None:
                self.scheduler.add_job(self.run_due, DateTrigger(run_date=due), id=job_id)

    # -- publishing ----------------------------------------------------------------------

    def sweep(self) -> None:
        if self.stopping.is_set():
            return
        now = datetime.now(UTC)
        with self.engine.begin() as conn:  # proves the ledger is writable
            stmt = sqlite_insert(heartbeat).values(name="sweep", at=now.isoformat())
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[heartbeat.c.name], set_={"at": stmt.excluded.at}
                )
            )
        pub = self.pub
        if pub is not None:
            pub.recover(now)
        self.run_due()
        with self.lock:
            self.last_sweep = datetime.now(UTC)

    def paused(self, content: ContentSet) -> dict[str, str]:
        """Accounts paused now (committed switch or `diplobot pause`) → reason."""
        out: dict[str, str] = {}
        pause = content.slots.pause
        for account in content.accounts.accounts:
            if pause.all or account in pause.accounts:
                out[account] = pause.reason or "paused in schedules/slots.yaml"
        with self.engine.connect() as conn:
            for account, reason in conn.execute(
                select(runtime_pauses.c.account, runtime_pauses.c.reason)
            ):
                targets = list(content.accounts.accounts) if account == "*" else [account]
                for target in targets:
                    out.setdefault(target, reason or "paused with 'diplobot pause'")
        return out

    def run_due(self) -> None:
        """Deliver every PENDING row that is due, one chain per (post, account)."""
        if self.stopping.is_set() or not self.publish_lock.acquire(blocking=False):
            return
        try:
            self._run_due()
        finally:
            self.publish_lock.release()

    def _run_due(self) -> None:
        with self.lock:
            pub, content = self.pub, self.content
        if pub is None or content is None:
            return
        now = datetime.now(UTC)
        paused = self.paused(content)
        groups: dict[tuple[str, str], list[Row]] = defaultdict(list)
        for row in self.ledger.rows(states=[State.PENDING, State.UNKNOWN], due_by=now):
            if row.channel == pub.channel_of.get(row.account):
                groups[(row.post_id, row.account)].append(row)
        by_account: dict[str, list[tuple[str, list[Row]]]] = defaultdict(list)
        for (post_id, account), rows in groups.items():
            first_due = min(r.due_at for r in rows)
            started = any(r.state is not State.PENDING or r.attempts for r in rows)
            if now - first_due > self.settings.max_late and not started:
                self._expire(pub, rows, now - first_due)
                continue
            if account in paused:
                continue  # waits visibly; expires by the lateness rule above
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
            lambda: threading.Semaphore(self.settings.per_account)
        )

        def deliver_chain(item: tuple[datetime, str, str]) -> None:
            _due, post_id, account = item
            with slots[account]:
                if not self.stopping.is_set():
                    # A chain that starts at its first part has nothing POSTED yet: the rows
                    # just read are all of it. One resuming a thread is read again.
                    pub.deliver(post_id, account, groups[(post_id, account)])

        workers = max(1, min(self.settings.publish_parallel, len(chains)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="publish") as pool:
            list(pool.map(deliver_chain, chains))

    def _expire(self, pub: Publishing, rows: list[Row], late: timedelta) -> None:
        reason = (
            f"due {_span(late)} ago, beyond the lateness window of {_span(self.settings.max_late)}"
        )
        for row in rows:
            if self.ledger.transition(row.id, State.EXPIRED, expect=[State.PENDING], error=reason):
                pub.notifier.delivery(self.ledger.get(row.id), reason)

    # -- what the HTTP endpoints show ----------------------------------------------------

    def healthy(self) -> bool:
        with self.lock:
            last = self.last_sweep
        limit = timedelta(seconds=max(3 * self.settings.sweep_interval, 15))
        return last is not None and datetime.now(UTC) - last < limit

    def ready(self) -> bool:
        with self.lock:
            return self.content is not None

    def status(self) -> dict[str, Any]:
        now = datetime.now(UTC)
        rows = self.ledger.rows()
        upcoming = [r for r in rows if r.state is State.PENDING][:50]
        recent = sorted(
            (r for r in rows if r.state is not State.PENDING),
            key=lambda r: r.updated_at,
            reverse=True,
        )[:50]
        # SENDING rows whose owner is gone (ledger.py): the next sweep reconciles them.
        stale = self.ledger.stale_sending(now)
        with self.lock:
            content = self.content
            return {
                "now": now.isoformat(timespec="seconds"),
                "revision": self.revision,
                "seen_revision": self.seen_revision,
                "content_valid": not self.problems,
                "content_errors": [str(p) for p in self.problems],
                "sync_error": self.sync_error,
                "last_sync": self.last_sync.isoformat(timespec="seconds")
                if self.last_sync
                else None,
                "warnings": self.warnings,
                "paused": self.paused(content) if content else {},
                "upcoming": [_row_json(r) for r in upcoming],
                "recent": [_row_json(r) for r in recent],
                "stale": [{**_row_json(r), "stale": why} for r, why in stale],
            }

    def metrics(self) -> str:
        lines = [
            "# HELP diplobot_deliveries Deliveries in the ledger by state and account.",
            "# TYPE diplobot_deliveries gauge",
        ]
        with self.engine.connect() as conn:
            counts = conn.execute(
                select(deliveries.c.state, deliveries.c.account, func.count()).group_by(
                    deliveries.c.state, deliveries.c.account
                )
            ).all()
            next_due = conn.execute(
                select(func.min(deliveries.c.due_at)).where(
                    deliveries.c.state == State.PENDING.value
                )
            ).scalar()
        for state, account, count in sorted(counts):
            lines.append(f'diplobot_deliveries{{state="{state}",account="{account}"}} {count}')
        with self.lock:
            stats, last_sync, rev = self.stats, self.last_sync, self.revision
            valid = not self.problems
        lines += [
            "# TYPE diplobot_translation_engine_calls_total counter",
            f"diplobot_translation_engine_calls_total {stats.engine_calls}",
            "# TYPE diplobot_translation_cache_hits_total counter",
            f"diplobot_translation_cache_hits_total {stats.cache_hits}",
            "# TYPE diplobot_last_sync_timestamp_seconds gauge",
            f"diplobot_last_sync_timestamp_seconds {last_sync.timestamp() if last_sync else 0}",
            "# TYPE diplobot_content_revision_info gauge",
            f'diplobot_content_revision_info{{revision="{rev or ""}"}} 1',
            "# TYPE diplobot_content_valid gauge",
            f"diplobot_content_valid {1 if valid else 0}",
            "# TYPE diplobot_next_due_timestamp_seconds gauge",
            "diplobot_next_due_timestamp_seconds "
            f"{datetime.fromisoformat(next_due).timestamp() if next_due else 0}",
        ]
        return "\n".join(lines) + "\n"


def _span(delta: timedelta) -> str:
    """A duration as people read it in an alert: whole minutes from 2 min, else seconds (a
    window of 90 s is not "1 min", and one of 30 s is not "0 min")."""
    seconds = int(delta.total_seconds())
    return f"{seconds // 60} min" if seconds >= 120 else f"{seconds} s"


def _row_json(r: Row) -> dict[str, Any]:
    return {
        "post": r.post_id,
        "account": r.account,
        "part": r.part,
        "channel": r.channel,
        "state": str(r.state),
        "due": r.due_at.isoformat(timespec="seconds"),
        "attempts": r.attempts,
        "url": r.url,
        "error": r.last_error,
    }


def set_pause(engine: Engine, account: str | None, reason: str, paused: bool) -> None:
    """``diplobot pause|resume [ACCOUNT]``: a runtime switch kept in the state database."""
    from sqlalchemy import delete

    key = account or "*"
    with engine.begin() as conn:
        if paused:
            stmt = sqlite_insert(runtime_pauses).values(
                account=key, reason=reason, at=utc_now_iso()
            )
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[runtime_pauses.c.account],
                    set_={"reason": stmt.excluded.reason, "at": stmt.excluded.at},
                )
            )
        else:
            conn.execute(delete(runtime_pauses).where(runtime_pauses.c.account == key))
