"""The plan a long-running service makes with its memo (what earlier calls worked out per
post) is the plan made from scratch: after edits, moves, deletions, new posts, slot posts
taking and losing occurrences, drafts, accounts and slots changes, and as the clock moves."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.content.loader import LoadCache, validate
from bot.content.types import ContentSet
from bot.schedule.plan import Pin, PlanMemo, plan

ROOT = Path(__file__).resolve().parents[2]


def _load(repo: Path, cache: LoadCache, changed: set[str] | None = None) -> ContentSet:
    content, problems = validate(repo, cache, changed=changed)
    assert content is not None, problems
    return content


def test_plan_with_a_memo_equals_the_plan_from_scratch(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT))
    from bench.genrepo import generate

    repo = generate(tmp_path / "repo", 800)
    posts = sorted((repo / "content/posts").rglob("*.yaml"))
    cache, memo = LoadCache(), PlanMemo()
    pins: dict[str, Pin] = {}
    now = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)

    def check(content: ContentSet, when: datetime) -> None:
        nonlocal pins
        since = when - timedelta(hours=1)
        fresh = plan(content, when, 7, pinned=pins, since=since)
        kept = plan(content, when, 7, pinned=pins, since=since, memo=memo)
        assert kept == fresh
        assert memo._index is not None  # the loader's posts are in path order
        assert fresh.deliveries and fresh.warnings
        pins = dict(fresh.pins)

    touched: set[str] = set()

    def edit(path: Path, old: str, new: str) -> None:
        body = path.read_text(encoding="utf-8")
        path.write_text(body.replace(old, new, 1), encoding="utf-8")
        touched.add(path.relative_to(repo).as_posix())

    content = _load(repo, cache)
    check(content, now)
    check(content, now)  # everything from the memo
    in_window = [
        p
        for p in posts
        if "publish_at: 2026-12-0" in p.read_text(encoding="utf-8")
        and "slot:" not in p.read_text(encoding="utf-8")
    ]
    slotted = [p for p in posts if "slot:" in p.read_text(encoding="utf-8")]
    steps = [
        lambda: edit(in_window[0], 'text: "', 'text: "Modifié. '),  # a text
        lambda: edit(in_window[1], "publish_at: 2026-12-0", "publish_at: 2027-01-0"),  # out
        lambda: edit(posts[-1], "publish_at: 2027-", "publish_at: 2026-12-02 10:00\n#"),  # in
        lambda: (in_window[2].unlink(), touched.add(in_window[2].relative_to(repo).as_posix())),
        lambda: (
            (repo / "content/posts/new.yaml").write_text(
                "lang: fr\nslot: morning\ntext: Nouveau\n", encoding="utf-8"
            ),
            touched.add("content/posts/new.yaml"),
        ),
        lambda: (
            edit(slotted[0], "slot: morning", "slot: evening")
            if "slot: morning" in slotted[0].read_text(encoding="utf-8")
            else edit(slotted[0], "slot: evening", "slot: morning")
        ),
        lambda: edit(slotted[1], "slot: ", "#slot: "),  # a draft now
        lambda: (
            edit(in_window[3], "translations:", "translations:\n  ar: مرحبا\n#")
            if "translations:" in in_window[3].read_text(encoding="utf-8")
            else edit(in_window[3], 'text: "', 'translations: {ar: "مرحبا"}\ntext: "')
        ),
        lambda: edit(repo / "schedules/slots.yaml", "capacity: 3", "capacity: 2"),
        lambda: edit(repo / "schedules/accounts.yaml", "daily_cap: 60", "daily_cap: 5"),
    ]
    # The loader's list of changed posts keeps the memo's index up to date, step by step;
    # a schedules change makes it check every file (and the index is built again). The
    # window moves 5 hours a step, and 3 days at the end (posts enter it from the index).
    since = 0
    for n, step in enumerate(steps):
        touched.clear()
        step()
        content = _load(repo, cache, set(touched))
        since += content.since is not None
        check(content, now + timedelta(hours=5 * n))
    content = _load(repo, cache, set())
    for days in range(1, 12, 2):
        check(content, now + timedelta(days=days))
    assert since >= 7


def test_plan_with_a_memo_equals_the_plan_from_scratch_with_missions(tmp_path: Path) -> None:
    """The same with missions: each mission's accounts, slots, blackouts and pauses, copies
    and reposts of amplified central posts; edits in two missions and the central one."""
    sys.path.insert(0, str(ROOT))
    from bench.genrepo import generate

    repo = generate(tmp_path / "repo", 900, missions=4)
    cache, memo = LoadCache(), PlanMemo()
    now = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    pins: dict[str, Pin] = {}
    posts = sorted(repo.rglob("posts/**/*.yaml"))
    mission_posts = [p for p in posts if "missions/" in p.as_posix()]
    central_posts = [p for p in posts if "missions/" not in p.as_posix()]
    assert mission_posts and central_posts
    edits = [mission_posts[0], mission_posts[-1], central_posts[3], central_posts[-2]]
    for n in range(len(edits) + 1):
        if n:
            path = edits[n - 1]
            body = path.read_text(encoding="utf-8")
            path.write_text(body.replace('text: "', 'text: "Modifié. ', 1), encoding="utf-8")
            changed = {path.relative_to(repo).as_posix()}
        else:
            changed = None
        content = _load(repo, cache, changed)
        when = now + timedelta(hours=7 * n)
        since = when - timedelta(hours=1)
        fresh = plan(content, when, 7, pinned=pins, since=since)
        assert plan(content, when, 7, pinned=pins, since=since, memo=memo) == fresh
        assert fresh.deliveries
        pins = dict(fresh.pins)
    assert len({content.mission_of(d.account) for d in fresh.deliveries}) > 1
    assert memo._index is not None  # the loader's posts are in path order, missions too
