"""The checks of one file against the rest of the repository: languages, zones, slots,
account references, characters that may not be published, text length, media.

Each check reports to a :class:`~bot.content.report.Collector` and never raises for an
editor's mistake; :mod:`bot.content.loader` runs them in order.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import os
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from pydantic import BaseModel

from bot.content.files import NotReadable, read_regular
from bot.content.languages import canonical, primary
from bot.content.missions import Target, targets
from bot.content.model import Account, AccountsFile, GlossaryFile, Media, Post, SlotsFile
from bot.content.report import Collector, one_line
from bot.content.shape import check_shape
from bot.content.timeparse import TimeProblem, local_time_exists, parse_local, zone
from bot.content.types import Layout, PostEntry
from bot.content.yamlsrc import YamlDoc, YamlProblem, read_yaml
from bot.envname import env_name
from bot.errors import Problem
from bot.platforms import DEFAULT_PLATFORM, MEDIA_BYTES_MAX, PLATFORMS, Platform, platform_of
from bot.text.chars import char_name, find_bad_char

MAX_MEDIA_PATH = 1024
DEFAULT = PLATFORMS[DEFAULT_PLATFORM]
_IMAGE_MAGIC = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
)


def read_doc(base: Path, rel: str, out: Collector) -> YamlDoc | None:
    """The YAML document at ``rel``, or None once its problem is reported to ``out``."""
    try:
        return read_yaml(os.path.join(base, rel), rel)  # not Path's /: 10,000 times
    except YamlProblem as exc:
        out.problems.append(exc.problem)
        return None


def check_zone(doc: YamlDoc, loc: tuple[Any, ...], name: str | None, out: Collector) -> bool:
    if name is None:
        return True
    try:
        zone(name)
        return True
    except TimeProblem as exc:
        out.add(doc, loc, exc.message, exc.hint)
        return False


def check_lang(
    doc: YamlDoc, loc: tuple[Any, ...], lang: str, out: Collector, *, key: bool = False
) -> bool:
    fixed = canonical(lang)
    if fixed == lang:
        return True
    hint = (
        f"use '{fixed}'"
        if fixed is not None
        else "use a two-letter ISO 639-1 code, e.g. fr, optionally with a script or region "
        "(BCP 47: zh-Hans, zh-Hant, pt-BR)"
    )
    out.add(doc, loc, f"unknown language '{one_line(lang)}'", hint, key=key)
    return False


def check_accounts(loaded: tuple[YamlDoc | None, AccountsFile], out: Collector) -> None:
    doc, accounts = loaded
    assert doc is not None
    check_zone(doc, ("timezone",), accounts.timezone, out)
    by_variable: dict[str, str] = {}
    for aid, account in accounts.accounts.items():
        check_lang(doc, ("accounts", aid, "lang"), account.lang, out)
        check_zone(doc, ("accounts", aid, "timezone"), account.timezone, out)
        check_account_fields(doc, str(aid), account, out)
        # Credentials are found by variable name: two ids naming the same variables would
        # both publish with one account's token (the English text on the French account).
        name = env_name(str(aid))
        first = by_variable.setdefault(name, str(aid))
        if first != aid:
            line = doc.where(("accounts", first), key=True)[0]
            out.add(
                doc,
                ("accounts", aid),
                f"account '{one_line(aid)}' reads the same credentials as account "
                f"'{one_line(first)}' (line {line}): both are DIPLOBOT_{name}_ACCESS_TOKEN and "
                f"DIPLOBOT_{name}_ACCESS_SECRET, so both would publish as the same account",
                "rename one of them: account ids must differ in more than case, '-' or '_'",
                key=True,
            )


_X_HANDLE = re.compile(r"[A-Za-z0-9_]{1,15}")
_MASTODON_USER = re.compile(r"[A-Za-z0-9_]{1,30}")
# atproto's handle syntax: a domain name of at least two labels, the last not numeric.
_BLUESKY_HANDLE = re.compile(
    r"([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
)
_TELEGRAM_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{3,31}")
# https, or plain http to this machine only (a local proxy, a test server).
_INSTANCE_URL = re.compile(
    r"(https://[A-Za-z0-9.\-]+|http://(127\.0\.0\.1|localhost|\[::1\]))(:[0-9]{1,5})?/?"
)
_PLATFORM_FIELDS = {
    "instance": "mastodon",
    "did": "bluesky",
    "page": "facebook",
    "chat": "telegram",
}
"""An account field → the one platform that reads it."""


def check_account_fields(doc: YamlDoc, aid: str, account: Account, out: Collector) -> None:
    """The handle's shape and the fields ``account``'s platform needs, and no field of another
    platform (an ``instance`` on an X account is a mistake, not a harmless extra)."""
    loc = ("accounts", aid)
    name = account.platform
    display = platform_of(account).display
    handle = account.handle
    for key, owner in _PLATFORM_FIELDS.items():
        if getattr(account, key) is not None and owner != name:
            out.add(
                doc,
                (*loc, key),
                f"'{key}' is for {PLATFORMS[owner].display} accounts; account '{one_line(aid)}' "
                f"publishes on {display}",
                f"remove it, or set platform: {owner}",
                key=True,
            )
    if name == "x" and not _X_HANDLE.fullmatch(handle):
        out.add(
            doc,
            (*loc, "handle"),
            f"X handle '{one_line(handle)}' is not 1-15 letters, digits or _",
            "write the handle without @, as in x.com/<handle>",
        )
    elif name == "mastodon":
        if not _MASTODON_USER.fullmatch(handle):
            user, _, server = handle.partition("@")
            out.add(
                doc,
                (*loc, "handle"),
                f"Mastodon user name '{one_line(handle)}' is not 1-30 letters, digits or _",
                f"write only the user name ('{user}') and the server as instance: https://{server}"
                if server
                else "write the user name without @, as in https://<instance>/@<name>",
            )
        if account.instance is None:
            out.add(
                doc,
                loc,
                f"Mastodon account '{one_line(aid)}' has no instance",
                "add instance: https://<your server>, e.g. instance: https://mastodon.social",
                key=True,
            )
        elif not _INSTANCE_URL.fullmatch(account.instance):
            out.add(
                doc,
                (*loc, "instance"),
                f"instance '{one_line(account.instance)}' is not an https:// server address",
                "write the server's address only, e.g. https://mastodon.social (plain http "
                "only to this machine: http://127.0.0.1:PORT)",
            )
    elif name == "bluesky" and (len(handle) > 253 or not _BLUESKY_HANDLE.fullmatch(handle)):
        out.add(
            doc,
            (*loc, "handle"),
            f"Bluesky handle '{one_line(handle)}' is not a domain name",
            "write the full handle without @, e.g. diplo.bsky.social",
        )
    elif name == "facebook" and account.page is None:
        out.add(
            doc,
            loc,
            f"Facebook account '{one_line(aid)}' has no page",
            "add page: <the page's numeric id> (Page settings > About > Page ID)",
            key=True,
        )
    elif name == "telegram" and account.chat is None and not _TELEGRAM_NAME.fullmatch(handle):
        out.add(
            doc,
            (*loc, "handle"),
            f"Telegram channel name '{one_line(handle)}' is not 5-32 letters, digits or _ "
            "starting with a letter",
            "write the channel's @name without @, or give chat: with its numeric id",
        )


def check_slots(
    doc: YamlDoc,
    slots: SlotsFile,
    accounts: AccountsFile,
    out: Collector,
    owners: Mapping[str, tuple[str, str]] | None = None,
) -> None:
    """``owners`` (with missions): every account of the repository → its mission and where it
    is defined; a slots file names only its own mission's accounts."""
    known = set(accounts.accounts)
    for name, slot in slots.slots.items():
        if slot.timezone not in (None, "account"):
            check_zone(doc, ("slots", name, "timezone"), slot.timezone, out)
        zones = (
            {a.timezone or accounts.timezone for a in accounts.accounts.values()}
            if slot.timezone == "account"
            else {slot.timezone or accounts.timezone}
        )
        for i, hhmm in enumerate(slot.times):
            _warn_dst_slot(doc, ("slots", name, "times", i), hhmm, zones, out)
    for i, blackout in enumerate(slots.blackouts):
        loc = ("blackouts", i)
        if not check_zone(doc, (*loc, "timezone"), blackout.timezone, out):
            continue
        try:
            tz = zone(blackout.timezone or accounts.timezone)
        except TimeProblem:
            continue  # a bad default zone is reported once, in accounts.yaml
        bounds = []
        for key, value in (("from", blackout.from_), ("until", blackout.until)):
            try:
                bounds.append(parse_local(value, tz))
            except TimeProblem as exc:
                out.add(doc, (*loc, key), f"{key}: {exc.message}", exc.hint)
        if len(bounds) == 2 and bounds[1] <= bounds[0]:
            out.add(doc, (*loc, "until"), "until must be after from", "check the dates")
        if blackout.accounts == []:
            out.add(
                doc,
                (*loc, "accounts"),
                "accounts is empty: this blackout blocks nothing",
                "remove the line to black out every account, or list the accounts",
            )
        _check_account_refs(doc, (*loc, "accounts"), blackout.accounts or [], known, out, owners)
    _check_account_refs(doc, ("pause", "accounts"), slots.pause.accounts, known, out, owners)


