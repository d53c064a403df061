"""Plan: content + clock (+ the slot occurrences already pinned) → deliveries. A pure function.

A *delivery* is one part of one post for one account at one instant. Posts with ``publish_at``
go out at that instant on every account. Posts with ``slot:`` take the next free occurrence of
their slot; an occurrence already given to a post stays that post's (``pinned``), so adding a
post never moves another. Blackouts hold deliveries (slot posts skip blacked-out occurrences);
a pause keeps deliveries waiting. Nothing here reads files, the network or the ledger.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from bot.content.languages import primary
from bot.content.missions import Target
from bot.content.model import DAYS
from bot.content.timeparse import parse_local, resolve_recurring, zone
from bot.content.types import ContentSet, PostEntry
from bot.platforms import platform, platform_of
from bot.text.entities import has_url
from bot.text.split import join_parts

Status = Literal["scheduled", "paused", "blackout"]
Authorship = Literal["human", "machine"]
"""Who writes a delivery's text: an editor (in the file) or the translation engine."""

SLOT_HORIZON_DAYS = 366
"""How far ahead a slot post looks for a free occurrence before it is reported unplaceable."""

EXPANSION = {
    "en": 0.95,
    "es": 1.2,
    "fr": 1.15,
    "de": 1.25,
    "it": 1.15,
    "pt": 1.2,
    "ar": 1.05,
    "ru": 1.15,
}
"""Rough length growth of machine translation into a language (relative to the source), used
only to warn early that a variant may exceed its platform's limit. The real check runs on the
text."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """One part of one post, for one account, at one instant."""

    post: str
    account: str
    lang: str
    part: int  # 1-based; part 1 is the post itself, 2.. its thread replies
    parts: int
    due: datetime  # UTC
    source: Authorship
    status: Status = "scheduled"
    note: str = ""
    slot: str | None = None
    has_url: bool = False
    # A repost (amplification): the delivery key (``post#1@account``) of the central
    # account's post this account reposts; its text is the original's, none of its own.
    repost_of: str | None = None


@dataclass(frozen=True, slots=True)
class PlanWarning:
    # due_in_past, over_cap, may_overflow, no_free_slot, alt_dropped, thread_not_joined
    kind: str
    message: str
    post: str | None = None
    account: str | None = None


@dataclass(frozen=True, slots=True)
class Pin:
    """A slot occurrence given to a post: the slot and the local wall time of the occurrence."""

    slot: str
    local: datetime  # naive wall time in the slot's zone (or each account's zone)


@dataclass(slots=True)
class Plan:
    start: datetime
    end: datetime
    deliveries: list[Delivery] = field(default_factory=list)
    warnings: list[PlanWarning] = field(default_factory=list)
    pins: dict[str, Pin] = field(default_factory=dict)  # every slot post's occurrence
    new_pins: dict[str, Pin] = field(default_factory=dict)  # the ones made by this call
    drafts: list[str] = field(default_factory=list)
    cost: dict[tuple[str, date], float] = field(default_factory=dict)
    currency: str = "USD"


def plan(
    content: ContentSet,
    now: datetime,
    days: int = 7,
    pinned: Mapping[str, Pin] | None = None,
    since: datetime | None = None,
    memo: PlanMemo | None = None,
) -> Plan:
    """Every delivery due in ``[now, now + days)``, with warnings and cost.

    ``pinned`` holds occurrences given earlier (from the state database). ``memo``: what
    earlier calls worked out per post, kept by a long-running caller (the service) so that a
    new revision costs the posts that changed, not every post; the plan is the same with or
    without it.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    now = now.astimezone(UTC)
    end = now + timedelta(days=days)
    # Deliveries due in [since, now) are returned too (the service catches up after a stop);
    # slot posts are still only ever given future occurrences.
    window_start = since.astimezone(UTC) if since is not None else now
    result = Plan(start=now, end=end, currency=content.accounts.pricing.currency)
    kept = memo is not None
    memo = memo if memo is not None else PlanMemo()
    memo.follow(content)
    index = memo.index(content, end) if kept else None
    slotted = index.slotted() if index is not None else None
    pins = _assign_slots(content, now, dict(pinned or {}), result, slotted)
    skip_later = _SKIP_LATER
    for entry in index.early_posts() if index is not None else content.posts.values():
        if skip_later and entry.due is not None and entry.due >= end:
            continue  # due after the window on every account: most posts of a repository
        if entry.is_draft:
            result.drafts.append(entry.id)
            continue
        found = memo.post(content, entry, pins)
        warned_past = False
        for target, due in found.dues:
            if due < window_start:
                if warned_past:
                    continue
                warned_past = True
                if found.past is None or found.past[0] != due:
                    found.past = (
                        due,
                        PlanWarning(
                            "due_in_past",
                            f"{entry.id} was due {due:%Y-%m-%d %H:%M} UTC, before now",
                            entry.id,
                        ),
                    )
                result.warnings.append(found.past[1])
                continue
            if due >= end:
                continue
            made = found.made.get(target.account)
            if made is None:
                made = memo.deliveries(content, entry, target, due)
                found.made[target.account] = made
            result.deliveries.extend(made[0])
            result.warnings.extend(made[1])
    result.deliveries.sort(key=lambda d: (d.due, d.post, d.account, d.part))
    _caps_and_cost(content, result)
    return result


