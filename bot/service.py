"""``diplobot run``: the long-running service — sync, plan, translate ahead, publish on time.

APScheduler is only the clock; the ledger is the truth. On every start and every content
change the schedule is rebuilt from content + ledger (never from pickled jobs):

- *sync* (every ``DIPLOBOT_SYNC_INTERVAL`` s, and at once on a signed webhook): refresh the
  source; an invalid revision is reported and the last good one keeps running;
- *apply* (when the revision changed): plan, translate ahead of time, record deliveries in the
  ledger, cancel those of deleted posts and parts, and set a clock job at each due instant. A
  revision is marked good only once it validated *and* applied: one whose checking or applying
  raises is reported like an invalid one (alert, ``/status``, log) and tried again later;
- *follow_up* (every sweep interval): deliveries whose translation failed (HELD) are tried
  again with growing waits until their lateness window closes (then EXPIRED, alerted); open
  deliveries of removed content are settled (reconciled, cancelled), never sent;
- *run_due* (at each due instant, and every sweep): deliver what is due, through the same
  function as ``post-now``, with the lateness window, blackouts and pauses applied;
- *sweep* (every few seconds): heartbeat, crash recovery, retries whose ``retry_at`` passed;
- *watch* (every sweep interval): mark this service in the state; every
  ``DIPLOBOT_WATCH_INTERVAL`` and after each burst of posts, read each account's timeline for
  posts of our content another publisher sent (``bot/publish/watch.py``).
"""

from __future__ import annotations

import os
import re
import threading
import time
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

from bot.config import Secret, read_secret
from bot.content.loader import ContentSet, LoadCache, validate
from bot.errors import BotError, ConfigError, ContentError, Problem
from bot.notify import Notifier
from bot.publish.media import RevisionMedia
from bot.publish.session import Publishing
from bot.publish.watch import DEFAULT_INTERVAL as DEFAULT_WATCH
from bot.publish.watch import Watch
from bot.schedule.plan import Pin, due_for, plan
from bot.state import Store
from bot.state.ledger import Row, State
from bot.sync import GitSource, Source, export_revision
from bot.translate.base import Translator
from bot.translate.localize import localize

