"""Read one YAML file safely into plain Python data, remembering where every value stood.

Why not ``yaml.safe_load``: it forgets line numbers, silently keeps the last of two equal keys,
and applies YAML 1.1 rules that surprise editors (``no`` is False — the Norway problem — and
``10:30`` is the integer 630). Here plain scalars follow YAML 1.2's core schema: only
``true``/``false`` are booleans, ``~``/``null``/empty are null, decimal numbers are numbers, and
everything else — dates, times, ``no``, ``10:30`` — stays the text the editor typed. The models
parse dates and times themselves, so they can report a precise error.

Parsing is libyaml's (C) composer; this module only walks the node tree once, so reading costs
about the same as a bare ``yaml.load(..., Loader=CSafeLoader)``.

Hostile input is refused fast: a file over ``MAX_FILE_BYTES`` is not read at all, and anchors
and aliases (the "billion laughs" bomb) are refused where they appear.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from bot.errors import Problem

MAX_FILE_BYTES = 1024 * 1024
"""A post is a few kilobytes; anything this large is a mistake (or an attack)."""

Path = tuple[str | int, ...]

_PLAIN = "!plain"
_STR = "tag:yaml.org,2002:str"
_INT = re.compile(r"[-+]?[0-9]+\Z")
_HEX = re.compile(r"0x[0-9a-fA-F]+\Z")
_OCT = re.compile(r"0o[0-7]+\Z")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?\Z")
_NULLS = frozenset(("", "~", "null", "Null", "NULL"))
_TRUE = frozenset(("true", "True", "TRUE"))
_FALSE = frozenset(("false", "False", "FALSE"))
_INF = {".inf": math.inf, ".Inf": math.inf, ".INF": math.inf}


class _Loader(yaml.CSafeLoader):
    """libyaml's parser with no implicit typing: plain scalars are tagged ``!plain``."""

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if kind is yaml.ScalarNode and implicit[0]:
            return _PLAIN
        return super().resolve(kind, value, implicit)


@dataclass(slots=True)
class YamlDoc:
    """A parsed file: its data, and where each value (and each mapping key) starts."""

    path: str
    data: Any
    values: dict[Path, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path, tuple[int, int]] = field(default_factory=dict)

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
        size = os.stat(abs_path).st_size
        if size > MAX_FILE_BYTES:
            raise YamlProblem(
                Problem(
                    rel_path,
                    0,
                    0,
                    f"file is {size / 1_000_000:.1f} MB; diplobot files are limited to "
                    f"{MAX_FILE_BYTES // 1024} KB",
                    "a post is a few KB of text; put images under content/media/",
                )
            )
        with open(abs_path, "rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise YamlProblem(Problem(rel_path, 0, 0, f"cannot read file: {exc.strerror}")) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise YamlProblem(
            Problem(rel_path, line, 0, "file is not UTF-8 text", "save it as UTF-8")
        ) from None
    return parse_yaml(text, rel_path)


def parse_yaml(text: str, rel_path: str) -> YamlDoc:
    """Parse YAML text (see :func:`read_yaml` for what is refused)."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (0, 0)
        what = exc.problem or "invalid YAML"
        if "expected a single document" in str(exc.context or ""):
            what = "a file holds exactly one post; remove the second '---' document"
        raise YamlProblem(
            Problem(rel_path, line, col, f"YAML syntax error: {what}", _syntax_hint(what))
        ) from None
    except yaml.YAMLError as exc:
        raise YamlProblem(Problem(rel_path, 0, 0, f"YAML syntax error: {exc}")) from None
    finally:
        loader.dispose()
    doc = YamlDoc(rel_path, None)
    if node is None:
        return doc
    doc.data = _Walker(doc).build(node, ())
    return doc


def _syntax_hint(what: str) -> str:
    if "tab" in what:
        return "indent with spaces, not tabs"
    if "mapping values are not allowed" in what:
        return "a value containing ': ' must be quoted, e.g. text: \"Note: ...\""
    if "could not find expected ':'" in what:
        return "check the indentation of the line above, or quote the text"
    return "check quotes and indentation near that line"


class _Walker:
    """Turn a node tree into data in one pass, recording locations and refusing aliases."""

    __slots__ = ("doc", "seen")

    def __init__(self, doc: YamlDoc) -> None:
        self.doc = doc
        self.seen: set[int] = set()

    def fail(self, node: yaml.Node, message: str, hint: str = "") -> YamlProblem:
        mark = node.start_mark
        return YamlProblem(Problem(self.doc.path, mark.line + 1, mark.column + 1, message, hint))

    def build(self, node: yaml.Node, path: Path) -> Any:
        mark = node.start_mark
        self.doc.values[path] = (mark.line + 1, mark.column + 1)
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node)
        # libyaml hands out the very same node object for every alias of an anchor.
        if id(node) in self.seen:
            raise self.fail(
                node,
                "YAML anchors and aliases (&name / *name) are not supported",
                "write the value out in full",
            )
        self.seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            if node.tag not in ("tag:yaml.org,2002:seq",):
                raise self.fail(node, f"unsupported YAML tag {node.tag}", "remove the tag")
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        if node.tag != "tag:yaml.org,2002:map":
            raise self.fail(node, f"unsupported YAML tag {node.tag}", "remove the tag")
        result: dict[Any, Any] = {}
        keys = self.doc.keys
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise self.fail(key_node, "a key must be a plain word", "remove the brackets")
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise self.fail(key_node, "YAML merge keys (<<) are not supported")
            key = self.scalar(key_node)
            if not isinstance(key, str | int):
                key = str(key_node.value)
            if key in result:
                first = keys[(*path, key)][0]
                raise self.fail(
                    key_node,
                    f"key '{key}' appears twice in the same block (first on line {first})",
                    "keep only one",
                )
            kmark = key_node.start_mark
            keys[(*path, key)] = (kmark.line + 1, kmark.column + 1)
            result[key] = self.build(value_node, (*path, key))
        return result

    def scalar(self, node: yaml.ScalarNode) -> Any:
        value: str = node.value
        tag = node.tag
        if tag == _STR:
            return value
        if tag == _PLAIN:
            return _plain(value)
        short = tag.rsplit(":", 1)[-1]
        converted = {
            "int": lambda: int(value, 0),
            "float": lambda: float(value),
            "bool": lambda: value.lower() == "true",
            "null": lambda: None,
            "binary": lambda: value,
            "timestamp": lambda: value,
        }.get(short)
        if converted is None or not tag.startswith("tag:yaml.org,2002:"):
            raise self.fail(node, f"unsupported YAML tag {tag}", "remove the tag")
        try:
            return converted()
        except ValueError:
            raise self.fail(node, f"'{value}' is not a valid {short}") from None


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
