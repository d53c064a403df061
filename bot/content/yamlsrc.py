"""Read one YAML file safely into plain Python data, remembering where every value stood.

Why not ``yaml.safe_load``: it forgets line numbers, silently keeps the last of two equal keys,
and applies YAML 1.1 rules that surprise editors (``no`` is False — the Norway problem — and
``10:30`` is the integer 630). Here plain scalars follow YAML 1.2's core schema: only
``true``/``false`` are booleans, ``~``/``null``/empty are null, decimal numbers are numbers, and
everything else — dates, times, ``no``, ``10:30`` — stays the text the editor typed. The models
parse dates and times themselves, so they can report a precise error.

Parsing is libyaml's (C) event parser; this module builds the data from its events in one
iterative pass (no recursion, so no nesting depth can overflow a stack), at about the cost of a
bare ``yaml.load(..., Loader=CSafeLoader)``.

Hostile input is refused fast: a file over ``MAX_FILE_BYTES`` is not read at all, anchors and
aliases (the "billion laughs" bomb) are refused at the first anchor, and nesting deeper than
``MAX_DEPTH`` is refused where it starts.
"""

from __future__ import annotations

import bisect
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from bot.content.files import NotReadable, TooLarge, read_regular
from bot.errors import Problem

MAX_FILE_BYTES = 1024 * 1024
"""A post is a few kilobytes; anything this large is a mistake (or an attack)."""
MAX_DEPTH = 32
"""Blocks inside blocks: a post needs 4 levels (thread > part > media > alt)."""
MAX_NUMBER_CHARS = 100
"""No value in these files needs a longer number; Python refuses to convert integers of more
than 4,300 digits (and printing a huge one in a message would raise the same)."""

Path = tuple[str | int, ...]

_STR = "tag:yaml.org,2002:str"
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"
_INT = re.compile(r"[-+]?[0-9]+\Z")
_HEX = re.compile(r"0x[0-9a-fA-F]+\Z")
_OCT = re.compile(r"0o[0-7]+\Z")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?\Z")
_NULLS = frozenset(("", "~", "null", "Null", "NULL"))
_TRUE = frozenset(("true", "True", "TRUE"))
_FALSE = frozenset(("false", "False", "FALSE"))
_INF = {".inf": math.inf, ".Inf": math.inf, ".INF": math.inf}


@dataclass(slots=True)
class YamlDoc:
    """A parsed file: its data, and where each value (and each mapping key) starts."""

    path: str
    data: Any
    values: dict[Path, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path, tuple[int, int]] = field(default_factory=dict)
    source: str = ""

    def line(self, number: int) -> str:
        """Source line ``number`` (1-based), or '' when out of range."""
        lines = self.source.splitlines()
        return lines[number - 1] if 0 < number <= len(lines) else ""

    def where(self, loc: Path, *, key: bool = False) -> tuple[int, int]:
        """Line and column (1-based) of the value at ``loc``, or of its nearest parent."""
        table = self.keys if key else self.values
        probe = tuple(loc)
        while probe:
            if probe in table:
                return table[probe]
            if key and probe in self.values:
                return self.values[probe]
            probe = probe[:-1]
            table = self.values
        return self.values.get((), (1, 1))

    def char_position(self, loc: Path, text: str, index: int) -> tuple[int, int, str]:
        """Line, column and typed form of ``text[index]``, ``text`` being the value at ``loc``.

        The character is looked for from where the value starts, typed as itself or as a
        double-quoted escape (``\\0``, ``\\x1b``, ``\\u202e``...), which is returned; when it
        cannot be found, the value's own position and ''.
        """
        start = self.values.get(loc)
        if start is None or not 0 <= index < len(text):
            return (*self.where(loc), "")
        line_starts = [0, *(m.end() for m in _LINE_BREAK.finditer(self.source))]
        if start[0] - 1 >= len(line_starts):
            return (*start, "")
        offset = line_starts[start[0] - 1] + start[1] - 1
        ch = text[index]
        wanted = text.count(ch, 0, index)
        for i, match in enumerate(_char_forms(ch).finditer(self.source, offset)):
            if i == wanted:
                pos = match.start()
                line = bisect.bisect_right(line_starts, pos)
                return line, pos - line_starts[line - 1] + 1, match.group()
        return (*start, "")