@dataclass(slots=True)
class _Post:
    """What :func:`plan` worked out for one post (see :class:`PlanMemo`)."""

    entry: PostEntry
    pin: Pin | None
    dues: list[tuple[Target, datetime]]  # each account it goes to, and when
    # account → its deliveries and warnings, made the first time the due is in the window
    made: dict[str, tuple[list[Delivery], list[PlanWarning]]] = field(default_factory=dict)
    past: tuple[datetime, PlanWarning] | None = None  # its due_in_past warning


REACH = timedelta(days=7)
"""How far past a plan's end the index takes fixed-time posts in, so the window's daily
move costs nothing most of the time."""


class _Index:
    """The posts of a content set a plan looks at: slot posts, drafts and fixed-time posts
    due before ``cut`` (``early``), the other fixed-time posts sorted by due time
    (``later``), taken in as the window's end passes them. Plan walks ``early`` in path order,
    the order of the loader's posts."""

    def __init__(self, posts: Mapping[str, PostEntry], cut: datetime) -> None:
        self.posts = posts
        self.cut = cut
        self.early: dict[str, PostEntry] = {}
        self.later: list[tuple[datetime, str]] = []
        self._order: list[PostEntry] | None = None
        self._slotted: list[PostEntry] | None = None

    @classmethod
    def build(cls, posts: Mapping[str, PostEntry], end: datetime) -> _Index | None:
        index = cls(posts, end + REACH)
        last = ""
        for entry in posts.values():
            if entry.path <= last:
                return None
            last = entry.path
            index._add(entry)
        index.later.sort()
        return index

    def _add(self, entry: PostEntry) -> None:
        due = entry.due
        if due is None or due < self.cut:
            self.early[entry.id] = entry
        else:
            self.later.append((due, entry.id))

    def update(self, posts: Mapping[str, PostEntry], touched: frozenset[str]) -> None:
        """Now for ``posts``, which differ from the last ones in the ids ``touched``."""
        for post_id in touched:
            old = self.posts.get(post_id)
            if old is not None and self.early.pop(post_id, None) is None and old.due is not None:
                at = bisect.bisect_left(self.later, (old.due, post_id))
                if at < len(self.later) and self.later[at] == (old.due, post_id):
                    del self.later[at]
            new = posts.get(post_id)
            if new is not None:
                if new.due is not None and new.due >= self.cut:
                    bisect.insort(self.later, (new.due, post_id))
                else:
                    self.early[post_id] = new
        self.posts = posts
        self._order = self._slotted = None

    def reach(self, end: datetime) -> None:
        """Take in the fixed-time posts due before ``end`` (and a week more)."""
        if end < self.cut:
            return
        self.cut = end + REACH
        at = bisect.bisect_left(self.later, (self.cut, ""))
        for _due, post_id in self.later[:at]:
            self.early[post_id] = self.posts[post_id]
        del self.later[:at]
        self._order = None

    def early_posts(self) -> list[PostEntry]:
        if self._order is None:
            self._order = sorted(self.early.values(), key=_by_path)
        return self._order

    def slotted(self) -> list[PostEntry]:
        if self._slotted is None:
            self._slotted = sorted(
                (e for e in self.early.values() if e.post.slot is not None), key=_by_id
            )
        return self._slotted


