"""Variants per platform: a post's own version for a platform (human over machine holds for it),
each machine translation checked against its own platform's limits, and a thread joined into
one post on platforms without reply chains. Real LibreTranslate client, fake server, real
state database."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from servers.translate import LibreServer, _first
from translate.conftest import KEY, make_backend

from bot import pipeline
from bot.content.loader import load
from bot.content.types import ContentSet
from bot.state import open_store, state_url
from bot.translate.localize import Localization, Variant, localize

NOW = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
ACCOUNTS = """\
timezone: Europe/Paris
accounts:
  fr_x:   {lang: fr, platform: x, handle: francediplo}
  fr_fb:  {lang: fr, platform: facebook, handle: FranceDiplo, page: "1234567890"}
  fr_tg:  {lang: fr, platform: telegram, handle: francediplo_fr}
  en_x:   {lang: en, platform: x, handle: francediplo_EN}
  en_fb:  {lang: en, platform: facebook, handle: FranceDiploEN, page: "1234567891"}
  ar_x:   {lang: ar, platform: x, handle: francediplo_AR}
  ar_fb:  {lang: ar, platform: facebook, handle: FranceDiploAR, page: "1234567892"}
"""


@pytest.fixture
def libre() -> Iterator[LibreServer]:
    with LibreServer(api_key=KEY) as server:
        yield server


def make_repo(root: Path, post: str, accounts: str = ACCOUNTS) -> ContentSet:
    (root / "schedules").mkdir(parents=True, exist_ok=True)
    (root / "schedules/accounts.yaml").write_text(accounts, encoding="utf-8")
    (root / "content/posts").mkdir(parents=True, exist_ok=True)
    (root / "content/media").mkdir(parents=True, exist_ok=True)
    (root / "content/media/a.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 32)
    (root / "content/media/b.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\1" * 32)
    (root / "content/posts/p.yaml").write_text(textwrap.dedent(post), encoding="utf-8")
    return load(root)


def run(root: Path, content: ContentSet, server: LibreServer) -> Localization:
    cache = open_store(state_url(root, None)).translations
    return localize(content, make_backend("libre", server), cache)


def by_key(result: Localization) -> dict[tuple[str, str, int], Variant]:
    return {(v.lang, v.platform, v.part): v for v in result.variants}


def test_a_platform_version_is_published_on_that_platform_only(
    tmp_path: Path, libre: LibreServer
) -> None:
    """Facebook's own text and its human Arabic go to the Facebook accounts; X keeps the post's
    text and the post's Arabic; English on Facebook is translated from Facebook's text."""
    content = make_repo(
        tmp_path,
        """\
        lang: fr
        text: La France salue l'accord.
        translations: {ar: تحيي فرنسا الاتفاق}
        platforms:
          facebook:
            text: La France salue l'accord conclu avec le ministre, une étape pour la paix.
            translations: {ar: تحيي فرنسا الاتفاق المبرم مع الوزير}
        """,
    )
    variants = by_key(run(tmp_path, content, libre))
    assert variants[("fr", "x", 1)].texts == ("La France salue l'accord.",)
    assert variants[("fr", "facebook", 1)].texts[0].endswith("une étape pour la paix.")
    assert variants[("fr", "telegram", 1)].texts == ("La France salue l'accord.",)
    assert variants[("ar", "x", 1)].texts == ("تحيي فرنسا الاتفاق",)
    assert variants[("ar", "facebook", 1)].texts == ("تحيي فرنسا الاتفاق المبرم مع الوزير",)
    assert {v.origin for k, v in variants.items() if k[0] != "en"} == {"human"}
    en_fb, en_x = variants[("en", "facebook", 1)], variants[("en", "x", 1)]
    assert (en_fb.origin, en_x.origin) == ("machine", "machine")
    # Every text sent (LibreTranslate takes a list: both may be in one request).
    sent = [c.params["q"] for c in libre.calls]
    sources = sorted(q for texts in sent for q in (texts if isinstance(texts, list) else [texts]))
    assert len(sources) == 2 and "ministre" in sources[0] and "ministre" not in sources[1]
    assert "minister" in en_fb.texts[0] and "minister" not in en_x.texts[0]


def test_a_version_without_text_overrides_only_its_translations(
    tmp_path: Path, libre: LibreServer
) -> None:
    """platforms: {facebook: {translations: {en: ...}}}: the human English wins on Facebook,
    while X's English is machine-translated; French is the post's text on both."""
    content = make_repo(
        tmp_path,
        """\
        lang: fr
        text: La France salue l'accord.
        languages: [fr, en]
        platforms:
          facebook:
            translations: {en: "France welcomes the agreement (Facebook)."}
        """,
    )
    variants = by_key(run(tmp_path, content, libre))
    assert variants[("en", "facebook", 1)].texts == ("France welcomes the agreement (Facebook).",)
    assert variants[("en", "facebook", 1)].origin == "human"
    assert variants[("en", "x", 1)].origin == "machine"
    assert variants[("fr", "facebook", 1)].texts == variants[("fr", "x", 1)].texts
    assert len(libre.calls) == 1  # one source text, one target: translated once


def test_a_machine_translation_is_checked_against_each_platforms_own_limit(
    tmp_path: Path, libre: LibreServer
) -> None:
    """A 400-character English translation is held for X (280) and ready for Facebook: the
    check is per platform, not the tightest platform's for every account."""
    accounts = (
        "timezone: Europe/Paris\naccounts:\n"
        '  fr_fb: {lang: fr, platform: facebook, handle: FranceDiplo, page: "1"}\n'
        "  en_x: {lang: en, platform: x, handle: francediplo_EN}\n"
        '  en_fb: {lang: en, platform: facebook, handle: FranceDiploEN, page: "2"}\n'
    )
    content = make_repo(tmp_path, f"lang: fr\ntext: {'accord ' * 57}fin\n", accounts)
    variants = by_key(run(tmp_path, content, libre))
    assert variants[("en", "facebook", 1)].state == "ready"
    held = variants[("en", "x", 1)]
    assert held.state == "held" and "(limit 280)" in held.reason
    assert len(libre.calls) == 1


