"""What loading the content repository produces: :class:`ContentSet` and :class:`PostEntry`,
and where the repository keeps its files. Every stage after loading imports these, not the
loader.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from bot.content.model import AccountsFile, GlossaryFile, Post, SlotsFile
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

    def human_text(self, lang: str, part: int = 0) -> str | None:
        """The editor's text for ``lang`` (part 0 is the post, 1.. the thread), or None.

        A translation written by ``diplobot translate --write`` and still carrying its
        unchanged ``machine_translated`` mark is not human: see :meth:`unreviewed_text`.
        """
        holder = self.post if part == 0 else self.post.thread[part - 1]
        if lang == self.post.lang:
            return holder.text
        text = holder.translations.get(lang)
        if text is not None and _is_marked(holder.machine_translated.get(lang), text):
            return None
        return text

    def unreviewed_text(self, lang: str, part: int = 0) -> str | None:
        """A machine translation written into the file that nobody has approved yet."""
        holder = self.post if part == 0 else self.post.thread[part - 1]
        text = holder.translations.get(lang)
        if text is not None and _is_marked(holder.machine_translated.get(lang), text):
            return text
        return None

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

    @property
    def default_zone(self) -> ZoneInfo:
        return zone(self.accounts.timezone)

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
