"""Load the content repository: YAML files → a validated :class:`ContentSet`, or every problem.

Pure apart from reading files: no network, no git, no state. Every problem carries the file,
line and column it concerns and says how to fix it, like a compiler. Loading never stops at the
first problem: editors fix a whole batch at once. The checks themselves live in
:mod:`bot.content.checks` and :mod:`bot.content.shape`; this module runs them over the
repository, and keeps what it found per file in a :class:`LoadCache`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

from bot.content.checks import (
    PostChecker,
    Scope,
    check_accounts,
    check_glossary,
    check_slots,
    read_doc,
)
from bot.content.files import MAX_DIR_DEPTH, NotReadable, read_regular, shown_path, walk
from bot.content.model import MISSION_PATTERN, Account, AccountsFile, GlossaryFile, SlotsFile
from bot.content.report import Collector, one_line, printable
from bot.content.resultcache import ResultCache
from bot.content.shape import check_shape
from bot.content.types import (
    CENTRAL,
    MISSIONS_DIR,
    ContentSet,
    Layout,
    Mission,
    PostEntry,
    merged_glossary,
    mission_of_path,
)
from bot.content.yamlsrc import YamlDoc, YamlProblem, read_yaml
from bot.envname import env_name
from bot.errors import ContentError, Problem

M = TypeVar("M", bound=BaseModel)

MAX_SCHEDULE_BYTES = 1024 * 1024 + 1  # yamlsrc.MAX_FILE_BYTES refuses more


def load(root: str | os.PathLike[str]) -> ContentSet:
    """Load and validate the repository at ``root``.

    Raises:
        ContentError: with every problem found, when any is an error.
    """
    content, problems = validate(root)
    if content is None:
        raise ContentError(problems)
    return content


class LoadCache:
    """What checking each post file found, reused while neither the file nor anything it is
    checked against (accounts, slots, glossary, media) changed. The service keeps one, so a
    commit that changes one post of 10,000 re-reads one file."""

    def __init__(self) -> None:
        self.context = ""
        # Per post file: its size, mtime and inode when checked, its entry, its problems (one
        # flat tuple, the empty problems the shared ``()``: ~100 bytes a file less).
        self.files: dict[str, tuple[int, int, int, PostEntry | None, tuple[Problem, ...]]] = {}
        # The post files found by the last call, and what walking the folders reported: with
        # ``changed``, the next call starts from them instead of walking and stat-ing.
        self.listed: list[str] | None = None
        self.walk_problems: list[Problem] = []
        self.revision: str | None = None  # the caller's name for the tree last checked
        # What the last call that kept the content found (see _patched), when it found no
        # duplicate id: the next call with ``changed`` starts from it.
        self.last: _Outcome | None = None

    def clear(self) -> None:
        self.context, self.files, self.listed, self.revision = "", {}, None, None
        self.last = None


class _Outcome:
    """The post files of a call in order with each one's post id (None: invalid), the posts
    by id in the same order, and the problems of each file that has any."""

    __slots__ = ("ids", "posts", "problems")

    def __init__(
        self,
        ids: dict[str, str | None],
        posts: dict[str, PostEntry],
        problems: dict[str, list[Problem]],
    ) -> None:
        self.ids, self.posts, self.problems = ids, posts, problems


def _context_key(base: Path, layouts: list[Layout]) -> str:
    digest = hashlib.sha1()
    for layout in layouts:
        digest.update(layout.name.encode() + b"\0")
        for rel in (layout.accounts, layout.slots, layout.glossary):
            try:
                digest.update(read_regular(base / rel, MAX_SCHEDULE_BYTES)[0])
            except NotReadable:
                digest.update(b"-")
        for found in walk(str(base), layout.home, skip=layout.posts):
            try:
                st = os.stat(base / found.rel)
            except (OSError, ValueError):
                continue
            digest.update(f"{found.rel}:{st.st_size}:{st.st_mtime_ns}".encode("utf-8", "replace"))
    return digest.hexdigest()


def validate(
    root: str | os.PathLike[str],
    cache: LoadCache | None = None,
    *,
    changed: Collection[str] | None = None,
) -> tuple[ContentSet | None, list[Problem]]:
    """Check the whole repository; return the content (None if any error) and all problems.

    With a ``cache``, post files unchanged since the last call (same size, mtime and inode,
    and the same accounts, slots, glossary and media) are not read again. With ``changed``
    as well — every root-relative path that may differ from the tree of the last call (the
    service asks git) — the folders are not walked nor the other post files stat-ed: only
    the changed ones are read. Anything ``changed`` cannot describe safely (a folder, a
    hidden or too deep path) makes this call walk as without it.
    """
    base = Path(root)
    out = Collector()
    try:
        content, problems, _ = _validate(base, cache, out, changed=changed)
    except Exception as exc:  # a defect of diplobot must not stop the service: say so, once
        if cache is not None:
            cache.clear()
        out.problems.append(_internal_problem(".", exc))
        content, problems = None, out.problems
    # Messages quote editors' values: a newline or an escape sequence in one must not break
    # the one-line format (or a terminal, or a log line).
    return content, [printable(p) for p in problems]


PARALLEL_MIN_FILES = 2000
"""Below this many post files a second process costs more than it saves."""


def check(
    root: str | os.PathLike[str], *, jobs: int = 1, cache: bool = False
) -> tuple[bool, list[Problem]]:
    """What :func:`validate` finds, without keeping the content (``diplobot validate``):
    whether the repository is valid, and every problem, in the same order.

    With ``jobs`` of 2 or more (and at least ``PARALLEL_MIN_FILES`` post files, and ``fork``),
    the second half of the post files is checked in a forked process meanwhile; only ids and
    problems come back from it. ``cache``: files git says are unchanged since the last run
    are not read again (``bot/content/resultcache.py``).
    """
    out = Collector()
    try:
        _, problems, valid = _validate(Path(root), None, out, keep=False, jobs=jobs, results=cache)
    except Exception as exc:
        out.problems.append(_internal_problem(".", exc))
        problems, valid = out.problems, False
    return valid, [printable(p) for p in problems]


@dataclass(slots=True)
class _Schedules:
    """One mission's schedule files, as loaded (None: missing or broken, reported)."""

    layout: Layout
    accounts: tuple[YamlDoc | None, AccountsFile] | None = None
    slots: tuple[YamlDoc | None, SlotsFile] = (None, SlotsFile())
    slots_known: bool = True  # False: slots.yaml is broken (its slot names are unknown)
    glossary: tuple[YamlDoc | None, GlossaryFile] = (None, GlossaryFile())
    model: AccountsFile | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.model = self.accounts[1] if self.accounts else None