LOOKBACK = timedelta(days=1)
"""How far back a (re)started service looks for deliveries it has not recorded yet."""
LAST_GOOD = "last-good-revision"
"""In the state folder: the sha of the last revision applied, run at start if HEAD cannot be."""
MAX_WAIT = timedelta(minutes=15)
"""The longest wait between two tries of a failed translation, or of a revision that raised."""


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
    watch_interval: float = DEFAULT_WATCH  # reads of each account's timeline (bot/publish/watch.py)

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
            watch_interval=_duration(env, "DIPLOBOT_WATCH_INTERVAL", DEFAULT_WATCH),
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
        store: Store,
        state_dir: Path,
        settings: ServiceSettings,
        translator: Translator | None = None,
    ) -> None:
        self.source = source
        self.store = store
        self.state_dir = state_dir
        self.settings = settings
        self.translator = translator
        self.ledger = store.ledger
        self.pins = store.pins
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
        # seen_revision when checking or applying it raised: (tries, next try at).
        self.failed: tuple[str, int, datetime] | None = None
        self.notifier = Notifier.from_env({})  # content alerts, before any revision applied
        # Deliveries awaiting translation (HELD): (post, account) → (tries, next try at).
        self.awaiting: dict[tuple[str, str], tuple[int, datetime]] = {}
        self.wanted: dict[tuple[str, str], datetime] = {}  # of the running revision
        # Removed deliveries still UNKNOWN: row id → (look-ups tried, next one at).
        self.settling: dict[int, tuple[int, datetime]] = {}
        self.sync_error: str | None = None
        self.last_sync: datetime | None = None
        self.sync_failing_since: datetime | None = None  # set while the source cannot be read
        self.last_good_sync: datetime | None = None
        self.notifier = Notifier.from_env({})  # alerts about the service itself
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
        self.lifecycle = threading.Lock()  # start() and stop() agree on whether to run
        # Another publisher on our accounts, or another service on this state.
        self.watcher = Watch(store, self.ledger.lease, settings.watch_interval)

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
        self.scheduler.add_job(
            self.follow_up, IntervalTrigger(seconds=self.settings.sweep_interval), id="follow-up"
        )
        self.scheduler.add_job(
            self.watch, IntervalTrigger(seconds=self.settings.sweep_interval), id="watch"
        )
        with self.lifecycle:  # stop() may have come during the first sync: start nothing
            if self.stopping.is_set():
                return
            self.scheduler.start()
        self._schedule_due()
        logger.bind(revision=self.revision).info("service.started")

    def stop(self, timeout: float = 8.0) -> bool:
        """Take no new work, interrupt a git command in progress, and let work in flight (a
        publish, an apply) finish until ``timeout``. Returns whether it all finished; what
        did not is safe to abandon (a claimed delivery is reconciled at the next start)."""
        deadline = time.monotonic() + timeout
        with self.lifecycle:
            self.stopping.set()
            running = self.scheduler.running
        self.source.cancel()
        clean = True
        if running:
            waiter = threading.Thread(
                target=self.scheduler.shutdown, kwargs={"wait": True}, daemon=True
            )
            waiter.start()
            waiter.join(max(0.0, deadline - time.monotonic()))
            clean = not waiter.is_alive()
        # The first sync runs before the scheduler does: wait for it and for a publish.
        for busy in (self.sync_lock, self.publish_lock):
            if busy.acquire(timeout=max(0.0, deadline - time.monotonic())):
                busy.release()
            else:
                clean = False
        logger.bind(clean=clean).info("service.stopped")
        return clean

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
            if not self.stopping.is_set():  # a fetch interrupted by stop() is no failure
                self._sync_failed(now, str(exc))
            return
        self._sync_succeeded(now)
        with self.lock:
            self.stats.syncs += 1
            failed = self.failed
            if rev == self.seen_revision and (
                failed is None or failed[0] != rev or now < failed[2]
            ):
                return  # done with (applied, or refused), or waiting to try it again
        error: Exception | None = None
        try:
            content, problems = validate(self.source.root, self.load_cache)
            if content is not None:
                self.apply(content, rev)
                return
        except Exception as exc:  # whatever it is, the last good revision keeps running
            error = exc
        if self.content is None:  # just started: nothing runs yet
            self._run_last_good(rev)
        if error is None:
            self._refused(rev, problems)
        else:
            self._raised(rev, error)

    def _sync_failed(self, now: datetime, error: str) -> None:
        """Log every failed sync; alert once, when syncing starts failing."""
        with self.lock:
            self.sync_error = error
            self.last_sync = now
            first = self.sync_failing_since is None
            if first:
                self.sync_failing_since = now
            rev = self.revision
        logger.bind(error=error).error("sync.failed")
        if first:
            self.notifier.sync_failed(error, rev)

    def _sync_succeeded(self, now: datetime) -> None:
        with self.lock:
            since = self.sync_failing_since
            self.sync_failing_since = None
            self.sync_error = None
            self.last_sync = self.last_good_sync = now
        if since is not None:
            logger.bind(failed_for=_span(now - since)).info("sync.recovered")
            self.notifier.sync_recovered(_span(now - since))

    def _run_last_good(self, refused: str) -> None:
        """Started on a revision that cannot run: run the last good one instead, read from
        git by revision (its sha is kept in the state folder). A folder has no history."""
        path = self.state_dir / LAST_GOOD
        if not isinstance(self.source, GitSource) or not path.is_file():
            return
        good = path.read_text(encoding="utf-8").strip()
        if not good or good == refused:
            return
        try:
            tree = self.state_dir / "last-good"
            export_revision(self.source.root, good, tree)
            content, problems = validate(tree)
            if content is None:
                raise ContentError(problems)
            self.apply(content, good, fallback=True)
        except Exception as exc:
            logger.opt(exception=exc).bind(revision=good, error=_first_line(exc)).error(
                "content.last_good_failed"
            )
            return
        logger.bind(revision=good, refused=refused).warning("content.last_good_running")

    def _refused(self, rev: str, problems: list[Problem]) -> None:
        errors = [p for p in problems if p.severity == "error"]
        with self.lock:
            self.problems = errors
            self.seen_revision = rev
            self.failed = None
            running = self.revision
        logger.bind(revision=rev, errors=len(errors), first=str(errors[0]) if errors else "").error(
            "content.invalid"
        )
        self.notifier.send(
            {
                "text": f"diplobot: content revision {rev} is invalid ({len(errors)} "
                f"error(s)); still running {running or 'nothing'}. First: "
                f"{errors[0] if errors else ''}",
                "event": "content.invalid",
                "revision": rev,
                "reason": str(errors[0]) if errors else "",
            }
        )

    def _raised(self, rev: str, exc: Exception) -> None:
        """Checking or applying ``rev`` raised: report it as an invalid revision would be (once
        per revision), keep the last good one running, and try ``rev`` again later (the cause
        may pass: a full disk, a locked database)."""
        now = datetime.now(UTC)
        error = f"{type(exc).__name__}: {_first_line(exc)}"
        with self.lock:
            tries = self.failed[1] + 1 if self.failed and self.failed[0] == rev else 1
            wait = min(timedelta(seconds=self.settings.sync_interval * 2 ** (tries - 1)), MAX_WAIT)
            self.failed = (rev, tries, now + wait)
            self.seen_revision = rev
            running = self.revision
            self.problems = [
                Problem(
                    f"revision {rev}",
                    0,
                    0,
                    f"could not be applied: {error}",
                    f"still running {running or 'nothing'}; tried again in {_span(wait)}",
                )
            ]
        logger.opt(exception=exc).bind(revision=rev, error=error, tries=tries).error(
            "content.failed"
        )
        if tries == 1:
            self.notifier.send(
                {
                    "text": f"diplobot: content revision {rev} could not be applied ({error}); "
                    f"still running {running or 'nothing'}. Details in the service log.",
                    "event": "content.failed",
                    "revision": rev,
                    "reason": error,
                }
            )

    def apply(self, content: ContentSet, rev: str, *, fallback: bool = False) -> None:
        """Run ``rev``. ``fallback``: it is the last good revision, run because the one seen
        (reported already) cannot: that report stays."""
        now = datetime.now(UTC)
        # Images are published from this revision as git has it, whatever the working tree
        # holds later (the next fetched revision may be refused); a folder is re-checked.
        media = RevisionMedia(self.source.root, rev) if isinstance(self.source, GitSource) else None
        pub = Publishing.build(
            content, self.store, self.state_dir, translator=self.translator, media=media
        )
        for deliverer in pub.deliverers.values():  # a thread's next part waits after SIGTERM
            deliverer.stopping = self.stopping.is_set
        self.translator = pub.translator
        if isinstance(self.source, GitSource) and pub.revision[0] != rev:
            pub.revision = (rev, None)  # run from an exported tree: no git checkout there
        with self.lock:
            if self.pub is not None:  # still open: not to be sent by the new one either
                pub.removed.update(self.pub.removed)
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
        self._record(pub, content, todo)
        for gone in set(self.recorded) - set(wanted):
            del self.recorded[gone]
        for key in set(self.awaiting) - set(wanted):
            del self.awaiting[key]
        for d in result.deliveries:
            if d.status == "blackout":
                self._skip_blackout(pub, content, d.post, d.account, d.due, d.note)
        self._cancel_removed(pub, content, set(wanted), result.pins)
        self._settle_removed(pub)
        with self.lock:
            self.content = content
            self.pub = pub
            self.revision = rev
            if not fallback:
                self.seen_revision = rev
                self.problems = []
                self.failed = None
            self.wanted = wanted
            self.warnings = [w.message for w in result.warnings] + pub.warnings
        if isinstance(self.source, GitSource) and not fallback:
            _write_atomically(self.state_dir / LAST_GOOD, rev + "\n")
        for warning in pub.warnings:
            logger.bind(warning=warning).warning("service.dry_run")
        logger.bind(revision=rev, posts=len(content.posts), deliveries=len(result.deliveries)).info(
            "content.applied"
        )
        if self.scheduler.running:
            self._schedule_due()

    def _record(
        self, pub: Publishing, content: ContentSet, todo: dict[tuple[str, str], datetime]
    ) -> None:
        """Translate and record ``todo``'s deliveries. One whose translation failed is HELD
        in the ledger and tried again by :meth:`follow_up`, with growing waits."""
        now = datetime.now(UTC)
        post_ids = sorted({p for p, _a in todo})
        loc = localize(
            content, pub.translator, pub.cache, post_ids=post_ids, parallel=pub.translate_parallel
        )
        with self.lock:
            self.stats.engine_calls += loc.stats.engine_calls
            self.stats.cache_hits += loc.stats.cache_hits
        for (post_id, account), due in sorted(todo.items()):
            entry = content.posts[post_id]
            key = (post_id, account)
            tries = self.awaiting.get(key, (0, now))[0] + 1
            wait = min(timedelta(seconds=self.settings.sweep_interval * 2 ** (tries - 1)), MAX_WAIT)
            why = pub.record(
                entry, [account], due, loc.variants, alert_held=False, hold_until=now + wait
            )
            reason = why.get(account, "")
            if reason.startswith("awaiting translation"):
                if key not in self.awaiting:
                    pub.notifier.held(
                        post_id,
                        account,
                        f"{reason}; tried again until {_span(self.settings.max_late)} after "
                        f"its time ({due:%Y-%m-%d %H:%M} UTC)",
                    )
                self.awaiting[key] = (tries, now + wait)
                continue
            if key in self.awaiting:
                del self.awaiting[key]
                logger.bind(post=post_id, account=account, tries=tries).info(
                    "translation.recovered"
                )
            if reason.startswith("not published"):
                alerted = (post_id, account, reason)
                if alerted not in self.held_alerted:
                    self.held_alerted.add(alerted)
                    pub.notifier.held(post_id, account, reason)
            else:
                self.recorded[key] = (entry.fingerprint, due)

    def follow_up(self) -> None:
        """Between syncs: settle open deliveries of removed content, expire HELD deliveries
        whose lateness window closed, and try again the translations that failed."""
        # The sync job fires at the same instants and, when nothing changed, is done in a few
        # milliseconds: wait for it a little; one applying a revision does all this itself.
        wait = min(2.0, self.settings.sweep_interval)
        if self.stopping.is_set() or not self.sync_lock.acquire(timeout=wait):
            return
        try:
            with self.lock:
                pub, content, wanted = self.pub, self.content, self.wanted
            if pub is None or content is None:
                return
            self._settle_removed(pub)
            now = datetime.now(UTC)
            self._expire_held(pub, now)
            todo = {
                key: wanted[key]
                for key, (_tries, at) in self.awaiting.items()
                if at <= now and key in wanted
            }
            if todo:
                self._record(pub, content, todo)
                if self.scheduler.running:
                    self._schedule_due()
        except Exception as exc:  # a job that raises would only be logged by APScheduler
            logger.opt(exception=exc).bind(error=_first_line(exc)).error("follow_up.failed")
        finally:
            self.sync_lock.release()

    def _expire_held(self, pub: Publishing, now: datetime) -> None:
        """HELD deliveries whose lateness window closed before their text was ready end
        EXPIRED, with the translation's last error, and are alerted: never silently lost."""
        window = _span(self.settings.max_late)
        for row in self.ledger.rows(states=[State.HELD], due_by=now - self.settings.max_late):
            error = (row.last_error or "").partition(": ")[2] or "translation failed"
            reason = (
                f"no translation into {row.lang} before the lateness window of {window} "
                f"closed: {error}"
            )
            if self.ledger.transition(row.id, State.EXPIRED, expect=[State.HELD], error=reason):
                pub.notifier.delivery(self.ledger.get(row.id), reason)
                self.awaiting.pop((row.post_id, row.account), None)

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
        by_hand = self.ledger.armed_by_hand()  # post-now sends it anyway: a person asked
        for row in self.ledger.rows(post_id, channel=pub.channel_of[account]):
            if row.account == account and row.state is State.PENDING and row.id not in by_hand:
                self.ledger.transition(
                    row.id, State.SKIPPED, expect=[State.PENDING], error=f"blackout: {reason}"
                )

    def _cancel_removed(
        self,
        pub: Publishing,
        content: ContentSet,
        wanted: set[tuple[str, str]],
        pins: dict[str, Pin],
    ) -> None:
        """Open deliveries not wanted any more: cancelled (RETRACTED, with the reason) when
        the post, its language or its account is gone or it became a draft; moved to the new
        time when the post's time moved out of the window. One SENDING or UNKNOWN may be on
        the platform already: it is never sent again, but settled (see :meth:`_settle_removed`).

        A row armed by ``post-now`` (a person's explicit act; the only way a draft gets rows)
        keeps its time and is cancelled only with its post or account."""
        open_states = [State.PENDING, State.HELD, State.SENDING, State.UNKNOWN]
        by_hand = self.ledger.armed_by_hand()
        for row in self.ledger.rows(states=open_states):
            if (row.post_id, row.account) in wanted:
                continue
            entry = content.posts.get(row.post_id)
            account = content.accounts.accounts.get(row.account)
            new_due = due_for(content, entry, row.account, pins) if entry and account else None
            if entry is None:
                reason = "the post was removed from the content"
            elif account is None or account.lang not in entry.languages:
                reason = "the post no longer goes to this account"
            elif row.id in by_hand:
                continue
            elif entry.is_draft:
                reason = "the post became a draft"
            elif new_due is not None:
                if new_due != row.due_at and row.state in (State.PENDING, State.HELD):
                    self.ledger.reschedule(row.id, new_due)
                continue
            else:
                reason = "the post has no time any more"
            if row.state in (State.SENDING, State.UNKNOWN):
                pub.removed[row.id] = reason
                continue
            self.ledger.transition(
                row.id, State.RETRACTED, expect=[row.state], error=f"cancelled: {reason}"
            )
            logger.bind(post=row.post_id, account=row.account, reason=reason).info(
                "delivery.cancelled"
            )

    def _settle_removed(self, pub: Publishing) -> None:
        """Deliveries of removed content that were SENDING or UNKNOWN: reconciled against the
        account's timeline, never sent again. Found: POSTED, and reported (it is public);
        not found: cancelled; the timeline unreadable: tried again after a growing wait (the
        look-up holds the sync lock)."""
        now = datetime.now(UTC)
        for row_id, reason in list(pub.removed.items()):
            row = self.ledger.get(row_id)
            deliverer = pub.deliverers.get(row.channel)
            tries, at = self.settling.get(row_id, (0, now))
            if row.state is State.UNKNOWN and deliverer is not None and at <= now:
                row = deliverer.reconcile(row)
                wait = self.settings.sweep_interval * 2**tries
                self.settling[row_id] = (tries + 1, now + min(timedelta(seconds=wait), MAX_WAIT))
                if row.state is State.POSTED:
                    pub.notifier.delivery(
                        row,
                        f"found on the timeline after {reason}: it stays published; delete "
                        "it on the platform if it must not stay",
                    )
            if row.state is State.PENDING:  # not on the timeline (reconciled, here or before)
                self.ledger.transition(
                    row.id,
                    State.RETRACTED,
                    expect=[State.PENDING],
                    error=f"cancelled: {reason} (not found on the timeline)",
                )
                logger.bind(post=row.post_id, account=row.account, reason=reason).info(
                    "delivery.cancelled"
                )
                row = self.ledger.get(row.id)
            if row.state not in (State.SENDING, State.UNKNOWN):
                del pub.removed[row_id]
                self.settling.pop(row_id, None)

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
        self.store.mark_sweep(now)  # proves the ledger is writable
        pub = self.pub
        if pub is not None:
            pub.recover(now)
        with self.lock:
            first = self.last_sweep is None
        # The first sweep of a (re)started service looks every UNKNOWN delivery up at once,
        # whatever its back-off: the restart may be what fixed the look-ups.
        self.run_due(look_now=first)
        with self.lock:
            self.last_sweep = datetime.now(UTC)

    def watch(self) -> None:
        """Another publisher on our accounts, or another service on this state: alerted (see
        bot/publish/watch.py). Every sweep interval: renew this service's mark in the state;
        read the timelines every ``DIPLOBOT_WATCH_INTERVAL``, or once a burst of posts is out."""
        if self.stopping.is_set():
            return
        with self.lock:
            pub = self.pub
        try:
            self.watcher.tick(
                pub,
                self.notifier,
                publishing=self.publish_lock.locked(),
                now=datetime.now(UTC),
                stopping=self.stopping.is_set,
            )
        except Exception as exc:  # a job that raises would only be logged by APScheduler
            logger.opt(exception=exc).bind(error=_first_line(exc)).error("watch.failed")

    def paused(self, content: ContentSet) -> dict[str, str]:
        """Accounts paused now (committed switch or `diplobot pause`) → reason."""
        out: dict[str, str] = {}
        pause = content.slots.pause
        for account in content.accounts.accounts:
            if pause.all or account in pause.accounts:
                out[account] = pause.reason or "paused in schedules/slots.yaml"
        for account, reason in self.store.pauses.current().items():
            targets = list(content.accounts.accounts) if account == "*" else [account]
            for target in targets:
                out.setdefault(target, reason or "paused with 'diplobot pause'")
        return out

    def run_due(self, look_now: bool = False) -> None:
        """Deliver every PENDING row that is due, one chain per (post, account); look UNKNOWN
        ones up when their ``retry_at`` has come (``look_now``: all of them)."""
        if self.stopping.is_set() or not self.publish_lock.acquire(blocking=False):
            return
        try:
            self._run_due(look_now)
        finally:
            self.publish_lock.release()

    def _run_due(self, look_now: bool = False) -> None:
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
        max_late = self.settings.max_late
        for (post_id, account), rows in groups.items():
            if account in paused:
                # Waits visibly; the lateness window still applies (nothing is sent).
                pub.hold(post_id, account, rows, max_late)
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
            lambda: threading.Semaphore(self.settings.per_account)
        )

        def deliver_chain(item: tuple[datetime, str, str]) -> None:
            _due, post_id, account = item
            with slots[account]:
                if not self.stopping.is_set():
                    # A chain that starts at its first part has nothing POSTED yet: the rows
                    # just read are all of it. One resuming a thread is read again.
                    # The lateness window applies to every attempt, first or retry (see
                    # bot/publish/deliver.py); a thread under way is completed.
                    pub.deliver(
                        post_id,
                        account,
                        groups[(post_id, account)],
                        max_late=max_late,
                        look_now=look_now,
                    )

        workers = max(1, min(self.settings.publish_parallel, len(chains)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="publish") as pool:
            list(pool.map(deliver_chain, chains))

    # -- what the HTTP endpoints show ----------------------------------------------------

    def healthy(self) -> bool:
        with self.lock:
            last = self.last_sweep
        limit = timedelta(seconds=max(3 * self.settings.sweep_interval, 15))
        return last is not None and datetime.now(UTC) - last < limit

    def ready(self) -> bool:
        return self.not_ready() is None

    def not_ready(self) -> str | None:
        """Why the content is not in sync (no valid content yet, or the source cannot be read
        now), for ``/readyz``; None when it is."""
        with self.lock:
            if self.sync_failing_since is not None:
                return (
                    f"cannot read the content source since "
                    f"{self.sync_failing_since.isoformat(timespec='seconds')}: {self.sync_error}"
                )
            if self.content is None:
                return "no valid content loaded yet"
            return None

    def status(self, limit: int = 50, offset: int = 0) -> dict[str, Any]:
        """What ``/status`` shows. Its cost does not grow with the ledger: counts come from
        one aggregate query, and each list is one page (``limit`` rows after ``offset``)."""
        now = datetime.now(UTC)
        counts: dict[str, dict[str, int]] = {}
        for (state, account), n in sorted(self.ledger.counts().items()):
            counts.setdefault(str(state), {})[account] = n

        def page(states: list[State], recent_first: bool = False) -> list[dict[str, Any]]:
            rows = self.ledger.page(states, limit=limit, offset=offset, recent_first=recent_first)
            return [_row_json(r) for r in rows]

        # SENDING rows whose owner is gone (ledger.py): the next sweep reconciles them.
        stale = self.ledger.stale_sending(now)
        with self.lock:
            content = self.content
        paused = self.paused(content) if content else {}
        upcoming = page([State.PENDING])
        # Being sent, or being checked against the account's timeline.
        in_flight = page([State.SENDING, State.UNKNOWN])
        # Ended without being published, most recent first.
        problems = page([State.FAILED, State.EXPIRED], recent_first=True)
        recent = page([s for s in State if s is not State.PENDING], recent_first=True)
        with self.lock:
            since = self.sync_failing_since
            return {
                "now": now.isoformat(timespec="seconds"),
                "revision": self.revision,
                "seen_revision": self.seen_revision,
                "content_valid": not self.problems,
                "content_errors": [str(p) for p in self.problems],
                "sync_error": self.sync_error,
                "last_sync": _iso(self.last_sync),
                "sync": {
                    "ok": since is None and self.last_good_sync is not None,
                    "failing_since": _iso(since),
                    "last_success": _iso(self.last_good_sync),
                    "error": self.sync_error,
                },
                "warnings": self.warnings,
                "paused": paused,
                "counts": counts,
                "page": {"limit": limit, "offset": offset},
                "upcoming": upcoming,
                "open": in_flight,
                "problems": problems,
                "recent": recent,
                "stale": [{**_row_json(r), "stale": why} for r, why in stale],
                # Posts of ours another publisher sent; other services on this state.
                **self.watcher.status(),
            }

    def metrics(self) -> str:
        lines = [
            "# HELP diplobot_deliveries Deliveries in the ledger by state and account.",
            "# TYPE diplobot_deliveries gauge",
        ]
        next_due = self.ledger.next_due()
        for (state, account), count in sorted(self.ledger.counts().items()):
            lines.append(
                f'diplobot_deliveries{{state="{_label(state)}",account="{_label(account)}"}} '
                f"{count}"
            )
        with self.lock:
            stats, last_sync, rev = self.stats, self.last_sync, self.revision
            valid = not self.problems
            failing = self.sync_failing_since is not None
            good = self.last_good_sync
        lines += [
            "# TYPE diplobot_translation_engine_calls_total counter",
            f"diplobot_translation_engine_calls_total {stats.engine_calls}",
            "# TYPE diplobot_translation_cache_hits_total counter",
            f"diplobot_translation_cache_hits_total {stats.cache_hits}",
            "# TYPE diplobot_last_sync_timestamp_seconds gauge",
            f"diplobot_last_sync_timestamp_seconds {last_sync.timestamp() if last_sync else 0}",
            "# HELP diplobot_last_successful_sync_timestamp_seconds Last time the source was read.",
            "# TYPE diplobot_last_successful_sync_timestamp_seconds gauge",
            f"diplobot_last_successful_sync_timestamp_seconds {good.timestamp() if good else 0}",
            "# HELP diplobot_sync_failing 1 while the content source cannot be read.",
            "# TYPE diplobot_sync_failing gauge",
            f"diplobot_sync_failing {1 if failing else 0}",
            "# TYPE diplobot_content_revision_info gauge",
            f'diplobot_content_revision_info{{revision="{_label(rev or "")}"}} 1',
            "# TYPE diplobot_content_valid gauge",
            f"diplobot_content_valid {1 if valid else 0}",
            "# TYPE diplobot_next_due_timestamp_seconds gauge",
            f"diplobot_next_due_timestamp_seconds {next_due.timestamp() if next_due else 0}",
            *self.watcher.metrics(_label),
        ]
        return "\n".join(lines) + "\n"


def _label(value: str) -> str:
    """A Prometheus label value: backslash, double quote and line feed escaped, as the text
    exposition format requires (an account id may hold any of them)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment else None


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _first_line(exc: BaseException) -> str:
    """An exception's message for an alert: its first line, short. A database error's own
    text carries the statement and its parameters (post text): only the driver's is kept."""
    orig = getattr(exc, "orig", None)
    text = str(orig if isinstance(orig, BaseException) else exc)
    return (text.strip().splitlines() or [""])[0][:300]


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
