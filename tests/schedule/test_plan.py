"""The plan: who gets what, when, in which local time, with which warnings and cost."""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main
from bot.content.loader import load
from bot.schedule.plan import Pin, plan

ACCOUNTS = """\
timezone: Europe/Paris
daily_cap: 2
accounts:
  fr_acct: {lang: fr, handle: francediplo}
  en_acct: {lang: en, handle: francediplo_EN}
  ar_acct: {lang: ar, handle: francediplo_AR, timezone: Asia/Beirut}
"""
SLOTS = """\
slots:
  morning: {days: [mon, tue, wed, thu, fri], times: [09:30]}
  night: {times: [02:30]}
  local: {times: [18:00], timezone: account}
blackouts:
  - {from: 2026-12-24 18:00, until: 2026-12-26 08:00, reason: Christmas}
"""
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)  # a Monday


def make_repo(
    root: Path, posts: dict[str, str], slots: str = SLOTS, accounts: str = ACCOUNTS
) -> Path:
    (root / "schedules").mkdir(parents=True, exist_ok=True)
    (root / "schedules/accounts.yaml").write_text(accounts, encoding="utf-8")
    (root / "schedules/slots.yaml").write_text(slots, encoding="utf-8")
    for name, body in posts.items():
        path = root / "content/posts" / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(body), encoding="utf-8")
    return root


def post(when: str = "publish_at: 2026-11-24 09:00", text: str = "Bonjour", **extra: str) -> str:
    lines = ["lang: fr", when, f"text: {text}"] + [f"{k}: {v}" for k, v in extra.items()]
    return "\n".join(lines) + "\n"


def test_fixed_time_goes_out_at_one_instant_shown_in_each_accounts_zone(tmp_path: Path) -> None:
    """publish_at is one instant for every account; each account sees it in its own zone."""
    content = load(make_repo(tmp_path, {"a": post(translations="{en: Hello}")}))
    result = plan(content, NOW)
    got = {(d.account, d.due, d.source) for d in result.deliveries}
    due = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
    assert got == {
        ("fr_acct", due, "human"),
        ("en_acct", due, "human"),
        ("ar_acct", due, "machine"),
    }
    assert main(["plan", "--root", str(tmp_path), "--from", "2026-11-23 12:00"]) == 0


