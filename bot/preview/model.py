"""What the preview shows, built from the content, the plan and the variants. Pure: no file is
read, nothing is translated here (``site.py`` runs the stages and hands their results in).

- The **calendar**: weeks (Monday first) × accounts; each delivery in the local day and at the
  local time of its account's zone, with the zone's UTC offset, a day where the clocks change
  marked; blackouts and pauses shade the days they cover; held posts (awaiting translation,
  review, or a human fix) are set apart in the cells and listed; drafts listed apart.
- A **card per variant per account**, as its platform would show it: the handle, the text of
  each part in order (split into paragraphs, each drawn ``dir="auto"``; links, mentions and
  hashtags marked; the part past the platform's limit marked where the platform would cut it),
  the count against the limit as the platform counts, the images with their alt texts, where
  the text comes from, and the problems of the post with their ``file:line``.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from bot.content.timeparse import parse_local, zone
from bot.content.types import ContentSet, PostEntry
from bot.errors import Problem
from bot.platforms import platform_of
from bot.schedule.diff import ScheduleDiff
from bot.schedule.plan import Delivery, Plan
from bot.text.length import normalize
from bot.text.protect import entity_spans
from bot.text.split import join_parts

if TYPE_CHECKING:
    from bot.translate.localize import Variant

RTL = frozenset({"ar", "arc", "ckb", "dv", "fa", "he", "ku", "ps", "sd", "ug", "ur", "yi"})
"""Languages written right to left (their ISO 639 codes)."""

# -- the cards -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Piece:
    """A run of a text drawn one way: ``kind`` is "" (plain), url, mention, hashtag or
    cashtag; ``over``: past the platform's limit (it would be cut there)."""

    text: str
    kind: str = ""
    over: bool = False


@dataclass(frozen=True, slots=True)
class Text:
    """One post's text as its platform counts it."""

    paragraphs: tuple[tuple[Piece, ...], ...]
    count: int
    limit: int
    limit_name: str  # "text" or "caption"

    @property
    def over(self) -> bool:
        return self.count > self.limit


@dataclass(frozen=True, slots=True)
class Image:
    file: str  # relative to content/ (a mission's post: its folder), as the post names it
    alt: str | None
    home: str = "content"  # the folder the post's media paths are relative to

    @property
    def src(self) -> str:
        """Where the site has it (relative to its root): its path in content/, normalised
        (the loader keeps it inside content/, so no ``..`` is left)."""
        return "files/" + self.path.removeprefix("content/")

    @property
    def path(self) -> str:
        """Its path from the content root, normalised (``content/media/x.png``): the loader
        keeps it inside content/, so no ``..`` is left."""
        return posixpath.normpath(posixpath.join(self.home, self.file.replace("\\", "/")))


@dataclass(frozen=True, slots=True)
class CardPart:
    """One part of a thread (the post itself is part 1); a text split to fit has several."""

    number: int
    texts: tuple[Text, ...]
    images: tuple[Image, ...]
    # No text yet (awaiting translation): the editor's text it will be translated from.
    pending: Text | None = None
    pending_lang: str = ""


@dataclass(frozen=True, slots=True)
class Card:
    """One post's variant as one account publishes it."""

    post: str
    account: str
    handle: str
    platform: str  # its display name
    lang: str
    zone: str
    due: datetime | None  # local, in the account's zone; None for a draft or beyond the window
    status: str  # scheduled, paused, blackout, draft, later
    note: str
    source: str  # human, machine, machine awaiting review, awaiting translation, held
    reason: str  # why it is held or awaits something ("" when ready)
    parts: tuple[CardPart, ...]
    # On a platform without reply chains: "joined" (the parts go out as one post, drawn so),
    # "apart" (joined they do not fit: each part is a post of its own), "" (a reply chain).
    joined: str
    warnings: tuple[str, ...]  # plan warnings about this post on this account
    own_version: bool = False  # the post has a version of its own for this platform

    @property
    def ready(self) -> bool:
        return not self.reason

    @property
    def direction(self) -> str:
        """The card's layout, as the platform's app in the account's language draws it (each
        paragraph then takes the direction of its own first letter: ``dir="auto"``)."""
        return "rtl" if self.lang.split("-")[0].lower() in RTL else "ltr"

    @property
    def over(self) -> bool:
        return any(t.over for p in self.parts for t in p.texts)


