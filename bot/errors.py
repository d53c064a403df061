"""The whole error tree of diplobot.

::

    BotError                      anything diplobot raises on purpose
    ├── ContentError              the content repository is invalid; carries every Problem found
    ├── ConfigError               environment or settings are wrong (missing credentials, bad URL)
    ├── TranslationError          a translation backend failed
    │   ├── TranslationTransient  worth retrying later (429, 5xx, connection); may carry retry_at
    │   └── TranslationPermanent  retrying will not help (auth, unsupported language)
    └── PublishError              a publisher failed; the library's exception is in __cause__
        └── PublishRateLimited    carries retry_at (UTC); the caller reschedules

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