def _schedules(base: Path, layout: Layout, out: Collector) -> _Schedules:
    """Load (and check alone) ``layout``'s accounts, slots and glossary files."""
    accounts = slots_loaded = glossary_loaded = None
    with _guard(out, layout.accounts):
        accounts = _load_model(base, layout.accounts, AccountsFile, out, required=True)
        if accounts is not None:
            check_accounts(accounts, out)
            if not layout.central:
                _check_mission_accounts(accounts, out)
    with _guard(out, layout.slots):
        slots_loaded = _load_model(base, layout.slots, SlotsFile, out)
    # A broken slots.yaml is reported once; its slot names are then unknown, not missing.
    slots_known = slots_loaded is not None or not _exists(base / layout.slots)
    with _guard(out, layout.glossary):
        glossary_loaded = _load_model(base, layout.glossary, GlossaryFile, out)
    return _Schedules(
        layout,
        accounts,
        slots_loaded or (None, SlotsFile()),
        slots_known,
        glossary_loaded or (None, GlossaryFile()),
    )


def _check_mission_accounts(loaded: tuple[YamlDoc | None, AccountsFile], out: Collector) -> None:
    """What only the central accounts file may say."""
    doc, accounts = loaded
    assert doc is not None
    if accounts.mission is not None:
        out.add(
            doc,
            ("mission",),
            "a mission's name is its folder's name; 'mission:' names the central mission, in "
            "schedules/accounts.yaml only",
            "remove the line",
            key=True,
        )
    if "pricing" in accounts.model_fields_set:
        out.add(
            doc,
            ("pricing",),
            "prices are set once for the whole repository, in schedules/accounts.yaml",
            "remove 'pricing' here",
            key=True,
        )


_MISSION_NAME = re.compile(MISSION_PATTERN)


