"""Weibo, a manual channel: Weibo has had no usable publishing API since 2017, so diplobot
never posts there itself. At its due time a delivery becomes a task for a person.

``publish`` raises :class:`PublishByHand` carrying the end of the task's window
(``DIPLOBOT_WEIBO_TASK_WINDOW``, default 24 h): the deliverer records the row UNKNOWN with a
reason beginning "task for a person: " and alerts once with the text (in Chinese, as
recorded) and the images' paths. A person posts it and runs ``diplobot mark-posted ID
--account A --url URL`` (POSTED); past the window, the task ends EXPIRED (alerted). See
``docs/operations.md``, "Weibo (manual)".

No credentials: every Weibo account of accounts.yaml has this channel. Nothing is searched or
deleted here: ``find`` answers None (diplobot never published anything there by itself: a
claim that died before the task was recorded made no post), ``recent`` ``[]``, and ``delete``
asks a person.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bot.errors import ConfigError, PublishByHand, PublishError
from bot.platforms import Account
from bot.publish.base import Outgoing, Published, Receipt
from bot.settings import Settings

DEFAULT_WINDOW = timedelta(hours=24)
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class WeiboSettings:
    """How long a task stays open; ``missing`` is always empty (no credentials)."""

    window: timedelta = DEFAULT_WINDOW
    missing: Mapping[str, str] = field(default_factory=dict)


def read_settings(settings: Settings, accounts: list[str]) -> WeiboSettings:
    """``DIPLOBOT_WEIBO_TASK_WINDOW``: seconds, or a number with s, m, h or d.

    Raises:
        ConfigError: the window is not a duration from one minute to 30 days.
    """
    del accounts
    raw = (settings.platform_env.get("DIPLOBOT_WEIBO_TASK_WINDOW") or "").strip().lower()
    if not raw:
        return WeiboSettings()
    number, unit = raw.rstrip("smhd"), raw[len(raw.rstrip("smhd")) :]
    try:
        seconds = float(number.strip()) * _UNITS[unit]
    except (ValueError, KeyError):
        raise ConfigError(
            f"DIPLOBOT_WEIBO_TASK_WINDOW={raw!r}: give seconds, or a number with s, m, h or d"
        ) from None
    if not 60 <= seconds <= 30 * 86400:
        raise ConfigError(
            f"DIPLOBOT_WEIBO_TASK_WINDOW={raw}: must be between one minute and 30 days"
        )
    return WeiboSettings(timedelta(seconds=seconds))


def publisher(settings: WeiboSettings, accounts: Mapping[str, Account]) -> WeiboPublisher:
    return WeiboPublisher({a: acct.handle for a, acct in accounts.items()}, settings.window)


class WeiboPublisher:
    """Turns each delivery into a task for a person (see the module docstring)."""

    name = "weibo"

    def __init__(
        self,
        handles: Mapping[str, str],
        window: timedelta = DEFAULT_WINDOW,
        clock: type[datetime] = datetime,
    ) -> None:
        self.handles = dict(handles)
        self.window = window
        self._clock = clock

    def publish(self, item: Outgoing) -> Receipt:
        """Raises:
        PublishByHand: always: a person posts it, until now + the window.
        """
        self._handle(item.account)
        until = self._clock.now(UTC) + self.window
        raise PublishByHand(f"Weibo is published by hand: a task until {until:%H:%M} UTC", until)

    def find(self, item: Outgoing, since: datetime) -> Receipt | None:
        """None: diplobot never publishes on Weibo itself (what a person posted is recorded
        with ``mark-posted``; an open task is never looked up)."""
        self._handle(item.account)
        return None

    def recent(self, account: str, since: datetime) -> list[Published]:
        self._handle(account)
        return []

    def delete(self, account: str, remote_id: str) -> None:
        """Raises:
        PublishError: always: a person deletes it on Weibo.
        """
        raise PublishError(
            f"Weibo is managed by hand: delete post {remote_id} of @{self._handle(account)} on "
            "weibo.com yourself"
        )

    def whoami(self, account: str) -> str:
        """The handle accounts.yaml gives: a person publishes as whoever they are logged in."""
        return self._handle(account)

    def _handle(self, account: str) -> str:
        try:
            return self.handles[account]
        except KeyError:
            raise ConfigError(f"account '{account}' is not a Weibo account") from None
