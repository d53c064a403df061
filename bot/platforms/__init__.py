"""The platform registry: platform name (``platform:`` in accounts.yaml) → what diplobot knows
of it: its publisher, limits, prices and the name messages give it.

Light on purpose: loading and planning read limits from here without importing a publisher's
library (each factory imports its module when called). A new platform is one module beside
``x.py``, one entry in :data:`PLATFORMS`, and a fake server in ``tests/servers/`` that joins
``tests/platforms/test_publisher_contract.py``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from bot.errors import ConfigError
from bot.text.count import characters, graphemes, graphemes_bound, mastodon_length, utf16_length
from bot.text.length import MAX_WEIGHTED_LENGTH, weight_bound, weighted_length

if TYPE_CHECKING:
    from bot.publish.base import Publisher
    from bot.settings import Settings

OUTBOX = "outbox"
"""The dry-run channel: every account's, when no credentials are set or in a dry run."""


@dataclass(frozen=True, slots=True)
class Limits:
    """What one post may hold on a platform."""

    text: int  # longest text, as ``count`` measures it
    count: Callable[[str], int]  # a text's length as the platform counts it
    media: int  # images per post
    media_bytes: int  # largest image
    media_types: tuple[str, ...]  # image formats accepted, as the loader names them
    alt: int  # longest alt text, in characters; 0: the platform has no alt text
    # With images, a text limit of its own (Telegram: a caption); None: ``text``.
    caption: int | None = None
    # How a thread goes out: "reply", each part a reply to the previous one (a chain);
    # "join", the parts joined into one post when they fit (the platform has no reply chain).
    threads: str = "reply"
    # True: an image over ``media_bytes`` is resized by the publisher, not refused (Bluesky).
    resizes: bool = False

    def text_limit(self, with_media: bool) -> int:
        """The longest text of a post, with or without images (Telegram: a caption)."""
        if with_media and self.caption is not None:
            return self.caption
        return self.text

    # A cheap upper bound of ``count`` (None: ``count`` is cheap itself); see ``over``.
    bound: Callable[[str], int] | None = None

    def over(self, text: str, limit: int | None = None) -> int | None:
        """``text``'s length as ``count`` measures it if it is over ``limit`` (default: the
        text limit), else None. The exact count runs only when ``bound`` cannot clear the
        text: most texts are far below their limit."""
        limit = self.text if limit is None else limit
        if self.bound is not None and self.bound(text) <= limit:
            return None
        length = self.count(text)
        return length if length > limit else None


@dataclass(frozen=True, slots=True)
class Prices:
    """Default pay-per-use prices (accounts.yaml's ``pricing:`` overrides them)."""

    post: float
    post_with_url: float
    currency: str


class Account(Protocol):
    """What the registry reads of an account (``bot.content.model.Account``, which imports
    this module for its platform names: a protocol keeps the two apart)."""

    @property
    def platform(self) -> str: ...

    @property
    def handle(self) -> str: ...

    @property
    def lang(self) -> str: ...


class PlatformSettings(Protocol):
    """A platform's settings, as the wiring read them from the environment."""

    @property
    def missing(self) -> Mapping[str, str]:
        """Account → the variables to set, for each account without credentials."""
        ...


@dataclass(frozen=True, slots=True)
class Platform:
    """One registry entry: everything diplobot knows of a platform outside its module."""

    name: str  # as accounts.yaml and the ledger's channel write it
    display: str  # as messages name it: "X refused the text…"
    limits: Limits
    prices: Prices | None  # None: posting costs nothing
    # (its settings, account id → account, for its accounts) → the publisher for the
    # accounts that have credentials, or None when none has.
    publisher: Callable[[Any, Mapping[str, Account]], Publisher | None]
    # (the process's settings, account ids) → the platform's settings for those accounts.
    settings: Callable[[Settings, list[str]], PlatformSettings] = field(repr=False)
    # Each account's secrets, as ``DIPLOBOT_<ACCOUNT>_<suffix>`` (or its ``_FILE``).
    credentials: tuple[str, ...] = ()


def _x_publisher(settings: Any, accounts: Mapping[str, Account]) -> Publisher | None:
    from bot.platforms.x import XPublisher  # tweepy and aiohttp: only when publishing

    return XPublisher.from_settings(settings, {a: acct.handle for a, acct in accounts.items()})


