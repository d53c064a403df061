"""What a change to the content does to the schedule: two plans made from the same instant (the
content before and after) → per account, the posts added, moved and cancelled. Pure.

A post is compared by its first part on each account: a thread moves as a whole.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from bot.schedule.plan import Delivery, Plan

ChangeKind = Literal["added", "moved", "cancelled"]


@dataclass(frozen=True, slots=True)
class Change:
    kind: ChangeKind
    post: str
    account: str
    before: datetime | None  # UTC; None when added
    after: datetime | None  # UTC; None when cancelled


@dataclass(slots=True)
class ScheduleDiff:
    """Every change, in time order, and each account's figures before and after."""

    changes: list[Change] = field(default_factory=list)
    posts_before: dict[str, int] = field(default_factory=dict)  # account → posts planned
    posts_after: dict[str, int] = field(default_factory=dict)
    cost_before: dict[str, float] = field(default_factory=dict)  # account → cost in the window
    cost_after: dict[str, float] = field(default_factory=dict)
    currency: str = "USD"

    def of(self, account: str) -> list[Change]:
        return [c for c in self.changes if c.account == account]


def _firsts(plan: Plan) -> dict[tuple[str, str], Delivery]:
    return {(d.post, d.account): d for d in plan.deliveries if d.part == 1}


def _per_account(plan: Plan) -> tuple[dict[str, int], dict[str, float]]:
    posts: dict[str, int] = defaultdict(int)
    cost: dict[str, float] = defaultdict(float)
    for d in plan.deliveries:
        if d.part == 1:
            posts[d.account] += 1
    for (account, _day), value in plan.cost.items():
        cost[account] += value
    return dict(posts), {a: round(v, 4) for a, v in cost.items()}


def diff_plans(before: Plan, after: Plan) -> ScheduleDiff:
    """The changes from ``before`` to ``after`` (both planned from the same instant, for the
    same number of days; ``after`` with the slot occurrences ``before`` gave, so a slot post
    keeps its place as the service would keep it)."""
    old, new = _firsts(before), _firsts(after)
    changes: list[Change] = []
    for key, d in new.items():
        was = old.get(key)
        if was is None:
            changes.append(Change("added", d.post, d.account, None, d.due))
        elif was.due != d.due:
            changes.append(Change("moved", d.post, d.account, was.due, d.due))
    for key, d in old.items():
        if key not in new:
            changes.append(Change("cancelled", d.post, d.account, d.due, None))

    def when(c: Change) -> tuple[datetime, str, str]:
        moment = c.after or c.before
        assert moment is not None
        return moment, c.post, c.account

    changes.sort(key=when)
    posts_before, cost_before = _per_account(before)
    posts_after, cost_after = _per_account(after)
    return ScheduleDiff(changes, posts_before, posts_after, cost_before, cost_after, after.currency)