def _mission_names(base: Path, out: Collector, central: str) -> list[str]:
    """The folders under missions/, each a mission, sorted; other names are reported."""
    try:
        with os.scandir(base / MISSIONS_DIR) as it:
            entries = sorted(it, key=lambda e: e.name)
    except FileNotFoundError:
        return []
    except NotADirectoryError:
        out.add(MISSIONS_DIR, (), "this should be a folder of missions, but it is a file")
        return []
    except OSError as exc:
        out.add(MISSIONS_DIR, (), f"cannot read this folder: {exc.strerror or exc}")
        return []
    names = []
    for entry in entries:
        if entry.name.startswith("."):
            continue
        rel = shown_path(f"{MISSIONS_DIR}/{entry.name}")
        try:
            is_dir = entry.is_dir(follow_symlinks=False)
            is_link = entry.is_symlink()
        except OSError:
            is_dir = is_link = False
        if is_link:
            out.add(
                rel,
                (),
                "a mission folder may not be a link: it is not read",
                "move the mission's files into the repository",
            )
            continue
        if not is_dir:
            continue  # a README beside the missions
        if not _MISSION_NAME.fullmatch(entry.name):
            out.add(
                rel,
                (),
                f"'{one_line(rel[len(MISSIONS_DIR) + 1 :])}' is not a mission name: "
                "nothing in it is read",
                "rename the folder: lowercase letters, digits and '-', at most 63, starting "
                "with a letter or digit",
            )
            continue
        if entry.name == central:
            out.add(
                rel,
                (),
                f"'{central}' is the central mission's name (content/ and schedules/)",
                "rename the folder, or give the central mission another name with "
                "'mission:' in schedules/accounts.yaml",
            )
            continue
        names.append(entry.name)
    return names


def _account_owners(every: list[_Schedules], out: Collector) -> dict[str, tuple[str, str]]:
    """Every account → its mission and where it is defined; an account defined twice, or two
    accounts reading the same credentials, in two files is an error naming both places."""
    owners: dict[str, tuple[str, str]] = {}
    by_variable: dict[str, str] = {}
    for sch in every:
        if sch.accounts is None or sch.accounts[0] is None:
            continue
        doc, model = sch.accounts[0], sch.accounts[1]
        for raw in model.accounts:
            aid = str(raw)
            here = f"{doc.path}:{doc.where(('accounts', aid), key=True)[0]}"
            if aid in owners:
                mission, there = owners[aid]
                out.add(
                    doc,
                    ("accounts", aid),
                    f"account '{one_line(aid)}' is defined twice: here and in {there} "
                    f"(mission '{mission}')",
                    "account names are unique across the repository (they name the ledger's "
                    "rows and the DIPLOBOT_<ACCOUNT>_* variables): rename one of them",
                    key=True,
                )
                continue
            name = env_name(aid)
            first = by_variable.setdefault(name, aid)
            if first != aid and not owners[first][1].startswith(doc.path + ":"):
                out.add(
                    doc,
                    ("accounts", aid),
                    f"account '{one_line(aid)}' reads the same credentials as account "
                    f"'{one_line(first)}' ({owners[first][1]}): both are "
                    f"DIPLOBOT_{name}_ACCESS_TOKEN and DIPLOBOT_{name}_ACCESS_SECRET",
                    "rename one of them: account ids must differ in more than case, '-' or '_'",
                    key=True,
                )
            owners[aid] = (sch.layout.name, here)
    return owners


def _filled(account: Account, own: AccountsFile, central: AccountsFile) -> Account:
    """A mission's account with its file's defaults (time zone, daily cap) written in, so
    that read beside the central accounts it keeps them."""
    update: dict[str, object] = {}
    if account.timezone is None and own.timezone != central.timezone:
        update["timezone"] = own.timezone
    if account.daily_cap is None and own.daily_cap is not None:
        update["daily_cap"] = own.daily_cap
    return account.model_copy(update=update) if update else account


class _Router:
    """The post checker of each mission, chosen by the file's folder."""

    def __init__(self, base: Path, checkers: list[PostChecker], out: Collector) -> None:
        self.base = base
        self.checkers = checkers
        self._out = out
        # missions/<name>/posts/...: the mission's checker, found by its name (269 missions)
        self.by_name = {c.layout.name: c for c in checkers if not c.layout.central}

    @property
    def out(self) -> Collector:
        return self._out

    @out.setter
    def out(self, out: Collector) -> None:
        self._out = out
        for checker in self.checkers:
            checker.out = out

    def check(self, rel: str) -> PostEntry | None:
        name = mission_of_path(rel)
        checker = self.by_name.get(name) if name is not None else self.checkers[0]
        if checker is None or not rel.startswith(checker.layout.posts + "/"):
            raise AssertionError(f"{rel} is in no mission's posts")
        return checker.check(rel)


