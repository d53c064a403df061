"""The preview's stages, as ``diplobot preview`` and the service's ``/preview`` run them:
plan (saving nothing) → localize (the configured translator and its cache) → model → pages.

A translation that cannot be had now (the engine down, no translator configured) does not stop
the preview: the variant is drawn "awaiting translation", with the reason.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from bot.content.types import ContentSet
from bot.errors import TranslationTransient
from bot.pipeline import localize
from bot.preview import changes
from bot.preview.model import Preview, build
from bot.preview.render import Site, render
from bot.schedule.diff import ScheduleDiff, diff_plans
from bot.schedule.plan import Pin, Plan
from bot.schedule.plan import plan as pure_plan
from bot.state.pins import Pins
from bot.state.translations import CacheKey, TranslationCache
from bot.translate.base import Translator

DEFAULT_DAYS = 14


class Unavailable:
    """The translator when none can be made (its configuration is wrong or missing): every
    call fails as an outage would, so machine variants show as awaiting translation."""

    name = "unavailable"

    def __init__(self, why: str) -> None:
        self.why = why

    def translate(self, text: str, source: str, target: str) -> str:
        raise TranslationTransient(f"no translator: {self.why}")


class Deferred(TranslationCache):
    """The translation cache, its writes kept until :meth:`flush` and then made in one
    transaction: a preview publishes nothing, so its translations wait for the site to be
    made (publishing stores a localize's translations as soon as the engine has answered them
    all)."""

    def __init__(self, cache: TranslationCache) -> None:
        super().__init__(cache.engine)
        self.pending: list[tuple[CacheKey, str]] = []
        self.lock = threading.Lock()

    def put_many(self, items: list[tuple[CacheKey, str]]) -> None:
        with self.lock:
            self.pending.extend(items)

    def flush(self) -> None:
        with self.lock:
            pending, self.pending = self.pending, []
        super().put_many(pending)


@dataclass(frozen=True, slots=True)
class Made:
    preview: Preview
    site: Site


def make(
    content: ContentSet,
    now: datetime,
    days: int,
    translator: Translator,
    cache: TranslationCache,
    *,
    pins: Pins | None = None,
    since: changes.Since | None = None,
    revision: str | None = None,
    parallel: int = 4,
    mission: str | None = None,
) -> Made:
    """The preview of ``content`` for ``days`` from ``now``. ``since``: only the posts whose
    files changed, and the schedule's changes (see :func:`bot.preview.changes.since`)."""
    pinned: Mapping[str, Pin] = pins.load() if pins is not None else {}
    result, diff = plans(content, now, days, pinned, since)
    if mission is not None:  # its accounts' deliveries, and its drafts
        from bot.schedule.plan import for_mission

        result = for_mission(result, content, mission)
    only = since.posts(content) if since is not None else None
    wanted = {d.post for d in result.deliveries} | set(result.drafts)
    if only is not None:
        wanted &= only | {c.post for c in (diff.changes if diff else [])}
        wanted |= only & set(content.posts)
    deferred = Deferred(cache)
    loc = localize(content, translator, deferred, post_ids=sorted(wanted), parallel=parallel)
    deferred.flush()
    preview = build(
        content,
        result,
        loc.variants,
        only=only,
        diff=diff,
        since=since.ref if since is not None else None,
        revision=revision,
        days=days,
        mission=mission,
    )
    return Made(preview, render(preview))


def plans(
    content: ContentSet,
    now: datetime,
    days: int,
    pinned: Mapping[str, Pin],
    since: changes.Since | None,
) -> tuple[Plan, ScheduleDiff | None]:
    """The plan of ``content`` (nothing saved) and, with ``since``, its changes from the plan
    of the content at ``since.ref``; the change keeps the slot occurrences the base gave (as
    the service would: adding a post never moves another)."""
    if since is None:
        return pure_plan(content, now, days, pinned=pinned), None
    base = since.base if since.base is not None else replace(content, posts={})
    before = pure_plan(base, now, days, pinned=pinned)
    after = pure_plan(content, now, days, pinned=before.pins)
    return after, diff_plans(before, after)
