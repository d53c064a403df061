"""The pipeline's stages as plain functions: plan → localize → rows → record → deliver.

``diplobot run`` (the service's apply and follow-up), ``post-now``, ``plan`` and ``translate``
all go through these, so each rule lives once:

- :func:`plan`: the pure plan (``bot/schedule/plan.py``), and the one rule for slot pins;
- :func:`localize`: every variant of the posts, text *and* alt texts, translated once;
- :func:`rows`: a pure join of the plan's deliveries (one per part) and the variants into what
  the ledger records, per post and account;
- :func:`record`: puts them in the ledger (already published, HELD on a failed translation,
  re-armed by ``post-now``, removed parts cancelled);
- :func:`deliver`: one post's recorded parts to one account, as a reply chain.

:func:`publish_now` is ``post-now``: the same stages for one post, due now.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from loguru import logger

from bot.content.types import ContentSet, PostEntry
from bot.errors import PublishError
from bot.platforms import Limits, platform
from bot.publish.deliver import REARMABLE, display_name
from bot.publish.session import Publishing
from bot.schedule import plan as planning
from bot.source import head_commit
from bot.state.ledger import FINAL, MediaRef, NewDelivery, Row, State
from bot.state.pins import Pins
from bot.text.entities import has_url
from bot.text.split import join_parts
from bot.translate.localize import Variant
from bot.translate.localize import localize as localize  # the stage itself, text and alt texts

Revision = tuple[str | None, str | None]
"""The git commit and author the content came from (recorded with every row)."""

# -- plan ----------------------------------------------------------------------------------


def plan(
    content: ContentSet,
    now: datetime,
    days: int,
    pins: Pins | None,
    *,
    since: datetime | None = None,
    save: bool = True,
    memo: planning.PlanMemo | None = None,
) -> planning.Plan:
    """The plan from ``now`` (see :func:`bot.schedule.plan.plan`), with the slot occurrences
    given earlier (``pins``). ``save``: keep the occurrences it gave, and forget those of posts
    gone or moved out of their slot (a preview saves nothing). ``memo``: kept by the service
    across revisions (see :class:`bot.schedule.plan.PlanMemo`)."""
    pinned = pins.load() if pins is not None else {}
    result = planning.plan(content, now, days, pinned=pinned, since=since, memo=memo)
    if pins is not None and save and (result.new_pins or set(pinned) - set(result.pins)):
        pins.save(result.pins, keep=set(result.pins))
    return result


def due_now(
    content: ContentSet, entry: PostEntry, accounts: Iterable[str], now: datetime
) -> list[planning.Delivery]:
    """``post-now``'s deliveries: every part of ``entry`` on ``accounts``, due ``now``; an
    account that amplifies ``entry`` by repost gets its repost (it waits for its original)."""
    out = []
    for account in accounts:
        target = content.target_of(entry, account)
        if target is not None and target.repost_of is not None:
            out.append(
                planning.Delivery(
                    post=entry.id,
                    account=account,
                    lang=content.accounts.accounts[account].lang,
                    part=1,
                    parts=1,
                    due=now,
                    source="human",
                    slot=entry.slot,
                    repost_of=f"{entry.id}#1@{target.repost_of}",
                )
            )
            continue
        lang = content.accounts.accounts[account].lang
        where = content.accounts.accounts[account].platform
        parts = entry.parts_for(where)
        for part in range(1, parts + 1):
            human = entry.human_text(lang, part - 1, where)
            source = (
                human if human is not None else entry.human_text(entry.post.lang, part - 1, where)
            )
            out.append(
                planning.Delivery(
                    post=entry.id,
                    account=account,
                    lang=lang,
                    part=part,
                    parts=parts,
                    due=now,
                    source="human" if human is not None else "machine",
                    slot=entry.slot,
                    has_url=has_url(source or ""),
                )
            )
    return out


# -- rows ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AccountRows:
    """What the ledger gets for one post on one account; ``due``: its first part's time."""

    post: str
    account: str
    channel: str
    due: datetime
    rows: tuple[NewDelivery, ...] = ()  # one per published post: a split text adds rows
    refused: str | None = None  # why it cannot go now (then ``rows`` is empty)
    # Refused only because a translation failed (worth trying again): the rows to hold in
    # the ledger meanwhile (one per part, no text yet), and why.
    held: tuple[NewDelivery, ...] = ()
    held_reason: str = ""