def _validate(
    base: Path,
    cache: LoadCache | None,
    out: Collector,
    *,
    keep: bool = True,
    jobs: int = 1,
    changed: Collection[str] | None = None,
    results: bool = False,
) -> tuple[ContentSet | None, list[Problem], bool]:
    central = _schedules(base, Layout.of_central(), out)
    central_name = (central.model.mission if central.model else None) or CENTRAL
    central.layout = Layout.of_central(central_name)
    others = [
        _schedules(base, Layout.of_mission(n), out) for n in _mission_names(base, out, central_name)
    ]
    every = [central, *others]
    owners = _account_owners(every, out) if others else {}
    for sch in every:
        slots_doc, slots_model = sch.slots
        if sch.model is not None and slots_doc is not None:
            with _guard(out, sch.layout.slots):
                check_slots(slots_doc, slots_model, sch.model, out, owners)
        if sch.glossary[0] is not None:
            with _guard(out, sch.layout.glossary):
                check_glossary(sch.glossary[0], sch.glossary[1], out)
    account_model = central.model
    if any(sch.model is None for sch in others):
        account_model = None
    # A mission whose accounts file is broken (reported) is still a mission amplify may name.
    mission_accounts = {sch.layout.name: sch.model.accounts if sch.model else {} for sch in others}
    checkers = [
        PostChecker(
            base,
            sch.model,
            sch.slots[1] if sch.slots_known else None,
            out,
            Scope(sch.layout, mission_accounts if sch is central else {}, owners),
        )
        for sch in every
    ]
    for each in checkers:
        each.compact = keep  # the entries outlive this call only when kept
    checker = _Router(base, checkers, out)
    layouts = [sch.layout for sch in every]
    posts: dict[str, PostEntry] = {}
    first_seen: dict[str, str] = {}
    fresh: set[str] | None = None  # with ``changed``: the post files to read again
    if cache is not None:
        context = _context_key(base, layouts)
        if context != cache.context:
            cache.context, cache.files, cache.listed = context, {}, None
        elif changed is not None and cache.listed is not None:
            fresh = _changed_posts(base, changed, layouts)
    if cache is not None and keep and fresh is not None and cache.last is not None:
        last = cache.last
        patched = _patched(checker, base, cache, last, fresh, out)
        if patched is not None:
            posts, valid, touched = patched
            if not valid or account_model is None:
                return None, out.problems, False
            since = (last.posts, frozenset(touched))
            content = _content_set(
                base, central, others, account_model, central_name, posts, out.problems, since
            )
            return content, out.problems, True
    if cache is not None:
        cache.last = None  # until this call is through
    seen: set[str] = set()
    if cache is not None and cache.listed is not None and fresh is not None:
        files = _listed_after(base, cache.listed, fresh)
        out.problems.extend(cache.walk_problems)
    else:
        before = len(out.problems)
        files = list(_post_files(base, out, layouts))
        if cache is not None:
            cache.walk_problems = out.problems[before:]
    if cache is not None:
        cache.listed = files
    stored = ResultCache.open(base, _context_key(base, layouts)) if results and not keep else None
    misses = files if stored is None else [rel for rel in files if stored.get(rel) is None]
    forked = not keep and jobs > 1 and len(misses) >= PARALLEL_MIN_FILES and hasattr(os, "fork")
    if forked:
        checked = _checked_forked(checker, misses, out)
    else:
        checked = _checked(checker, misses, cache, fresh)
    if stored is not None:
        checked = _with_results(files, stored, checked, out)
    ids: dict[str, str | None] = {}
    by_file: dict[str, list[Problem]] = {}
    duplicate = False
    for rel, post_id, entry in checked:
        seen.add(rel)
        ids[rel] = post_id
        if post_id is None:
            continue
        if post_id in first_seen:
            out.add(
                rel,
                (),
                f"id '{post_id}' is already used by {_id_place(base, first_seen[post_id])}",
                "every post needs its own id; change one of them",
            )
            # Locate the duplicate precisely when we can (cheap: only on this rare path).
            out.problems[-1] = _relocate_to_id(base, rel, out.problems[-1])
            duplicate = True
            continue
        if entry is not None:
            posts[post_id] = entry
        first_seen[post_id] = rel
    if stored is not None:
        stored.save()
    if cache is not None:
        for gone in set(cache.files) - seen:
            del cache.files[gone]
        if keep and not duplicate:
            for rel, record in cache.files.items():
                if record[4]:
                    by_file[rel] = list(record[4])
            cache.last = _Outcome(ids, posts, by_file) if _all_cached(ids, cache) else None
    valid = not out.errors and account_model is not None
    if not valid or not keep or account_model is None:
        return None, out.problems, valid
    content = _content_set(base, central, others, account_model, central_name, posts, out.problems)
    return content, out.problems, valid