@dataclass(frozen=True, slots=True)
class PostPage:
    id: str
    page: str  # file name of its page
    path: str  # its file in the repository
    lang: str
    when: str  # publish_at, "slot NAME" or "draft"
    cards: tuple[Card, ...]
    problems: tuple[Problem, ...]  # the loader's warnings about its file, with file:line
    changed: bool = False


# -- the calendar --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Item:
    """One post in a calendar cell."""

    post: str
    page: str
    time: str  # local HH:MM
    offset: str  # the zone's UTC offset then, e.g. UTC+01:00
    status: str  # scheduled, paused, blackout
    held: str  # "" or why it waits (awaiting translation, review, held)
    parts: int


@dataclass(frozen=True, slots=True)
class Cell:
    day: date
    items: tuple[Item, ...] = ()
    outside: bool = False  # before or after the preview's window in this account's zone
    blackout: str = ""
    paused: str = ""
    clocks: str = ""  # "UTC+02:00 → UTC+01:00" on the day the clocks change


@dataclass(frozen=True, slots=True)
class AccountRow:
    account: str
    handle: str
    platform: str
    lang: str
    zone: str
    cells: tuple[Cell, ...]


@dataclass(frozen=True, slots=True)
class Week:
    monday: date
    days: tuple[date, ...]
    rows: tuple[AccountRow, ...]


@dataclass(frozen=True, slots=True)
class Preview:
    start: datetime  # UTC
    end: datetime
    days: int
    revision: str | None
    weeks: tuple[Week, ...]
    posts: tuple[PostPage, ...]  # the pages, in time order, then drafts
    held: tuple[tuple[str, str, str], ...]  # (post, page, why) of posts set apart
    drafts: tuple[tuple[str, str], ...]  # (post, page)
    warnings: tuple[str, ...]  # plan warnings not about one post
    problems: tuple[Problem, ...]  # the loader's warnings about files without a page
    diff: ScheduleDiff | None = None
    since: str | None = None  # the REF of --changed-since
    accounts: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # id → (handle, where)
    pages_of: Mapping[str, str] = field(default_factory=dict)  # post → its page


def page_name(post_id: str) -> str:
    """A file name for a post's page: readable, and distinct for distinct ids (``a/b`` and
    ``a_b`` both become ``a_b``: the hash keeps them apart)."""
    slug = re.sub(r"[^A-Za-z0-9._-]", "_", post_id)[:80]
    digest = hashlib.sha1(post_id.encode("utf-8")).hexdigest()[:6]
    return f"post-{slug}-{digest}.html"


# -- text ----------------------------------------------------------------------------------


def cut_at(text: str, count: Callable[[str], int], limit: int) -> int:
    """The index in ``text`` where a platform counting with ``count`` would cut it to fit
    ``limit`` (``len(text)`` when it fits): the longest prefix that fits."""
    if count(text) <= limit:
        return len(text)
    low, high = 0, len(text)  # count(text[:low]) fits; text[:high] does not
    while high - low > 1:
        middle = (low + high) // 2
        if count(text[:middle]) <= limit:
            low = middle
        else:
            high = middle
    return low


def pieces(text: str, cut: int) -> tuple[tuple[Piece, ...], ...]:
    """``text`` as paragraphs (one per line) of pieces: entities marked, what lies past
    ``cut`` marked over the limit."""
    runs: list[tuple[int, int, str]] = []
    at = 0
    for start, end, kind in entity_spans(text):
        if kind not in ("url", "mention", "hashtag", "cashtag"):
            continue
        if start > at:
            runs.append((at, start, ""))
        runs.append((start, end, kind))
        at = end
    if at < len(text):
        runs.append((at, len(text), ""))
    paragraphs: list[list[Piece]] = [[]]
    for start, end, kind in runs:
        bounds = [(start, min(end, cut), False), (max(start, cut), end, True)]
        for a, b, over in bounds:
            if a >= b:
                continue
            lines = text[a:b].split("\n")
            for i, line in enumerate(lines):
                if i:
                    paragraphs.append([])
                if line:
                    paragraphs[-1].append(Piece(line, kind, over))
    return tuple(tuple(p) for p in paragraphs if p)