# The line breaks libyaml counts lines by (its marks are what locations are made of).
_LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")
_NAMED_ESCAPES = {
    0x00: "0",
    0x07: "a",
    0x08: "b",
    0x09: "t",
    0x0B: "v",
    0x0C: "f",
    0x0D: "r",
    0x1B: "e",
    0x85: "N",
    0xA0: "_",
    0x2028: "L",
    0x2029: "P",
}


def _char_forms(ch: str) -> re.Pattern[str]:
    """``ch`` as typed in a YAML file: itself, or one of its double-quoted escapes."""
    cp = ord(ch)
    forms = [re.escape(ch), "\\\\U" + _hex(cp, 8)]
    if cp < 0x10000:
        forms.append("\\\\u" + _hex(cp, 4))
    if cp < 0x100:
        forms.append("\\\\x" + _hex(cp, 2))
    if cp in _NAMED_ESCAPES:
        forms.append(re.escape("\\" + _NAMED_ESCAPES[cp]))
    return re.compile("|".join(forms))


def _hex(cp: int, digits: int) -> str:
    """A pattern for ``cp`` in ``digits`` hex digits, either case."""
    return "".join(f"[{d}{d.upper()}]" if d.isalpha() else d for d in f"{cp:0{digits}x}")


class YamlProblem(Exception):
    """A file could not be read as YAML; ``problem`` says where and why."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def read_yaml(abs_path: str | os.PathLike[str], rel_path: str) -> YamlDoc:
    """Read and parse one file.

    Raises:
        YamlProblem: the file is too large, not UTF-8, not valid YAML, holds several
            documents, uses anchors/aliases, duplicate keys or unsupported tags.
    """
    try:
        raw, _ = read_regular(abs_path, MAX_FILE_BYTES + 1, max_size=MAX_FILE_BYTES)
    except TooLarge as exc:
        raise YamlProblem(
            Problem(
                rel_path,
                0,
                0,
                f"file is {exc.size / 1_048_576:.1f} MB; diplobot files are limited to "
                f"{MAX_FILE_BYTES // 1_048_576} MB",
                "a post is a few KB of text; put images under content/media/",
            )
        ) from None
    except NotReadable as exc:
        hint = "" if exc.missing else "replace it with an ordinary text file, or delete it"
        raise YamlProblem(
            Problem(rel_path, 0, 0, f"cannot read this file: {exc.reason}", hint)
        ) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        col = len(raw[: exc.start].rsplit(b"\n", 1)[-1].decode("utf-8", "replace")) + 1
        raise YamlProblem(
            Problem(rel_path, line, col, "file is not UTF-8 text", "save it as UTF-8")
        ) from None
    return parse_yaml(text, rel_path)


def parse_yaml(text: str, rel_path: str) -> YamlDoc:
    """Parse YAML text (see :func:`read_yaml` for what is refused)."""
    bad = _RAW_CONTROL.search(text)
    if bad is not None:
        raise YamlProblem(_control_problem(text, bad.start(), rel_path))
    try:
        return _parse(text, rel_path, yaml.CSafeLoader)
    except yaml.MarkedYAMLError as exc:
        if exc.problem != _LIBYAML_TOO_DEEP:
            raise YamlProblem(_syntax_problem(exc, text, rel_path)) from None
    except yaml.reader.ReaderError as exc:  # pragma: no cover - the scan above finds these
        raise YamlProblem(_control_problem(text, exc.position, rel_path)) from None
    except yaml.YAMLError as exc:
        first = str(exc).split("\n", 1)[0]
        raise YamlProblem(Problem(rel_path, 1, 1, f"YAML syntax error: {first}")) from None
    # libyaml 0.2.5 as built into PyYAML >= 6.0.4 stops at its own nesting limit (1,000 levels)
    # while *scanning ahead*, before the events reach our limit, and reports the place where it
    # gave up. PyYAML's pure-Python parser has no such limit and yields the same events, so it
    # takes the file again: it meets MAX_DEPTH where it opens, after a few dozen events, and the
    # editor gets the same message on every PyYAML (it looks at most 1,024 characters ahead).
    try:
        return _parse(text, rel_path, yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        raise YamlProblem(_syntax_problem(exc, text, rel_path)) from None
    except yaml.YAMLError as exc:  # pragma: no cover - the pure parser raises marked errors
        first = str(exc).split("\n", 1)[0]
        raise YamlProblem(Problem(rel_path, 1, 1, f"YAML syntax error: {first}")) from None


# Characters YAML refuses in a file (C0 controls but tab and line breaks, DEL, C1 controls),
# and NEL (U+0085), which YAML 1.1 reads as a line break where editors show nothing: libyaml
# reports these with no line (or as a puzzling indentation error), so they are found first.
_RAW_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _control_problem(text: str, index: int, rel_path: str) -> Problem:
    from bot.text.chars import char_name

    index = max(0, min(index, len(text) - 1))
    line = text.count("\n", 0, index) + 1
    col = index - (text.rfind("\n", 0, index) + 1) + 1
    return Problem(
        rel_path,
        line,
        col,
        f"the file contains the invisible control character {char_name(text[index])}, "
        "which YAML does not allow",
        f"delete it: put the cursor just after column {col} and press Backspace; most editors "
        "do not show it, and it often comes from copying text out of a PDF or a web page",
    )


_LIBYAML_TOO_DEEP = "exceeded maximum nesting depth"


def _parse(
    text: str, rel_path: str, loader_class: type[yaml.CSafeLoader | yaml.SafeLoader]
) -> YamlDoc:
    loader = loader_class(text)
    try:
        return _Builder(YamlDoc(rel_path, None, source=text), loader).run()
    finally:
        loader.dispose()


def _syntax_problem(exc: yaml.MarkedYAMLError, text: str, rel_path: str) -> Problem:
    """libyaml's complaint, located where the editor must act, with a hint they can follow."""
    problem_mark, context_mark = exc.problem_mark, exc.context_mark
    what = exc.problem or "invalid YAML"
    mark = problem_mark or context_mark
    hint = _syntax_hint(what)
    if "escape" in what:
        hint = (
            "inside double quotes a backslash starts an escape such as \\n; write \\\\ for a "
            "backslash, or write the character itself instead of its \\u code"
        )
    elif (
        "quoted scalar" in str(exc.context or "")
        and "end of stream" in what
        and context_mark is not None
    ):
        # libyaml reports the end of the file; the quote that is never closed is what to fix.
        mark, what = context_mark, "this quoted text is never closed"
        hint = "add the closing quote at the end of the text"
    elif mark is not None and _char_at(text, mark.line, mark.column) == "\t":
        what = "a tab character where YAML allows only spaces"
        hint = "indent with spaces, not tabs"
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (0, 0)
    return Problem(rel_path, line, col, f"YAML syntax error: {what}", hint)