def _content_set(
    base: Path,
    central: _Schedules,
    others: list[_Schedules],
    account_model: AccountsFile,
    central_name: str,
    posts: dict[str, PostEntry],
    problems: list[Problem],
    since: tuple[dict[str, PostEntry], frozenset[str]] | None = None,
) -> ContentSet:
    """The content of a valid check: every mission, the accounts of them all, the posts
    (``since``: see ``ContentSet.since``)."""
    warnings = tuple(p for p in problems if p.severity != "error")
    glossary = central.glossary[1]
    every = [central, *others]
    missions = {
        sch.layout.name: Mission(
            sch.layout.name,
            sch.layout,
            sch.model,
            sch.slots[1],
            glossary if sch is central else merged_glossary(glossary, sch.glossary[1]),
            sch is not central and bool(sch.glossary[1].terms),
        )
        for sch in every
        if sch.model is not None
    }
    account_missions: dict[str, str] = {}
    merged = dict(account_model.accounts)
    for sch in others:
        assert sch.model is not None
        for aid, account in sch.model.accounts.items():
            merged[aid] = _filled(account, sch.model, account_model)
            account_missions[aid] = sch.layout.name
    accounts = account_model.model_copy(update={"accounts": merged}) if others else account_model
    return ContentSet(
        base,
        accounts,
        central.slots[1],
        glossary,
        posts,
        warnings,
        missions,
        account_missions,
        central_name,
        since=since,
    )


Checked = Iterator[tuple[str, str | None, PostEntry | None]]
"""Each post file checked, in order: its path, its post's id (None: invalid) and the entry
(None as well when only problems are kept); its problems are in the collector by then."""


def _checked(
    checker: _Router,
    files: list[str],
    cache: LoadCache | None,
    fresh: set[str] | None = None,
) -> Checked:
    out, base = checker.out, checker.base
    for rel in files:
        entry = None
        if fresh is not None and rel not in fresh and cache is not None and rel in cache.files:
            entry, problems = cache.files[rel][3:]  # unchanged, says the caller: no stat
            if problems:
                out.problems.extend(problems)
        else:
            with _guard(out, rel):
                if cache is None:
                    entry = checker.check(rel)
                else:
                    if fresh is not None:
                        cache.files.pop(rel, None)  # changed, says the caller: read it again
                    entry = _check_cached(checker, base, rel, cache, out)
        yield rel, (entry.id if entry is not None else None), entry


def _with_results(
    files: list[str], stored: ResultCache, checked: Checked, out: Collector
) -> Checked:
    """Every file of ``files`` in order: from ``stored`` when it has the file's result,
    else the next of ``checked`` (the others, checked in the same order), stored."""
    for rel in files:
        hit = stored.get(rel)
        if hit is not None:
            out.problems.extend(hit[1])
            yield rel, hit[0], None
            continue
        before = len(out.problems)
        found_rel, post_id, entry = next(checked)
        assert found_rel == rel
        stored.put(rel, post_id, out.problems[before:])
        yield found_rel, post_id, entry


_MISSING = "\0missing"  # not a path of the last call