def measure_text(text: str, count: Callable[[str], int], limit: int, limit_name: str) -> Text:
    text = normalize(text)
    cut = cut_at(text, count, limit)
    return Text(pieces(text, cut), count(text), limit, limit_name)


def source_of(variants: Sequence[Variant]) -> tuple[str, str]:
    """Where a variant's text comes from, as the card says it, and why it waits (or "")."""
    waiting = [v for v in variants if v.state != "ready"]
    origins = {v.origin for v in variants}
    if any(v.state == "failed" for v in waiting):
        failed = next(v for v in waiting if v.state == "failed")
        return "awaiting translation", failed.reason.removesuffix(" (will retry)")
    if any(v.state == "held" for v in waiting):
        held = next(v for v in waiting if v.state == "held")
        return "held", held.reason
    if waiting:  # review
        return "machine, awaiting review", waiting[0].reason
    if origins == {"human"}:
        return "human", ""
    if "human" in origins:
        return "human and machine", ""
    return "machine", ""


# -- the builder ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Window:
    start: datetime
    end: datetime


def _local_days(window: _Window, tz: ZoneInfo) -> list[date]:
    first = window.start.astimezone(tz).date()
    last = (window.end - timedelta(microseconds=1)).astimezone(tz).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _offset(moment: datetime) -> str:
    delta = moment.utcoffset() or timedelta(0)
    minutes = int(delta.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    hours, rest = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours:02d}:{rest:02d}"


def _day_bounds(day: date, tz: ZoneInfo) -> tuple[datetime, datetime]:
    start = datetime(day.year, day.month, day.day, tzinfo=tz)
    nxt = day + timedelta(days=1)
    end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=tz)
    return start.astimezone(UTC), end.astimezone(UTC)


def _blackouts(
    content: ContentSet, mission: str
) -> list[tuple[datetime, datetime, frozenset[str] | None, str]]:
    """``mission``'s blackouts (each mission's slots.yaml holds its own accounts)."""
    found = []
    for b in content.slots_of(mission).blackouts:
        tz = zone(b.timezone) if b.timezone else content.zone_of(mission)
        accounts = frozenset(b.accounts) if b.accounts is not None else None
        found.append((parse_local(b.from_, tz), parse_local(b.until, tz), accounts, b.reason))
    return found


def _when(entry: PostEntry) -> str:
    if entry.post.publish_at is not None:
        return f"publish_at {entry.post.publish_at}"
    if entry.slot is not None:
        return f"slot {entry.slot}"
    return "draft"


