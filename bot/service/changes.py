"""The ledger kept in line with the running revision: what the service's apply and follow-up
do with the plan.

- new or changed deliveries are localized and recorded (unchanged ones are skipped: a commit
  that changes one post of 10,000 costs one post's work); one whose translation failed is
  HELD and tried again with growing waits until its lateness window closes (then EXPIRED);
- deliveries in a blackout are recorded, then SKIPPED;
- open deliveries no longer wanted are cancelled or moved; one SENDING or UNKNOWN may be on
  the platform: never sent again (``removed``), it is settled against the timeline.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from loguru import logger

from bot import pipeline
from bot.content.types import ContentSet
from bot.publish.session import Publishing
from bot.schedule.plan import Delivery, Pin, Plan, due_for
from bot.state.ledger import Ledger, State

MAX_WAIT = timedelta(minutes=15)
"""The longest wait between two tries of a failed translation, or of a revision that raised."""

Key = tuple[str, str]
"""(post, account)"""

TOUCHED_MAX = 200
"""Up to this many changed posts, an apply reads the open rows of each; more, every open row
at once (one query)."""


@dataclass
class Stats:
    engine_calls: int = 0
    cache_hits: int = 0
    syncs: int = 0


def span(delta: timedelta) -> str:
    """A duration as people read it in an alert: whole minutes from 2 min, else seconds (a
    window of 90 s is not "1 min", and one of 30 s is not "0 min")."""
    seconds = int(delta.total_seconds())
    return f"{seconds // 60} min" if seconds >= 120 else f"{seconds} s"


class Changes:
    """What was recorded for the running revision, and what waits (see the module)."""

    def __init__(
        self,
        ledger: Ledger,
        *,
        max_late: timedelta,
        retry_every: float,
        stats: Stats,
        lock: threading.RLock,
    ) -> None:
        self.ledger = ledger
        self.max_late, self.retry_every = max_late, retry_every  # retries: growing waits
        self.stats, self.lock = stats, lock  # counters shown in /metrics, and their lock
        # Deliveries awaiting translation (HELD): (post, account) → (tries, next try at).
        self.awaiting: dict[Key, tuple[int, datetime]] = {}
        # ... and what each was held as (fingerprint, due): a later apply leaves an unchanged
        # one to follow_up and its growing waits, instead of translating it again at every
        # commit (a language the engine lacks would cost every apply one try per delivery).
        self.held_as: dict[Key, tuple[str, datetime]] = {}
        # The plan's deliveries (one per part) of the running revision, per (post, account),
        # and the git commit and author recorded with its rows.
        self.wanted: dict[Key, list[Delivery]] = {}
        self.commit: pipeline.Revision = (None, None)
        # Rows never to be sent (row id → why): their part or post was removed while they
        # were SENDING or UNKNOWN. Settled (reconciled, cancelled) by :meth:`settle_removed`.
        self.removed: dict[int, str] = {}
        # Removed deliveries still UNKNOWN: row id → (look-ups tried, next one at).
        self.settling: dict[int, tuple[int, datetime]] = {}
        self.held_alerted: set[tuple[str, str, str]] = set()
        # (post, account) → (fingerprint, due) last recorded: unchanged posts are skipped.
        self.recorded: dict[Key, tuple[str, datetime]] = {}
        self.recorded_setup = ""
        # The content whose open rows cancel_removed last went through, and the keys it
        # wanted: the next one reads the open rows of what changed since (see there).
        self.looked: tuple[ContentSet, set[Key]] | None = None

    def apply(
        self, pub: Publishing, content: ContentSet, commit: pipeline.Revision, result: Plan
    ) -> tuple[dict[Key, list[Delivery]], pipeline.Revision]:
        """Bring the ledger in line with ``result`` (the plan of ``content``). Returns what
        :meth:`adopt` takes once the revision runs."""
        wanted: dict[Key, list[Delivery]] = {}
        blackout: list[Delivery] = []
        for d in result.deliveries:
            if d.status == "blackout":
                blackout.append(d)  # recorded, then SKIPPED
            else:
                wanted.setdefault((d.post, d.account), []).append(d)
        # Only posts that are new or changed (file, due time, or the translation setup) need
        # translating and recording again.
        setup = pub.translator.name + str(pub.channel_of)
        if setup != self.recorded_setup:
            self.recorded, self.recorded_setup, self.held_as = {}, setup, {}
        todo = {}
        for key, parts in wanted.items():
            now_as = (content.posts[key[0]].fingerprint, parts[0].due)
            if self.recorded.get(key) == now_as:
                continue
            if key in self.awaiting and self.held_as.get(key) == now_as:
                continue  # held, unchanged: follow_up tries it again at its time
            todo[key] = parts
        before = dict(self.removed)
        try:
            self.record(pub, content, commit, todo, blackout)
            for gone in set(self.recorded) - set(wanted):
                del self.recorded[gone]
            for key in set(self.awaiting) - set(wanted):
                del self.awaiting[key]
            for key in set(self.held_as) - set(self.awaiting):
                del self.held_as[key]
            self.cancel_removed(content, set(wanted), result.pins)
            self.settle_removed(pub)
        except BaseException:
            # The revision does not run: what it removed is not removed (the one running
            # may still hold it); it is done again when the revision is tried again.
            self.removed.clear()
            self.removed.update(before)
            self.looked = None  # and the next apply reads every open row
            raise
        return wanted, commit

    def adopt(self, wanted: dict[Key, list[Delivery]], commit: pipeline.Revision) -> None:
        """The revision applied runs now: follow-ups work on its deliveries."""
        self.wanted, self.commit = wanted, commit

    def follow_up(self, pub: Publishing, content: ContentSet) -> bool:
        """Settle open deliveries of removed content, expire HELD deliveries whose lateness
        window closed, and try again the translations that failed. Returns whether it
        recorded anything (the clock's due jobs then need refreshing)."""
        self.settle_removed(pub)
        now = datetime.now(UTC)
        self.expire_held(pub, now)
        wanted = self.wanted
        todo = {
            key: wanted[key]
            for key, (_tries, at) in self.awaiting.items()
            if at <= now and key in wanted
        }
        if todo:
            self.record(pub, content, self.commit, todo)
        return bool(todo)

    def record(
        self,
        pub: Publishing,
        content: ContentSet,
        commit: pipeline.Revision,
        todo: dict[tuple[str, str], list[Delivery]],
        blackout: Sequence[Delivery] = (),
    ) -> None:
        """Translate and record ``todo``'s deliveries. One whose translation failed is HELD
        in the ledger and tried again by :meth:`follow_up`, with growing waits. ``blackout``:
        deliveries recorded, then SKIPPED."""
        now = datetime.now(UTC)
        post_ids = sorted({p for p, _a in todo} | {d.post for d in blackout})
        if not post_ids:
            return
        loc = pipeline.localize(
            content, pub.translator, pub.cache, post_ids=post_ids, parallel=pub.translate_parallel
        )
        with self.lock:
            self.stats.engine_calls += loc.stats.engine_calls
            self.stats.cache_hits += loc.stats.cache_hits
        deliveries = [d for _key, parts in sorted(todo.items()) for d in parts] + list(blackout)
        planned = pipeline.rows(
            content,
            [d for d in deliveries if d.repost_of is None],
            loc.variants,
            pub.channel_of,
            commit,
        ) + pipeline.repost_rows(deliveries, pub.channel_of, commit)  # no text to translate
        notes = {(d.post, d.account): d.note for d in blackout}
        # Deliveries not in the ledger yet (a first start, new posts): recorded together, in
        # one transaction; the others go through pipeline.record, which may refresh them.
        plain = [
            item
            for item in planned
            if (item.post, item.account) in todo and item.refused is None and item.rows
        ]
        recorded_now = {
            id(item)
            for item, new in zip(plain, pub.ledger.record_new([i.rows for i in plain]), strict=True)
            if new
        }
        for item in planned:
            if (item.post, item.account) not in todo:
                self.skip_blackout(pub, item, notes[(item.post, item.account)])
                continue
            post_id, account, due = item.post, item.account, item.due
            entry = content.posts[post_id]
            key = (post_id, account)
            tries = self.awaiting.get(key, (0, now))[0] + 1
            wait = min(timedelta(seconds=self.retry_every * 2 ** (tries - 1)), MAX_WAIT)
            why = (
                None
                if id(item) in recorded_now
                else pipeline.record(
                    pub, item, self.removed, alert_held=False, hold_until=now + wait
                )
            )
            reason = why or ""
            if reason.startswith("awaiting translation"):
                if key not in self.awaiting:
                    pub.notifier.held(
                        post_id,
                        account,
                        f"{reason}; tried again until {span(self.max_late)} after "
                        f"its time ({due:%Y-%m-%d %H:%M} UTC)",
                    )
                self.awaiting[key] = (tries, now + wait)
                self.held_as[key] = (entry.fingerprint, due)
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

    def expire_held(self, pub: Publishing, now: datetime) -> None:
        """HELD deliveries whose lateness window closed before their text was ready end
        EXPIRED, with the translation's last error, and are alerted: never silently lost."""
        window = span(self.max_late)
        for row in self.ledger.rows(states=[State.HELD], due_by=now - self.max_late):
            error = (row.last_error or "").partition(": ")[2] or "translation failed"
            reason = (
                f"no translation into {row.lang} before the lateness window of {window} "
                f"closed: {error}"
            )
            if self.ledger.transition(row.id, State.EXPIRED, expect=[State.HELD], error=reason):
                pub.notifier.delivery(self.ledger.get(row.id), reason)
                self.awaiting.pop((row.post_id, row.account), None)

    def skip_blackout(self, pub: Publishing, item: pipeline.AccountRows, reason: str) -> None:
        """A delivery in a blackout: recorded, then SKIPPED (with the blackout's reason)."""
        post_id, account = item.post, item.account
        pipeline.record(pub, item, self.removed, alert_held=False)
        by_hand = self.ledger.armed_by_hand()  # post-now sends it anyway: a person asked
        for row in self.ledger.rows(post_id, channel=item.channel):
            if row.account == account and row.state is State.PENDING and row.id not in by_hand:
                self.ledger.transition(
                    row.id, State.SKIPPED, expect=[State.PENDING], error=f"blackout: {reason}"
                )

    def cancel_removed(
        self,
        content: ContentSet,
        wanted: set[tuple[str, str]],
        pins: dict[str, Pin],
    ) -> None:
        """Open deliveries not wanted any more: cancelled (RETRACTED, with the reason) when
        the post, its language or its account is gone or it became a draft; moved to the new
        time when the post's time moved out of the window. One SENDING or UNKNOWN may be on
        the platform already: it is never sent again, but settled (see :meth:`settle_removed`).

        A row armed by ``post-now`` (a person's explicit act; the only way a draft gets rows)
        keeps its time and is cancelled only with its post or account."""
        open_states = [State.PENDING, State.HELD, State.SENDING, State.UNKNOWN]
        by_hand = self.ledger.armed_by_hand()
        posts = self._touched(content, wanted)
        if posts is None:
            rows = self.ledger.rows(states=open_states)
        else:
            rows = [r for p in sorted(posts) for r in self.ledger.rows(p, states=open_states)]
        for row in rows:
            if (row.post_id, row.account) in wanted:
                continue
            entry = content.posts.get(row.post_id)
            # The account as the post goes to it (a repost goes when its original does).
            target = content.target_of(entry, row.account) if entry is not None else None
            new_due = (
                due_for(content, entry, target.repost_of or row.account, pins)
                if entry is not None and target is not None
                else None
            )
            if entry is None:
                reason = "the post was removed from the content"
            elif target is None:
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
                self.removed[row.id] = reason
                continue
            self.ledger.transition(
                row.id, State.RETRACTED, expect=[row.state], error=f"cancelled: {reason}"
            )
            logger.bind(post=row.post_id, account=row.account, reason=reason).info(
                "delivery.cancelled"
            )
        self.looked = (content, wanted)

    def _touched(self, content: ContentSet, wanted: set[Key]) -> set[str] | None:
        """The posts whose open rows may need cancelling or moving since the last call went
        through every open row it had to: those whose entry changed or went, and those of
        deliveries it wanted that are not wanted now (their time moved, or left the window).
        An open row of any other post is one that call left alone, for reasons that still
        hold: the same entry, accounts and slots (a row is only ever recorded for a wanted
        delivery, or armed by hand, which keeps its time). None: read every open row (the
        first call, other accounts or slots, or more changed posts than one query each is
        worth)."""
        if self.looked is None:
            return None
        before, was_wanted = self.looked
        if (
            before.accounts != content.accounts
            or before.slots != content.slots
            or before.missions != content.missions
            or before.account_missions != content.account_missions
        ):
            return None
        old, new = before.posts, content.posts
        if abs(len(new) - len(old)) > TOUCHED_MAX:
            return None
        if content.since is not None and content.since[0] is old:
            posts = set(content.since[1])  # the loader says which (O(changed))
        else:
            posts = {p for p, entry in new.items() if old.get(p) is not entry}
            posts.update(p for p in old if p not in new)
        posts.update(p for p, _a in was_wanted - wanted)
        return posts if len(posts) <= TOUCHED_MAX else None

    def settle_removed(self, pub: Publishing) -> None:
        """Deliveries of removed content that were SENDING or UNKNOWN: reconciled against the
        account's timeline, never sent again. Found: POSTED, and reported (it is public);
        not found: cancelled; the timeline unreadable: tried again after a growing wait (the
        look-up holds the sync lock)."""
        now = datetime.now(UTC)
        for row_id, reason in list(self.removed.items()):
            row = self.ledger.get(row_id)
            deliverer = pub.deliverers.get(row.channel)
            tries, at = self.settling.get(row_id, (0, now))
            if row.state is State.UNKNOWN and deliverer is not None and at <= now:
                row = deliverer.reconcile(row)
                wait = self.retry_every * 2**tries
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
                del self.removed[row_id]
                self.settling.pop(row_id, None)