def _warn_dst_slot(
    doc: YamlDoc, loc: tuple[Any, ...], hhmm: str, zones: set[str], out: Collector
) -> None:
    """A slot time inside a DST gap is legal but moves one day a year: say so."""
    hour, minute = (int(x) for x in hhmm.split(":"))
    for name in sorted(zones):
        try:
            tz = zone(name)
        except TimeProblem:
            continue
        for month in range(1, 13):
            for day in (1, 8, 15, 22, 29):
                try:
                    probe = datetime(2026, month, day, hour, minute)
                except ValueError:
                    continue
                if not _gap_week(probe, tz):
                    continue
                for d in range(7):
                    naive = datetime.fromordinal(probe.toordinal() + d).replace(
                        hour=hour, minute=minute
                    )
                    if not local_time_exists(naive, tz):
                        out.add(
                            doc,
                            loc,
                            f"{hhmm} does not exist in {name} on the day clocks jump forward "
                            f"(e.g. {naive:%Y-%m-%d}); that day the slot runs one gap later",
                            "choose a time outside 02:00-03:00 to avoid it",
                            severity="warning",
                        )
                        return


def _gap_week(start: datetime, tz: ZoneInfo) -> bool:
    """Whether the UTC offset changes upward within the week starting at ``start``."""
    a = start.replace(tzinfo=tz).utcoffset()
    b = datetime.fromordinal(start.toordinal() + 7).replace(tzinfo=tz).utcoffset()
    assert a is not None and b is not None
    return b > a