def _by_path(entry: PostEntry) -> str:
    return entry.path


class PlanMemo:
    """What :func:`plan` worked out per post: when it goes out on each account, and, once
    that is inside a window, its deliveries and warnings. Kept while the post's entry (the
    same object: the loader's cache keeps an unchanged file's entry), its slot occurrence,
    and the accounts and slots files (compared by value) are the same: none of it depends on
    the clock, which only chooses the posts in the window."""

    def __init__(self) -> None:
        self.setup: tuple[object, ...] | None = None
        self.posts: dict[str, _Post] = {}
        self._index: _Index | None = None
        self.missions: dict[str, str] = {}
        self.blackouts: dict[str, list[BlackoutWindow]] = {}

    def follow(self, content: ContentSet) -> None:
        """Forget everything when the accounts, slots or missions changed; forget posts
        gone."""
        setup = (content.accounts, content.slots, content.missions, content.account_missions)
        if self.setup is None or any(
            a is not b and a != b for a, b in zip(self.setup, setup, strict=True)
        ):
            self.setup, self.posts = setup, {}
            self.missions = _missions(content)
            self.blackouts = {name: _blackouts(content, name) for name in self.missions}
        elif len(self.posts) > 2 * len(content.posts) + 100:
            posts = content.posts
            self.posts = {k: v for k, v in self.posts.items() if posts.get(k) is v.entry}

    def index(self, content: ContentSet, end: datetime) -> _Index | None:
        """The posts a plan ending at ``end`` must look at, kept up to date from what the
        loader says changed (``ContentSet.since``); None when the posts are not in the order
        of their paths (not the loader's: the caller then looks at every post)."""
        found = self._index
        posts = content.posts
        if found is not None and found.posts is not posts:
            since = content.since
            if since is not None and since[0] is found.posts:
                found.update(posts, since[1])
            else:
                found = None
        if found is None:
            found = _Index.build(posts, end)
        self._index = found
        if found is not None:
            found.reach(end)
        return found

    def post(self, content: ContentSet, entry: PostEntry, pins: Mapping[str, Pin]) -> _Post:
        pin = pins.get(entry.id) if entry.due is None else None
        found = self.posts.get(entry.id)
        if found is not None and found.entry is entry and found.pin == pin:
            return found
        dues = []
        for target in content.targets_of(entry):
            # A repost goes when the original does (and only after it is posted).
            due = due_for(content, entry, target.repost_of or target.account, pins)
            if due is not None:
                dues.append((target, due))
        found = self.posts[entry.id] = _Post(entry, pin, dues)
        return found

    def deliveries(
        self, content: ContentSet, entry: PostEntry, target: Target, due: datetime
    ) -> tuple[list[Delivery], list[PlanWarning]]:
        """``entry``'s deliveries to ``target`` at ``due``, and the warnings they bring."""
        account_id = target.account
        account = content.accounts.accounts[account_id]
        mission = content.mission_of(account_id)
        status: Status = "scheduled"
        note = ""
        held = _blackout_for(self.blackouts[mission], account_id, due)
        pause = content.slots_of(mission).pause
        if held is not None:
            status, note = "blackout", held
        elif pause.all or account_id in pause.accounts:
            status, note = "paused", pause.reason or f"paused in {self.missions[mission]}"
        if target.repost_of is not None:
            repost = Delivery(
                post=entry.id,
                account=account_id,
                lang=account.lang,
                part=1,
                parts=1,
                due=due,
                source="human",  # no text of its own: the original's
                status=status,
                note=note,
                slot=entry.slot,
                repost_of=f"{entry.id}#1@{target.repost_of}",
            )
            return [repost], []
        where = account.platform
        parts = entry.parts_for(where)
        out = Plan(start=due, end=due)  # collects the warnings, in the order plan gives them
        deliveries = []
        for part in range(1, parts + 1):
            human = entry.human_text(account.lang, part - 1, where)
            source_text = (
                human if human is not None else entry.human_text(entry.post.lang, part - 1, where)
            )
            deliveries.append(
                Delivery(
                    post=entry.id,
                    account=account_id,
                    lang=account.lang,
                    part=part,
                    parts=parts,
                    due=due,
                    source="human" if human is not None else "machine",
                    status=status,
                    note=note,
                    slot=entry.slot,
                    has_url=has_url(source_text or ""),
                )
            )
            if human is None:
                _warn_overflow(entry, account_id, account.lang, part, where, out)
        _warn_platform(entry, account_id, account.lang, where, out)
        return deliveries, out.warnings


