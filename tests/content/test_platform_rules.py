"""Each account is checked by its own platform's rules: handle and fields, text length counted
the platform's way, captions, images and alt texts; and languages are BCP 47 tags."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

POST = "content/posts/bad.yaml"
ACCOUNTS = "schedules/accounts.yaml"
Check = Callable[..., Any]  # the `check` fixture of conftest.py
PNG = b"\x89PNG\r\n\x1a\n"

EVERY_PLATFORM = """\
timezone: Europe/Paris
accounts:
  francediplo:    {lang: fr, platform: x, handle: francediplo}
  diplo_fr_masto: {lang: fr, platform: mastodon, handle: France, instance: https://social.example}
  diplo_fr_local: {lang: fr, platform: mastodon, handle: Local, instance: "http://127.0.0.1:8080"}
  diplo_en_sky:   {lang: en, platform: bluesky, handle: diplo.bsky.social}
  diplo_ar_fb:    {lang: ar, platform: facebook, handle: FranceDiplo.ar, page: "1234567890"}
  diplo_es_tg:    {lang: es, platform: telegram, handle: francediplo_es}
  diplo_zh_weibo: {lang: zh-Hans, platform: weibo, handle: francechine}
"""


X_ACCOUNTS = """\
  francediplo: {lang: fr, handle: francediplo}
  francediplo_EN: {lang: en, handle: francediplo_EN}
  francediplo_AR: {lang: ar, handle: francediplo_AR}
  francediplo_ES: {lang: es, handle: francediplo_ES}
"""
"""Four lines of X accounts in the example's languages: the example's posts stay valid."""


def accounts_only(lines: str) -> dict[str, str]:
    """An accounts.yaml with ``lines`` under ``accounts:``."""
    return {ACCOUNTS: "timezone: Europe/Paris\naccounts:\n" + lines}


def one_error(check: Check, files: dict[str, str], where: str, *words: str) -> str:
    result = check(files)
    assert result.code == 1, result.out
    found_where, text = result.only_error()
    assert found_where == where, text
    for word in words:
        assert word in text, text
    return str(text)


def post_in(lang: str, text: str, extra: str = "") -> str:
    """A post in ``lang`` published only in ``lang``, its text quoted on line 2."""
    quoted = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'lang: {lang}\ntext: "{quoted}"\nlanguages: [{lang}]\n{extra}'


def test_every_platform_validates(check: Check) -> None:
    """One account on each platform, with the fields each needs, is a valid repository."""
    result = check({ACCOUNTS: EVERY_PLATFORM})
    assert result.code == 0, result.out


def test_301_grapheme_bluesky_text_is_refused_with_file_and_line(check: Check) -> None:
    """Bluesky counts graphemes: 300 (emoji with skin tone, flags: one each) pass, 301 fail."""
    emoji = "\U0001f44d\U0001f3fd\U0001f1eb\U0001f1f7e\u0301"  # 3 graphemes, 7 code points
    fits = emoji * 100
    assert check({ACCOUNTS: EVERY_PLATFORM, POST: post_in("en", fits)}).code == 0
    one_error(
        check,
        {POST: post_in("en", fits + "!")},
        f"{POST}:2:7",
        "text is 301 characters long as Bluesky counts them; the limit is 300",
        "shorten it by 1",
    )


def test_501_character_mastodon_text_is_refused_with_file_and_line(check: Check) -> None:
    """Mastodon: 500 characters, every URL counting 23 whatever its length."""
    files = accounts_only(
        X_ACCOUNTS
        + "  masto: {lang: de, platform: mastodon, handle: France, instance: https://social.example}\n"
    )
    url = "https://www.diplomatie.gouv.fr/" + "a" * 200
    assert check({**files, POST: post_in("de", "x" * 476 + " " + url)}).code == 0  # 476+1+23
    one_error(
        check,
        {POST: post_in("de", "é" * 501)},
        f"{POST}:2:7",
        "text is 501 characters long as Mastodon counts them; the limit is 500",
    )


def test_each_account_is_checked_with_its_own_platforms_counting(check: Check) -> None:
    """A long URL counts 23 on X but in full on Bluesky: the same text fits one and not the
    other, so the error names Bluesky (the old rule checked only the 'tightest' platform)."""
    files = accounts_only(
        X_ACCOUNTS + "  diplo_en_sky: {lang: en, platform: bluesky, handle: diplo.bsky.social}\n"
    )
    text = "Read it: https://www.diplomatie.gouv.fr/en/" + "p" * 280
    one_error(
        check,
        {**files, POST: post_in("en", text)},
        f"{POST}:2:7",
        "as Bluesky counts them; the limit is 300",
    )


def test_telegram_caption_limit_applies_only_to_posts_with_images(check: Check) -> None:
    """Telegram takes 4,096 characters of text but 1,024 under a photo."""
    files = {ACCOUNTS: EVERY_PLATFORM}
    text = "o" * 1025
    assert check({**files, POST: post_in("es", text)}).code == 0
    one_error(
        check,
        {POST: post_in("es", text, "media:\n  - file: media/drapeau.png\n")},
        f"{POST}:2:7",
        "text is 1025 characters long as Telegram counts them; the limit is 1024 for a post "
        "with images (a caption)",
    )


def test_a_human_translation_is_checked_against_its_languages_platforms(check: Check) -> None:
    """A translation is checked with the platforms of the accounts in its language only."""
    body = 'lang: fr\ntext: Bonjour\ntranslations:\n  en: "' + "e" * 301 + '"\n'
    one_error(
        check,
        {ACCOUNTS: EVERY_PLATFORM, POST: body},
        f"{POST}:4:7",
        "as Bluesky counts them; the limit is 300",
    )


def test_bluesky_image_over_its_size_is_not_an_error(example_repo: Path, check: Check) -> None:
    """Bluesky's publisher recompresses an image over 976,560 bytes: validate accepts it, while
    the same image for an X account (5 MB) over X's size is refused."""
    with (example_repo / "content/media/big.png").open("wb") as handle:
        handle.write(PNG)
        handle.truncate(2 * 1024 * 1024)
    body = post_in("en", "Hello", "media:\n  - file: media/big.png\n")
    assert check({ACCOUNTS: EVERY_PLATFORM, POST: body}).code == 0
    with (example_repo / "content/media/big.png").open("r+b") as handle:
        handle.truncate(6 * 1024 * 1024)
    result = check(
        {
            ACCOUNTS: EVERY_PLATFORM.replace("platform: bluesky", "platform: x").replace(
                "diplo.bsky.social", "diplo_en"
            )
        }
    )
    assert result.code == 1
    assert "big.png' is 6.0 MB; X accepts at most 5 MB" in result.out


def test_image_types_are_checked_per_platform(example_repo: Path, check: Check) -> None:
    """A GIF goes to X, not to Bluesky: the error names the platform that refuses it."""
    (example_repo / "content/media/anim.gif").write_bytes(b"GIF89a" + b"\0" * 64)
    one_error(
        check,
        {ACCOUNTS: EVERY_PLATFORM, POST: post_in("en", "Hi", "media:\n  - file: media/anim.gif\n")},
        f"{POST}:5:11",
        "'media/anim.gif' is not an image Bluesky accepts",
    )


def test_alt_text_over_the_platforms_limit(check: Check) -> None:
    """Alt text is limited per platform (Bluesky 2,000); Telegram has none, so any length
    passes there (plan warns that it is dropped)."""
    alt = "a" * 2001
    media = f"media:\n  - file: media/drapeau.png\n    alt: {alt}\n"
    one_error(
        check,
        {ACCOUNTS: EVERY_PLATFORM, POST: post_in("en", "Hi", media)},
        f"{POST}:6:10",
        "alt text is 2001 characters; Bluesky allows 2000",
    )
    assert check({POST: post_in("es", "Hola", media)}).code == 0


@pytest.mark.parametrize(
    ("account", "at", "words"),
    [
        pytest.param(
            "{lang: de, platform: x, handle: francediplo_officiel}",
            "francediplo_officiel",
            ["X handle 'francediplo_officiel' is not 1-15 letters"],
            id="x-handle-too-long",
        ),
        pytest.param(
            "{lang: de, handle: france.diplo}",
            "france.diplo",
            ["X handle 'france.diplo' is not 1-15 letters"],
            id="x-by-default",
        ),
        pytest.param(
            "{lang: de, platform: mastodon, handle: France}",
            None,
            ["Mastodon account 'a' has no instance", "instance: https://"],
            id="mastodon-without-instance",
        ),
        pytest.param(
            "{lang: de, platform: mastodon, handle: France, instance: http://social.example}",
            "http://",
            ["instance 'http://social.example' is not an https:// server address"],
            id="mastodon-http-instance",
        ),
        pytest.param(
            "{lang: de, platform: mastodon, handle: France.Diplo, instance: https://social.example}",
            "France.Diplo",
            ["Mastodon user name 'France.Diplo' is not 1-30 letters", "https://<instance>/@<name>"],
            id="mastodon-user-name",
        ),
        pytest.param(
            "{lang: de, platform: bluesky, handle: diplo}",
            "diplo}",
            ["Bluesky handle 'diplo' is not a domain name", "diplo.bsky.social"],
            id="bluesky-not-a-domain",
        ),
        pytest.param(
            "{lang: de, platform: facebook, handle: FranceDiplo}",
            None,
            ["Facebook account 'a' has no page", "page:"],
            id="facebook-without-page",
        ),
        pytest.param(
            "{lang: de, platform: telegram, handle: fd}",
            "fd}",
            ["Telegram channel name 'fd' is not 5-32 letters"],
            id="telegram-short-name",
        ),
        pytest.param(
            "{lang: de, platform: x, handle: francediplo, instance: https://social.example}",
            "instance:",
            [
                "'instance' is for Mastodon accounts; account 'a' publishes on X",
                "platform: mastodon",
            ],
            id="field-of-another-platform",
        ),
    ],
)
def test_each_platforms_account_fields_are_checked(
    check: Check, account: str, at: str | None, words: list[str]
) -> None:
    """Handle shape per platform (X's 1-15 rule still holds), and each platform's own field;
    the error points at the value (``at``), or at the account's key for a missing field."""
    line = "  a: " + account
    files = accounts_only(X_ACCOUNTS + line + "\n")
    column = 3 if at is None else line.index(at) + 1
    one_error(check, files, f"{ACCOUNTS}:7:{column}", *words)


def test_bcp47_languages_are_accepted_everywhere(check: Check) -> None:
    """zh-Hans accounts, translations into zh-Hans and pt-BR, alt texts per tag: all valid."""
    files = {
        ACCOUNTS: EVERY_PLATFORM
        + "  diplo_zh_tw: {lang: zh-Hant, platform: x, handle: francetaiwan}\n"
        + "  diplo_br: {lang: pt-BR, platform: bluesky, handle: franca.bsky.social}\n",
        POST: "lang: fr\ntext: Bonjour\ntranslations:\n  zh-Hans: 你好\n  zh-Hant: 你好\n"
        "  pt-BR: Olá\nmedia:\n  - file: media/drapeau.png\n"
        "    alt: {fr: Drapeau, zh-Hans: 国旗, pt-BR: Bandeira}\n",
    }
    result = check(files)
    assert result.code == 0, result.out


def test_a_tag_in_the_wrong_case_gets_its_canonical_spelling(check: Check) -> None:
    """zh-hans is not zh-Hans: the hint gives the spelling to use."""
    one_error(
        check,
        {
            ACCOUNTS: EVERY_PLATFORM,
            POST: "lang: fr\ntext: Bonjour\ntranslations:\n  zh-hans: 你好\n",
        },
        f"{POST}:4:3",
        "unknown language 'zh-hans'",
        "use 'zh-Hans'",
    )


def test_a_platform_version_is_checked_against_its_platform_only(check: Check) -> None:
    """Telegram's own text may be longer than X allows (4,096); a version too long for its
    platform is located in the file."""
    long = "Una version larga para Telegram. " * 40  # 1,280 characters
    body = f'lang: es\ntext: Hola\nlanguages: [es]\nplatforms:\n  telegram:\n    text: "{long}"\n'
    assert check({ACCOUNTS: EVERY_PLATFORM, POST: body}).code == 0
    too_long = "x" * 4097
    one_error(
        check,
        {
            POST: "lang: es\ntext: Hola\nlanguages: [es]\nplatforms:\n  telegram:\n"
            f'    text: "{too_long}"\n'
        },
        f"{POST}:6:11",
        "text is 4097 characters long as Telegram counts them; the limit is 4096",
    )


def test_the_posts_text_is_not_checked_where_a_version_replaces_it(check: Check) -> None:
    """A text too long for Bluesky is fine when Bluesky publishes its own shorter version."""
    long = "e" * 301
    body = (
        f'lang: en\ntext: "{long}"\nlanguages: [en]\n'
        "platforms:\n  bluesky:\n    text: A shorter text for Bluesky\n"
    )
    accounts = EVERY_PLATFORM + "  diplo_en_x: {lang: en, platform: x, handle: diplo_en}\n"
    result = check({ACCOUNTS: accounts, POST: body})
    assert result.code == 1  # X still gets the long text
    assert result.only_error()[1].startswith("text is 301 characters long as X counts them")
    assert check({ACCOUNTS: EVERY_PLATFORM, POST: body}).code == 0


def test_a_version_for_a_platform_without_account_is_ignored(check: Check) -> None:
    """A Mastodon version where no account publishes on Mastodon is not published and not
    checked (removing an account must not invalidate every post with a version for it)."""
    long = "e" * 600  # over Mastodon's 500: not checked, since it goes nowhere
    body = f'lang: en\ntext: Hi\nlanguages: [en]\nplatforms:\n  mastodon:\n    text: "{long}"\n'
    result = check({ACCOUNTS: EVERY_PLATFORM, POST: body})
    assert (result.code, result.out.strip()) == (0, "valid")


def test_a_version_translation_into_a_language_not_on_that_platform(check: Check) -> None:
    """A Facebook translation into English, when no Facebook account publishes in English."""
    one_error(
        check,
        {
            ACCOUNTS: EVERY_PLATFORM,
            POST: "lang: fr\ntext: Salut\nplatforms:\n  facebook:\n    translations: {en: Hi}\n",
        },
        f"{POST}:5:20",
        "translation into 'en', but no Facebook account publishes in 'en'",
    )