def build(
    content: ContentSet,
    plan: Plan,
    variants: Iterable[Variant],
    *,
    only: set[str] | None = None,
    diff: ScheduleDiff | None = None,
    since: str | None = None,
    revision: str | None = None,
    days: int | None = None,
    mission: str | None = None,
) -> Preview:
    """The preview of ``plan`` (made from ``content``) with the ``variants`` localize gave.
    ``only``: the posts to show (``--changed-since``); ``diff``: the schedule's changes."""
    window = _Window(plan.start, plan.end)
    by_variant: dict[tuple[str, str, str, str], list[Variant]] = defaultdict(list)
    for v in variants:
        by_variant[(v.post, v.lang, v.platform, v.glossary)].append(v)
    for found in by_variant.values():
        found.sort(key=lambda v: v.part)
    # ``mission`` (``--mission``): its accounts' cards and calendar rows only.
    accounts = content.accounts.accounts if mission is None else content.accounts_of(mission)
    firsts = [d for d in plan.deliveries if d.part == 1 and (only is None or d.post in only)]
    shown_posts = list(dict.fromkeys(d.post for d in firsts))
    drafts = sorted(p for p in plan.drafts if only is None or p in only)
    if only is not None:  # changed posts planned beyond the window still get their page
        shown_posts += sorted(p for p in only if p in content.posts and p not in shown_posts)
        shown_posts = [p for p in shown_posts if p not in drafts]
    pages_of = {p: page_name(p) for p in [*shown_posts, *drafts]}
    first_of = {(d.post, d.account): d for d in firsts}

    def variants_for(post: str, account_id: str) -> list[Variant]:
        """The variants ``account_id`` publishes: its platform's, else those made for no
        platform in particular (as ``bot.pipeline.rows`` joins them)."""
        account = accounts[account_id]
        owner = content.glossary_owner(account_id)
        return by_variant.get((post, account.lang, account.platform, owner)) or by_variant.get(
            (post, account.lang, "", owner), []
        )

    def held_reason(post: str, account_id: str) -> str:
        source, reason = source_of(variants_for(post, account_id))
        if not reason:
            return ""
        return f"{source}: {reason}" if source != "held" else reason

    # The calendar.
    all_days = sorted({d for a in accounts for d in _local_days(window, content.account_zone(a))})
    blackouts_of = {name: _blackouts(content, name) for name in content.missions} or {
        content.central: _blackouts(content, content.central)
    }
    cells: dict[tuple[str, date], list[Item]] = defaultdict(list)
    for d in firsts:
        tz = content.account_zone(d.account)
        local = d.due.astimezone(tz)
        cells[(d.account, local.date())].append(
            Item(
                d.post,
                pages_of[d.post],
                f"{local:%H:%M}",
                _offset(local),
                d.status,
                held_reason(d.post, d.account),
                d.parts,
            )
        )
    weeks: list[Week] = []
    if all_days:
        monday = all_days[0] - timedelta(days=all_days[0].weekday())
        while monday <= all_days[-1]:
            week_days = tuple(monday + timedelta(days=i) for i in range(7))
            rows = []
            for account_id, account in accounts.items():
                tz = content.account_zone(account_id)
                own = set(_local_days(window, tz))
                home = content.mission_of(account_id)
                blackouts = blackouts_of.get(home, [])
                pause = content.slots_of(home).pause
                where = content.missions[home].layout.slots if home in content.missions else ""
                pause_note = pause.reason or f"paused in {where or 'schedules/slots.yaml'}"
                row_cells = []
                for day in week_days:
                    start, end = _day_bounds(day, tz)
                    blackout = next(
                        (
                            reason
                            for a, b, which, reason in blackouts
                            if a < end and b > start and (which is None or account_id in which)
                        ),
                        "",
                    )
                    paused = pause_note if pause.all or account_id in pause.accounts else ""
                    before, after = _offset(start.astimezone(tz)), _offset(end.astimezone(tz))
                    row_cells.append(
                        Cell(
                            day,
                            tuple(cells.get((account_id, day), ())),
                            outside=day not in own,
                            blackout=blackout,
                            paused=paused,
                            clocks=f"{before} → {after}" if before != after else "",
                        )
                    )
                rows.append(
                    AccountRow(
                        account_id,
                        account.handle,
                        platform_of(account).display,
                        account.lang,
                        tz.key,
                        tuple(row_cells),
                    )
                )
            weeks.append(Week(monday, week_days, tuple(rows)))
            monday += timedelta(days=7)

    # The cards.
    warnings_of: dict[str, list[tuple[str | None, str]]] = defaultdict(list)
    general: list[str] = []
    for w in plan.warnings:
        if w.post is not None:
            warnings_of[w.post].append((w.account, f"{w.kind}: {w.message}"))
        else:
            general.append(f"{w.kind}: {w.message}")
    problems_of: dict[str, list[Problem]] = defaultdict(list)
    for p in content.warnings:
        problems_of[p.path].append(p)
    pages: list[PostPage] = []
    held: list[tuple[str, str, str]] = []
    for post_id in [*shown_posts, *drafts]:
        entry = content.posts[post_id]
        cards = []
        publishers = content.publishers_of(entry)
        for account_id, _account in accounts.items():
            if account_id not in publishers:
                continue
            found = variants_for(post_id, account_id)
            if not found:
                continue
            cards.append(
                _card(
                    content,
                    entry,
                    account_id,
                    found,
                    first_of.get((post_id, account_id)),
                    [m for a, m in warnings_of.get(post_id, []) if a in (None, account_id)],
                )
            )
        for card in cards:
            if card.reason:
                held.append((post_id, pages_of[post_id], f"{card.lang}: {card.reason}"))
                break
        pages.append(
            PostPage(
                post_id,
                pages_of[post_id],
                entry.path,
                entry.post.lang,
                _when(entry),
                tuple(cards),
                tuple(problems_of.pop(entry.path, ())),
                changed=only is not None,
            )
        )
    rest = tuple(p for found in problems_of.values() for p in found)
    return Preview(
        plan.start,
        plan.end,
        days if days is not None else round((plan.end - plan.start).total_seconds() / 86400),
        revision,
        tuple(weeks),
        tuple(pages),
        tuple(held),
        tuple((p, pages_of[p]) for p in drafts),
        tuple(general),
        rest,
        diff,
        since,
        {
            a: (acct.handle, f"{platform_of(acct).display}, {acct.lang}")
            for a, acct in accounts.items()
        },
        pages_of,
    )


