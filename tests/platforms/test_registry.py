"""The platform registry: names, limits, and each account's channel."""

from __future__ import annotations

import sys
import typing
from pathlib import Path

import pytest
from publish.conftest import ACCOUNTS, APP

from bot.content.model import Account
from bot.errors import ConfigError
from bot.platforms import (
    OUTBOX,
    PLATFORMS,
    limits_for,
    own_publishers,
    platform,
    publishers,
    read_settings,
)
from bot.settings import Settings, XSettings

FR, EN = "francediplo", "francediplo_EN"
ACCTS = {FR: Account(lang="fr", handle=FR), EN: Account(lang="en", handle=EN)}


def _env(*accounts: str) -> dict[str, str]:
    env = {"DIPLOBOT_X_API_KEY": APP[0], "DIPLOBOT_X_API_SECRET": APP[1]}
    for account in accounts:
        token, secret, _handle = ACCOUNTS[account]
        env[f"DIPLOBOT_{account.upper()}_ACCESS_TOKEN"] = token
        env[f"DIPLOBOT_{account.upper()}_ACCESS_SECRET"] = secret
    return env


def test_an_unknown_platform_is_refused_with_the_valid_names() -> None:
    with pytest.raises(
        ConfigError,
        match=r"unknown platform 'myspace': use one of bluesky, facebook, mastodon, telegram, "
        r"weibo, x$",
    ):
        platform("myspace")


def test_accounts_yaml_accepts_exactly_the_registered_platforms() -> None:
    """``Account.platform`` is the Literal of the registry's names (the JSON Schema's enum)."""
    annotation = Account.model_fields["platform"].annotation
    assert set(typing.get_args(annotation)) == set(PLATFORMS)


def test_x_limits_are_the_ones_x_documents() -> None:
    limits = limits_for(ACCTS[FR])
    assert (limits.text, limits.media, limits.media_bytes, limits.alt) == (280, 4, 5 << 20, 1000)
    assert limits.count("https://www.diplomatie.gouv.fr/a-very-long-path") == 23


def test_the_registry_imports_no_publisher_library() -> None:
    """Loading and planning read limits without importing tweepy (a pure stage)."""
    import subprocess

    code = "import sys, bot.content.loader, bot.schedule.plan; print('tweepy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_an_account_with_credentials_gets_its_platform_the_others_the_outbox(
    tmp_path: Path,
) -> None:
    """The warning for an account without credentials names what to set."""
    settings = read_settings(ACCTS, Settings.from_env(_env(FR)))
    assert isinstance(settings["x"], XSettings)
    channels = publishers(ACCTS, settings, dry_run=False, outbox_path=tmp_path / "o.jsonl")
    assert channels.channel_of == {FR: "x", EN: OUTBOX}
    assert set(channels.publishers) == {"x", OUTBOX}
    assert channels.warnings == [
        f"no X credentials for account '{EN}': DRY RUN to the outbox {tmp_path / 'o.jsonl'} "
        f"(set DIPLOBOT_{EN.upper()}_ACCESS_TOKEN, DIPLOBOT_{EN.upper()}_ACCESS_SECRET)"
    ]


def test_a_dry_run_sends_every_account_to_the_outbox_without_warning(tmp_path: Path) -> None:
    settings = read_settings(ACCTS, Settings.from_env(_env(FR, EN)))
    channels = publishers(ACCTS, settings, dry_run=True, outbox_path=tmp_path / "o.jsonl")
    assert channels.channel_of == {FR: OUTBOX, EN: OUTBOX}
    assert set(channels.publishers) == {OUTBOX} and channels.warnings == []


def test_own_publishers_shares_one_publisher_per_platform(tmp_path: Path) -> None:
    found = own_publishers(ACCTS, read_settings(ACCTS, Settings.from_env(_env(FR, EN))))
    assert found[FR] is found[EN] and not isinstance(found[FR], str)
    assert found[FR].name == "x"


@pytest.mark.parametrize("name", sorted(n for n, p in PLATFORMS.items() if p.credentials))
def test_each_platform_reads_the_credentials_the_registry_names(name: str) -> None:
    """``Platform.credentials`` (what docs and docker-compose wire) is what the platform's
    settings read: with those variables set the account lacks nothing, without any of them
    it lacks exactly that one."""
    plat = PLATFORMS[name]
    env = {"DIPLOBOT_X_API_KEY": APP[0], "DIPLOBOT_X_API_SECRET": APP[1]}
    names = [f"DIPLOBOT_DESK_{suffix}" for suffix in plat.credentials]
    full = Settings.from_env({**env, **dict.fromkeys(names, "secret-value")})
    assert dict(plat.settings(full, ["desk"]).missing) == {}
    for left_out in names:
        partial = Settings.from_env({**env, **{n: "secret-value" for n in names if n != left_out}})
        assert left_out in plat.settings(partial, ["desk"]).missing["desk"]


# Texts around every platform's limit: short and long, ASCII and not, links, emoji, CJK,
# combining accents (Bluesky's graphemes), remote mentions (Mastodon).
_PIECES = [
    "a",
    "é",
    "e\u0301",
    "中",
    " ",
    "\r\n",
    "\U0001f1eb\U0001f1f7",
    "\U0001f468\u200d\U0001f469\u200d\U0001f467",
    "https://www.diplomatie.gouv.fr/fr/article",
    "t.co/x",
    "a.fr",
    "@user@mastodon.social",
    "#COP31",
]


@pytest.mark.parametrize("name", sorted(PLATFORMS))
def test_over_agrees_with_the_exact_count_at_every_limit(name: str) -> None:
    """``Limits.over`` (a cheap bound first, the exact count only when the bound does not clear
    the text) reports exactly the texts, and the lengths, that counting every text would."""
    import random

    limits = PLATFORMS[name].limits
    rng = random.Random(name)
    checked = 0
    for _ in range(400):
        text = "".join(rng.choice(_PIECES) for _ in range(rng.randint(1, 120)))
        length = limits.count(text)
        if limits.bound is not None:
            assert limits.bound(text) >= length, text
        for limit in (limits.text, limits.caption or limits.text, length, length - 1, 40):
            assert limits.over(text, limit) == (length if length > limit else None), text
            checked += 1
    assert checked == 2000