def test_telegram_checks_a_machine_translation_under_an_image_as_a_caption(
    tmp_path: Path, libre: LibreServer
) -> None:
    """With an image, Telegram's limit is its caption's 1,024; Facebook's stays 63,206."""
    accounts = (
        "timezone: Europe/Paris\naccounts:\n"
        '  fr_fb: {lang: fr, platform: facebook, handle: FranceDiplo, page: "1"}\n'
        "  en_tg: {lang: en, platform: telegram, handle: francediplo_en}\n"
        '  en_fb: {lang: en, platform: facebook, handle: FranceDiploEN, page: "2"}\n'
    )
    body = f"lang: fr\ntext: {'accord ' * 170}fin\nmedia:\n  - file: media/a.png\n"
    variants = by_key(run(tmp_path, make_repo(tmp_path, body, accounts), libre))
    assert variants[("en", "telegram", 1)].state == "held"
    assert "(limit 1024)" in variants[("en", "telegram", 1)].reason
    assert variants[("en", "facebook", 1)].state == "ready"


def _rows(content: ContentSet, result: Localization, account: str) -> pipeline.AccountRows:
    entry = content.posts["p"]
    deliveries = pipeline.due_now(content, entry, [account], NOW)
    (item,) = pipeline.rows(content, deliveries, result.variants, {account: "outbox"})
    return item


THREAD = """\
lang: fr
text: Un.
languages: [fr]
media:
  - {file: media/a.png, alt: Premier}
thread:
  - text: Deux.
    media:
      - {file: media/b.png, alt: Second}
  - text: Trois.
"""