def for_mission(result: Plan, content: ContentSet, mission: str) -> Plan:
    """``result`` as one mission sees it: its accounts' deliveries, cost and warnings, and
    its drafts (``--mission``)."""
    mine = set(content.accounts_of(mission))

    def own_post(post: str | None) -> bool:
        entry = content.posts.get(post) if post is not None else None
        return entry is not None and entry.mission == mission

    return Plan(
        start=result.start,
        end=result.end,
        deliveries=[d for d in result.deliveries if d.account in mine],
        warnings=[
            w
            for w in result.warnings
            if (w.account in mine if w.account is not None else own_post(w.post))
        ],
        pins={p: pin for p, pin in result.pins.items() if own_post(p)},
        new_pins={p: pin for p, pin in result.new_pins.items() if own_post(p)},
        drafts=[p for p in result.drafts if own_post(p)],
        cost={k: v for k, v in result.cost.items() if k[0] in mine},
        currency=result.currency,
    )


_SKIP_LATER = True
"""Skip fixed-time posts due after the window before looking at accounts (an exact
shortcut: ``due_for`` gives such a post that time on every account; tests turn it off to
compare)."""


def _missions(content: ContentSet) -> dict[str, str]:
    """Every mission → its slots file (a content set without missions: the central one)."""
    found = {name: m.layout.slots for name, m in content.missions.items()}
    return found or {content.central: "schedules/slots.yaml"}


def due_for(
    content: ContentSet, entry: PostEntry, account_id: str, pins: Mapping[str, Pin]
) -> datetime | None:
    """When ``entry`` goes out on ``account_id`` (None for drafts and unplaced slot posts)."""
    if entry.due is not None:
        return entry.due
    pin = pins.get(entry.id)
    if pin is None:
        return None
    return _occurrence_instant(content, pin, account_id, entry.mission)


def _slot_zone(
    content: ContentSet, slot: str, account_id: str | None, mission: str | None = None
) -> ZoneInfo:
    """The zone of ``slot`` of ``mission``'s slots file (default: the central one)."""
    name = mission if mission is not None and mission in content.missions else content.central
    slots = content.slots_of(name).slots
    zone_name = slots[slot].timezone if slot in slots else None
    if zone_name == "account" and account_id is not None:
        return content.account_zone(account_id)
    if zone_name not in (None, "account"):
        return zone(zone_name)
    return content.zone_of(name)


def _occurrence_instant(
    content: ContentSet, pin: Pin, account_id: str | None, mission: str | None = None
) -> datetime:
    return resolve_recurring(pin.local, _slot_zone(content, pin.slot, account_id, mission))


