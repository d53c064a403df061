"""A file's shape, checked by its pydantic model, with pydantic's findings told in editors'
words: the key, the line and column, and how to fix it.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Iterable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from bot.content.report import Collector, one_line
from bot.content.yamlsrc import YamlDoc

M = TypeVar("M", bound=BaseModel)


def check_shape(doc: YamlDoc, data: Any, model: type[M], out: Collector) -> M | None:
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
        elif isinstance(node, dict) and seg not in node and not _is_typetag(seg):
            path.append(seg)  # a missing key: point at its parent, name the key
            break
    return tuple(path)


def _is_typetag(seg: Any) -> bool:
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
    "handle": "the handle without @: letters, digits, _ (on Bluesky a domain with .)",
    "id": "use letters, digits, '.', '_', '-' and '/'",
}


def _explain(err: Any, loc: tuple[Any, ...], model: type[BaseModel]) -> tuple[str, str, bool]:
    kind = err["type"]
    key = next((s for s in reversed(loc) if isinstance(s, str)), "value")
    name = one_line(key)
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
        return f"unknown key '{one_line(loc[-1])}'", hint, True
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
    return repr(one_line(str(value), 40))
