"""Load the content repository: YAML files → a validated :class:`ContentSet`, or every problem.

Pure apart from reading files: no network, no git, no state. Every problem carries the file,
line and column it concerns and says how to fix it, like a compiler. Loading never stops at the
first problem: editors fix a whole batch at once.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import os
import re
import types
import typing
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ValidationError

from bot.content.files import NotReadable, read_regular, walk
from bot.content.languages import ISO_639_1
from bot.content.model import (
    AccountsFile,
    GlossaryFile,
    Media,
    Post,
    SlotsFile,
)
from bot.content.report import printable
from bot.content.timeparse import TimeProblem, local_time_exists, parse_local, zone
from bot.content.yamlsrc import YamlDoc, YamlProblem, read_yaml
from bot.envname import env_name
from bot.errors import ContentError, Problem
from bot.platforms import Platform, platform_of, strictest
from bot.text import normalize
from bot.text.chars import char_name, find_bad_char

POSTS_DIR = "content/posts"
CONTENT_DIR = "content"
GLOSSARY_FILE = "content/glossary.yaml"
ACCOUNTS_FILE = "schedules/accounts.yaml"
SLOTS_FILE = "schedules/slots.yaml"

MAX_SCHEDULE_BYTES = 1024 * 1024 + 1  # yamlsrc.MAX_FILE_BYTES refuses more
MAX_MEDIA_PATH = 1024
_IMAGE_MAGIC = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
)

M = TypeVar("M", bound=BaseModel)


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

    def accounts_for(self, lang: str) -> list[str]:
        return [aid for aid, a in self.accounts.accounts.items() if a.lang == lang]


@dataclass(slots=True)
class _Collector:
    problems: list[Problem] = field(default_factory=list)

    def add(
        self,
        doc: YamlDoc | str,
        loc: tuple[Any, ...],
        message: str,
        hint: str = "",
        *,
        key: bool = False,
        severity: str = "error",
    ) -> None:
        if isinstance(doc, str):
            self.problems.append(Problem(doc, 0, 0, message, hint, severity))
            return
        line, col = doc.where(loc, key=key)
        self.problems.append(Problem(doc.path, line, col, message, hint, severity))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]


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
        self.files: dict[str, tuple[tuple[int, int, int], PostEntry | None, list[Problem]]] = {}


def _context_key(base: Path) -> str:
    digest = hashlib.sha1()
    for rel in (ACCOUNTS_FILE, SLOTS_FILE, GLOSSARY_FILE):
        try:
            digest.update(read_regular(base / rel, MAX_SCHEDULE_BYTES)[0])
        except NotReadable:
            digest.update(b"-")
    for found in walk(str(base), CONTENT_DIR, skip=POSTS_DIR):
        try:
            st = os.stat(base / found.rel)
        except (OSError, ValueError):
            continue
        digest.update(f"{found.rel}:{st.st_size}:{st.st_mtime_ns}".encode("utf-8", "replace"))
    return digest.hexdigest()


def validate(
    root: str | os.PathLike[str], cache: LoadCache | None = None
) -> tuple[ContentSet | None, list[Problem]]:
    """Check the whole repository; return the content (None if any error) and all problems.

    With a ``cache``, post files unchanged since the last call (same size, mtime and inode,
    and the same accounts, slots, glossary and media) are not read again.
    """
    base = Path(root)
    out = _Collector()
    try:
        content, problems = _validate(base, cache, out)
    except Exception as exc:  # a defect of diplobot must not stop the service: say so, once
        if cache is not None:
            cache.context, cache.files = "", {}
        out.problems.append(_internal_problem(".", exc))
        content, problems = None, out.problems
    # Messages quote editors' values: a newline or an escape sequence in one must not break
    # the one-line format (or a terminal, or a log line).
    return content, [printable(p) for p in problems]


def _validate(
    base: Path, cache: LoadCache | None, out: _Collector
) -> tuple[ContentSet | None, list[Problem]]:
    accounts = slots_loaded = glossary_loaded = None
    with _guard(out, ACCOUNTS_FILE):
        accounts = _load_model(base, ACCOUNTS_FILE, AccountsFile, out, required=True)
        if accounts is not None:
            _check_accounts(accounts, out)
    with _guard(out, SLOTS_FILE):
        slots_loaded = _load_model(base, SLOTS_FILE, SlotsFile, out)
    # A broken slots.yaml is reported once; its slot names are then unknown, not missing.
    slots_known = slots_loaded is not None or not _exists(base / SLOTS_FILE)
    slots = slots_loaded or (None, SlotsFile())
    with _guard(out, GLOSSARY_FILE):
        glossary_loaded = _load_model(base, GLOSSARY_FILE, GlossaryFile, out)
    glossary = glossary_loaded or (None, GlossaryFile())
    account_model = accounts[1] if accounts else None
    if accounts is not None and slots[0] is not None:
        with _guard(out, SLOTS_FILE):
            _check_slots(slots[0], slots[1], accounts[1], out)
    if glossary[0] is not None:
        with _guard(out, GLOSSARY_FILE):
            _check_glossary(glossary[0], glossary[1], out)
    checker = _PostChecker(base, account_model, slots[1] if slots_known else None, out)
    posts: dict[str, PostEntry] = {}
    first_seen: dict[str, str] = {}
    if cache is not None:
        context = _context_key(base)
        if context != cache.context:
            cache.context, cache.files = context, {}
    seen: set[str] = set()
    for rel in _post_files(base, out):
        entry = None
        with _guard(out, rel):
            entry = _check_cached(checker, base, rel, cache, out) if cache else checker.check(rel)
        seen.add(rel)
        if entry is None:
            continue
        if entry.id in posts:
            out.add(
                rel,
                (),
                f"id '{entry.id}' is already used by {first_seen[entry.id]}",
                "every post needs its own id; change one of them",
            )
            # Locate the duplicate precisely when we can (cheap: only on this rare path).
            out.problems[-1] = _relocate_to_id(base, rel, out.problems[-1])
            continue
        posts[entry.id] = entry
        first_seen[entry.id] = rel
    if cache is not None:
        for gone in set(cache.files) - seen:
            del cache.files[gone]
    errors = out.errors
    if errors or account_model is None:
        return None, out.problems
    warnings = tuple(p for p in out.problems if p.severity != "error")
    return (
        ContentSet(base, account_model, slots[1], glossary[1], posts, warnings),
        out.problems,
    )


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
def _guard(out: _Collector, rel: str) -> Iterator[None]:
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


def machine_mark(backend: str, text: str) -> str:
    """The ``machine_translated`` value for ``text``: backend and a short hash of the text.
    Editing the text changes the hash, which counts as approval."""
    digest = hashlib.sha256(normalize(text).strip().encode("utf-8")).hexdigest()[:10]
    return f"{backend}:{digest}"


def _is_marked(mark: str | None, text: str) -> bool:
    return mark is not None and mark.rsplit(":", 1)[-1] == machine_mark("", text)[1:]


def _check_cached(
    checker: _PostChecker, base: Path, rel: str, cache: LoadCache, out: _Collector
) -> PostEntry | None:
    try:
        st = os.stat(base / rel)
        key = (st.st_size, st.st_mtime_ns, st.st_ino)
    except OSError:
        return checker.check(rel)
    hit = cache.files.get(rel)
    if hit is not None and hit[0] == key:
        out.problems.extend(hit[2])
        return hit[1]
    before = len(out.problems)
    entry = checker.check(rel)
    cache.files[rel] = (key, entry, out.problems[before:])
    return entry


def _post_files(base: Path, out: _Collector) -> Iterator[str]:
    """Every post file under content/posts, sorted, as root-relative posix paths; folders
    that cannot be read and names that are not UTF-8 are reported to ``out``."""
    found: list[str] = []
    for entry in walk(str(base), POSTS_DIR):
        if entry.problem:
            out.add(entry.rel, (), entry.problem, entry.hint)
        elif entry.rel.endswith((".yaml", ".yml")):
            found.append(entry.rel)
    found.sort()
    return iter(found)


def _relocate_to_id(base: Path, rel: str, problem: Problem) -> Problem:
    try:
        doc = read_yaml(base / rel, rel)
    except YamlProblem:
        return problem
    line, col = doc.where(("id",), key=True)
    return Problem(rel, line, col, problem.message, problem.hint, problem.severity)


def _read(base: Path, rel: str, out: _Collector) -> YamlDoc | None:
    try:
        return read_yaml(base / rel, rel)
    except YamlProblem as exc:
        out.problems.append(exc.problem)
        return None


def _load_model(
    base: Path, rel: str, model: type[M], out: _Collector, *, required: bool = False
) -> tuple[YamlDoc | None, M] | None:
    if not _exists(base / rel):
        if required:
            out.add(rel, (), "file is missing", "every repository needs it: see docs/content.md")
        return None
    doc = _read(base, rel, out)
    if doc is None:
        return None
    data = doc.data if doc.data is not None else {}
    parsed = _shape(doc, data, model, out)
    return (doc, parsed) if parsed is not None else None


def _shape(doc: YamlDoc, data: Any, model: type[M], out: _Collector) -> M | None:
    """Validate one file's shape; report pydantic's findings in editors' words."""
    if not isinstance(data, dict):
        out.add(
            doc,
            (),
            "the file must be a block of 'key: value' lines",
            "start with a key such as 'text:'",
        )
        return None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        seen: set[tuple[Any, ...]] = set()
        for err in exc.errors(include_url=False):
            loc = _data_loc(data, err["loc"])
            if loc in seen:  # a union reports once per branch; once is enough for a human
                continue
            seen.add(loc)
            message, hint, on_key = _explain(err, loc, model)
            if err.get("input") is None and err["type"] == "string_type":
                line = doc.line(doc.where(loc, key=True)[0])
                if re.search(r":\s+#", line):
                    hint = (
                        "a '#' after ': ' starts a YAML comment, so the value is empty: "
                        'put the text in quotes, e.g. text: "#COP31 ..."'
                    )
            out.add(doc, loc, message, hint, key=on_key)
        return None