def _module_publisher(name: str) -> Callable[[Any, Mapping[str, Account]], Publisher | None]:
    """The factory of a platform whose module ``bot/platforms/<name>.py`` has
    ``publisher(settings, accounts)``: imported when called, so that loading and planning
    never import a platform's library."""

    def make(settings: Any, accounts: Mapping[str, Account]) -> Publisher | None:
        module = importlib.import_module(f"bot.platforms.{name}")
        made: Publisher | None = module.publisher(settings, accounts)
        return made

    return make


def _module_settings(name: str) -> Callable[[Settings, list[str]], PlatformSettings]:
    """The settings reader of a platform whose module has ``read_settings(settings,
    accounts)`` (it reads ``settings.platform_env``, never the environment itself)."""

    def read(settings: Settings, accounts: list[str]) -> PlatformSettings:
        module = importlib.import_module(f"bot.platforms.{name}")
        found: PlatformSettings = module.read_settings(settings, accounts)
        return found

    return read


X = Platform(
    name="x",
    display="X",
    limits=Limits(
        text=MAX_WEIGHTED_LENGTH,
        count=weighted_length,  # twitter-text's weighted length: URLs 23, CJK and emoji 2
        bound=weight_bound,
        media=4,
        media_bytes=5 * 1024 * 1024,
        media_types=("JPEG", "PNG", "GIF", "WEBP"),
        alt=1000,
    ),
    prices=Prices(post=0.015, post_with_url=0.20, currency="USD"),
    publisher=_x_publisher,
    settings=lambda settings, accounts: settings.x(accounts),
    credentials=("ACCESS_TOKEN", "ACCESS_SECRET"),
)

MB = 1024 * 1024
MASTODON = Platform(
    name="mastodon",
    display="Mastodon",
    # An instance may allow more: `accounts check` reads its configuration.statuses.
    limits=Limits(
        text=500,
        count=mastodon_length,
        media=4,
        media_bytes=16 * MB,
        media_types=("JPEG", "PNG", "GIF", "WEBP"),
        alt=1500,
    ),
    prices=None,
    publisher=_module_publisher("mastodon"),
    settings=_module_settings("mastodon"),
    credentials=("ACCESS_TOKEN",),
)
BLUESKY = Platform(
    name="bluesky",
    display="Bluesky",
    limits=Limits(
        text=300,
        count=graphemes,
        bound=graphemes_bound,
        media=4,
        media_bytes=976_560,  # app.bsky.embed.images: maxSize 1,000,000 bytes of the blob
        media_types=("JPEG", "PNG", "WEBP"),
        alt=2000,
        resizes=True,  # the publisher recompresses a larger image (bot/publish/resize.py)
    ),
    prices=None,
    publisher=_module_publisher("bluesky"),
    settings=_module_settings("bluesky"),
    credentials=("APP_PASSWORD",),
)
FACEBOOK = Platform(
    name="facebook",
    display="Facebook",
    limits=Limits(
        text=63_206,
        count=characters,
        media=10,
        media_bytes=10 * MB,
        media_types=("JPEG", "PNG", "GIF", "WEBP"),
        alt=1000,
        threads="join",
    ),
    prices=None,
    publisher=_module_publisher("facebook"),
    settings=_module_settings("facebook"),
    credentials=("ACCESS_TOKEN",),
)
TELEGRAM = Platform(
    name="telegram",
    display="Telegram",
    limits=Limits(
        text=4096,
        count=utf16_length,
        media=10,
        media_bytes=10 * MB,
        media_types=("JPEG", "PNG", "WEBP"),
        alt=0,  # the Bot API has no alt text for photos
        caption=1024,
        threads="join",
    ),
    prices=None,
    publisher=_module_publisher("telegram"),
    settings=_module_settings("telegram"),
    credentials=("BOT_TOKEN",),
)
WEIBO = Platform(
    name="weibo",
    display="Weibo",
    limits=Limits(
        text=2000,
        count=characters,
        media=9,
        media_bytes=20 * MB,
        media_types=("JPEG", "PNG", "GIF"),
        alt=0,
        threads="join",
    ),
    prices=None,
    publisher=_module_publisher("weibo"),  # a manual channel: a task for a person
    settings=_module_settings("weibo"),
)