def _assign_slots(
    content: ContentSet,
    now: datetime,
    pins: dict[str, Pin],
    result: Plan,
    slotted: list[PostEntry] | None = None,
) -> dict[str, Pin]:
    """Give each slot post without a (still valid) pin the earliest free future occurrence.
    ``slotted``: the slot posts sorted by id, when the caller knows them."""
    # Slots are a mission's own: its posts take its slots' occurrences.
    waiting: dict[tuple[str, str], list[str]] = defaultdict(list)
    entries = content.posts
    # Pins of posts that no longer exist, or are no longer in a slot, free their occurrence.
    for post_id in [p for p in pins if (e := entries.get(p)) is None or e.post.slot is None]:
        del pins[post_id]
    if slotted is None:
        slotted = sorted((e for e in entries.values() if e.post.slot is not None), key=_by_id)
    for entry in slotted:
        slot = entry.post.slot
        assert slot is not None
        pin = pins.get(entry.id)
        if pin is None or pin.slot != slot:
            pins.pop(entry.id, None)
            waiting[(entry.mission, slot)].append(entry.id)
    taken: Counter[tuple[str, str, datetime]] = Counter(
        (content.posts[p].mission, pin.slot, pin.local) for p, pin in pins.items()
    )
    for (mission, slot_name), posts in waiting.items():
        spec = content.slots_of(mission).slots[slot_name]
        tz = _slot_zone(content, slot_name, None, mission)
        global_blackouts = [
            (a, b) for a, b, accts, _ in _blackouts(content, mission) if accts is None
        ]
        local_now = now.astimezone(tz).replace(tzinfo=None)
        day = local_now.date()
        weekdays = {DAYS.index(d) for d in spec.days}
        times = sorted({(int(t[:-3]), int(t[-2:])) for t in spec.times})
        queue = list(posts)
        for _ in range(SLOT_HORIZON_DAYS):
            if not queue:
                break
            if day.weekday() in weekdays:
                for hour, minute in times:
                    local = datetime(day.year, day.month, day.day, hour, minute)
                    if local <= local_now:
                        continue
                    instant = resolve_recurring(local, tz)
                    if any(a <= instant < b for a, b in global_blackouts):
                        continue
                    while queue and taken[(mission, slot_name, local)] < spec.capacity:
                        post_id = queue.pop(0)
                        pins[post_id] = result.new_pins[post_id] = Pin(slot_name, local)
                        taken[(mission, slot_name, local)] += 1
            day += timedelta(days=1)
        for post_id in queue:
            result.warnings.append(
                PlanWarning(
                    "no_free_slot",
                    f"{post_id}: no free '{slot_name}' occurrence in the next "
                    f"{SLOT_HORIZON_DAYS} days",
                    post_id,
                )
            )
    result.pins = pins
    return pins


def _by_id(entry: PostEntry) -> str:
    return entry.id


BlackoutWindow = tuple[datetime, datetime, frozenset[str] | None, str]
"""A blackout in UTC: start, end, the accounts it holds (None: all), the reason."""


def _blackouts(content: ContentSet, mission: str | None = None) -> list[BlackoutWindow]:
    """``mission``'s blackouts (default: the central ones), in UTC."""
    name = mission if mission is not None and mission in content.missions else content.central
    found: list[BlackoutWindow] = []
    for b in content.slots_of(name).blackouts:
        tz = zone(b.timezone) if b.timezone else content.zone_of(name)
        accounts = frozenset(b.accounts) if b.accounts is not None else None
        found.append((parse_local(b.from_, tz), parse_local(b.until, tz), accounts, b.reason))
    return found


def _blackout_for(blackouts: list[BlackoutWindow], account: str, due: datetime) -> str | None:
    for start, end, accounts, reason in blackouts:
        if start <= due < end and (accounts is None or account in accounts):
            return reason
    return None