def _data_loc(data: Any, loc: Iterable[Any]) -> tuple[Any, ...]:
    """Pydantic's loc with its type-tag segments ('str', 'dict[str,str]'…) removed."""
    path: list[Any] = []
    node = data
    for seg in loc:
        in_dict = isinstance(node, dict) and seg in node
        if in_dict or (isinstance(node, list) and isinstance(seg, int) and 0 <= seg < len(node)):
            path.append(seg)
            node = node[seg]
        elif isinstance(node, dict) and isinstance(seg, str) and seg.endswith("[key]"):
            continue
        elif not isinstance(node, dict | list):
            break
        elif isinstance(node, dict) and seg not in node and not path_is_typetag(seg):
            path.append(seg)  # a missing key: point at its parent, name the key
            break
    return tuple(path)


def path_is_typetag(seg: Any) -> bool:
    return isinstance(seg, str) and ("[" in seg or seg in ("str", "int", "float", "bool"))


_TYPE_WORDS = {
    "string_type": "must be text",
    "int_type": "must be a whole number",
    "float_type": "must be a number",
    "bool_type": "must be true or false",
    "list_type": "must be a list",
    "dict_type": "must be a block of 'key: value' lines",
    "model_type": "must be a block of 'key: value' lines",
    "model_attributes_type": "must be a block of 'key: value' lines",
}
_LIST_HINT = "put the items in brackets, e.g. [a, b], or one per line starting with '- '"
_LIST_HINTS = {
    "languages": "write it as [fr, en]",
    "media": "write each image on its own line: '- file: media/photo.jpg'",
    "thread": "write each part on its own line: '- text: ...'",
    "times": "write it as [09:00, 18:00]",
    "days": "write it as [mon, tue]",
    "accounts": "write it as [francediplo, francediplo_EN]",
}
_PATTERN_HINTS = {
    "publish_at": "write it as YYYY-MM-DD HH:MM, e.g. 2026-11-24 09:00",
    "from": "write it as YYYY-MM-DD HH:MM, e.g. 2026-12-24 18:00",
    "until": "write it as YYYY-MM-DD HH:MM, e.g. 2026-12-26 08:00",
    "times": "write times as HH:MM, e.g. 09:00",
    "handle": "the handle without @: letters, digits and _, at most 15",
    "id": "use letters, digits, '.', '_', '-' and '/'",
}


