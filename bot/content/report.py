"""Problems as people and tools read them: compiler lines, JSON, or GitHub annotations; and the
:class:`Collector` that the checks report them to."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from bot.content.yamlsrc import YamlDoc
from bot.errors import Problem

FORMATS = ("text", "json", "github")


@dataclass(slots=True)
class Collector:
    """Every problem found so far, each located by its YAML path in its file."""

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


def one_line(value: Any, limit: int = 60) -> str:
    """An editor's value fit for a one-line message: invisible characters escaped, cut short."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in text)


def render_problems(problems: Sequence[Problem], fmt: str = "text") -> str:
    """Render ``problems`` (errors first, then warnings, each in file order).

    Characters that would garble a terminal or a log line (controls, bidi overrides, halves of
    surrogate pairs from file names that are not UTF-8) are shown as escapes such as ``\\x1b``.
    """
    ordered = sorted(
        (printable(p) for p in problems),
        key=lambda p: (p.severity != "error", p.path, p.line, p.column),
    )
    if fmt == "json":
        errors = sum(p.severity == "error" for p in ordered)
        return json.dumps(
            {
                "valid": errors == 0,
                "errors": errors,
                "warnings": len(ordered) - errors,
                "problems": [asdict(p) for p in ordered],
            },
            ensure_ascii=False,
            indent=2,
        )
    if fmt == "github":
        return "\n".join(_annotation(p) for p in ordered)
    lines = [f"{p.severity}: {p}" if p.severity != "error" else str(p) for p in ordered]
    errors = sum(p.severity == "error" for p in ordered)
    warnings = len(ordered) - errors
    if errors:
        lines.append(
            f"{errors} error(s), {warnings} warning(s): nothing was changed; fix the "
            "errors above and run 'diplobot validate' again"
        )
    else:
        lines.append(f"valid ({warnings} warning(s))" if warnings else "valid")
    return "\n".join(lines)


_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _escape_char(match: re.Match[str]) -> str:
    cp = ord(match.group())
    return f"\\x{cp:02x}" if cp < 0x100 else f"\\u{cp:04x}"


def printable(p: Problem) -> Problem:
    """``p`` with control, bidi and surrogate characters in its texts shown as escapes."""
    fields = (p.path, p.message, p.hint)
    if not any(_UNPRINTABLE.search(f) for f in fields):
        return p
    path, message, hint = (_UNPRINTABLE.sub(_escape_char, f) for f in fields)
    return replace(p, path=path, message=message, hint=hint)


def _annotation(p: Problem) -> str:
    # https://docs.github.com/actions/reference/workflow-commands-for-github-actions
    level = "error" if p.severity == "error" else "warning"
    props = [f"file={_escape_prop(p.path)}"]
    if p.line:
        props.append(f"line={p.line}")
    if p.column:
        props.append(f"col={p.column}")
    message = p.message + (f" ({p.hint})" if p.hint else "")
    return f"::{level} {','.join(props)}::{_escape_data(message)}"


def _escape_data(value: str) -> str:
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_prop(value: str) -> str:
    return _escape_data(value).replace(":", "%3A").replace(",", "%2C")