def rows(
    content: ContentSet,
    deliveries: Iterable[planning.Delivery],
    variants: Sequence[Variant],
    channel_of: Mapping[str, str],
    commit: Revision = (None, None),
) -> list[AccountRows]:
    """Join the plan's deliveries (post × account × part) with the variants (post × language ×
    platform × part): one :class:`AccountRows` per post and account, in the plan's order.
    Images go with the first row of their part, with the variant's alt texts. On a platform
    without reply chains (``threads="join"``) a thread is one post when its parts, joined,
    fit it; else each part is a post of its own, in order. Pure."""
    by_part = {(v.post, v.lang, v.part, v.platform, v.glossary): v for v in variants}
    groups: dict[tuple[str, str], list[planning.Delivery]] = {}
    for d in deliveries:
        if d.repost_of is not None:
            continue  # a repost has no text: :func:`repost_rows` records it
        groups.setdefault((d.post, d.account), []).append(d)
    out = []
    for (post_id, account), parts in groups.items():
        parts.sort(key=lambda d: d.part)
        lang, due, channel = parts[0].lang, parts[0].due, channel_of[account]
        where = platform(content.accounts.accounts[account].platform)
        owner = content.glossary_owner(account)  # a mission's glossary, or the central

        # Every row of this post and account but its part, text and images.
        base = NewDelivery(
            post_id=post_id,
            account=account,
            part=0,
            channel=channel,
            lang=lang,
            due_at=due,
            text="",
            revision=commit[0],
            author=commit[1],
        )
        joined = [
            (d, v)
            for d in parts
            # A variant made for no platform in particular ("") serves every platform.
            if (
                v := by_part.get(
                    (post_id, lang, d.part, where.name, owner),
                    by_part.get((post_id, lang, d.part, "", owner)),
                )
            )
            is not None
        ]
        found = [v for _d, v in joined]
        if not found:
            out.append(
                AccountRows(
                    post_id, account, channel, due, refused=f"the post is not published in '{lang}'"
                )
            )
            continue
        not_ready = [v for v in found if v.state != "ready"]
        if not_ready:
            v = not_ready[0]
            held: tuple[NewDelivery, ...] = ()
            reason = ""
            if all(n.state == "failed" for n in not_ready):
                held = tuple(replace(base, part=d.part, due_at=d.due) for d, _v in joined)
                why = v.reason.removesuffix(" (will retry)")
                reason = f"awaiting translation into {lang}: {why}"
            out.append(
                AccountRows(
                    post_id,
                    account,
                    channel,
                    due,
                    refused=f"part {v.part} in {lang} is {v.state}: {v.reason}",
                    held=held,
                    held_reason=reason,
                )
            )
            continue
        entry = content.posts[post_id]
        made: list[NewDelivery] = []
        for d, v in joined:
            media = entry.media_of(v.part - 1, where.name)
            refs = tuple(
                MediaRef(f"{entry.home}/{m.file}", alt)
                for m, alt in zip(media, v.alts, strict=True)
            )
            for i, text in enumerate(v.texts):
                made.append(
                    replace(
                        base,
                        part=len(made) + 1,
                        due_at=d.due,  # each part at its own instant (the same today)
                        text=text,
                        media=refs if i == 0 else (),
                    )
                )
        if where.limits.threads == "join" and len(made) > 1:
            made = joined_thread(made, where.limits) or made
        out.append(AccountRows(post_id, account, channel, due, rows=tuple(made)))
    return out


def repost_rows(
    deliveries: Iterable[planning.Delivery],
    channel_of: Mapping[str, str],
    commit: Revision = (None, None),
) -> list[AccountRows]:
    """The plan's reposts (``Delivery.repost_of`` set; :func:`rows` leaves them out) as what
    the ledger gets: one row each, part 1, no text, ``repost_of`` the original's delivery
    key. It is published once the original is POSTED (``bot/publish/deliver.py``). Pure."""
    out = []
    for d in deliveries:
        if d.repost_of is None:
            continue
        channel = channel_of[d.account]
        row = NewDelivery(
            post_id=d.post,
            account=d.account,
            part=1,
            channel=channel,
            lang=d.lang,
            due_at=d.due,
            text="",
            revision=commit[0],
            author=commit[1],
            repost_of=d.repost_of,
        )
        out.append(AccountRows(d.post, d.account, channel, d.due, rows=(row,)))
    return out