def _explain(err: Any, loc: tuple[Any, ...], model: type[BaseModel]) -> tuple[str, str, bool]:
    kind = err["type"]
    key = next((s for s in reversed(loc) if isinstance(s, str)), "value")
    name = _shown(key)
    if kind == "extra_forbidden":
        allowed = _allowed_keys(model, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1, cutoff=0.6)
        hint = (
            f"did you mean '{close[0]}'?"
            if close
            else "valid keys: " + ", ".join(allowed)
            if allowed
            else ""
        )
        return f"unknown key '{_shown(loc[-1])}'", hint, True
    if kind == "missing":
        missing = err["loc"][-1]
        return f"missing required key '{missing}'", "see docs/content.md for an example", False
    got = _describe(err.get("input"))
    if kind in _TYPE_WORDS:
        hint = _LIST_HINTS.get(key, _LIST_HINT) if kind == "list_type" else ""
        return f"'{name}' {_TYPE_WORDS[kind]}, not {got}", hint, False
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        return f"'{name}' must be one of {expected}, not {got}", "", False
    if kind == "string_pattern_mismatch":
        return f"'{name}' has an invalid value {got}", _PATTERN_HINTS.get(key, ""), False
    return f"'{name}': {err['msg'].lower()}", "", False


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys allowed in the block at ``loc`` of a ``model`` file (empty if unknown)."""
    current: Any = model
    for seg in loc:
        current = _step(current, seg)
        if current is None:
            return []
    found = _inner_model(current)
    if found is None:
        return []
    return sorted(f.alias or n for n, f in found.model_fields.items())


def _step(annotation: Any, seg: Any) -> Any:
    """The type of the value at ``seg`` inside a value typed ``annotation``, or None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        for name, info in annotation.model_fields.items():
            if seg in (name, info.alias):
                return info.annotation
        return None
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is list and isinstance(seg, int):
        return args[0]
    if origin is dict:  # seg is a key the editor chose (a slot's or an account's name)
        return args[1]
    for arg in args if origin in (typing.Union, types.UnionType) else ():
        found = _step(arg, seg)
        if found is not None:
            return found
    return None