def _patched(
    checker: _Router,
    base: Path,
    cache: LoadCache,
    last: _Outcome,
    fresh: set[str],
    out: Collector,
) -> tuple[dict[str, PostEntry], bool, set[str]] | None:
    """The last call's outcome with the post files in ``fresh`` checked again (present or
    gone): the posts in file order, whether it is valid, and the ids whose entry changed,
    came or went; its problems added to ``out`` in the order a whole check gives them. Work
    in proportion to ``fresh`` (and two copies of the last call's dictionaries). None when a
    changed file takes an id another file holds: the whole check then words the duplicate."""
    ids = dict(last.ids)
    posts = dict(last.posts)
    problems = dict(last.problems)
    reorder = relist = False
    touched: set[str] = set()
    for rel in sorted(fresh):
        old_id = ids.get(rel, _MISSING)
        cache.files.pop(rel, None)
        if not os.path.lexists(os.path.join(base, rel)):
            if old_id == _MISSING:
                continue
            del ids[rel]
            relist = True
            problems.pop(rel, None)
            if old_id is not None:
                del posts[old_id]
                touched.add(old_id)
            continue
        before = len(out.problems)
        entry = None
        with _guard(out, rel):
            entry = _check_cached(checker, base, rel, cache, out)
        found = out.problems[before:]
        del out.problems[before:]
        if rel not in cache.files:  # not stat-able, or a defect: as a whole check does
            return None
        new_id = entry.id if entry is not None else None
        if new_id is not None:
            other = posts.get(new_id)
            if other is not None and other.path != rel:
                return None
        if old_id == _MISSING:
            reorder = True
        elif old_id is not None and old_id != new_id:
            del posts[old_id]
            reorder = True
        if old_id not in (None, _MISSING):
            touched.add(old_id)
        if entry is not None:
            reorder = reorder or old_id != entry.id
            posts[entry.id] = entry
            touched.add(entry.id)
        ids[rel] = new_id
        if found:
            problems[rel] = found
        else:
            problems.pop(rel, None)
    if reorder:
        ids = {rel: ids[rel] for rel in sorted(ids)}
        posts = {i: posts[i] for i in ids.values() if i is not None}
    if reorder or relist:
        cache.listed = list(ids)
    out.problems.extend(cache.walk_problems)
    for rel in sorted(problems):
        out.problems.extend(problems[rel])
    cache.last = _Outcome(ids, posts, problems)
    return posts, not out.errors, touched


def _all_cached(ids: dict[str, str | None], cache: LoadCache) -> bool:
    files = cache.files
    return len(files) == len(ids) and all(rel in files for rel in ids)


def _changed_posts(base: Path, changed: Collection[str], layouts: list[Layout]) -> set[str] | None:
    """The post files among ``changed`` (present or gone), or None when one of the paths is
    something only a walk of the folders can judge: a folder (or a link to one) in place of
    a file, a hidden or too deep path, a name a walk would report."""
    posts: set[str] = set()
    prefixes = tuple(layout.posts + "/" for layout in layouts)
    for rel in changed:
        prefix = next((p for p in prefixes if rel.startswith(p)), None)
        if prefix is None:
            continue  # schedules, glossary, media: in the context key, checked every time
        parts = rel.split("/")
        if (
            len(parts) - prefix.count("/") > MAX_DIR_DEPTH
            or any(not p or p.startswith(".") for p in parts)
            or not rel.isprintable()
        ):
            return None
        if os.path.isdir(os.path.join(base, rel)):
            return None
        if rel.endswith((".yaml", ".yml")):
            posts.add(rel)
    return posts


def _listed_after(base: Path, listed: list[str], fresh: set[str]) -> list[str]:
    """The post files of the last call, with the changed ones that appeared or went."""
    files = set(listed)
    for rel in fresh:
        if os.path.lexists(os.path.join(base, rel)):
            files.add(rel)
        else:
            files.discard(rel)
    return sorted(files)