def _char_at(text: str, line: int, column: int) -> str:
    lines = text.split("\n", line + 1)
    if line >= len(lines) or column >= len(lines[line]):
        return ""
    return lines[line][column]


def _syntax_hint(what: str) -> str:
    if "tab" in what:
        return "indent with spaces, not tabs"
    if "mapping values are not allowed" in what:
        return (
            "indent this line like the keys above it; if the text itself contains ': ', "
            'put it in quotes, e.g. text: "Note: ..."'
        )
    if "could not find expected ':'" in what:
        return "check the indentation of the line above, or quote the text"
    return "check quotes and indentation near that line"


_NO_ANCHORS = (
    "YAML anchors and aliases (&name / *name) are not supported",
    "write the value out in full",
)
_CONVERT: dict[str, Callable[[str], Any]] = {
    "int": lambda v: int(v, 0),
    "float": float,
    "bool": lambda v: v.lower() == "true",
    "null": lambda v: None,
    "binary": lambda v: v,
    "timestamp": lambda v: v,
}


class _Frame:
    """A mapping or sequence being filled; for a mapping, the key awaiting its value."""

    __slots__ = ("is_map", "items", "key", "path")

    def __init__(self, items: dict[Any, Any] | list[Any], path: Path) -> None:
        self.items = items
        self.is_map = isinstance(items, dict)
        self.path = path
        self.key: str | int | None = None  # None: the next event is a key (mappings only)