def _inner_model(annotation: Any) -> Any:
    """The BaseModel inside list[X] / dict[str, X] / X | None, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _describe(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return f"{str(value).lower()}"
    if isinstance(value, int) and abs(value) >= 10**40:
        return "a very large number"  # also: str() of an int over 4,300 digits raises
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a block of keys"
    return repr(_shown(str(value), 40))


def _shown(value: Any, limit: int = 60) -> str:
    """An editor's value fit for a one-line message: invisible characters escaped, cut short."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in text)


def _check_zone(doc: YamlDoc, loc: tuple[Any, ...], name: str | None, out: _Collector) -> bool:
    if name is None:
        return True
    try:
        zone(name)
        return True
    except TimeProblem as exc:
        out.add(doc, loc, exc.message, exc.hint)
        return False


def _check_lang(
    doc: YamlDoc, loc: tuple[Any, ...], lang: str, out: _Collector, *, key: bool = False
) -> bool:
    if lang in ISO_639_1:
        return True
    lower = lang.lower().split("-")[0].split("_")[0]
    hint = f"use '{lower}'" if lower in ISO_639_1 else "use a two-letter ISO 639-1 code, e.g. fr"
    out.add(doc, loc, f"unknown language '{_shown(lang)}'", hint, key=key)
    return False


def _check_accounts(loaded: tuple[YamlDoc | None, AccountsFile], out: _Collector) -> None:
    doc, accounts = loaded
    assert doc is not None
    _check_zone(doc, ("timezone",), accounts.timezone, out)
    by_variable: dict[str, str] = {}
    for aid, account in accounts.accounts.items():
        _check_lang(doc, ("accounts", aid, "lang"), account.lang, out)
        _check_zone(doc, ("accounts", aid, "timezone"), account.timezone, out)
        # Credentials are found by variable name: two ids naming the same variables would
        # both publish with one account's token (the English text on the French account).
        name = env_name(str(aid))
        first = by_variable.setdefault(name, str(aid))
        if first != aid:
            line = doc.where(("accounts", first), key=True)[0]
            out.add(
                doc,
                ("accounts", aid),
                f"account '{_shown(aid)}' reads the same credentials as account "
                f"'{_shown(first)}' (line {line}): both are DIPLOBOT_{name}_ACCESS_TOKEN and "
                f"DIPLOBOT_{name}_ACCESS_SECRET, so both would publish as the same account",
                "rename one of them: account ids must differ in more than case, '-' or '_'",
                key=True,
            )