def joined_thread(parts: Sequence[NewDelivery], limits: Limits) -> list[NewDelivery] | None:
    """A thread's rows as the one row of a post that joins them, or None when the joined text
    or its images do not fit one post (then each part goes out as a post of its own)."""
    text = join_parts([p.text for p in parts])
    media = tuple(m for p in parts for m in p.media)
    if len(media) > limits.media or limits.count(text) > limits.text_limit(bool(media)):
        return None
    return [replace(parts[0], part=1, text=text, media=media)]


# -- record --------------------------------------------------------------------------------


def _ended(row: Row) -> bool:
    """In a final state that recording the post again does not reopen (a cancellation
    because the post had gone does: see ``Ledger.ensure``)."""
    reopened = (
        row.state is State.RETRACTED
        and row.remote_id is None
        and (row.last_error or "").startswith("cancelled:")
    )
    return row.state in FINAL and not reopened


def record(
    pub: Publishing,
    item: AccountRows,
    removed: MutableMapping[int, str],
    *,
    alert_held: bool = True,
    hold_until: datetime | None = None,
    rearm: dict[str, list[str]] | None = None,
) -> str | None:
    """Put ``item`` in the ledger (text stored before any attempt); parts no longer in the
    post are cancelled. Returns why the account will not get it now, or None.

    ``removed``: rows never to be sent (row id → why); a dropped part that may already be on
    the platform is added, a part back in the post taken out.

    ``hold_until``: when the translation failed, HELD rows (awaiting translation, next try at
    ``hold_until``) instead of nothing; the reason starts with "awaiting translation".
    Without it (``post-now``), the account is only refused.

    ``rearm`` (``post-now``): deliveries that ended FAILED, EXPIRED or SKIPPED are made ready
    again (see :meth:`Deliverer.rearm`) before the current text is stored; what was done is
    listed there per account."""
    account, channel = item.account, item.channel
    existing = [r for r in pub.ledger.rows(item.post, channel=channel) if r.account == account]
    if existing and all(r.state is State.POSTED for r in existing):
        first = min(existing, key=lambda r: r.part)
        return (
            f"already published on {first.updated_at:%Y-%m-%d %H:%M} UTC"
            f" ({first.url or first.remote_id}); nothing sent"
        )
    refused = item.refused
    # A thread already under way resumes from its recorded rows, even if refused now.
    resuming = refused is not None and any(r.state is State.POSTED for r in existing)
    if refused is not None and not resuming:
        if hold_until is not None and item.held:
            if existing and all(_ended(r) for r in existing):
                return "ended: its deliveries are in a final state"  # expired while waiting
            pub.ledger.hold(item.held, item.held_reason, hold_until)
            drop_parts(pub, existing, len(item.held), removed)
            return item.held_reason
        if alert_held:
            pub.notifier.held(item.post, account, refused)
        return f"not published: {refused}"
    ended = [r for r in existing if r.state in REARMABLE]
    if rearm is not None and ended:
        try:
            rearm[account] = pub.deliverers[channel].rearm(ended, item.due)
        except PublishError as exc:
            where = display_name(pub.platforms, account)
            return (
                f"nothing sent: it may be on {where} from an earlier attempt, and the "
                f"timeline could not be read to check ({exc}); try again later"
            )
    if not resuming:
        pub.ledger.ensure(item.rows)  # re-armed rows get the current text too
        drop_parts(pub, existing, len(item.rows), removed)
    return None


def drop_parts(
    pub: Publishing, existing: list[Row], keep: int, removed: MutableMapping[int, str]
) -> None:
    """Cancel the recorded parts after the first ``keep``: the post has fewer parts now.
    One already SENDING or UNKNOWN may be on the platform: never sent again, it is left
    for the service to settle (in ``removed``)."""
    for row in existing:
        if row.part <= keep:
            removed.pop(row.id, None)  # in the post again
            continue
        reason = f"part {row.part} was removed from the post"
        if row.state in (State.SENDING, State.UNKNOWN):
            removed[row.id] = reason
        elif row.state in (State.PENDING, State.HELD) and pub.ledger.transition(
            row.id, State.RETRACTED, expect=[row.state], error=f"cancelled: {reason}"
        ):
            logger.bind(post=row.post_id, account=row.account, part=row.part).info(
                "delivery.cancelled"
            )


# -- deliver -------------------------------------------------------------------------------