PLATFORMS: dict[str, Platform] = {
    p.name: p for p in (X, MASTODON, BLUESKY, FACEBOOK, TELEGRAM, WEIBO)
}
"""Every platform diplobot publishes to, by name."""

DEFAULT_PLATFORM = X.name

REPOSTING = frozenset({X.name, MASTODON.name, BLUESKY.name})
"""Platforms where an account can repost another's post (a retweet, a reblog, a repost
record): a mission amplifies a central post there by reposting it; elsewhere by a copy."""
"""An account's platform when accounts.yaml does not say."""

MEDIA_BYTES_MAX = max(p.limits.media_bytes for p in PLATFORMS.values())
"""The largest image any platform takes: an image read to publish may be no larger."""


def platform(name: str) -> Platform:
    """The platform called ``name``.

    Raises:
        ConfigError: no such platform; the message lists the valid ones.
    """
    found = PLATFORMS.get(name)
    if found is None:
        raise ConfigError(f"unknown platform '{name}': use one of {', '.join(sorted(PLATFORMS))}")
    return found


def platform_of(account: Account) -> Platform:
    return platform(account.platform)


def limits_for(account: Account) -> Limits:
    """What one post of ``account`` may hold."""
    return platform_of(account).limits


def read_settings(
    accounts: Mapping[str, Account], settings: Settings
) -> dict[str, PlatformSettings]:
    """Each platform's settings for its accounts (platform name → settings), taken from the
    process's ``settings`` (read from the environment once). The wiring calls it."""
    by_platform: dict[str, list[str]] = {}
    for account_id, account in accounts.items():
        by_platform.setdefault(platform_of(account).name, []).append(account_id)
    return {name: PLATFORMS[name].settings(settings, ids) for name, ids in by_platform.items()}


@dataclass
class Channels:
    """Each account's channel and the publisher of each channel."""

    publishers: dict[str, Publisher]  # channel → publisher; the outbox is always there
    channel_of: dict[str, str]  # account → channel
    warnings: list[str]  # what an operator should know (an account that is a dry run)


def own_publishers(
    accounts: Mapping[str, Account], settings: Mapping[str, PlatformSettings]
) -> dict[str, Publisher | str]:
    """Each account's own platform publisher (one per platform, shared by its accounts), or,
    for an account without credentials, the variables to set."""
    by_platform: dict[str, dict[str, Account]] = {}
    for account_id, account in accounts.items():
        by_platform.setdefault(platform_of(account).name, {})[account_id] = account
    built: dict[str, Publisher | None] = {}
    found: dict[str, Publisher | str] = {}
    for account_id, account in accounts.items():
        plat = platform_of(account)
        own = settings.get(plat.name)
        if own is None or account_id in own.missing:
            found[account_id] = own.missing.get(account_id, "") if own is not None else ""
            continue
        if plat.name not in built:
            built[plat.name] = plat.publisher(own, by_platform[plat.name])
        publisher = built[plat.name]
        found[account_id] = publisher if publisher is not None else ""
    return found


def publishers(
    accounts: Mapping[str, Account],
    settings: Mapping[str, PlatformSettings],
    *,
    dry_run: bool,
    outbox_path: Path,
) -> Channels:
    """Give each account its channel: its platform's publisher when its credentials are set,
    else the outbox with a DRY RUN warning. ``dry_run``: every account's channel is the outbox
    (no warning: it was asked for). ``settings``: see :func:`read_settings`."""
    from bot.platforms.outbox import OutboxPublisher

    handles = {a: acct.handle for a, acct in accounts.items()}
    found: dict[str, Publisher] = {OUTBOX: OutboxPublisher(outbox_path, handles)}
    channel_of = dict.fromkeys(accounts, OUTBOX)
    if dry_run:  # asked for: no warning
        return Channels(found, channel_of, [])
    warnings: list[str] = []
    for account_id, own in own_publishers(accounts, settings).items():
        if isinstance(own, str):
            warnings.append(
                f"no {platform_of(accounts[account_id]).display} credentials for account "
                f"'{account_id}': DRY RUN to the outbox {outbox_path} (set {own})"
            )
            continue
        found[own.name] = own
        channel_of[account_id] = own.name
    return Channels(found, channel_of, warnings)