def _check_slots(doc: YamlDoc, slots: SlotsFile, accounts: AccountsFile, out: _Collector) -> None:
    known = set(accounts.accounts)
    for name, slot in slots.slots.items():
        if slot.timezone not in (None, "account"):
            _check_zone(doc, ("slots", name, "timezone"), slot.timezone, out)
        zones = (
            {a.timezone or accounts.timezone for a in accounts.accounts.values()}
            if slot.timezone == "account"
            else {slot.timezone or accounts.timezone}
        )
        for i, hhmm in enumerate(slot.times):
            _warn_dst_slot(doc, ("slots", name, "times", i), hhmm, zones, out)
    for i, blackout in enumerate(slots.blackouts):
        loc = ("blackouts", i)
        if not _check_zone(doc, (*loc, "timezone"), blackout.timezone, out):
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
        _check_account_refs(doc, (*loc, "accounts"), blackout.accounts or [], known, out)
    _check_account_refs(doc, ("pause", "accounts"), slots.pause.accounts, known, out)


def _warn_dst_slot(
    doc: YamlDoc, loc: tuple[Any, ...], hhmm: str, zones: set[str], out: _Collector
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
    doc: YamlDoc, loc: tuple[Any, ...], refs: list[str], known: set[str], out: _Collector
) -> None:
    for i, ref in enumerate(refs):
        if ref not in known:
            out.add(
                doc,
                (*loc, i),
                f"unknown account '{_shown(ref)}'",
                "accounts: " + ", ".join(sorted(known)),
            )


def _check_glossary(doc: YamlDoc, glossary: GlossaryFile, out: _Collector) -> None:
    for i, term in enumerate(glossary.terms):
        _check_chars(doc, ("terms", i, "term"), term.term, out)
        for lang, rendering in term.translations.items():
            loc = ("terms", i, "translations", lang)
            _check_lang(doc, loc, lang, out, key=True)
            _check_chars(doc, loc, rendering, out)  # it is written into posts as it stands


