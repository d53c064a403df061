"""The whole error tree of diplobot.

::

    BotError                      anything diplobot raises on purpose
    ├── ContentError              the content repository is invalid; carries every Problem found
    ├── ConfigError               environment or settings are wrong (missing credentials, bad URL)
    ├── StateError                the state database cannot be used: damaged, not diplobot's,
    │                             or made by a newer version
    ├── TranslationError          a translation backend failed
    │   ├── TranslationTransient  worth retrying later (429, 5xx, connection); may carry retry_at
    │   └── TranslationPermanent  retrying will not help (auth, unsupported language)
    └── PublishError              a publisher failed; the library's exception is in __cause__
        ├── PublishRateLimited    429: carries retry_at (UTC); the caller reschedules
        ├── PublishAmbiguous      timeout, connection lost or 5xx after sending: the post may
        │                         exist; reconcile against the timeline before any retry
        ├── PublishDuplicate      X refused duplicate content: reconcile the same way
        ├── PublishAuthFailed     401, or a 403 other than duplicate: the account is flagged
        ├── PublishNoCredits      402: the X API account has no credits left
        ├── PublishRejected       400: X refused the request; its detail is in the message
        ├── PublishUnverifiable   the channel cannot be searched (Telegram): whether a post
        │                         is there is for a person to check, never a reason to resend
        └── PublishByHand         a manual channel (Weibo): the post is a task for a person

Messages say what to do next. They never contain a secret or a post's text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding about the content repository, located like a compiler error."""

    path: str  # relative to the content root, with forward slashes
    line: int  # 1-based; 0 when the problem concerns the whole file
    column: int  # 1-based; 0 when unknown
    message: str
    hint: str = ""
    severity: str = "error"  # "error" or "warning"

    def __str__(self) -> str:
        where = self.path
        if self.line:
            where += f":{self.line}"
            if self.column:
                where += f":{self.column}"
        text = f"{where}: {self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return text


class BotError(Exception):
    """Root of every error diplobot raises on purpose."""


class ContentError(BotError):
    """The content repository does not validate; ``problems`` lists every finding."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        count = sum(1 for p in self.problems if p.severity == "error")
        super().__init__(f"the content repository has {count} error(s); run 'diplobot validate'")


class ConfigError(BotError):
    """The environment or settings are wrong; the message says which variable to set."""


class StateError(BotError):
    """The state database cannot be used; the message names the file and what to do."""


class TranslationError(BotError):
    """A translation backend failed."""


class TranslationTransient(TranslationError):
    """A translation failed for a reason that may pass (rate limit, 5xx, network)."""

    def __init__(self, message: str, retry_at: datetime | None = None) -> None:
        super().__init__(message)
        self.retry_at = retry_at


class TranslationPermanent(TranslationError):
    """A translation failed for a reason retrying will not fix (auth, unsupported language)."""


class PublishError(BotError):
    """A publisher failed; the underlying library's exception is in ``__cause__``."""


class PublishRateLimited(PublishError):
    """The platform asked us to wait until ``retry_at`` (UTC)."""

    def __init__(self, message: str, retry_at: datetime) -> None:
        super().__init__(message)
        self.retry_at = retry_at


class PublishHeld(PublishError):
    """Nothing was sent: this process may not publish any more (a service replica that lost
    the lease, ``bot/state/lease.py``). The delivery goes back to PENDING for the replica
    that holds it now."""


class PublishAmbiguous(PublishError):
    """The request may have reached X (timeout, dropped connection, 5xx): the post may exist."""


class PublishDuplicate(PublishError):
    """X refused the text as a duplicate of a recent post of this account."""


class PublishAuthFailed(PublishError):
    """X refused the account's credentials or permissions (401, 403)."""


class PublishNoCredits(PublishError):
    """X answered 402: the developer account is out of credits."""


class PublishRejected(PublishError):
    """X refused the request as invalid (400); the message carries X's detail."""


class PublishUnverifiable(PublishError):
    """The channel cannot be searched for a post (the Telegram Bot API reads no channel
    history): ``find`` raises it, and the deliverer leaves the delivery UNKNOWN for a person,
    alerted once with what to check; it is never sent again by itself."""


class PublishByHand(PublishError):
    """A manual channel (Weibo has had no publishing API since 2017): ``publish`` raises it,
    and the deliverer makes the delivery a task for a person, open until ``until`` (UTC)."""

    def __init__(self, message: str, until: datetime) -> None:
        super().__init__(message)
        self.until = until
