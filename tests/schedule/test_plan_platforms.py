"""The plan across platforms: each account's own limits and thread semantics, the warnings an
editor needs (alt text dropped, a thread that cannot be joined), and free platforms cost 0."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from schedule.test_plan import NOW, make_repo

from bot.content.loader import load
from bot.schedule.plan import plan

ACCOUNTS = """\
timezone: Europe/Paris
accounts:
  fr_x:    {lang: fr, platform: x, handle: francediplo}
  fr_fb:   {lang: fr, platform: facebook, handle: FranceDiplo, page: "1234567890"}
  fr_tg:   {lang: fr, platform: telegram, handle: francediplo_fr}
  fr_sky:  {lang: fr, platform: bluesky, handle: diplo.bsky.social}
  en_x:    {lang: en, platform: x, handle: francediplo_EN}
  en_masto: {lang: en, platform: mastodon, handle: France, instance: https://social.example}
"""
AT = "publish_at: 2026-11-24 09:00"


def _plan(tmp_path: Path, body: str):  # type: ignore[no-untyped-def]
    content = load(make_repo(tmp_path, {"a": body}, accounts=ACCOUNTS))
    return plan(content, NOW)


def test_free_platforms_cost_nothing_and_x_costs_its_price(tmp_path: Path) -> None:
    """A post with a URL costs X's URL price on the X account and 0 on every free platform."""
    result = _plan(tmp_path, f"lang: fr\n{AT}\ntext: Voir https://example.org\nlanguages: [fr]\n")
    day = datetime(2026, 11, 24).date()
    assert result.cost[("fr_x", day)] > 0
    assert {a: result.cost[(a, day)] for a in ("fr_fb", "fr_tg", "fr_sky")} == {
        "fr_fb": 0.0,
        "fr_tg": 0.0,
        "fr_sky": 0.0,
    }


def test_telegram_warns_that_alt_text_is_dropped(tmp_path: Path) -> None:
    """Telegram has no alt text: the plan says the image goes without it, on that account."""
    (tmp_path / "content/media").mkdir(parents=True)
    (tmp_path / "content/media/a.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 32)
    body = (
        f"lang: fr\n{AT}\ntext: Bonjour\nlanguages: [fr]\n"
        "media:\n  - file: media/a.png\n    alt: Le drapeau\n"
    )
    result = _plan(tmp_path, body)
    dropped = [w for w in result.warnings if w.kind == "alt_dropped"]
    assert [(w.account, w.post) for w in dropped] == [("fr_tg", "a")]
    assert "Telegram has no alt text" in dropped[0].message


def test_a_thread_that_fits_one_post_is_not_warned_about(tmp_path: Path) -> None:
    """Facebook and Telegram join a short thread into one post: nothing to warn about."""
    body = f"lang: fr\n{AT}\ntext: Un\nlanguages: [fr]\nthread:\n  - text: Deux\n"
    result = _plan(tmp_path, body)
    assert [w for w in result.warnings if w.kind == "thread_not_joined"] == []


def test_a_thread_too_long_to_join_says_what_is_published(tmp_path: Path) -> None:
    """Telegram's 4,096 cannot hold two 3,000-character parts: the plan says they go out as
    separate posts; Facebook (63,206) joins them, so it is not warned about."""
    long = "a" * 3000
    body = f"lang: fr\n{AT}\ntext: {long}\nlanguages: [fr]\nthread:\n  - text: {long}\n"
    # X and Bluesky would refuse a 3,000-character part: only Facebook and Telegram here.
    accounts = "\n".join(
        line for line in ACCOUNTS.splitlines() if "fr_x" not in line and "fr_sky" not in line
    )
    content = load(make_repo(tmp_path, {"a": body}, accounts=accounts + "\n"))
    warnings = [w for w in plan(content, NOW).warnings if w.kind == "thread_not_joined"]
    assert [w.account for w in warnings] == ["fr_tg"]
    assert "6002 characters joined, limit 4096" in warnings[0].message
    assert "publishes them as 2 separate posts" in warnings[0].message


def test_a_machine_translation_is_estimated_against_each_accounts_platform(tmp_path: Path) -> None:
    """A 263-character source may overflow X's 280 in Spanish (about 316) but not Mastodon's
    500: the may_overflow warning names the X account only."""
    accounts = (
        "timezone: Europe/Paris\naccounts:\n  fr_x: {lang: fr, handle: francediplo}\n"
        "  es_x: {lang: es, handle: francediplo_ES}\n"
        "  es_masto: {lang: es, platform: mastodon, handle: Francia, "
        "instance: https://social.example}\n"
    )
    body = f"lang: fr\n{AT}\ntext: {'mot ' * 65}fin\n"
    content = load(make_repo(tmp_path, {"a": body}, accounts=accounts))
    warnings = [w for w in plan(content, NOW).warnings if w.kind == "may_overflow"]
    assert [w.account for w in warnings] == ["es_x"]
    assert "may exceed 280 characters on X" in warnings[0].message


def test_a_platform_version_with_its_own_thread_plans_its_own_parts(tmp_path: Path) -> None:
    """platforms: {facebook: {text, thread: []}}: one part on Facebook, the thread elsewhere;
    Facebook's delivery is human-written in French."""
    body = (
        f"lang: fr\n{AT}\ntext: Un\nlanguages: [fr]\nthread:\n  - text: Deux\n"
        "platforms:\n  facebook:\n    text: Un et deux, en un seul texte plus long\n"
        "    thread: []\n"
    )
    result = _plan(tmp_path, body)
    parts = {a: [d.part for d in result.deliveries if d.account == a] for a in ("fr_x", "fr_fb")}
    assert parts == {"fr_x": [1, 2], "fr_fb": [1]}
    due = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
    assert {d.due for d in result.deliveries} == {due}


def test_the_example_plans_every_platform_and_says_which(
    example_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The bundled example has an account on each platform: the plan names each account's
    platform, gives Facebook one delivery of the Sudan thread (its own text), and every free
    platform costs 0."""
    from bot.cli import main

    args = ["plan", "--root", str(example_repo), "--from", "2026-11-23 12:00", "--days", "4"]
    assert main(args) == 0
    out = capsys.readouterr().out
    for header in (
        "@francediplo (X, fr, Europe/Paris)",
        "@FranceDiplomatie (Mastodon, fr, Europe/Paris)",
        "@francediplo-en.bsky.social (Bluesky, en, Europe/Paris)",
        "@FranceDiplomatieAR (Facebook, ar, Europe/Paris)",
        "@francediplo_es (Telegram, es, Europe/Paris)",
        "@ambafrancechine (Weibo, zh-Hans, Asia/Shanghai)",
    ):
        assert header in out
    facebook = out.split("@FranceDiplomatieAR")[1].split("\n\n")[0]
    assert "conference-soudan  machine" in facebook and "conference-soudan 1/3" not in facebook
    assert "france_es_telegram: 0 (Telegram is free)" in out
    assert "francediplo: 0.68 over 4 day(s)" in out