def test_plan_text_shows_local_times(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The text plan prints 09:00 for Paris and 10:00 for Beirut for the same instant."""
    make_repo(tmp_path, {"a": post()})
    assert main(["plan", "--root", str(tmp_path), "--from", "2026-11-23 12:00"]) == 0
    out = capsys.readouterr().out
    assert "Tue 2026-11-24 09:00 (08:00 UTC)  a  human" in out
    assert "Tue 2026-11-24 10:00 (08:00 UTC)  a  machine" in out
    assert "@francediplo_AR (X, ar, Asia/Beirut): 1" in out


def test_languages_key_limits_the_accounts(tmp_path: Path) -> None:
    """A post with languages: [fr, ar] never reaches the English account."""
    content = load(make_repo(tmp_path, {"a": post(languages="[fr, ar]")}))
    assert {d.account for d in plan(content, NOW).deliveries} == {"fr_acct", "ar_acct"}


def test_thread_parts_are_separate_deliveries_numbered_from_one(tmp_path: Path) -> None:
    """A post with two thread replies gives parts 1, 2, 3 per account."""
    body = post() + "thread:\n  - text: Deux\n  - text: Trois\n"
    content = load(make_repo(tmp_path, {"a": body}))
    parts = sorted(d.part for d in plan(content, NOW).deliveries if d.account == "fr_acct")
    assert parts == [1, 2, 3]


def test_slot_posts_take_successive_free_occurrences(tmp_path: Path) -> None:
    """Two morning posts fill Tuesday then Wednesday 09:30 Paris (Monday's has passed)."""
    content = load(make_repo(tmp_path, {"a": post("slot: morning"), "b": post("slot: morning")}))
    result = plan(content, NOW)
    assert result.pins == {
        "a": Pin("morning", datetime(2026, 11, 24, 9, 30)),
        "b": Pin("morning", datetime(2026, 11, 25, 9, 30)),
    }


def test_adding_a_post_never_moves_a_pinned_one(tmp_path: Path) -> None:
    """A new post whose id sorts first still goes after the posts already planned."""
    repo = make_repo(tmp_path, {"m": post("slot: morning"), "n": post("slot: morning")})
    first = plan(load(repo), NOW)
    make_repo(repo, {"a-new": post("slot: morning")})
    second = plan(load(repo), NOW, pinned=first.pins)
    assert second.pins["m"] == first.pins["m"] and second.pins["n"] == first.pins["n"]
    assert second.pins["a-new"].local == datetime(2026, 11, 26, 9, 30)
    assert set(second.new_pins) == {"a-new"}


def test_cli_plan_keeps_slot_assignments_across_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`diplobot plan` stores pins in the state database, so the next run keeps them."""
    repo = make_repo(tmp_path, {"m": post("slot: morning")})
    assert main(["plan", "--root", str(repo), "--format", "json", "--days", "30"]) == 0
    first = json.loads(capsys.readouterr().out)
    make_repo(repo, {"a-new": post("slot: morning")})
    assert main(["plan", "--root", str(repo), "--format", "json", "--days", "30"]) == 0
    second = json.loads(capsys.readouterr().out)
    due = {d["post"]: d["due_utc"] for d in first["deliveries"]}
    due2 = {d["post"]: d["due_utc"] for d in second["deliveries"]}
    assert due2["m"] == due["m"]
    assert due2["a-new"] > due["m"]
    assert (repo / ".diplobot/state.sqlite").exists()


def test_plan_from_another_date_saves_nothing(tmp_path: Path) -> None:
    """--from previews; it must not pin slot posts to that imaginary week."""
    repo = make_repo(tmp_path, {"m": post("slot: morning")})
    assert main(["plan", "--root", str(repo), "--from", "2027-01-04 00:00"]) == 0
    assert not (repo / ".diplobot/state.sqlite").exists()


def test_account_zone_slot_runs_at_local_time_of_each_account(tmp_path: Path) -> None:
    """A slot with timezone: account fires at 18:00 Paris and 18:00 Beirut: two instants."""
    content = load(make_repo(tmp_path, {"a": post("slot: local")}))
    dues = {d.account: d.due for d in plan(content, NOW).deliveries}
    assert dues["fr_acct"] == datetime(2026, 11, 23, 17, 0, tzinfo=UTC)
    assert dues["ar_acct"] == datetime(2026, 11, 23, 16, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "expected_utc"),
    [
        # 29 March 2026: Paris jumps 02:00 → 03:00, so the 02:30 slot runs at 03:30 CEST.
        (datetime(2026, 3, 28, 12, 0, tzinfo=UTC), datetime(2026, 3, 29, 1, 30, tzinfo=UTC)),
        # 25 October 2026: 02:30 happens twice; the slot takes the first (CEST, 00:30 UTC).
        (datetime(2026, 10, 24, 12, 0, tzinfo=UTC), datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),
        # An ordinary day in winter: 02:30 CET is 01:30 UTC.
        (datetime(2026, 11, 23, 12, 0, tzinfo=UTC), datetime(2026, 11, 24, 1, 30, tzinfo=UTC)),
    ],
)
def test_slot_time_across_dst_changes(
    tmp_path: Path, now: datetime, expected_utc: datetime
) -> None:
    """A daily 02:30 Paris slot moves one gap later in March, takes the first 02:30 in October."""
    content = load(make_repo(tmp_path, {"a": post("slot: night")}))
    dues = {d.due for d in plan(content, now).deliveries if d.account == "fr_acct"}
    assert dues == {expected_utc}


def test_slot_posts_skip_blacked_out_occurrences(tmp_path: Path) -> None:
    """From Christmas Eve 18:00, the next free morning slot is after the blackout ends."""
    content = load(make_repo(tmp_path, {"a": post("slot: morning")}))
    result = plan(content, datetime(2026, 12, 24, 20, 0, tzinfo=UTC))
    assert result.pins["a"].local == datetime(2026, 12, 28, 9, 30)  # 25 blacked out; 26-27 weekend


def test_fixed_time_inside_a_blackout_is_held_with_the_reason(tmp_path: Path) -> None:
    """A publish_at inside a blackout is listed as held, not silently dropped."""
    content = load(make_repo(tmp_path, {"a": post("publish_at: 2026-12-25 10:00")}))
    result = plan(content, datetime(2026, 12, 20, 0, 0, tzinfo=UTC), days=10)
    assert {(d.status, d.note) for d in result.deliveries} == {("blackout", "Christmas")}


def test_paused_account_waits_visibly(tmp_path: Path) -> None:
    """Pausing one account marks its deliveries paused and leaves the others scheduled."""
    slots = SLOTS + "pause:\n  accounts: [ar_acct]\n  reason: mourning\n"
    content = load(make_repo(tmp_path, {"a": post()}, slots=slots))
    status = {d.account: (d.status, d.note) for d in plan(content, NOW).deliveries}
    assert status == {
        "fr_acct": ("scheduled", ""),
        "en_acct": ("scheduled", ""),
        "ar_acct": ("paused", "mourning"),
    }


def test_warnings_past_due_cap_and_possible_overflow(tmp_path: Path) -> None:
    """Past-due posts, days over the cap and long sources are each reported by kind."""
    long_text = "'" + "Une phrase assez longue pour remplir. " * 7 + "Et encore.'"  # 276
    posts = {
        "old": post("publish_at: 2026-11-01 09:00"),
        "c1": post("publish_at: 2026-11-24 09:00"),
        "c2": post("publish_at: 2026-11-24 10:00"),
        "c3": post("publish_at: 2026-11-24 11:00", text=long_text),
    }
    result = plan(load(make_repo(tmp_path, posts)), NOW)
    kinds = {(w.kind, w.post, w.account) for w in result.warnings}
    assert ("due_in_past", "old", None) in kinds
    assert ("over_cap", None, "fr_acct") in kinds
    # Arabic runs about 5% longer than French (over 280); English shorter (no warning).
    assert ("may_overflow", "c3", "ar_acct") in kinds
    assert {k for k in kinds if k[0] == "may_overflow"} == {("may_overflow", "c3", "ar_acct")}


def test_cost_counts_a_url_post_at_the_url_price(tmp_path: Path) -> None:
    """One post with a link and one without: 0.20 + 0.015 per account that day."""
    posts = {
        "u": post(text="Voir https://www.diplomatie.gouv.fr"),
        "p": post("publish_at: 2026-11-24 10:00"),
    }
    result = plan(load(make_repo(tmp_path, posts)), NOW)
    assert result.cost[("fr_acct", datetime(2026, 11, 24).date())] == pytest.approx(0.215)


def test_json_plan_has_the_documented_shape(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The JSON keys other tools rely on (docs/plan.md) are all present."""
    make_repo(tmp_path, {"a": post(), "d": "lang: fr\ntext: brouillon\n"})
    assert (
        main(["plan", "--root", str(tmp_path), "--from", "2026-11-23 12:00", "--format", "json"])
        == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert data["format"] == "diplobot.plan/1"
    assert set(data) == {"format", "from", "until", "deliveries", "warnings", "drafts", "cost"}
    first = data["deliveries"][0]
    assert set(first) == {
        "post",
        "account",
        "handle",
        "platform",
        "lang",
        "part",
        "parts",
        "due_utc",
        "due_local",
        "timezone",
        "source",
        "status",
        "note",
        "slot",
        "has_url",
    }
    assert data["drafts"] == ["d"]
    ar = next(d for d in data["deliveries"] if d["account"] == "ar_acct")
    assert ar["due_local"] == "2026-11-24T10:00+02:00" and ar["due_utc"] == "2026-11-24T08:00:00Z"


def test_plan_refuses_invalid_content_with_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An invalid repository is not planned: exit 1 and the errors on stderr."""
    make_repo(tmp_path, {"a": "lang: fr\ntext: x\npubish_at: 2026-11-24 09:00\n"})
    assert main(["plan", "--root", str(tmp_path)]) == 1
    assert "content/posts/a.yaml:3:1: unknown key 'pubish_at'" in capsys.readouterr().err


@pytest.mark.parametrize("before", [True, False])
def test_root_option_works_before_or_after_the_command(
    tmp_path: Path, before: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    """`diplobot --root X plan` and `diplobot plan --root X` mean the same."""
    make_repo(tmp_path, {"only-here": post()})
    args = ["plan", "--from", "2026-11-23 12:00", "--format", "json"]
    args = ["--root", str(tmp_path), *args] if before else [*args, "--root", str(tmp_path)]
    assert main(args) == 0
    posts = {d["post"] for d in json.loads(capsys.readouterr().out)["deliveries"]}
    assert posts == {"only-here"}


@pytest.mark.parametrize("days", [1, 7, 30, 400])
def test_skipping_posts_due_after_the_window_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, days: int
) -> None:
    """plan skips fixed-time posts due after its window before looking at accounts, and
    counts a text for the overflow warning only when a bound cannot clear it: the plan
    (deliveries, warnings, drafts, cost) is the one it makes without those shortcuts."""
    import dataclasses
    import sys

    from bot.schedule import plan as plan_module

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from bench.genrepo import generate

    repo = generate(tmp_path / "repo", 600)
    for n in range(40):  # texts around the overflow warning's threshold, some with a link
        text = "Déclaration " * (14 + n % 8) + ("https://www.diplomatie.gouv.fr" if n % 2 else "")
        (repo / f"content/posts/long-{n}.yaml").write_text(
            f'lang: fr\npublish_at: 2027-03-0{1 + n % 9} 10:00\ntext: "{text}"\n',
            encoding="utf-8",
        )
    content = load(repo)
    now = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)
    since = datetime(2027, 2, 20, tzinfo=UTC)
    fast = plan(content, now, days, since=since)
    # Without either shortcut: every post looked at, every overflow estimate counted exactly.
    monkeypatch.setattr(plan_module, "_SKIP_LATER", False)
    real_platform = plan_module.platform

    def unbounded(name: str) -> Any:
        found = real_platform(name)
        return dataclasses.replace(found, limits=dataclasses.replace(found.limits, bound=None))

    monkeypatch.setattr(plan_module, "platform", unbounded)
    assert plan(content, now, days, since=since) == fast
    assert fast.deliveries and fast.drafts and fast.warnings
    overflows = {w.post for w in fast.warnings if w.kind == "may_overflow"}
    assert 0 < len(overflows) < 40 or days == 1
