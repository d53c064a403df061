"""The service's lifecycle: start and stop, the sync → apply flow, the last good revision when
the newest cannot run, and the role (``role.py``): only the *active* service (the lease's
holder) applies revisions to the ledger, dispatches, sweeps and reconciles; a *standby* one
syncs and validates, serves its views, and takes over when the lease runs out. Its parts:
``clock.py`` (when), ``changes.py`` (the ledger in line with the content), ``dispatch.py`` (due
rows → chains), ``views.py`` (what HTTP shows)."""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from loguru import logger

from bot import pipeline
from bot.content.loader import LoadCache, validate
from bot.content.types import ContentSet
from bot.errors import BotError, ContentError, Problem
from bot.publish.media import RevisionMedia
from bot.publish.session import Publishing
from bot.publish.watch import Watch
from bot.schedule.plan import PlanMemo
from bot.service.changes import MAX_WAIT, Changes, Stats, span
from bot.service.clock import Clock
from bot.service.dispatch import Dispatch
from bot.service.role import Role
from bot.settings import ServiceSettings
from bot.source import GitSource, Source, export_revision, head_commit
from bot.state import Store
from bot.state.lease import Takeover
from bot.state.ledger import State
from bot.translate.base import Translator
from bot.wiring import Wiring

LOOKBACK = timedelta(days=1)
"""How far back a (re)started service looks for deliveries it has not recorded yet."""
LAST_GOOD = "last-good-revision"
"""In the state folder: the sha of the last revision applied, run at start if HEAD cannot be."""


