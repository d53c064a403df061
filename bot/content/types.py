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
from typing import Any
from zoneinfo import ZoneInfo

from bot.content.missions import Target
from bot.content.model import (
    Account,
    AccountsFile,
    GlossaryFile,
    Media,
    Part,
    PlatformText,
    Post,
    SlotsFile,
)
from bot.content.timeparse import zone
from bot.errors import Problem
from bot.text import normalize

POSTS_DIR = "content/posts"
CONTENT_DIR = "content"
GLOSSARY_FILE = "content/glossary.yaml"
ACCOUNTS_FILE = "schedules/accounts.yaml"
SLOTS_FILE = "schedules/slots.yaml"
MISSIONS_DIR = "missions"
CENTRAL = "central"
"""The central mission's name when schedules/accounts.yaml gives none (``mission:``)."""


def mission_of_path(rel: str) -> str | None:
    """The mission whose folder holds the root-relative ``rel`` (``missions/<name>/...``), or
    None for the central mission's files and anything else."""
    if rel.startswith(MISSIONS_DIR + "/"):
        name = rel.split("/", 2)[1]
        return name or None
    return None


@dataclass(frozen=True, slots=True)
class Layout:
    """Where one mission keeps its files (root-relative, forward slashes). The central
    mission is the repository's own layout; another mission's files are under
    ``missions/<name>/``, the same names inside."""

    name: str
    accounts: str
    slots: str
    glossary: str
    posts: str
    home: str  # the folder its posts' media paths are relative to
    central: bool = False

    @staticmethod
    def of_central(name: str = CENTRAL) -> Layout:
        return Layout(name, ACCOUNTS_FILE, SLOTS_FILE, GLOSSARY_FILE, POSTS_DIR, CONTENT_DIR, True)

    @staticmethod
    def of_mission(name: str) -> Layout:
        home = f"{MISSIONS_DIR}/{name}"
        return Layout(
            name,
            f"{home}/accounts.yaml",
            f"{home}/slots.yaml",
            f"{home}/glossary.yaml",
            f"{home}/posts",
            home,
        )

    def default_id(self, rel: str) -> str:
        """The id of the post file ``rel`` that gives none: its path under the posts folder
        without extension, after ``<mission>/`` for a mission's post."""
        below = rel[len(self.posts) + 1 :].rsplit(".", 1)[0]
        return below if self.central else f"{self.name}/{below}"