def _warn_overflow(
    entry: PostEntry, account: str, lang: str, part: int, where: str, result: Plan
) -> None:
    """A machine translation of part ``part`` that may not fit ``account``'s platform."""
    limits = platform(where).limits
    limit = limits.text_limit(bool(entry.media_of(part - 1, where)))
    text = entry.human_text(entry.post.lang, part - 1, where) or ""
    expansion = EXPANSION.get(primary(lang), 1.2)
    if limits.bound is not None and round(limits.bound(text) * expansion) <= limit:
        return  # the length is at most the bound, so the estimate is within the limit too
    length = limits.count(text)
    estimate = round(length * expansion)
    if estimate > limit:
        policy = (
            "will be held for a human"
            if entry.post.overflow == "hold"
            else ("will be split into a thread")
        )
        which = f" (part {part})" if part > 1 else ""
        result.warnings.append(
            PlanWarning(
                "may_overflow",
                f"{entry.id}{which}: the {lang} machine translation may exceed {limit} "
                f"characters on {platform(where).display} (source {length}, about {estimate} "
                f"in {lang}); if it does it {policy}",
                entry.id,
                account,
            )
        )


def _warn_platform(entry: PostEntry, account: str, lang: str, where: str, result: Plan) -> None:
    """What ``account``'s platform does differently with the post: alt texts it drops, a
    thread it publishes as one post, or, when the joined parts do not fit, as several."""
    found = platform(where)
    limits = found.limits
    parts = entry.parts_for(where)
    if limits.alt == 0 and any(m.alt for part in range(parts) for m in entry.media_of(part, where)):
        result.warnings.append(
            PlanWarning(
                "alt_dropped",
                f"{entry.id}: {found.display} has no alt text: the images go to {account} "
                "without their descriptions (say what matters in the text)",
                entry.id,
                account,
            )
        )
    if limits.threads != "join" or parts < 2:
        return
    texts = [entry.human_text(lang, part, where) for part in range(parts)]
    if any(t is None for t in texts):
        return  # machine-translated: settled when translated (one post if it fits)
    joined = join_parts([t or "" for t in texts])
    images = sum(len(entry.media_of(part, where)) for part in range(parts))
    limit = limits.text_limit(images > 0)
    length = limits.count(joined)
    if length > limit or images > limits.media:
        why = (
            f"{length} characters joined, limit {limit}"
            if length > limit
            else f"{images} images, limit {limits.media}"
        )
        result.warnings.append(
            PlanWarning(
                "thread_not_joined",
                f"{entry.id}: {found.display} has no reply chains and the {parts} parts do not "
                f"fit one post ({why}): {account} publishes them as {parts} separate posts, "
                f"in order (or give {where} its own text under 'platforms:')",
                entry.id,
                account,
            )
        )


def _caps_and_cost(content: ContentSet, result: Plan) -> None:
    pricing = content.accounts.pricing  # the prices of a platform that charges (X's by default)
    charged = {
        a: platform_of(acct).prices is not None for a, acct in content.accounts.accounts.items()
    }
    per_day: Counter[tuple[str, date]] = Counter()
    cost: dict[tuple[str, date], float] = defaultdict(float)
    zones = {a: content.account_zone(a) for a in content.accounts.accounts}
    for d in result.deliveries:
        if d.status != "scheduled":
            continue
        local_day = d.due.astimezone(zones[d.account]).date()
        if d.part == 1:
            per_day[(d.account, local_day)] += 1
        price = pricing.post_with_url if d.has_url else pricing.post
        cost[(d.account, local_day)] += price if charged[d.account] else 0.0
    for (account_id, local_day), count in sorted(per_day.items()):
        cap = content.accounts.accounts[account_id].daily_cap or content.accounts.daily_cap
        if cap is not None and count > cap:
            result.warnings.append(
                PlanWarning(
                    "over_cap",
                    f"{account_id} has {count} posts planned on {local_day} (cap {cap})",
                    account=account_id,
                )
            )
    result.cost = {k: round(v, 4) for k, v in sorted(cost.items())}