def deliver(
    pub: Publishing,
    post_id: str,
    account: str,
    rows: Sequence[Row] | None = None,
    *,
    removed: Mapping[int, str] | None = None,
    max_late: timedelta | None = None,
    look_now: bool = False,
) -> list[Row]:
    """Deliver the recorded parts of one post to one account, as a reply chain. ``rows``:
    the parts as just read when they run from the first on without a gap (else, or when
    not given, they are read here). ``removed``: rows never to be sent. ``max_late``,
    ``look_now``: see :meth:`Deliverer.deliver_chain`."""
    rows = _chain(pub, post_id, account, rows)
    # What was removed from the content is never sent, even if a row of it is still open.
    if removed:
        rows = [r for r in rows if r.id not in removed]
    if not rows:
        return []
    deliverer = pub.deliverers[pub.channel_of[account]]
    done = deliverer.deliver_chain(rows, max_late=max_late, look_now=look_now)
    shown = {r.id for r in done}
    # Parts after one that did not go out are still PENDING: report them too.
    result = done + [pub.ledger.get(r.id) for r in rows if r.id not in shown]
    logger.bind(post=post_id, account=account, states=[str(r.state) for r in result]).info(
        "post.delivered"
    )
    return result


def hold(
    pub: Publishing, post_id: str, account: str, rows: Sequence[Row], max_late: timedelta
) -> None:
    """A paused account's chain: nothing is sent, but the lateness window still applies."""
    rows = _chain(pub, post_id, account, rows)
    pub.deliverers[pub.channel_of[account]].deliver_chain(rows, max_late=max_late, send=False)


def _chain(
    pub: Publishing, post_id: str, account: str, rows: Sequence[Row] | None
) -> Sequence[Row]:
    if rows is None or sorted(r.part for r in rows) != list(range(1, len(rows) + 1)):
        channel = pub.channel_of[account]
        rows = [r for r in pub.ledger.rows(post_id, channel=channel) if r.account == account]
    return rows


# -- post-now ------------------------------------------------------------------------------


@dataclass
class AccountResult:
    account: str
    rows: list[Row] = field(default_factory=list)
    message: str = ""
    rearmed: list[str] = field(default_factory=list)  # what post-now did with ended rows

    @property
    def ok(self) -> bool:
        return bool(self.rows) and all(r.state is State.POSTED for r in self.rows)


def publish_now(
    pub: Publishing, content: ContentSet, entry: PostEntry, accounts: list[str]
) -> list[AccountResult]:
    """``post-now``: record ``entry`` for ``accounts`` as due now, and deliver it. What is
    already POSTED on an account is not sent again; the result says so. What ended
    FAILED, EXPIRED or SKIPPED is tried again; a thread resumes from its last posted part.
    No lateness window, and UNKNOWN rows are looked up now: a person asked for it."""
    now = datetime.now(UTC)
    pub.recover(now)
    loc = localize(
        content, pub.translator, pub.cache, post_ids=[entry.id], parallel=pub.translate_parallel
    )
    due = due_now(content, entry, accounts, now)
    commit = head_commit(content.root)
    planned = rows(
        content, [d for d in due if d.repost_of is None], loc.variants, pub.channel_of, commit
    ) + repost_rows(due, pub.channel_of, commit)
    rearmed: dict[str, list[str]] = {}
    removed: dict[int, str] = {}
    why = {item.account: record(pub, item, removed, rearm=rearmed) for item in planned}
    results = []
    reposting = {item.account for item in planned if any(r.repost_of for r in item.rows)}
    # Reposts after the posts they repost: each waits for its original to be POSTED.
    for account in sorted(accounts, key=lambda a: a in reposting):
        result = AccountResult(account, rearmed=rearmed.get(account, []))
        results.append(result)
        message = why.get(account)
        if message is not None:
            result.message = message
            continue
        # A person asked for it: the service's next apply must neither move it back to
        # the post's planned time nor cancel it because the post is a draft.
        channel = pub.channel_of[account]
        pub.ledger.arm_by_hand(
            r.id
            for r in pub.ledger.rows(entry.id, channel=channel)
            if r.account == account and r.state in (State.PENDING, State.UNKNOWN)
        )
        result.rows = deliver(pub, entry.id, account, removed=removed, look_now=True)
        for row in result.rows:
            # X made it wait (429, back-off): it is due when X allows it, so the running
            # service sends it then, with its lateness window counted from that moment.
            if row.state is State.PENDING and row.retry_at and row.retry_at > row.due_at:
                pub.ledger.reschedule(row.id, row.retry_at)
    return results