def test_a_thread_is_one_post_on_a_platform_without_reply_chains(
    tmp_path: Path, libre: LibreServer
) -> None:
    """On Facebook and Telegram the three parts become one row: the texts joined by a blank
    line, both images with their alt texts; on X, three rows as a reply chain."""
    content = make_repo(tmp_path, THREAD)
    result = run(tmp_path, content, libre)
    for account in ("fr_fb", "fr_tg"):
        (row,) = _rows(content, result, account).rows
        assert (row.part, row.text) == (1, "Un.\n\nDeux.\n\nTrois.")
        assert [(m.file, m.alt) for m in row.media] == [
            ("content/media/a.png", "Premier"),
            ("content/media/b.png", "Second"),
        ]
    assert [r.text for r in _rows(content, result, "fr_x").rows] == ["Un.", "Deux.", "Trois."]


def test_a_thread_too_long_to_join_goes_out_part_by_part(
    tmp_path: Path, libre: LibreServer
) -> None:
    """Under an image Telegram takes 1,024 characters: two 700-character parts stay two posts,
    in order, each with its own images; Facebook joins them."""
    long = "a" * 700
    body = (
        f"lang: fr\ntext: {long}\nlanguages: [fr]\nmedia:\n  - file: media/a.png\n"
        f"thread:\n  - text: {long}b\n"
    )
    accounts = "\n".join(line for line in ACCOUNTS.splitlines() if "_x:" not in line) + "\n"
    content = make_repo(tmp_path, body, accounts)
    result = run(tmp_path, content, libre)
    tg = _rows(content, result, "fr_tg").rows
    assert [(r.part, r.text[-1], len(r.media)) for r in tg] == [(1, "a", 1), (2, "b", 0)]
    (fb,) = _rows(content, result, "fr_fb").rows
    assert len(fb.text) == 1403


def test_a_bcp47_account_language_reaches_the_engine_as_its_code(
    tmp_path: Path, libre: LibreServer
) -> None:
    """A zh-Hant account gets its variant under its own tag, translated by LibreTranslate
    into "zt" (traditional Chinese), and a zh-Hans account's into "zh"."""
    accounts = (
        "timezone: Europe/Paris\naccounts:\n"
        "  fr_x: {lang: fr, handle: francediplo}\n"
        "  tw: {lang: zh-Hant, platform: x, handle: franceintaiwan}\n"
        "  cn: {lang: zh-Hans, platform: weibo, handle: ambafrancechine}\n"
    )
    content = make_repo(tmp_path, "lang: fr\ntext: La France salue l'accord.\n", accounts)
    variants = by_key(run(tmp_path, content, libre))
    assert variants[("zh-Hant", "x", 1)].state == "ready"
    assert variants[("zh-Hans", "weibo", 1)].state == "ready"
    assert sorted(_first(c.params, "target") or "" for c in libre.calls) == ["zh", "zt"]


def test_translate_write_puts_each_language_in_the_file_once(
    tmp_path: Path, libre: LibreServer
) -> None:
    """Two platforms in one language share the post's machine translation: written once;
    a platform version's translation is never written (an editor writes it)."""
    from bot.translate.write import write_translations

    content = make_repo(
        tmp_path,
        """\
        lang: fr
        text: La France salue l'accord.
        languages: [fr, en]
        platforms:
          facebook:
            text: La France salue l'accord avec le ministre.
        """,
    )
    result = run(tmp_path, content, libre)
    assert {(v.lang, v.platform) for v in result.variants if v.origin == "machine"} == {
        ("en", "x"),
        ("en", "facebook"),
    }
    written = write_translations(tmp_path, content.posts["p"], result.variants, "libre")
    assert written == ["en"]
    reloaded = load(tmp_path).posts["p"].post
    assert list(reloaded.translations) == ["en"] and "minister" not in reloaded.translations["en"]
    assert reloaded.platforms["facebook"].translations == {}