def _card(
    content: ContentSet,
    entry: PostEntry,
    account_id: str,
    found: list[Variant],
    first: Delivery | None,
    warnings: list[str],
) -> Card:
    account = content.accounts.accounts[account_id]
    where = platform_of(account)
    limits = where.limits
    tz = content.account_zone(account_id)
    parts = []
    for v in found:
        media = entry.media_of(v.part - 1, account.platform)
        images = tuple(
            Image(
                m.file,
                v.alts[i] if i < len(v.alts) else (m.alt if isinstance(m.alt, str) else None),
                entry.home,
            )
            for i, m in enumerate(media)
        )
        caption = bool(images) and limits.caption is not None
        limit = limits.text_limit(bool(images))
        pending = None
        if not v.texts:
            source = entry.human_text(entry.post.lang, v.part - 1, account.platform) or ""
            pending = measure_text(source, limits.count, limit, "caption" if caption else "text")
        parts.append(
            CardPart(
                v.part,
                tuple(
                    measure_text(t, limits.count, limit, "caption" if caption else "text")
                    for t in v.texts
                ),
                images,
                pending,
                entry.post.lang if pending is not None else "",
            )
        )
    joined = ""
    texts = [t for v in found for t in v.texts]
    if limits.threads == "join" and len(texts) > 1 and all(v.texts for v in found):
        # As bot.pipeline.joined_thread publishes it: one post when it fits, else apart.
        whole = join_parts(texts)
        images = tuple(i for p in parts for i in p.images)
        limit = limits.text_limit(bool(images))
        if len(images) <= limits.media and limits.count(whole) <= limit:
            name = "caption" if images and limits.caption is not None else "text"
            parts = [CardPart(1, (measure_text(whole, limits.count, limit, name),), images)]
            joined = "joined"
        else:
            joined = "apart"
    source, reason = source_of(found)
    status: str
    if first is not None:
        due: datetime | None = first.due.astimezone(tz)
        status, note = first.status, first.note
    elif entry.is_draft:
        due, status, note = None, "draft", "a draft: only 'diplobot post-now' publishes it"
    else:
        due, status, note = None, "later", "not due in the preview's window"
    return Card(
        entry.id,
        account_id,
        account.handle,
        where.display,
        account.lang,
        tz.key,
        due,
        status,
        note,
        source,
        reason,
        tuple(parts),
        joined,
        tuple(warnings),
        entry.version(account.platform) is not None,
    )
