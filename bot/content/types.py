"""What loading the content repository produces: :class:`ContentSet` and :class:`PostEntry`,
and where the repository keeps its files. Every stage after loading imports these, not the
loader.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from bot.content.model import AccountsFile, GlossaryFile, Media, Part, PlatformText, Post, SlotsFile
from bot.content.timeparse import zone
from bot.errors import Problem
from bot.text import normalize

POSTS_DIR = "content/posts"
CONTENT_DIR = "content"
GLOSSARY_FILE = "content/glossary.yaml"
ACCOUNTS_FILE = "schedules/accounts.yaml"
SLOTS_FILE = "schedules/slots.yaml"


@dataclass(frozen=True, slots=True)
class PostEntry:
    """A valid post with what loading worked out about it."""

    id: str
    path: str  # relative to the root, forward slashes
    post: Post
    due: datetime | None  # UTC instant of publish_at; None for slot posts and drafts
    languages: tuple[str, ...]  # languages it is published in (each has an account)
    fingerprint: str = ""  # changes whenever the file's bytes do

    @property
    def slot(self) -> str | None:
        return self.post.slot

    @property
    def is_draft(self) -> bool:
        return self.post.publish_at is None and self.post.slot is None

    def version(self, platform: str | None) -> PlatformText | None:
        """The post's own version for ``platform`` (``platforms:`` in the file), or None."""
        return self.post.platforms.get(platform) if platform is not None else None

    def _holder(self, part: int, platform: str | None) -> tuple[Post | Part | None, bool]:
        """Where part ``part`` (0: the post) of ``platform``'s version is written, and whether
        that is the version's own (None: the version's own text is the post's)."""
        own = self.version(platform)
        if own is not None:
            if part == 0 and own.text is not None:
                return None, True
            if part > 0 and own.thread is not None:
                return own.thread[part - 1], True
        return (self.post if part == 0 else self.post.thread[part - 1]), False

    def human_text(self, lang: str, part: int = 0, platform: str | None = None) -> str | None:
        """The editor's text for ``lang`` (part 0 is the post, 1.. the thread) on ``platform``
        (None: the post's own text, as every platform without a version publishes it).

        A translation written by ``diplobot translate --write`` and still carrying its
        unchanged ``machine_translated`` mark is not human: see :meth:`unreviewed_text`.
        """
        own = self.version(platform)
        holder, _is_own = self._holder(part, platform)
        if holder is None:  # the version's own text: its translations, never the post's
            assert own is not None
            return own.text if lang == self.post.lang else own.translations.get(lang)
        if lang == self.post.lang:
            return holder.text
        if own is not None and part == 0 and lang in own.translations:
            return own.translations[lang]  # a translation for this platform only
        text = holder.translations.get(lang)
        if text is not None and _is_marked(holder.machine_translated.get(lang), text):
            return None
        return text

    def unreviewed_text(self, lang: str, part: int = 0, platform: str | None = None) -> str | None:
        """A machine translation written into the file that nobody has approved yet."""
        holder, _is_own = self._holder(part, platform)
        if holder is None:
            return None
        own = self.version(platform)
        if own is not None and part == 0 and lang in own.translations:
            return None
        text = holder.translations.get(lang)
        if text is not None and _is_marked(holder.machine_translated.get(lang), text):
            return text
        return None

    def has_own_text(self, part: int, platform: str | None) -> bool:
        """Whether ``platform``'s part ``part`` (0: the post) is written apart from the
        post's: translated from its own source, not shared with other platforms."""
        return self._holder(part, platform)[1]

    def media_of(self, part: int, platform: str | None = None) -> list[Media]:
        """The images of part ``part`` (0: the post) on ``platform``."""
        holder, _is_own = self._holder(part, platform)
        if holder is None:
            return list(self.post.media)
        return list(holder.media)

    def parts_for(self, platform: str | None) -> int:
        """How many parts the post has on ``platform`` (its version may have its own thread)."""
        own = self.version(platform)
        if own is not None and own.thread is not None:
            return 1 + len(own.thread)
        return self.parts

    @property
    def parts(self) -> int:
        return 1 + len(self.post.thread)


@dataclass(frozen=True, slots=True)
class ContentSet:
    """Everything the bot needs from one revision of the content repository."""

    root: Path
    accounts: AccountsFile
    slots: SlotsFile
    glossary: GlossaryFile
    posts: Mapping[str, PostEntry]
    warnings: tuple[Problem, ...] = ()
    # When the loader made ``posts`` from an earlier call's: that call's posts and the ids
    # whose entry may differ (changed, new or gone). The service's apply then looks at those
    # posts only. Not part of the content (equality ignores it).
    since: tuple[Mapping[str, PostEntry], frozenset[str]] | None = field(
        default=None, compare=False, repr=False
    )

    @property
    def default_zone(self) -> ZoneInfo:
        return zone(self.accounts.timezone)

    def platforms_of(self, lang: str) -> tuple[str, ...]:
        """The platforms of the accounts that publish in ``lang``, each once, sorted."""
        return tuple(
            sorted({a.platform for a in self.accounts.accounts.values() if a.lang == lang})
        )

    def account_zone(self, account_id: str) -> ZoneInfo:
        account = self.accounts.accounts[account_id]
        return zone(account.timezone or self.accounts.timezone)


def machine_mark(backend: str, text: str) -> str:
    """The ``machine_translated`` value for ``text``: backend and a short hash of the text.
    Editing the text changes the hash, which counts as approval."""
    digest = hashlib.sha256(normalize(text).strip().encode("utf-8")).hexdigest()[:10]
    return f"{backend}:{digest}"


def _is_marked(mark: str | None, text: str) -> bool:
    return mark is not None and mark.rsplit(":", 1)[-1] == machine_mark("", text)[1:]