class Service:
    def __init__(
        self,
        source: Source,
        store: Store,
        state_dir: Path,
        settings: ServiceSettings,
        translator: Translator | None = None,
        *,
        wiring: Wiring | None = None,
        dry_run: bool = False,
    ) -> None:
        """``wiring``: the backends of this process's settings (default: none configured);
        ``dry_run``: every account's channel is the outbox."""
        self.source = source
        self.dry_run = dry_run
        self.store = store
        self.state_dir = state_dir
        self.settings = settings
        self.translator = translator
        self.wiring = wiring or Wiring()
        self.ledger = store.ledger
        self.pins = store.pins
        # Two replicas, one active: claims are made only under the lease (bot/state/lease.py).
        self.lease = store.service_lease(settings.active_lease)
        self.role = Role(self.lease, on_active=self._promoted, on_standby=self._demoted)
        self.fresh_term = True  # the next sweep is the first of this active term
        self.lock = threading.RLock()
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
        self.fallback = False  # the revision running is the last good one, not the one seen
        self.sync_error: str | None = None
        self.last_sync: datetime | None = None
        self.sync_failing_since: datetime | None = None  # set while the source cannot be read
        self.last_good_sync: datetime | None = None
        self.notifier = self.wiring.notifier()  # alerts about the service and its content
        self.last_sweep: datetime | None = None
        self.warnings: list[str] = []
        self.load_cache = LoadCache()
        self.plan_memo = PlanMemo()  # what planning each post found, kept across revisions
        self.stats = Stats()
        self.clock = Clock()
        self.changes = Changes(
            self.ledger,
            max_late=settings.max_late,
            retry_every=settings.sweep_interval,
            stats=self.stats,
            lock=self.lock,
        )
        self.dispatch = Dispatch(
            self.ledger,
            store.pauses,
            max_late=settings.max_late,
            parallel=settings.publish_parallel,
            per_account=settings.per_account,
            stopping=self.stopping,
            may_publish=self.lease.valid,
        )
        self.lifecycle = threading.Lock()  # start() and stop() agree on whether to run
        # Another publisher on our accounts, or another service on this state.
        self.watcher = Watch(store, self.ledger.lease, settings.watch_interval)

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        self.ledger.fence = self.lease  # from now on its claims need the lease
        self.role.poll()  # active or standby from the first sync on
        self.sync()
        self.sweep()
        self.clock.every(self.settings.sync_interval, self.sync, "sync")
        self.clock.every(self.settings.sweep_interval, self.sweep, "sweep")
        self.clock.every(self.settings.sweep_interval, self.follow_up, "follow-up")
        self.clock.every(self.settings.sweep_interval, self.watch, "watch")
        with self.lifecycle:  # stop() may have come during the first sync: start nothing
            if self.stopping.is_set():
                return
            self.clock.start()
            self.role.start()
        self._schedule_due()
        logger.bind(revision=self.revision, role=self.role.name).info("service.started")

    def stop(self, timeout: float = 8.0) -> bool:
        """Take no new work, interrupt a git command in progress, and let work in flight (a
        publish, an apply) finish until ``timeout``. Returns whether it all finished; what
        did not is safe to abandon (a claimed delivery is reconciled at the next start)."""
        deadline = time.monotonic() + timeout
        with self.lifecycle:
            self.stopping.set()
            running = self.clock.running
        self.role.stop()
        self.source.cancel()
        clean = True
        if running:
            clean = self.clock.shutdown(deadline - time.monotonic())
        # The first sync runs before the scheduler does: wait for it and for a publish.
        for busy in (self.sync_lock, self.dispatch.lock):
            if busy.acquire(timeout=max(0.0, deadline - time.monotonic())):
                busy.release()
            else:
                clean = False
        # Nothing more is claimed here: a standby takes over at its next poll (what is still
        # in flight, if anything, is reconciled by it as after a crash).
        try:
            released = self.lease.release()
        except Exception as exc:  # the database is gone: the lease runs out by itself
            logger.bind(error=_first_line(exc)).warning("lease.release_failed")
            released = False
        logger.bind(clean=clean, released=released).info("service.stopped")
        return clean

    def trigger_sync(self) -> None:
        """Sync at once (the webhook), on the scheduler's thread pool. A webhook that arrives
        while a sync runs is not lost: that sync runs once more when it ends."""
        if self.stopping.is_set():
            return
        self.sync_requested.set()
        self.clock.now(self.sync, "sync-now")

    # -- sync and apply ------------------------------------------------------------------

    def sync(self) -> None:
        """One sync at a time. The interval job and the webhook's ``sync-now`` are two jobs
        and may overlap: an older revision still being applied (translating) must not finish
        after, and over, a newer one (it would cancel the newer one's posts)."""
        self._poll_role()
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
            content, problems = self._validate(rev)
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

    def _validate(self, rev: str) -> tuple[ContentSet | None, list[Problem]]:
        """Check the checkout at ``rev``. From git, only the files git says may have changed
        since the revision checked last are read again (O(change), not O(repository))."""
        cache = self.load_cache
        changed = None
        if isinstance(self.source, GitSource) and cache.revision is not None:
            changed = self.source.changed(cache.revision)
        cache.revision = None  # until this check is through
        found = validate(self.source.root, cache, changed=changed)
        if isinstance(self.source, GitSource):
            cache.revision = rev
        return found

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
            logger.bind(failed_for=span(now - since)).info("sync.recovered")
            self.notifier.sync_recovered(span(now - since))

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
            export_revision(self.source.root, good, tree, self.source.env)
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
                    f"still running {running or 'nothing'}; tried again in {span(wait)}",
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
        (reported already) cannot: that report stays. A standby only keeps it (for its views,
        and to apply it when it takes over): the active service records the plan."""
        self._poll_role()
        if not self.role.active:
            self._keep(content, rev, fallback=fallback)
            return
        now = datetime.now(UTC)
        # Images are published from this revision as git has it, whatever the working tree
        # holds later (the next fetched revision may be refused); a folder is re-checked.
        media = (
            RevisionMedia(self.source.root, rev, self.source.env)
            if isinstance(self.source, GitSource)
            else None
        )
        pub = Publishing.build(
            content,
            self.store,
            self.state_dir,
            self.wiring,
            dry_run=self.dry_run,
            translator=self.translator,
            media=media,
        )
        for deliverer in pub.deliverers.values():  # a thread's next part waits after SIGTERM
            deliverer.stopping = self.stopping.is_set
            deliverer.may_send = self.lease.valid  # nothing goes out without the lease
        self.translator = pub.translator
        commit = head_commit(content.root)
        if isinstance(self.source, GitSource) and commit[0] != rev:
            commit = (rev, None)  # run from an exported tree: no git checkout there
        pub.recover(now)
        result = pipeline.plan(
            content,
            now,
            self.settings.horizon_days,
            self.pins,
            since=now - LOOKBACK,
            memo=self.plan_memo,
        )
        wanted, commit = self.changes.apply(pub, content, commit, result)
        self._poll_role()  # (driven by hand: translating may have taken longer than the lease)
        with self.lock:
            self.content = content
            # The lease may have been lost while this revision was applied: a standby keeps
            # no publishing backends (its follow-up and watch then do nothing).
            self.pub = pub if self.role.active else None
            self.revision = rev
            self.fallback = fallback
            if not fallback:
                self.seen_revision = rev
                self.problems = []
                self.failed = None
            self.changes.adopt(wanted, commit)
            self.warnings = [w.message for w in result.warnings] + pub.warnings
        if isinstance(self.source, GitSource) and not fallback:
            _write_atomically(self.state_dir / LAST_GOOD, rev + "\n")
        for warning in pub.warnings:
            logger.bind(warning=warning).warning("service.dry_run")
        logger.bind(revision=rev, posts=len(content.posts), deliveries=len(result.deliveries)).info(
            "content.applied"
        )
        if self.clock.running:
            self._schedule_due()

    def _keep(self, content: ContentSet, rev: str, *, fallback: bool) -> None:
        """A standby's apply: ``rev`` validated, kept as the running revision, nothing
        recorded, translated or published."""
        with self.lock:
            self.content = content
            self.revision = rev
            self.fallback = fallback
            if not fallback:
                self.seen_revision = rev
                self.problems = []
                self.failed = None
        logger.bind(revision=rev, posts=len(content.posts), role=self.role.name).info(
            "content.validated"
        )

    # -- the role ------------------------------------------------------------------------

    def _poll_role(self) -> None:
        """Poll the lease now when no thread does (a service driven by hand: see
        ``Role.poll_if_idle``); from then on, this service's claims need the lease."""
        self.ledger.fence = self.lease
        self.role.poll_if_idle()

    def _promoted(self, takeover: Takeover) -> None:
        """This start took the lease (on the lease's thread: only schedule the work). At
        start, the first sync and sweep do that work themselves."""
        self.fresh_term = True
        previous = takeover.previous
        if previous and not takeover.released:
            self.notifier.send(
                {
                    "text": f"diplobot: this service took over publishing (lease epoch "
                    f"{takeover.epoch}): the active one, {previous}, stopped renewing its "
                    "lease (it died, froze or lost the database). Its deliveries in flight "
                    "are reconciled before any retry.",
                    "event": "service.failover",
                    "epoch": takeover.epoch,
                    "previous": previous,
                    "reason": "the active service's lease ran out",
                }
            )
        with self.lifecycle:
            if self.clock.running and not self.stopping.is_set():
                self.clock.now(self.take_over, "take-over")

    def take_over(self) -> None:
        """Become the active service: apply the revision kept while standby (plan, record,
        recover the previous holder's claims), then sweep (look every UNKNOWN up, deliver
        what is due)."""
        with self.sync_lock:
            if self.stopping.is_set() or not self.role.active:
                return
            with self.lock:
                content, rev, fallback = self.content, self.revision, self.fallback
            try:
                if content is not None and rev is not None:
                    self.apply(content, rev, fallback=fallback)
            except Exception as exc:  # the next sync tries again (the revision is not marked)
                logger.opt(exception=exc).bind(error=_first_line(exc)).error(
                    "service.take_over_failed"
                )
                with self.lock:
                    self.seen_revision = None
                return
        self.sweep()

    def _demoted(self) -> None:
        """This start lost the lease (on the lease's thread): nothing new is claimed (the
        ledger's fence), chains in flight stop at their next claim; forget the due times."""
        with self.lock:
            self.pub = None
        with self.lifecycle:
            if self.clock.running and not self.stopping.is_set():
                self.clock.at_each([], self.run_due)

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
                pub, content = self.pub, self.content
            if pub is None or content is None:
                return
            if self.changes.follow_up(pub, content) and self.clock.running:
                self._schedule_due()
        except Exception as exc:  # a job that raises would only be logged by APScheduler
            logger.opt(exception=exc).bind(error=_first_line(exc)).error("follow_up.failed")
        finally:
            self.sync_lock.release()

    def _schedule_due(self) -> None:
        if not self.role.active:
            return
        now = datetime.now(UTC)
        dues = {r.due_at for r in self.ledger.rows(states=[State.PENDING]) if r.due_at > now}
        self.clock.at_each(dues, self.run_due)

    # -- publishing ----------------------------------------------------------------------

    def sweep(self) -> None:
        if self.stopping.is_set():
            return
        self._poll_role()
        if not self.role.active:
            return
        now = datetime.now(UTC)
        self.store.mark_sweep(now)  # proves the ledger is writable
        pub = self.pub
        if pub is not None:
            pub.recover(now)
        first, self.fresh_term = self.fresh_term, False
        # The first sweep of a (re)started service, or of a standby that took over, looks
        # every UNKNOWN delivery up at once, whatever its back-off: the restart (or the
        # takeover) may be what fixed the look-ups.
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
                # The content's notifier names each account's handle and platform.
                pub.notifier if pub is not None else self.notifier,
                publishing=self.dispatch.lock.locked(),
                now=datetime.now(UTC),
                stopping=self.stopping.is_set,
            )
        except Exception as exc:  # a job that raises would only be logged by APScheduler
            logger.opt(exception=exc).bind(error=_first_line(exc)).error("watch.failed")

    def run_due(self, look_now: bool = False) -> None:
        """Deliver what is due (see ``dispatch.py``)."""
        with self.lock:
            pub, content = self.pub, self.content
        self.dispatch.run(pub, content, self.changes.removed, look_now)


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