@dataclass(frozen=True, slots=True)
class PostEntry:
    """A valid post with what loading worked out about it."""

    id: str
    path: str  # relative to the root, forward slashes
    post: Post
    due: datetime | None  # UTC instant of publish_at; None for slot posts and drafts
    languages: tuple[str, ...]  # languages it is published in (each has an account)
    fingerprint: str = ""  # changes whenever the file's bytes do
    mission: str = CENTRAL  # the mission whose tree holds the file
    home: str = CONTENT_DIR  # the folder its media paths are relative to
    # Every account it goes to, and how (None: every account in its languages, as before
    # missions; ``bot.content.missions.targets``).
    targets: tuple[Target, ...] | None = None

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
    # With missions: ``accounts`` holds every account of the repository (each with its
    # mission file's defaults filled in), ``slots`` and ``glossary`` the central mission's.
    missions: Mapping[str, Mission] = field(default_factory=dict)  # every mission, central first
    account_missions: Mapping[str, str] = field(default_factory=dict)  # account → its mission
    central: str = CENTRAL
    # When the loader made ``posts`` from an earlier call's: that call's posts and the ids
    # whose entry may differ (changed, new or gone). The service's apply then looks at those
    # posts only. Not part of the content (equality ignores it).
    since: tuple[Mapping[str, PostEntry], frozenset[str]] | None = field(
        default=None, compare=False, repr=False
    )
    # Derived once per content set (never shared by a copy made with dataclasses.replace).
    _memo: dict[str, Any] = field(default_factory=dict, init=False, compare=False, repr=False)

    @property
    def default_zone(self) -> ZoneInfo:
        return zone(self.accounts.timezone)

    @property
    def has_missions(self) -> bool:
        """Whether the repository has missions besides the central one."""
        return len(self.missions) > 1

    def zone_of(self, mission: str) -> ZoneInfo:
        """``mission``'s default zone (its accounts file's ``timezone``)."""
        found = self.missions.get(mission) if mission != self.central else None
        return zone(found.accounts.timezone) if found is not None else self.default_zone

    def mission_of(self, account_id: str) -> str:
        return self.account_missions.get(account_id, self.central)

    def _by_mission(self) -> dict[str, list[tuple[str, Account]]]:
        found: dict[str, list[tuple[str, Account]]] | None = self._memo.get("by_mission")
        if found is None:
            found = {}
            for a, acct in self.accounts.accounts.items():
                found.setdefault(self.mission_of(a), []).append((a, acct))
            self._memo["by_mission"] = found
        return found

    def accounts_of(self, mission: str) -> dict[str, Account]:
        """The accounts of ``mission``, in file order."""
        return dict(self._by_mission().get(mission, ()))

    def targets_of(self, entry: PostEntry) -> tuple[Target, ...]:
        """Every account ``entry`` goes to, and how: as the loader found them, else every
        account of its mission in its languages."""
        if entry.targets is not None:
            return entry.targets
        # Most posts share their mission and languages: one tuple for each pair.
        shared: dict[tuple[str, tuple[str, ...]], tuple[Target, ...]] = self._memo.setdefault(
            "targets", {}
        )
        key = (entry.mission, entry.languages)
        found = shared.get(key)
        if found is None:
            mine = self._by_mission().get(entry.mission, ())
            found = shared[key] = tuple(Target(a) for a, acct in mine if acct.lang in key[1])
        return found

    def target_of(self, entry: PostEntry, account: str) -> Target | None:
        """How ``entry`` goes to ``account`` (None: it does not)."""
        by_post: dict[str, dict[str, Target]] = self._memo.setdefault("target_of", {})
        found = by_post.get(entry.id)
        if found is None or entry.targets is None:
            # A post of its mission's accounts has few; an amplified one may have 1,000.
            found = {t.account: t for t in self.targets_of(entry)}
            if entry.targets is not None:
                by_post[entry.id] = found
        return found.get(account)

    def publishers_of(self, entry: PostEntry) -> list[str]:
        """The accounts that publish ``entry``'s text (a repost has none of its own)."""
        return [t.account for t in self.targets_of(entry) if t.repost_of is None]

    def slots_of(self, mission: str) -> SlotsFile:
        """``mission``'s slots file (the central one's is ``slots``)."""
        found = self.missions.get(mission) if mission != self.central else None
        return found.slots if found is not None else self.slots

    def glossary_of(self, mission: str) -> GlossaryFile:
        """The glossary ``mission``'s texts are translated with: the central one, with the
        mission's own terms in place of the central ones they name, and added."""
        found = self.missions.get(mission) if mission != self.central else None
        return found.glossary if found is not None else self.glossary

    def glossary_owner(self, account_id: str) -> str:
        """Whose glossary an account's machine translations use: "" for the central one, else
        the account's mission (it has a glossary of its own)."""
        found = self.missions.get(self.mission_of(account_id))
        return found.name if found is not None and found.own_glossary else ""

    def platforms_of(
        self, lang: str, accounts: Mapping[str, Account] | None = None
    ) -> tuple[str, ...]:
        """The platforms of the accounts (default: all) that publish in ``lang``, each once,
        sorted."""
        among = self.accounts.accounts if accounts is None else accounts
        return tuple(sorted({a.platform for a in among.values() if a.lang == lang}))

    def account_zone(self, account_id: str) -> ZoneInfo:
        account = self.accounts.accounts[account_id]
        return zone(account.timezone or self.accounts.timezone)


@dataclass(frozen=True, slots=True)
class Mission:
    """One mission's schedule files, as loaded."""

    name: str
    layout: Layout
    accounts: AccountsFile  # as written in its file
    slots: SlotsFile
    glossary: GlossaryFile  # the central terms with the mission's own on top
    own_glossary: bool = False  # whether the mission has terms of its own


def merged_glossary(central: GlossaryFile, own: GlossaryFile) -> GlossaryFile:
    """``own``'s terms in place of the central terms of the same text, then the others."""
    mine = {t.term for t in own.terms}
    return GlossaryFile(terms=[*own.terms, *(t for t in central.terms if t.term not in mine)])


def machine_mark(backend: str, text: str) -> str:
    """The ``machine_translated`` value for ``text``: backend and a short hash of the text.
    Editing the text changes the hash, which counts as approval."""
    digest = hashlib.sha256(normalize(text).strip().encode("utf-8")).hexdigest()[:10]
    return f"{backend}:{digest}"


def _is_marked(mark: str | None, text: str) -> bool:
    return mark is not None and mark.rsplit(":", 1)[-1] == machine_mark("", text)[1:]