def _check_account_refs(
    doc: YamlDoc,
    loc: tuple[Any, ...],
    refs: list[str],
    known: set[str],
    out: Collector,
    owners: Mapping[str, tuple[str, str]] | None = None,
) -> None:
    for i, ref in enumerate(refs):
        owner = owners.get(ref) if owners else None
        if ref not in known and owner is not None:
            out.add(
                doc,
                (*loc, i),
                f"account '{one_line(ref)}' belongs to mission '{owner[0]}' ({owner[1]}); "
                "a mission's slots.yaml holds and pauses only its own accounts",
                "accounts: " + ", ".join(sorted(known)),
            )
        elif ref not in known:
            out.add(
                doc,
                (*loc, i),
                f"unknown account '{one_line(ref)}'",
                "accounts: " + ", ".join(sorted(known)),
            )


def check_glossary(doc: YamlDoc, glossary: GlossaryFile, out: Collector) -> None:
    for i, term in enumerate(glossary.terms):
        _check_chars(doc, ("terms", i, "term"), term.term, out)
        for lang, rendering in term.translations.items():
            loc = ("terms", i, "translations", lang)
            check_lang(doc, loc, lang, out, key=True)
            _check_chars(doc, loc, rendering, out)  # it is written into posts as it stands


@dataclass(frozen=True, slots=True)
class Scope:
    """What one mission's post files are checked against beyond the mission's own files."""

    layout: Layout = field(default_factory=Layout.of_central)
    # The central mission: every other mission's accounts (mission → accounts), for amplify.
    others: Mapping[str, Mapping[str, Account]] = field(default_factory=dict)
    # Every account of the repository → its mission, and where it is defined (file:line).
    owners: Mapping[str, tuple[str, str]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _View:
    """The accounts a post goes to, as the checks count them: their languages and platforms."""

    account_langs: frozenset[str]
    langs_text: str
    platforms_of_lang: dict[str, tuple[Platform, ...]]
    all_platforms: tuple[Platform, ...]

    @staticmethod
    def of(listed: list[Account]) -> _View:
        langs = frozenset(a.lang for a in listed)
        # Each text is checked against every platform it goes to, each counting its own way
        # (a text with a long URL fits X, whose URLs count 23, and not Bluesky).
        return _View(
            langs,
            ", ".join(sorted(langs)),
            {lang: _unique(platform_of(a) for a in listed if a.lang == lang) for lang in langs},
            _unique(platform_of(a) for a in listed),
        )


class PostChecker:
    """Checks one post file against its shape and against the rest of the repository."""

    def __init__(
        self,
        base: Path,
        accounts: AccountsFile | None,
        slots: SlotsFile | None,
        out: Collector,
        scope: Scope | None = None,
    ) -> None:
        self.base = base
        self.scope = scope = scope if scope is not None else Scope()
        self.layout = scope.layout
        self.root_abs = os.path.abspath(base)
        self.content_abs = os.path.join(self.root_abs, self.layout.home)
        self.root_real = os.path.realpath(base)
        self.accounts = accounts
        self.slots = slots
        self.out = out
        self.own: dict[str, Account] = dict(accounts.accounts) if accounts else {}
        self.view = _View.of(list(self.own.values()))
        self.views: dict[tuple[str, ...], _View] = {}
        self._langs: dict[tuple[str, ...], tuple[str, ...]] = {}  # one tuple per value
        self.compact = True  # keep the posts in less memory (see compacted)
        self.media_cache: dict[tuple[str, tuple[str, ...]], tuple[str, str] | None] = {}
        self.default_tz: ZoneInfo | None = None  # None: accounts.yaml's zone is bad (reported)
        if accounts is not None:
            with contextlib.suppress(TimeProblem):
                self.default_tz = zone(accounts.timezone)

    def check(self, rel: str) -> PostEntry | None:
        out = self.out

        before = len(out.problems)
        doc = read_doc(self.base, rel, out)
        if doc is None:
            return None
        if doc.data is None:
            out.add(doc, (), "file is empty", "a post needs at least lang and text")
            return None
        post = check_shape(doc, doc.data, Post, out)
        if post is None:
            return None
        default = self.view
        try:
            return self._check(doc, rel, post, before)
        finally:
            self.view = default

    # The accounts the post goes to (see ``_use``): read through the current view.
    @property
    def account_langs(self) -> frozenset[str]:
        return self.view.account_langs

    @property
    def langs_text(self) -> str:
        return self.view.langs_text

    @property
    def platforms_of_lang(self) -> dict[str, tuple[Platform, ...]]:
        return self.view.platforms_of_lang

    @property
    def all_platforms(self) -> tuple[Platform, ...]:
        return self.view.all_platforms

    def _check(self, doc: YamlDoc, rel: str, post: Post, before: int) -> PostEntry | None:
        out = self.out
        post_id = post.id or self.layout.default_id(rel)
        if post.id is None and not _valid_id(post_id):
            out.add(
                doc,
                (),
                f"the file name cannot serve as the post's id ('{one_line(post_id)}')",
                "add a line 'id: some-name' using letters, digits, '.', '_', '-'",
            )
        found = self._check_targets(doc, post)
        self._check_texts(doc, post)
        due = self._check_when(doc, post)
        self._check_media(doc, post)
        if any(p.severity == "error" for p in out.problems[before:]):
            return None
        langs = tuple(
            sorted(
                lang
                for lang in self.account_langs
                if post.languages is None or lang in post.languages
            )
        )
        fingerprint = hashlib.sha1(doc.source.encode("utf-8")).hexdigest()
        chosen = None
        if found is not None:
            chosen = tuple(targets(post, self.own, self.scope.others))
        if self.compact:  # kept (the service): worth the few microseconds per post
            post = compacted(post)
            langs = self._langs.setdefault(langs, langs)
        return PostEntry(
            post_id,
            rel,
            post,
            due,
            langs,
            fingerprint,
            self.layout.name,
            self.layout.home,
            chosen,
        )

    def _check_targets(self, doc: YamlDoc, post: Post) -> list[Target] | None:
        """The ``accounts:`` and ``amplify:`` keys; then the accounts the post's texts go to
        become the view the other checks read (every account of the mission, without them).
        Returns the targets (languages aside), or None when the post names neither key."""
        if post.accounts is None and post.amplify is None:
            return None
        self._check_accounts_key(doc, post)
        self._check_amplify(doc, post)
        found = targets(post, self.own, self.scope.others, languages=False)
        key = tuple(t.account for t in found if t.repost_of is None)  # reposts carry no text
        if key not in self.views:
            by_id = {a: x for m in self.scope.others.values() for a, x in m.items()} | self.own
            self.views[key] = _View.of([by_id[a] for a in key])
        self.view = self.views[key]
        return found

    def _check_accounts_key(self, doc: YamlDoc, post: Post) -> None:
        if post.accounts is None:
            return
        out, mission = self.out, self.layout.name
        if not post.accounts:
            out.add(
                doc,
                ("accounts",),
                "accounts is empty: the post would go nowhere",
                "remove the line to publish on every account of the mission",
            )
        mine = ", ".join(self.own)
        for i, name in enumerate(post.accounts):
            if name in self.own:
                continue
            owner = self.scope.owners.get(name)
            if owner is not None:
                out.add(
                    doc,
                    ("accounts", i),
                    f"account '{one_line(name)}' belongs to mission '{owner[0]}' ({owner[1]}); "
                    f"a post of mission '{mission}' ({self.layout.posts}/) goes only to its "
                    "mission's accounts",
                    f"move the post to {_posts_of(owner[1])}, or name one of: {mine}",
                )
            else:
                out.add(
                    doc,
                    ("accounts", i),
                    f"unknown account '{one_line(name)}'",
                    f"accounts of mission '{mission}': {mine}",
                )

    def _check_amplify(self, doc: YamlDoc, post: Post) -> None:
        amplify, out = post.amplify, self.out
        if amplify is None:
            return
        if not self.layout.central:
            out.add(
                doc,
                ("amplify",),
                f"only a central post can be amplified; this post belongs to mission "
                f"'{self.layout.name}'",
                "remove 'amplify', or move the post to content/posts/",
                key=True,
            )
            return
        listed, loc = (
            (amplify, ("amplify",))
            if isinstance(amplify, (list, str))
            else (amplify.missions, ("amplify", "missions"))
        )
        others = self.scope.others
        if isinstance(listed, str):
            return  # all: every mission there is (none is fine: a repository may have none yet)
        for i, name in enumerate(listed):
            if name in others:
                continue
            if name == self.layout.name:
                out.add(
                    doc,
                    (*loc, i),
                    f"'{name}' is this post's own mission: its accounts publish it already",
                    "name other missions (folders under missions/)",
                )
                continue
            close = difflib.get_close_matches(name, list(others), n=1)
            out.add(
                doc,
                (*loc, i),
                f"unknown mission '{one_line(name)}'",
                f"did you mean '{close[0]}'?"
                if close
                else "missions: " + ", ".join(others)
                if others
                else f"create missions/{name}/ with its accounts.yaml",
            )

    def _check_texts(self, doc: YamlDoc, post: Post) -> None:
        out = self.out
        if check_lang(doc, ("lang",), post.lang, out) and post.lang not in self.account_langs:
            near = sorted(a for a in self.account_langs if primary(a) == primary(post.lang))
            if near:  # fr-FR with fr accounts: every variant would be a machine translation
                out.add(
                    doc,
                    ("lang",),
                    f"no account publishes in '{post.lang}'; accounts publish in "
                    + ", ".join(f"'{a}'" for a in near),
                    f"use '{near[0]}'",
                )
        if post.languages is not None:
            for i, lang in enumerate(post.languages):
                if (
                    check_lang(doc, ("languages", i), lang, out)
                    and self.account_langs
                    and (lang not in self.account_langs)
                ):
                    out.add(
                        doc,
                        ("languages", i),
                        f"no account publishes in '{lang}'",
                        f"accounts publish in: {self.langs_text}",
                    )
            if not post.languages:
                out.add(
                    doc,
                    ("languages",),
                    "languages is empty: the post would go nowhere",
                    "remove the line to publish in every language",
                )
        published = (
            set(self.account_langs)
            if post.languages is None
            else set(post.languages) & self.account_langs
        )
        # (where, text, translations, has images, the platforms it goes to: None, every
        # platform of the language without a version of its own for that part)
        holders: list[Holder] = [((), post.text, post.translations, bool(post.media), None, 0)]
        holders += [
            (("thread", i), p.text, p.translations, bool(p.media), None, i + 1)
            for i, p in enumerate(post.thread)
        ]
        for name, version in post.platforms.items():
            plat = PLATFORMS[name]
            loc = ("platforms", name)
            langs_there = {lang for lang in published if plat in self.platforms_of_lang[lang]}
            if self.account_langs and not langs_there:
                # Not published (no account of the post on that platform): nothing to check,
                # and no warning, so that removing an account leaves its posts' versions valid.
                continue
            if version.text is not None:
                holders.append((loc, version.text, version.translations, bool(post.media), plat, 0))
            elif version.translations:
                self._check_translations(
                    doc, loc, post, version.translations, bool(post.media), plat
                )
            for i, p in enumerate(version.thread or []):
                holders.append(
                    ((*loc, "thread", i), p.text, p.translations, bool(p.media), plat, i + 1)
                )
        for base_loc, text, translations, with_media, only, part in holders:
            self._check_one_text(
                doc,
                (*base_loc, "text"),
                text,
                check_length=post.lang in published or not self.account_langs,
                lang=post.lang,
                with_media=with_media,
                platforms=self._where(post, post.lang, part, only),
            )
            self._check_translations(doc, base_loc, post, translations, with_media, only, part)

    def _where(
        self, post: Post, lang: str, part: int, only: Platform | None
    ) -> tuple[Platform, ...]:
        """The platforms a text of ``lang`` goes to: ``only`` (a version's text), else those
        of the language's accounts that have no version of their own for part ``part``."""
        if only is not None:
            return (only,)
        found = self.platforms_of_lang.get(lang) or self.all_platforms or (DEFAULT,)
        return tuple(p for p in found if not _has_own(post, p.name, part))

    def _check_translations(
        self,
        doc: YamlDoc,
        base_loc: tuple[Any, ...],
        post: Post,
        translations: dict[str, str],
        with_media: bool,
        only: Platform | None,
        part: int = 0,
    ) -> None:
        out = self.out
        for lang, value in translations.items():
            loc = (*base_loc, "translations", lang)
            if not check_lang(doc, loc, lang, out, key=True):
                continue
            if lang == post.lang:
                out.add(
                    doc,
                    loc,
                    f"a translation into '{lang}', the post's own language",
                    "remove it, or change 'lang'",
                    key=True,
                )
                continue
            if self.account_langs and lang not in self.account_langs:
                out.add(
                    doc,
                    loc,
                    f"translation into '{lang}', but no account publishes in '{lang}'",
                    f"accounts publish in: {self.langs_text}",
                    key=True,
                )
                continue
            if only is not None and only not in self.platforms_of_lang.get(lang, (only,)):
                out.add(
                    doc,
                    loc,
                    f"translation into '{lang}', but no {only.display} account publishes "
                    f"in '{lang}'",
                    "move it to the post's translations, or remove it",
                    key=True,
                )
                continue
            self._check_one_text(
                doc,
                loc,
                value,
                check_length=True,
                lang=lang,
                with_media=with_media,
                platforms=self._where(post, lang, part, only),
            )

    def _check_one_text(
        self,
        doc: YamlDoc,
        loc: tuple[Any, ...],
        text: str,
        *,
        check_length: bool,
        lang: str,
        with_media: bool,
        platforms: tuple[Platform, ...] | None = None,
    ) -> None:
        if not text.strip():
            hint = "write the text" if loc[-1] == "text" else "write the text, or remove the key"
            self.out.add(doc, loc, "text is empty", hint)
            return
        if _check_chars(doc, loc, text, self.out):
            return
        cut = _comment_cut(doc, loc, text)
        if cut:
            self.out.add(
                doc,
                loc,
                f"the text stops before '{cut}': in YAML, ' #' starts a comment",
                'put the whole text in quotes, e.g. text: "... #COP31 ..."',
            )
            return
        if check_length:
            where = (
                platforms
                if platforms is not None
                else self.platforms_of_lang.get(lang) or self.all_platforms or (DEFAULT,)
            )
            self._check_length(doc, loc, text, where, with_media)

    def _check_length(
        self,
        doc: YamlDoc,
        loc: tuple[Any, ...],
        text: str,
        platforms: tuple[Platform, ...],
        with_media: bool,
    ) -> None:
        """One error for a text too long for one or more of ``platforms`` (each counting its
        own way), naming the one it overshoots most and the others."""
        over = []
        for where in platforms:
            limit = where.limits.text_limit(with_media)
            length = where.limits.over(text, limit)  # counted only past a cheap bound
            if length is not None:
                over.append((length - limit, where, length, limit))
        if not over:
            return
        over.sort(key=lambda o: -o[0])  # stable: X first among equals (see _unique)
        excess, where, length, limit = over[0]
        caption = " for a post with images (a caption)" if limit != where.limits.text else ""
        also = "".join(f"; {w.display} {n} (limit {m})" for _e, w, n, m in over[1:])
        self.out.add(
            doc,
            loc,
            f"text is {length} characters long as {where.display} counts them; the limit "
            f"is {limit}{caption}{also}",
            f"shorten it by {excess}, or move the rest to 'thread:'",
        )

    def _check_when(self, doc: YamlDoc, post: Post) -> datetime | None:
        out = self.out
        if post.publish_at is not None and post.slot is not None:
            out.add(
                doc,
                ("slot",),
                "both publish_at and slot are set",
                "keep one: publish_at for a fixed time, slot for the next free slot",
                key=True,
            )
            return None
        if not check_zone(doc, ("timezone",), post.timezone, out):
            return None
        if self.slots is not None and post.slot is not None and post.slot not in self.slots.slots:
            known = sorted(self.slots.slots)
            close = difflib.get_close_matches(post.slot, known, n=1)
            hint = (
                f"did you mean '{close[0]}'?"
                if close
                else "slots: " + ", ".join(known)
                if known
                else "define it in schedules/slots.yaml"
            )
            out.add(doc, ("slot",), f"unknown slot '{one_line(post.slot)}'", hint)
            return None
        tz = zone(post.timezone) if post.timezone is not None else self.default_tz
        if post.publish_at is None or tz is None:
            return None
        try:
            return parse_local(post.publish_at, tz)
        except TimeProblem as exc:
            out.add(doc, ("publish_at",), f"publish_at {exc.message}", exc.hint)
            return None

    def _platforms_of(self, langs: Iterable[str]) -> tuple[Platform, ...]:
        """The platforms of the accounts that publish in ``langs`` (all, without accounts)."""
        found = _unique(p for lang in langs for p in self.platforms_of_lang.get(lang, ()))
        return found or self.all_platforms or (DEFAULT,)

    def _check_media(self, doc: YamlDoc, post: Post) -> None:
        groups: list[tuple[tuple[Any, ...], list[Media]]] = [(("media",), post.media)]
        groups += [(("thread", i, "media"), p.media) for i, p in enumerate(post.thread)]
        groups += [
            (("platforms", name, "thread", i, "media"), p.media)
            for name, version in post.platforms.items()
            for i, p in enumerate(version.thread or [])
        ]
        if not any(items for _, items in groups):
            return  # most posts: nothing below would report anything
        langs = self.account_langs if post.languages is None else set(post.languages)
        targets = self._platforms_of(langs)
        for loc, items in groups:
            if not items:
                continue
            most = min(targets, key=lambda p: p.limits.media)
            if len(items) > most.limits.media:
                self.out.add(
                    doc,
                    (*loc, most.limits.media),
                    f"{len(items)} images; {most.display} takes at most {most.limits.media} "
                    "per post",
                    "move the others to a thread part",
                )
            for i, item in enumerate(items):
                if not _check_path_chars(doc, (*loc, i, "file"), item.file, self.out):
                    found = self._media_problem(item.file, targets)
                    if found is not None:
                        self.out.add(doc, (*loc, i, "file"), *found)
                alts = item.alt.items() if isinstance(item.alt, dict) else [(None, item.alt)]
                for lang, alt in alts:
                    where = (*loc, i, "alt") if lang is None else (*loc, i, "alt", lang)
                    if lang is not None and not check_lang(doc, where, lang, self.out, key=True):
                        continue
                    if alt is None:
                        continue
                    if _check_chars(doc, where, alt, self.out):
                        continue
                    # A platform without alt text (alt 0) drops it: a plan warning, not an error.
                    shown = targets if lang is None else self._platforms_of([lang])
                    over = [p for p in shown if 0 < p.limits.alt < len(alt)]
                    if over:
                        tight = min(over, key=lambda p: p.limits.alt)
                        self.out.add(
                            doc,
                            where,
                            f"alt text is {len(alt)} characters; {tight.display} allows "
                            f"{tight.limits.alt}",
                            "shorten it",
                        )

    def _media_problem(self, file: str, targets: tuple[Platform, ...]) -> tuple[str, str] | None:
        key = (file, tuple(p.name for p in targets))
        if key not in self.media_cache:
            self.media_cache[key] = self._inspect_media(file, targets)
        return self.media_cache[key]

    def _inspect_media(self, file: str, targets: tuple[Platform, ...]) -> tuple[str, str] | None:
        home = self.layout.home
        hint_rel = f"use a path relative to {home}/, like media/photo.jpg"
        shown = one_line(file)
        if not file.strip():
            return "media file path is empty", hint_rel
        if len(file) > MAX_MEDIA_PATH:
            return (
                f"media path is {len(file)} characters long; diplobot reads paths of at most "
                f"{MAX_MEDIA_PATH}",
                hint_rel,
            )
        if os.path.isabs(file) or file.startswith(("/", "\\")) or ":" in file[:3]:
            return f"media path '{shown}' is absolute", hint_rel
        joined = os.path.normpath(os.path.join(self.content_abs, file))
        if not _inside(joined, self.root_abs):
            return f"media path '{shown}' leaves the repository", hint_rel
        if not _inside(joined, self.content_abs):
            return f"media path '{shown}' leaves {self.layout.home}/", hint_rel
        real = os.path.realpath(joined)
        if not _inside(real, self.root_real):
            return (
                f"media file '{shown}' is a link to a place outside the repository",
                f"copy the image into {self.layout.home}/media/",
            )
        try:
            head, size = read_regular(real, 16)
        except NotReadable as exc:
            if exc.missing:
                return (
                    f"media file '{shown}' not found",
                    f"check the spelling; paths are relative to {home}/",
                )
            return (
                f"media '{shown}' cannot be used: {exc.reason}",
                "replace it with an image file",
            )
        for where in targets:
            name, limits = where.display, where.limits
            if size > max(limits.media_bytes, MEDIA_BYTES_MAX if limits.resizes else 0):
                return (
                    f"image '{shown}' is {size / 1_048_576:.1f} MB; {name} accepts at most "
                    f"{limits.media_bytes / 1_048_576:g} MB",
                    "export it smaller, e.g. 2048 px wide JPEG",
                )
            if _image_type(head) not in limits.media_types:
                *first, last = limits.media_types
                return (
                    f"'{shown}' is not an image {name} accepts",
                    f"use a {', '.join(first)} or {last} file" if first else f"use a {last} file",
                )
        return None


Holder = tuple[tuple[Any, ...], str, dict[str, str], bool, Platform | None, int]
"""A text to check: where, text, translations, has images, its one platform (None: the
language's platforms), and its part (0: the post)."""


def _posts_of(where: str) -> str:
    """The posts folder of the mission whose accounts file is at ``where`` (``file:line``)."""
    folder = where.rsplit(":", 1)[0].rsplit("/", 1)[0]
    return f"{folder}/posts/" if folder.startswith("missions/") else "content/posts/"


def _has_own(post: Post, platform: str, part: int) -> bool:
    """Whether ``post`` has a version of its own of part ``part`` (0: the post) for
    ``platform`` (see ``PostEntry.has_own_text``)."""
    version = post.platforms.get(platform)
    if version is None:
        return False
    return version.text is not None if part == 0 else version.thread is not None


def _unique(platforms: Iterable[Platform]) -> tuple[Platform, ...]:
    """Each platform once: the default platform (X) first, then by name, so that of several
    platforms with the same limit a message names X."""
    found = {p.name: p for p in platforms}.values()
    return tuple(sorted(found, key=lambda p: (p.name != DEFAULT_PLATFORM, p.name)))


def _image_type(head: bytes) -> str | None:
    """The image format the first bytes of a file say, as :class:`Limits` names it."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return next((kind for magic, kind in _IMAGE_MAGIC if head.startswith(magic)), None)


def _check_chars(doc: YamlDoc, loc: tuple[Any, ...], text: str, out: Collector) -> bool:
    """Report the first character of ``text`` that may not be published; True if one was."""
    bad = find_bad_char(text)
    if bad is None:
        return False
    line, col, typed = doc.char_position(loc, text, bad.index)
    hint = bad.hint_with(_how_to_delete(text[bad.index], typed, col))
    out.problems.append(Problem(doc.path, line, col, bad.message, hint))
    return True


def _how_to_delete(ch: str, typed: str, col: int) -> str:
    if typed == ch:
        return f"delete it: put the cursor just after column {col} and press Backspace"
    if typed:
        return f"delete the escape {typed} at column {col}"
    return "delete it"


def _check_path_chars(doc: YamlDoc, loc: tuple[Any, ...], path: str, out: Collector) -> bool:
    """Report a control character (a NUL...) in a file path; True if there is one."""
    for index, ch in enumerate(path):
        if unicodedata.category(ch) in ("Cc", "Cs") or ch in _BIDI_CONTROLS or ch == "\ufeff":
            line, col, typed = doc.char_position(loc, path, index)
            out.problems.append(
                Problem(
                    doc.path,
                    line,
                    col,
                    f"media path contains the invisible character {char_name(ch)}",
                    _how_to_delete(ch, typed, col) + ", or retype the path",
                )
            )
            return True
    return False


_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _comment_cut(doc: YamlDoc, loc: tuple[Any, ...], text: str) -> str:
    """The comment that silently ended an unquoted text on its line ('' if none).

    ``text: Ouverture de la #COP31`` is valid YAML whose value is 'Ouverture de la': a hashtag
    after a space starts a comment. Editors never mean that in a post's text.
    """
    line_no, col = doc.values.get(loc, (0, 0))
    line = doc.line(line_no)
    if not line or col < 1 or line[col - 1 : col] in ("'", '"', "|", ">"):
        return ""
    rest = line[col - 1 :]
    first_line = text.split("\n", 1)[0]
    if not rest.startswith(first_line.rstrip()):
        return ""
    after = rest[len(first_line.rstrip()) :]
    stripped = after.lstrip()
    if stripped.startswith("#") and after[: len(after) - len(stripped)]:
        return stripped[:30]
    return ""


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _valid_id(value: str) -> bool:

    return re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._/-]*", value) is not None and len(value) <= 200


_FIELDS_SETS: dict[frozenset[str], set[str]] = {}


def _refuse(self: object, *args: object, **kwargs: object) -> Any:
    kind = type(self).__mro__[1].__name__
    raise TypeError(f"this empty {kind} is shared by every post: copy it to change it")


class _EmptyDict(dict[Any, Any]):
    """The one empty mapping compacted posts share (``translations: {}``…): read-only, so a
    change meant for one post cannot reach every other."""

    __slots__ = ()
    __setitem__ = __delitem__ = __ior__ = _refuse
    clear = pop = popitem = setdefault = update = _refuse


class _EmptyList(list[Any]):
    """The one empty list compacted posts share (``media: []``, ``thread: []``): read-only."""

    __slots__ = ()
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refuse
    append = extend = insert = pop = remove = clear = sort = reverse = _refuse


EMPTY_DICT: dict[Any, Any] = _EmptyDict()
EMPTY_LIST: list[Any] = _EmptyList()

M = TypeVar("M", bound=BaseModel)


def compacted(model: M) -> M:
    """An equal copy of ``model`` that takes less memory, for the models the service keeps
    (one Post a file: at 50,000 posts, ~30 MB less). pydantic stores a validated model's
    fields in a dict of its own (a Post: ~540 bytes with the object); a copy whose fields
    are set one by one keeps them in CPython's compact per-instance values with keys shared
    by every instance of the class (~250 bytes with the object, tracemalloc on 3.11 and
    3.12; ``bot/content/model.py`` makes room for the keys), until something reads
    ``__dict__`` (equality, a dump), which adds a 64-byte dict over the same values. Besides: one
    ``__pydantic_fields_set__`` per distinct set (pydantic only reads it, and copies it
    before a ``model_copy`` changes it), and one shared read-only empty dict and list for
    the empty containers. The models are frozen; nothing changes a post's containers."""
    fields_set = model.__pydantic_fields_set__
    copy = object.__new__(type(model))
    for name, value in model.__dict__.items():
        object.__setattr__(copy, name, _compacted_value(value))
    object.__setattr__(
        copy, "__pydantic_fields_set__", _FIELDS_SETS.setdefault(frozenset(fields_set), fields_set)
    )
    object.__setattr__(copy, "__pydantic_extra__", model.__pydantic_extra__)
    object.__setattr__(copy, "__pydantic_private__", model.__pydantic_private__)
    return copy


def _compacted_value(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return compacted(value)
    if type(value) is dict:
        if not value:
            return EMPTY_DICT
        if any(isinstance(item, BaseModel) for item in value.values()):
            return {key: _compacted_value(item) for key, item in value.items()}
    elif type(value) is list:
        if not value:
            return EMPTY_LIST
        if any(isinstance(item, BaseModel) for item in value):
            return [_compacted_value(item) for item in value]
    return value
