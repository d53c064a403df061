"""Deliver ledger rows through a publisher: the one code path of ``post-now`` and the service.

For each row: claim it (committed), publish, record the outcome. Ambiguous outcomes are
reconciled against the account's timeline before any retry; retries are bounded; back-off is
data (``retry_at``), never a sleep here.

Policies that are the same for every channel:

- *lateness* (the service only: ``max_late``): every attempt, first or retry, is made by
  ``due_at + max_late`` or not at all: a row past it, or whose next try (a 429's reset, a
  back-off) would fall past it, ends EXPIRED with an alert. A thread already under way (an
  earlier part POSTED) is completed whatever the delay: a half-published thread is worse than
  a late reply. ``post-now`` (a person's explicit act) has no window.
- *UNKNOWN* (X may have the post): looked up on the timeline before anything else; a failed
  look-up is tried again later (``retry_at``, growing), alerted once, and after
  :data:`UNKNOWN_GIVE_UP` the row ends FAILED. An UNKNOWN row is never sent again unless a
  look-up that worked said it is not there.
- *a defect* (the publisher raises something that is not a PublishError: a bug here or in a
  library): X may have the post, so it is UNKNOWN like an ambiguous answer, logged once with
  its traceback and alerted; a claim is never left SENDING under a live owner.
- *a channel that cannot be searched* (Telegram: ``find`` raises PublishUnverifiable): an
  UNKNOWN row stays UNKNOWN for a person, its reason beginning with :data:`NEEDS_PERSON` (what
  to check, and the two commands that settle it: ``mark-posted`` or ``post-now --resend``),
  alerted once; it is never looked up again, never sent again, never FAILED by itself.
- *a manual channel* (Weibo: ``publish`` raises PublishByHand): the claimed row becomes a task
  for a person, UNKNOWN with a reason beginning with :data:`TASK` and ``retry_at`` the end of
  its window; alerted once with the text and the images. ``mark-posted`` records it POSTED;
  at ``retry_at`` it ends EXPIRED, alerted. Never twice: the row is claimed once, and the task
  is neither claimed nor sent again unless a person asks (``post-now --resend``).
- *a repost* (amplification: the row's ``repost_of`` names the original's delivery key, on
  the same channel): it is published only once the original is POSTED, as a repost of the
  original's ``remote_id`` (``Reposter.repost``). Before that it waits, PENDING with a
  ``retry_at`` (:func:`repost_wait`: 5 s growing to 5 min; no claim, no attempt spent; the
  lateness window still applies); if the original ends FAILED, EXPIRED, RETRACTED or
  SKIPPED, the repost ends SKIPPED with the original's reason. An ambiguous repost is
  UNKNOWN and reconciled with ``Reposter.find_repost``, like a post with ``find``; the
  platform keeps one repost of a post per account, so a retry never makes a second one.
  ``retract`` undoes it (``Reposter.unrepost``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from loguru import logger

from bot.errors import (
    PublishAmbiguous,
    PublishAuthFailed,
    PublishByHand,
    PublishDuplicate,
    PublishError,
    PublishHeld,
    PublishNoCredits,
    PublishRateLimited,
    PublishRejected,
    PublishUnverifiable,
)
from bot.platforms import DEFAULT_PLATFORM, PLATFORMS
from bot.publish.base import MediaItem, Outgoing, Publisher, Receipt, Reposter
from bot.state.ledger import Ledger, Row, State

MAX_ATTEMPTS = 5
"""Attempts (claims) per delivery before it is FAILED: no retry loop is unbounded."""
RECONCILE_SLACK = timedelta(minutes=2)
"""How far before the claim the timeline is searched (clock skew between us and X)."""
LOOKUP_WAIT = (timedelta(minutes=1), timedelta(minutes=15))
"""Shortest and longest wait before looking again for an UNKNOWN row whose look-up failed."""
UNKNOWN_GIVE_UP = timedelta(hours=6)
"""How long after its ambiguous attempt an UNKNOWN row is looked for before it ends FAILED."""
REPOST_WAIT = (timedelta(seconds=5), timedelta(minutes=5))
"""Shortest and longest wait of a repost for its original to be POSTED."""
ORIGINAL_ENDED = (State.FAILED, State.EXPIRED, State.RETRACTED, State.SKIPPED)
"""States of an original that end its reposts (SKIPPED, with the original's reason)."""
WAITING = "waiting for the original "
"""How the reason of a repost that waits for its original begins."""
REARMABLE = (State.FAILED, State.EXPIRED, State.SKIPPED)
"""End states ``post-now`` sends again (never POSTED, never RETRACTED)."""
UNEXPECTED = "unexpected error while sending, a defect to report"
"""How the reason of a row begins when the publisher raised something else than a
PublishError (see :meth:`Deliverer.deliver`)."""
UNCONFIRMED = "could not confirm whether {platform} has it"
"""How the reason of a row that ended FAILED while UNKNOWN begins, the platform's name filled
in (see :func:`may_be_live`)."""


NEEDS_PERSON = "needs a person: "
"""How the reason of an UNKNOWN row begins when only a person can tell whether the platform
has it (a channel that cannot be searched): never looked up, nor sent again, by itself."""
TASK = "task for a person: "
"""How the reason of a manual channel's delivery begins while a person is to post it."""


HELD = "not sent: this service lost its lease (another replica publishes now)"


def for_a_person(row: Row) -> bool:
    """Whether ``row`` waits for a person: a manual task, or an UNKNOWN row of a channel that
    cannot be searched (``status``, ``/status``; ``mark-posted`` settles it)."""
    return row.state is State.UNKNOWN and (row.last_error or "").startswith((NEEDS_PERSON, TASK))


def is_task(row: Row) -> bool:
    """Whether ``row`` is a manual channel's open task (see the module docstring)."""
    return row.state is State.UNKNOWN and (row.last_error or "").startswith(TASK)


def settle_commands(row: Row) -> str:
    """The two commands that settle an UNKNOWN row a person checked."""
    part = f" --part {row.part}" if row.part != 1 else ""
    return (
        f"if it is there, run 'diplobot mark-posted {row.post_id} --account {row.account}"
        f"{part} --url URL'; if it is not, 'diplobot post-now {row.post_id} --account "
        f"{row.account} --resend'"
    )


def delivery_key(row: Row) -> str:
    """The identity of ``row``'s delivery, the same for every attempt (``Outgoing.key``)."""
    return f"{row.post_id}#{row.part}@{row.account}"


def parse_key(key: str) -> tuple[str, int, str] | None:
    """A delivery key (:func:`delivery_key`) read back: (post, part, account); None when it
    is not one."""
    left, at, account = key.rpartition("@")
    post, hash_, part = left.rpartition("#")
    if not (at and hash_ and post and account and part.isdigit()):
        return None
    return post, int(part), account


def repost_wait(waited: timedelta) -> timedelta:
    """Wait before looking again at the original of a repost that has waited ``waited``
    since its due time: as long again, from 5 s to 5 min (the sweep looks every few
    seconds; an original that is late or rate-limited is not asked about every sweep)."""
    shortest, longest = REPOST_WAIT
    return min(max(waited, shortest), longest)


def backoff(attempts: int) -> timedelta:
    """Wait before retry number ``attempts`` when the platform gave no time: 1, 2, 4… ≤ 15 min."""
    return min(timedelta(minutes=2 ** max(0, attempts - 1)), timedelta(minutes=15))


def lookup_wait(unknown_for: timedelta) -> timedelta:
    """Wait before the next look-up of a row UNKNOWN for ``unknown_for``: as long again, from
    1 to 15 min (1, 2, 4, 8, 15, 15… min: no counter needed, the claim time is enough)."""
    shortest, longest = LOOKUP_WAIT
    return min(max(unknown_for, shortest), longest)


def span(delta: timedelta) -> str:
    """A duration as people read it in an alert: seconds below 2 min (a window of 90 s is not
    "1 min", and one of 30 s is not "0 min"), whole minutes below 5 h, then hours."""
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 5 * 3600:
        return f"{seconds // 60} min"
    hours, minutes = divmod(seconds // 60, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else "no message"


def may_be_live(row: Row) -> bool:
    """Whether X may hold this row's post without the ledger knowing its id: UNKNOWN, or
    FAILED because the timeline could never be read. ``retract`` looks such rows up."""
    if row.state is State.UNKNOWN:
        return True
    reason = row.last_error or ""
    return row.state is State.FAILED and any(
        reason.startswith(UNCONFIRMED.format(platform=p.display)) for p in PLATFORMS.values()
    )


def display_name(platforms: Mapping[str, str], account: str) -> str:
    """How messages name the platform of ``account`` (``platforms``: account → platform)."""
    found = PLATFORMS.get(platforms.get(account, DEFAULT_PLATFORM))
    return (found or PLATFORMS[DEFAULT_PLATFORM]).display


def _receipt(row: Row, parent: Receipt | None) -> Receipt | None:
    """The receipt of a POSTED ``row``, as the next part replies to it: ``parent`` is the
    receipt of the part ``row`` replied to (None for a first part)."""
    if row.remote_id is None:
        return None
    return Receipt(row.remote_id, row.url, parent.thread_root if parent is not None else None)


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
    stopping: Callable[[], bool] = lambda: False  # the service is shutting down
    # Whether this process may publish now (a service replica: it holds the lease); asked
    # after the claim and by the publisher right before its request (Outgoing.may_send).
    may_send: Callable[[], bool] = lambda: True
    # account → platform name, for messages (an account not listed: the default platform)
    platforms: Mapping[str, str] = field(default_factory=dict)

    def deliver_chain(
        self,
        rows: Sequence[Row],
        *,
        max_late: timedelta | None = None,
        look_now: bool = False,
        send: bool = True,
    ) -> list[Row]:
        """Deliver one account's parts of one post, in order, as a reply chain. Stops at the
        first part that does not end POSTED: later parts wait for it (a thread resumes from
        its last posted part).

        ``max_late``: the service's lateness window (see the module's docstring); None for
        ``post-now``. ``look_now``: look UNKNOWN rows up now, whatever their ``retry_at``
        (``post-now``, and the service's first sweep). ``send``: False while the account is
        paused: only the window applies."""
        done: list[Row] = []
        reply_to: Receipt | None = None  # the previous part's, rebuilt from its row
        ordered = sorted(rows, key=lambda r: r.part)
        for index, row in enumerate(ordered):
            # ``rows`` was just read; a row another process changed since is caught by the
            # claim, which only succeeds on a PENDING row.
            current = row
            deadline = None
            if max_late is not None and reply_to is None:  # not a reply to a live part
                deadline = row.due_at + max_late
            if send and current.state is State.UNKNOWN and (look_now or self._due(current)):
                current = self.reconcile(current)
            if send and current.state is State.PENDING and not self._late(current, deadline):
                if self.stopping():
                    break  # not started after SIGTERM: it waits for the next start
                current = self.deliver(current, reply_to, deadline)
            late = current.state is State.PENDING and self._late(current, deadline)
            if late and max_late is not None:
                done.append(self._expire(current, max_late))
                # Later parts cannot go out without this one: they end with it.
                why = f"part {current.part} expired"
                done += [self._expire(r, max_late, why) for r in ordered[index + 1 :]]
                return done
            done.append(current)
            if current.state is not State.POSTED:
                break
            reply_to = _receipt(current, reply_to)
        return done

    def _due(self, row: Row) -> bool:
        return row.retry_at is None or row.retry_at <= self.clock()

    def _late(self, row: Row, deadline: datetime | None) -> bool:
        """Past the window now, or its next try (``retry_at``) would be."""
        if deadline is None:
            return False
        return self.clock() > deadline or (row.retry_at is not None and row.retry_at > deadline)

    def _expire(self, row: Row, max_late: timedelta, why: str | None = None) -> Row:
        now = self.clock()
        window = f"beyond the lateness window of {span(max_late)}"
        if why is not None:
            reason = f"{why}: {window}"
        elif row.retry_at is not None and row.retry_at > row.due_at + max_late >= now:
            reason = (
                f"{row.last_error or 'retry'}: the next try ({row.retry_at:%Y-%m-%d %H:%M:%S} "
                f"UTC) would be {span(row.retry_at - row.due_at)} after its due time, {window}"
            )
        else:
            reason = f"due {span(now - row.due_at)} ago, {window}"
        if self.ledger.transition(row.id, State.EXPIRED, expect=[State.PENDING], error=reason):
            logger.bind(post=row.post_id, account=row.account, part=row.part).warning(
                "publish.expired"
            )
            self.alert(self.ledger.get(row.id), reason)
        return self.ledger.get(row.id)

    def deliver(self, row: Row, reply_to: Receipt | None, deadline: datetime | None = None) -> Row:
        """Claim ``row`` and publish it (replying to ``reply_to``); a repost waits for its
        original first, never past ``deadline`` (the lateness window's end, when one
        applies)."""
        now = self.clock()
        log = logger.bind(post=row.post_id, account=row.account, part=row.part, channel=row.channel)
        if row.attempts >= MAX_ATTEMPTS:
            self._fail(row, [State.PENDING], f"gave up after {row.attempts} attempts")
            return self.ledger.get(row.id)
        original: Row | None = None
        if row.repost_of is not None:
            original = self._original_posted(row, deadline)
            if original is None:  # waiting for it, or ended with it
                return self.ledger.get(row.id)
        claimed = self.ledger.claim(row.id, now)
        if claimed is None:
            log.info("publish.not_claimed")  # another process has it, or retry_at is later
            return self.ledger.get(row.id)
        # The claimed copy, never ``row``: an edit may have refreshed the PENDING row since
        # ``row`` was read, and X must receive what the ledger records.
        try:
            if not self.may_send():  # the lease was lost since the claim: nothing sent
                raise PublishHeld(HELD)
            if original is not None:
                receipt = self._reposter().repost(self._repost_item(claimed, original))
            else:
                item = Outgoing(
                    account=claimed.account,
                    handle=self.handles.get(claimed.account, claimed.account),
                    text=claimed.text,
                    reply_to=reply_to,
                    media=tuple(MediaItem(self.root / m.file, m.alt) for m in claimed.media),
                    key=delivery_key(claimed),
                    lang=claimed.lang,
                    may_send=self.may_send,
                )
                receipt = self.publisher.publish(item)
        except PublishHeld as exc:  # nothing sent: for the replica that holds the lease now
            self.ledger.transition(row.id, State.PENDING, expect=[State.SENDING], error=str(exc))
            log.warning("publish.held")
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
        except PublishByHand as exc:
            return self._task(claimed, exc)
        except (PublishAuthFailed, PublishNoCredits, PublishRejected) as exc:
            self._fail(row, [State.SENDING], str(exc))
            log.bind(error=str(exc)).error("publish.failed")
        except PublishError as exc:
            self._retry_or_fail(row, str(exc))
            log.bind(error=str(exc)).error("publish.error")
        except Exception as exc:  # a defect (ours or a library's), not an answer of X
            # X may have the post (the defect may come after the answer): ambiguous, so
            # looked up before any retry, never left SENDING under a live owner.
            error = f"{UNEXPECTED} ({type(exc).__name__}: {_first_line(exc)})"
            log.opt(exception=exc).bind(error=error).error("publish.crashed")
            if self.ledger.transition(row.id, State.UNKNOWN, expect=[State.SENDING], error=error):
                where = display_name(self.platforms, row.account)
                self.alert(
                    self.ledger.get(row.id),
                    f"{error}: it may be on {where}; looked up on the timeline before any retry",
                )
            return self.reconcile(self.ledger.get(row.id))
        else:
            recorded = self._posted(row, receipt, [State.SENDING])
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

    # -- reposts ---------------------------------------------------------------------------

    def original(self, row: Row) -> Row | None:
        """The original delivery a repost ``row`` reposts, on the repost's channel (None: not
        in the ledger there, or ``row`` is no repost)."""
        found = parse_key(row.repost_of) if row.repost_of else None
        if found is None:
            return None
        post, part, account = found
        return self.ledger.find(post, account, part, row.channel)

    def _original_posted(self, row: Row, deadline: datetime | None = None) -> Row | None:
        """The original of the repost ``row`` once it is POSTED. Before that, None, and the
        repost waits (PENDING, ``retry_at`` a little later, at the latest ``deadline``: no
        busy loop); if the original ended without being posted, the repost ends SKIPPED with
        the original's reason."""
        now = self.clock()
        if row.retry_at is not None and row.retry_at > now:
            return None  # told to wait: not asked again before its time
        original = self.original(row)
        key = row.repost_of or ""
        log = logger.bind(post=row.post_id, account=row.account, original=key)
        if original is not None and original.state is State.POSTED and original.remote_id:
            return original
        reason: str | None = None
        parsed = parse_key(key)
        if parsed is None:
            reason = f"'{key}' names no delivery: a defect to report"
        elif original is None:  # not recorded yet on this channel: on another one?
            post, part, account = parsed
            elsewhere = [
                r for r in self.ledger.rows(post) if r.account == account and r.part == part
            ]
            if elsewhere:
                reason = (
                    f"the original {key} goes out through {elsewhere[0].channel}, this repost "
                    f"through {row.channel}: a repost needs both accounts' credentials set "
                    "(see docs/operations.md, Amplification)"
                )
        elif original.state in ORIGINAL_ENDED:
            why = f": {original.last_error}" if original.last_error else ""
            reason = f"the original {key} ended {original.state}{why}"
        elif original.state is State.POSTED:
            reason = f"the original {key} was recorded without its id on the platform"
        if reason is not None:
            if self.ledger.transition(row.id, State.SKIPPED, expect=[State.PENDING], error=reason):
                log.bind(reason=reason).warning("publish.repost_skipped")
            return None
        state = original.state if original is not None else "not recorded yet"
        wait = repost_wait(max(now - row.due_at, timedelta(0)))
        retry_at = now + wait
        if deadline is not None and retry_at > deadline:
            # Looked at again before the window closes, not expired early for a long wait
            # (within the shortest wait of its end, it expires: the original is that late).
            shortest = REPOST_WAIT[0]
            retry_at = max(now + shortest, deadline - shortest)
        self.ledger.transition(
            row.id,
            State.PENDING,
            expect=[State.PENDING],
            error=f"{WAITING}{key} to be posted (it is {state})",
            retry_at=retry_at,
        )
        log.bind(state=str(state), wait=wait.total_seconds()).info("publish.repost_waits")
        return None

    def _reposter(self) -> Reposter:
        """This channel's publisher as a reposter.

        Raises:
            PublishRejected: its platform cannot repost (the plan gives such accounts a copy).
        """
        if not isinstance(self.publisher, Reposter):
            raise PublishRejected(
                f"{self.publisher.name} cannot repost: a defect to report (the plan gives "
                "accounts on platforms that cannot repost a copy)"
            )
        return self.publisher

    def _repost_item(self, row: Row, original: Row) -> Outgoing:
        """What the reposter is given for the repost ``row`` of ``original`` (POSTED)."""
        return Outgoing(
            account=row.account,
            handle=self.handles.get(row.account, row.account),
            text="",
            key=delivery_key(row),
            lang=row.lang,
            repost_of=Receipt(original.remote_id or "", original.url),
            may_send=self.may_send,
        )

    def remove(self, row: Row) -> None:
        """Take a POSTED ``row`` off its platform (``retract``): delete the post, or undo
        the repost.

        Raises:
            PublishError: the platform did not confirm it.
        """
        if row.remote_id is None:
            return
        if row.repost_of is None:
            self.publisher.delete(row.account, row.remote_id)
            return
        original = self.original(row)
        original_id = original.remote_id if original is not None else None
        self._reposter().unrepost(row.account, row.remote_id, original_id or "")

    def _posted(self, row: Row, receipt: Receipt, expect: Sequence[State]) -> bool:
        """``row`` is on the platform as ``receipt`` (sent, found on the timeline, or found
        when re-armed): POSTED with its id and link, if it is still in one of ``expect``."""
        return self.ledger.transition(
            row.id, State.POSTED, expect=expect, remote_id=receipt.remote_id, url=receipt.url
        )

    def _task(self, row: Row, exc: PublishByHand) -> Row:
        """A manual channel's delivery, claimed: a task for a person until ``exc.until``,
        alerted once with the text and the images to post."""
        where = display_name(self.platforms, row.account)
        handle = self.handles.get(row.account, row.account)
        until = f"{exc.until:%Y-%m-%d %H:%M} UTC"
        reason = (
            f"{TASK}post it by hand on {where} as @{handle} by {until}, then run 'diplobot "
            f"mark-posted {row.post_id} --account {row.account}"
            f"{f' --part {row.part}' if row.part != 1 else ''} --url URL' "
            f"(the text and images: the alert, or 'diplobot status {row.post_id} --format json')"
        )
        if self.ledger.transition(
            row.id, State.UNKNOWN, expect=[State.SENDING], error=reason, retry_at=exc.until
        ):
            logger.bind(post=row.post_id, account=row.account, part=row.part).warning(
                "publish.task"
            )
            images = "".join(
                f"\n- {self.root / m.file}" + (f" (alt: {m.alt})" if m.alt else "")
                for m in row.media
            )
            self.alert(
                self.ledger.get(row.id),
                f"{reason}. If it is already on {where}, only run mark-posted. Text:\n"
                f"{row.text}" + (f"\nImages:{images}" if images else ""),
            )
        return self.ledger.get(row.id)

    def _task_due(self, row: Row) -> Row:
        """An open task: EXPIRED once its window (``retry_at``) has passed, alerted."""
        now = self.clock()
        if row.retry_at is None or now < row.retry_at:
            return row
        where = display_name(self.platforms, row.account)
        reason = (
            f"nobody recorded it as posted on {where} by {row.retry_at:%Y-%m-%d %H:%M} UTC: the "
            f"task expired. If it was posted after all, run 'diplobot mark-posted {row.post_id} "
            f"--account {row.account} --url URL'"
        )
        if self.ledger.transition(row.id, State.EXPIRED, expect=[State.UNKNOWN], error=reason):
            logger.bind(post=row.post_id, account=row.account, part=row.part).warning(
                "publish.task_expired"
            )
            self.alert(self.ledger.get(row.id), reason)
        return self.ledger.get(row.id)

    def _unverifiable(self, row: Row, exc: PublishUnverifiable) -> Row:
        """The channel cannot be searched: UNKNOWN for a person, told once what to check."""
        if (row.last_error or "").startswith(NEEDS_PERSON):
            return row  # told already: nothing happens until a person settles it
        where = display_name(self.platforms, row.account)
        why = f" ({row.last_error})" if row.last_error else ""
        reason = (
            f"{NEEDS_PERSON}{where} cannot be searched, so whether this was published is "
            f"unknown{why}: {exc}; {settle_commands(row)}. It is never sent again by itself"
        )
        if self.ledger.transition(
            row.id, State.UNKNOWN, expect=[State.UNKNOWN], error=reason, retry_at=None
        ):
            logger.bind(post=row.post_id, account=row.account, part=row.part).warning(
                "reconcile.needs_person"
            )
            self.alert(self.ledger.get(row.id), reason)
        return self.ledger.get(row.id)

    def reconcile(self, row: Row, *, duplicate: bool = False) -> Row:
        """UNKNOWN → POSTED if this delivery is on the account's timeline (its text, its
        images, replying to the previous part), else back to PENDING (or FAILED when out of
        attempts). A failed look-up leaves it UNKNOWN (see :meth:`_lookup_failed`); so does
        a channel that cannot be searched, for a person (:meth:`_unverifiable`). A manual
        task is only checked for its expiry."""
        log = logger.bind(post=row.post_id, account=row.account, part=row.part)
        if is_task(row):
            return self._task_due(row)
        if (row.last_error or "").startswith(NEEDS_PERSON):
            return row  # only a person settles it (mark-posted, post-now --resend)
        try:
            found = self.lookup(row)
        except PublishUnverifiable as exc:
            return self._unverifiable(row, exc)
        except PublishError as exc:
            log.bind(error=str(exc)).error("reconcile.failed")
            return self._lookup_failed(row, exc)
        except Exception as exc:  # a defect: never a reason to send again, nor to stop here
            log.opt(exception=exc).error("reconcile.crashed")
            failure = PublishError(f"{type(exc).__name__}: {_first_line(exc)}")
            return self._lookup_failed(row, failure)
        if found is not None:
            self._posted(row, found, [State.UNKNOWN])
            log.bind(remote_id=found.remote_id).info("reconcile.found")
        elif duplicate:
            self._fail(
                row,
                [State.UNKNOWN],
                f"{display_name(self.platforms, row.account)} refused the text as a duplicate of "
                "a recent post, and no such post is on the account's timeline: change the text",
            )
        else:
            self._retry_or_fail(
                row, row.last_error or "not found on the timeline", expect=[State.UNKNOWN]
            )
            log.info("reconcile.absent")
        return self.ledger.get(row.id)

    def lookup(self, row: Row) -> Receipt | None:
        """Is ``row`` on its account's timeline (its text, its images, replying to the
        previous part)? The search of ``reconcile``, also used without changing the ledger
        (``retract``, ``post-now``).

        Raises:
            PublishError: the timeline could not be read.
        """
        since = (row.claimed_at or row.updated_at) - RECONCILE_SLACK
        if row.repost_of is not None:
            original = self.original(row)
            if original is None or original.remote_id is None:
                return None  # never reposted: it is only sent once its original is POSTED
            return self._reposter().find_repost(self._repost_item(row, original), since)
        wanted = Outgoing(
            account=row.account,
            handle=self.handles.get(row.account, row.account),
            text=row.text,
            reply_to=self._previous(row),
            media=tuple(MediaItem(self.root / m.file, m.alt) for m in row.media),
            key=delivery_key(row),
            lang=row.lang,
        )
        return self.publisher.find(wanted, since)

    def _previous(self, row: Row) -> Receipt | None:
        """The receipt of the part ``row`` replies to, rebuilt from the ledger (a later part
        was only ever sent as the reply to the previous part, once POSTED)."""
        if row.part == 1:
            return None
        previous = self.ledger.find(row.post_id, row.account, row.part - 1, row.channel)
        if previous is None or previous.remote_id is None:
            return None
        first = self.ledger.find(row.post_id, row.account, 1, row.channel) if row.part > 2 else None
        root = first.remote_id if first is not None else None
        return Receipt(previous.remote_id, previous.url, root)

    def _lookup_failed(self, row: Row, exc: PublishError) -> Row:
        """UNKNOWN stays UNKNOWN, looked for again later (``retry_at``), alerted once; after
        :data:`UNKNOWN_GIVE_UP`, FAILED with an alert: it is never sent blindly."""
        now = self.clock()
        unknown_for = now - (row.claimed_at or row.updated_at)
        if unknown_for >= UNKNOWN_GIVE_UP:
            handle = self.handles.get(row.account, row.account)
            self._fail(
                row,
                [State.UNKNOWN],
                f"{UNCONFIRMED.format(platform=display_name(self.platforms, row.account))}: "
                f"its timeline could not be read for {span(unknown_for)} ({exc}). "
                f"Check @{handle}, then run 'diplobot post-now {row.post_id} --lang {row.lang}' "
                "(it looks again and sends the post only if it is not there) or "
                f"'diplobot retract {row.post_id} --lang {row.lang}'",
            )
            return self.ledger.get(row.id)
        first = row.retry_at is None  # a failed look-up sets it: the next ones are quiet
        retry_at = now + lookup_wait(unknown_for)
        self.ledger.transition(row.id, State.UNKNOWN, expect=[State.UNKNOWN], retry_at=retry_at)
        if first:
            self.alert(
                row,
                f"still UNKNOWN: could not read the timeline ({exc}); looking again from "
                f"{retry_at:%H:%M} UTC, for up to {span(UNKNOWN_GIVE_UP)}",
            )
        return self.ledger.get(row.id)

    def rearm(self, rows: Sequence[Row], due: datetime) -> list[str]:
        """``post-now`` on rows that ended FAILED, EXPIRED or SKIPPED: each becomes PENDING,
        due ``due``, with at least one attempt left. One that was attempted before may be on X
        (an outcome that was never confirmed), so all such rows are looked up first: found, it
        is recorded POSTED and not sent. Returns a line per row saying what was done.

        Raises:
            PublishError: a look-up failed; nothing was changed.
        """
        found = {row.id: self._ended_lookup(row) for row in rows if row.attempts}
        lines = []
        for row in rows:
            was = f"part {row.part} was {row.state} ({row.last_error or 'no reason'})"
            log = logger.bind(post=row.post_id, account=row.account, part=row.part, was=row.state)
            receipt = found.get(row.id)
            if receipt is not None:
                self._posted(row, receipt, [row.state])
                log.bind(remote_id=receipt.remote_id).info("publish.rearm_found")
                where = display_name(self.platforms, row.account)
                shown = receipt.url or receipt.remote_id
                lines.append(f"{was}: it is on {where} ({shown}): POSTED")
            elif self.ledger.rearm(
                row.id, expect=[row.state], due=due, attempts_at_most=MAX_ATTEMPTS - 1
            ):
                log.info("publish.rearmed")
                lines.append(f"{was}: trying again")
        return lines

    def _ended_lookup(self, row: Row) -> Receipt | None:
        """:meth:`lookup` for a row that ended. On a channel that cannot be searched, None:
        there a row only ends after an outcome that was known (refused, never sent, a task
        that expired); one whose outcome was not known stays UNKNOWN for a person."""
        try:
            return self.lookup(row)
        except PublishUnverifiable:
            return None

    def resend(self, rows: Sequence[Row], due: datetime) -> list[str]:
        """``post-now --resend``: a person checked that these UNKNOWN rows are not on the
        platform (or wants a manual task again): each becomes PENDING, due ``due``, with at
        least one attempt left. Returns a line per row."""
        lines = []
        for row in rows:
            if row.state is not State.UNKNOWN:
                continue
            if self.ledger.rearm(
                row.id, expect=[State.UNKNOWN], due=due, attempts_at_most=MAX_ATTEMPTS - 1
            ):
                logger.bind(post=row.post_id, account=row.account, part=row.part).warning(
                    "publish.resend"
                )
                lines.append(f"part {row.part} was UNKNOWN: sending it again, as asked")
        return lines

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