class _PostChecker:
    """Checks one post file against its shape and against the rest of the repository."""

    def __init__(
        self, base: Path, accounts: AccountsFile | None, slots: SlotsFile | None, out: _Collector
    ) -> None:
        self.base = base
        self.root_abs = os.path.abspath(base)
        self.content_abs = os.path.join(self.root_abs, CONTENT_DIR)
        self.root_real = os.path.realpath(base)
        self.accounts = accounts
        self.slots = slots
        self.out = out
        self.account_langs = (
            frozenset(a.lang for a in accounts.accounts.values()) if accounts else frozenset()
        )
        self.langs_text = ", ".join(sorted(self.account_langs))
        # The limits a text must fit: the tightest platform of the accounts it goes to.
        listed = list(accounts.accounts.values()) if accounts else []
        self.platform: Platform = strictest(platform_of(a) for a in listed)
        self.platform_of_lang: dict[str, Platform] = {
            lang: strictest(platform_of(a) for a in listed if a.lang == lang)
            for lang in self.account_langs
        }
        self.media_cache: dict[str, tuple[str, str] | None] = {}
        self.default_tz: ZoneInfo | None = None  # None: accounts.yaml's zone is bad (reported)
        if accounts is not None:
            with contextlib.suppress(TimeProblem):
                self.default_tz = zone(accounts.timezone)

    def check(self, rel: str) -> PostEntry | None:
        out = self.out
        before = len(out.problems)
        doc = _read(self.base, rel, out)
        if doc is None:
            return None
        if doc.data is None:
            out.add(doc, (), "file is empty", "a post needs at least lang and text")
            return None
        post = _shape(doc, doc.data, Post, out)
        if post is None:
            return None
        post_id = post.id or rel[len(POSTS_DIR) + 1 :].rsplit(".", 1)[0]
        if post.id is None and not _valid_id(post_id):
            out.add(
                doc,
                (),
                f"the file name cannot serve as the post's id ('{_shown(post_id)}')",
                "add a line 'id: some-name' using letters, digits, '.', '_', '-'",
            )
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
        return PostEntry(post_id, rel, post, due, langs, fingerprint)

    def _check_texts(self, doc: YamlDoc, post: Post) -> None:
        out = self.out
        _check_lang(doc, ("lang",), post.lang, out)
        if post.languages is not None:
            for i, lang in enumerate(post.languages):
                if (
                    _check_lang(doc, ("languages", i), lang, out)
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
        holders: list[tuple[tuple[Any, ...], str, dict[str, str]]] = [
            ((), post.text, post.translations)
        ]
        holders += [(("thread", i), p.text, p.translations) for i, p in enumerate(post.thread)]
        for base_loc, text, translations in holders:
            self._check_one_text(
                doc,
                (*base_loc, "text"),
                text,
                check_length=post.lang in published or not self.account_langs,
                lang=post.lang,
            )
            for lang, value in translations.items():
                loc = (*base_loc, "translations", lang)
                if not _check_lang(doc, loc, lang, out, key=True):
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
                self._check_one_text(doc, loc, value, check_length=True, lang=lang)

    def _check_one_text(
        self, doc: YamlDoc, loc: tuple[Any, ...], text: str, *, check_length: bool, lang: str
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
            where = self.platform_of_lang.get(lang, self.platform)
            limit = where.limits.text
            length = where.limits.count(text)
            if length > limit:
                self.out.add(
                    doc,
                    loc,
                    f"text is {length} characters long as {where.display} counts them; the "
                    f"limit is {limit}",
                    f"shorten it by {length - limit}, or move the rest to 'thread:'",
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
        if not _check_zone(doc, ("timezone",), post.timezone, out):
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
            out.add(doc, ("slot",), f"unknown slot '{_shown(post.slot)}'", hint)
            return None
        tz = zone(post.timezone) if post.timezone is not None else self.default_tz
        if post.publish_at is None or tz is None:
            return None
        try:
            return parse_local(post.publish_at, tz)
        except TimeProblem as exc:
            out.add(doc, ("publish_at",), f"publish_at {exc.message}", exc.hint)
            return None

    def _check_media(self, doc: YamlDoc, post: Post) -> None:
        groups: list[tuple[tuple[Any, ...], list[Media]]] = [(("media",), post.media)]
        groups += [(("thread", i, "media"), p.media) for i, p in enumerate(post.thread)]
        name, limits = self.platform.display, self.platform.limits
        for loc, items in groups:
            if len(items) > limits.media:
                self.out.add(
                    doc,
                    (*loc, limits.media),
                    f"{len(items)} images; {name} takes at most {limits.media} per post",
                    "move the others to a thread part",
                )
            for i, item in enumerate(items):
                if not _check_path_chars(doc, (*loc, i, "file"), item.file, self.out):
                    found = self._media_problem(item.file)
                    if found is not None:
                        self.out.add(doc, (*loc, i, "file"), *found)
                alts = item.alt.items() if isinstance(item.alt, dict) else [(None, item.alt)]
                for lang, alt in alts:
                    where = (*loc, i, "alt") if lang is None else (*loc, i, "alt", lang)
                    if lang is not None:
                        _check_lang(doc, where, lang, self.out, key=True)
                    if alt is None:
                        continue
                    if _check_chars(doc, where, alt, self.out):
                        continue
                    if len(alt) > limits.alt:
                        self.out.add(
                            doc,
                            where,
                            f"alt text is {len(alt)} characters; {name} allows {limits.alt}",
                            "shorten it",
                        )

    def _media_problem(self, file: str) -> tuple[str, str] | None:
        if file not in self.media_cache:
            self.media_cache[file] = self._inspect_media(file)
        return self.media_cache[file]

    def _inspect_media(self, file: str) -> tuple[str, str] | None:
        hint_rel = "use a path relative to content/, like media/photo.jpg"
        shown = _shown(file)
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
        joined = os.path.normpath(os.path.join(self.root_abs, CONTENT_DIR, file))
        if not _inside(joined, self.root_abs):
            return f"media path '{shown}' leaves the repository", hint_rel
        if not _inside(joined, self.content_abs):
            return f"media path '{shown}' leaves content/", hint_rel
        real = os.path.realpath(joined)
        if not _inside(real, self.root_real):
            return (
                f"media file '{shown}' is a link to a place outside the repository",
                "copy the image into content/media/",
            )
        try:
            head, size = read_regular(real, 16)
        except NotReadable as exc:
            if exc.missing:
                return (
                    f"media file '{shown}' not found",
                    "check the spelling; paths are relative to content/",
                )
            return (
                f"media '{shown}' cannot be used: {exc.reason}",
                "replace it with an image file",
            )
        name, limits = self.platform.display, self.platform.limits
        if size > limits.media_bytes:
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


def _image_type(head: bytes) -> str | None:
    """The image format the first bytes of a file say, as :class:`Limits` names it."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return next((kind for magic, kind in _IMAGE_MAGIC if head.startswith(magic)), None)


def _check_chars(doc: YamlDoc, loc: tuple[Any, ...], text: str, out: _Collector) -> bool:
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


def _check_path_chars(doc: YamlDoc, loc: tuple[Any, ...], path: str, out: _Collector) -> bool:
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
    import re

    return re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._/-]*", value) is not None and len(value) <= 200