class _Builder:
    """Turn libyaml's events into data in one iterative pass, recording locations."""

    __slots__ = ("doc", "loader")
    inline = True  # False: every event takes the general path (tests compare the two)

    def __init__(self, doc: YamlDoc, loader: yaml.CSafeLoader | yaml.SafeLoader) -> None:
        self.doc = doc
        self.loader = loader

    def fail(self, event: yaml.Event, message: str, hint: str = "") -> YamlProblem:
        line, col = _where(event)
        return YamlProblem(Problem(self.doc.path, line, col, message, hint))

    def run(self) -> YamlDoc:
        get_event = self.loader.get_event
        values = self.doc.values
        stack: list[_Frame] = []
        frame: _Frame | None = None  # the innermost open block, stack[-1]
        documents = 0
        keys = self.doc.keys
        scalar_event = yaml.ScalarEvent if self.inline else None
        while True:
            event = get_event()
            # The common case first, inlined (10,000 files hold ~100,000 of them): a scalar
            # without anchor or tag inside a block, a plain key or a value. Anything unusual
            # (a tag, a long number, a quoted or repeated key) takes the general path below,
            # which this reproduces exactly.
            if event.__class__ is scalar_event and frame is not None and event.anchor is None:
                text = event.value
                plain = event.tag is None and len(text) <= MAX_NUMBER_CHARS
                mark = event.start_mark
                where = (mark.line + 1, mark.column + 1) if mark is not None else (0, 0)
                if frame.is_map and frame.key is None:
                    found = _plain(text) if plain and event.implicit[0] and text != "<<" else None
                    if found.__class__ is str and found not in frame.items:
                        keys[(*frame.path, found)] = where
                        frame.key = found
                    else:
                        frame.key = self.key(event, frame)
                    continue
                value: Any
                if plain:
                    value = _plain(text) if event.implicit[0] else text
                else:
                    value = self.scalar(event)
                if frame.is_map:
                    key = frame.key
                    assert key is not None  # set by the key event just before
                    values[(*frame.path, key)] = where
                    frame.items[key] = value  # type: ignore[index]
                    frame.key = None
                else:
                    values[(*frame.path, len(frame.items))] = where
                    frame.items.append(value)  # type: ignore[union-attr]
                continue
            if isinstance(event, yaml.NodeEvent):
                if event.anchor is not None or isinstance(event, yaml.AliasEvent):
                    raise self.fail(event, *_NO_ANCHORS)
                if frame is None:
                    path: Path = ()
                elif frame.is_map:
                    if frame.key is None:
                        frame.key = self.key(event, frame)
                        continue
                    path = (*frame.path, frame.key)
                else:
                    path = (*frame.path, len(frame.items))
                values[path] = _where(event)
                opened: _Frame | None = None
                if isinstance(event, yaml.ScalarEvent):
                    value = self.scalar(event)
                elif isinstance(event, yaml.CollectionStartEvent):
                    value = self.collection(event, depth=len(stack))
                    opened = _Frame(value, path)
                else:  # pragma: no cover - libyaml emits no other node events
                    raise self.fail(event, f"unexpected YAML {type(event).__name__}")
                if frame is None:
                    self.doc.data = value
                elif frame.is_map:
                    frame.items[frame.key] = value  # type: ignore[index]
                    frame.key = None
                else:
                    frame.items.append(value)  # type: ignore[union-attr]
                if opened is not None:
                    stack.append(opened)
                    frame = opened
            elif isinstance(event, yaml.CollectionEndEvent):
                stack.pop()
                frame = stack[-1] if stack else None
            elif event is None or isinstance(event, yaml.StreamEndEvent):
                return self.doc
            elif isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    raise self.fail(
                        event,
                        "a file holds exactly one post; remove the second '---' document",
                        "put each post in its own file",
                    )

    def collection(
        self, event: yaml.CollectionStartEvent, depth: int
    ) -> dict[Any, Any] | list[Any]:
        is_map = isinstance(event, yaml.MappingStartEvent)
        if event.tag not in (None, "!", _MAP if is_map else _SEQ):
            raise self.fail(event, f"unsupported YAML tag {event.tag}", "remove the tag")
        if depth >= MAX_DEPTH:
            raise self.fail(
                event,
                f"blocks are nested more than {MAX_DEPTH} levels deep",
                "a post needs only a few levels; check the indentation and the brackets",
            )
        return {} if is_map else []

    def key(self, event: yaml.NodeEvent, frame: _Frame) -> str | int:
        if not isinstance(event, yaml.ScalarEvent):
            raise self.fail(event, "a key must be a plain word", "remove the brackets")
        if event.value == "<<" and event.tag is None and event.implicit[0]:
            raise self.fail(event, "YAML merge keys (<<) are not supported", "write the keys out")
        value = self.scalar(event)
        key: str | int = value if isinstance(value, str | int) else event.value
        if isinstance(key, bool):
            key = event.value
        path = (*frame.path, key)
        if key in frame.items:
            first = self.doc.keys[path][0]
            raise self.fail(
                event,
                f"key '{key}' appears twice in the same block (first on line {first})",
                "keep only one",
            )
        self.doc.keys[path] = _where(event)
        return key

    def scalar(self, event: yaml.ScalarEvent) -> Any:
        value = event.value
        tag = event.tag
        if tag is None:
            return self.plain(event) if event.implicit[0] else value
        if tag in (_STR, "!"):
            return value
        kind = tag.rsplit(":", 1)[-1]
        convert = _CONVERT.get(kind)
        if convert is None or not tag.startswith("tag:yaml.org,2002:"):
            raise self.fail(event, f"unsupported YAML tag {tag}", "remove the tag")
        if kind in ("int", "float") and len(value) > MAX_NUMBER_CHARS:
            raise self.fail(event, *_too_long_number(value))
        try:
            return convert(value)
        except ValueError:
            shown = value if len(value) <= 40 else value[:37] + "..."
            raise self.fail(event, f"'{shown}' is not a valid {kind}") from None

    def plain(self, event: yaml.ScalarEvent) -> Any:
        value = event.value
        if len(value) > MAX_NUMBER_CHARS and any(
            form.match(value) for form in (_INT, _HEX, _OCT, _FLOAT)
        ):
            raise self.fail(event, *_too_long_number(value))
        return _plain(value)


def _where(event: yaml.Event) -> tuple[int, int]:
    mark = event.start_mark
    return (mark.line + 1, mark.column + 1) if mark is not None else (0, 0)


def _too_long_number(value: str) -> tuple[str, str]:
    return (
        f"this number is {len(value)} characters long; diplobot reads numbers of at most "
        f"{MAX_NUMBER_CHARS}",
        'if it is meant as text, put it in quotes, e.g. text: "123..."',
    )


def _plain(value: str) -> Any:
    """Type a plain (unquoted) scalar by YAML 1.2's core schema."""
    if value in _NULLS:
        return None
    first = value[0]
    if first in "tTfF":
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        return value
    if first in "0123456789+-.":
        if _INT.match(value):
            return int(value)
        if _HEX.match(value):
            return int(value, 16)
        if _OCT.match(value):
            return int(value[2:], 8)
        if _FLOAT.match(value):
            return float(value)
        if value in _INF:
            return _INF[value]
        if value in ("-.inf", "-.Inf", "-.INF"):
            return -math.inf
        if value in (".nan", ".NaN", ".NAN"):
            return math.nan
    return value
