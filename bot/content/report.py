"""Problems as people and tools read them: compiler lines, JSON, or GitHub annotations."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict

from bot.errors import Problem

FORMATS = ("text", "json", "github")


def render_problems(problems: Sequence[Problem], fmt: str = "text") -> str:
    """Render ``problems`` (errors first, then warnings, each in file order)."""
    ordered = sorted(problems, key=lambda p: (p.severity != "error", p.path, p.line, p.column))
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