def _checked_forked(checker: _Router, files: list[str], out: Collector) -> Checked:
    """:func:`_checked` without entries, the second half of ``files`` in a forked child.

    The child sends ``(path, id, problems)`` of each of its files through a pipe and exits;
    if it fails in any way, this process checks its half itself.
    """
    half = len(files) // 2
    mine, theirs = files[:half], files[half:]
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child (its work is checked through the parent)
        code = 1
        try:
            os.close(read_end)
            checker.out = local = Collector()
            found: list[tuple[str, str | None, list[Problem]]] = []
            for rel, post_id, _ in _checked(checker, theirs, None):
                found.append((rel, post_id, local.problems))
                local.problems = []
            with os.fdopen(write_end, "wb") as sink:
                sink.write(pickle.dumps(found, protocol=pickle.HIGHEST_PROTOCOL))
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    pipe = os.fdopen(read_end, "rb")
    try:
        for rel, post_id, _ in _checked(checker, mine, None):
            yield rel, post_id, None
        data = pipe.read()
    finally:
        pipe.close()  # first: a child still writing gets EPIPE and exits
        _, status = os.waitpid(pid, 0)
    results = pickle.loads(data) if status == 0 and data else None
    if results is None or [r[0] for r in results] != theirs:
        yield from ((rel, post_id, None) for rel, post_id, _ in _checked(checker, theirs, None))
        return
    for rel, post_id, problems in results:
        out.problems.extend(problems)
        yield rel, post_id, None


INTERNAL_ERROR = "diplobot failed while checking this file"
"""Start of the message of a defect caught by :func:`validate` (tests look for it)."""


def _internal_problem(rel: str, exc: BaseException) -> Problem:
    detail = str(exc).split("\n", 1)[0][:200]
    return Problem(
        rel,
        0,
        0,
        f"{INTERNAL_ERROR} ({type(exc).__name__}: {detail}); the file is treated as invalid",
        "this is a defect of diplobot: please report it with the file",
    )


@contextlib.contextmanager
def _guard(out: Collector, rel: str) -> Iterator[None]:
    """Turn a defect met while checking ``rel`` into one problem about ``rel``."""
    try:
        yield
    except Exception as exc:
        out.problems.append(_internal_problem(rel, exc))


def _exists(path: Path) -> bool:
    try:
        os.stat(path)
    except (OSError, ValueError):
        return False
    return True


def _check_cached(
    checker: _Router, base: Path, rel: str, cache: LoadCache, out: Collector
) -> PostEntry | None:
    try:
        st = os.stat(os.path.join(base, rel))  # not Path's /: once per file per sync
    except OSError:
        return checker.check(rel)
    size, mtime, inode = st.st_size, st.st_mtime_ns, st.st_ino
    hit = cache.files.get(rel)
    if hit is not None and hit[0] == size and hit[1] == mtime and hit[2] == inode:
        out.problems.extend(hit[4])
        return hit[3]
    before = len(out.problems)
    entry = checker.check(rel)
    cache.files[rel] = (size, mtime, inode, entry, tuple(out.problems[before:]))
    return entry


def _post_files(base: Path, out: Collector, layouts: list[Layout]) -> Iterator[str]:
    """Every post file of each mission (content/posts, then missions/*/posts), each
    mission's sorted, as root-relative posix paths; folders that cannot be read and names
    that are not UTF-8 are reported to ``out``."""
    found: list[str] = []
    for layout in layouts:
        mine: list[str] = []
        for entry in walk(str(base), layout.posts):
            if entry.problem:
                out.add(entry.rel, (), entry.problem, entry.hint)
            elif entry.rel.endswith((".yaml", ".yml")):
                mine.append(entry.rel)
        found += sorted(mine)
    return iter(found)


def _id_place(base: Path, rel: str) -> str:
    """Where the post file ``rel`` gives its id: ``file:line`` of its ``id:``, or the file
    (its id is its path)."""
    try:
        doc = read_yaml(base / rel, rel)
    except YamlProblem:
        return rel
    if isinstance(doc.data, dict) and "id" in doc.data:
        return f"{rel}:{doc.where(('id',), key=True)[0]}"
    return rel


def _relocate_to_id(base: Path, rel: str, problem: Problem) -> Problem:
    try:
        doc = read_yaml(base / rel, rel)
    except YamlProblem:
        return problem
    line, col = doc.where(("id",), key=True)
    return Problem(rel, line, col, problem.message, problem.hint, problem.severity)


def _load_model(
    base: Path, rel: str, model: type[M], out: Collector, *, required: bool = False
) -> tuple[YamlDoc | None, M] | None:
    if not _exists(base / rel):
        if required:
            out.add(rel, (), "file is missing", "every repository needs it: see docs/content.md")
        return None
    doc = read_doc(base, rel, out)
    if doc is None:
        return None
    data = doc.data if doc.data is not None else {}
    parsed = check_shape(doc, data, model, out)
    return (doc, parsed) if parsed is not None else None
