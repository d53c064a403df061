"""`check`: write files into a copy of the example repository and run `diplobot validate` on it."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

_PROBLEM = re.compile(r"^(?P<where>\S+?\.ya?ml(?::\d+){0,2}): (?P<text>.+)$")


@dataclass(frozen=True)
class Validation:
    """The outcome of `diplobot validate` (text format), split into problem lines."""

    code: int
    out: str
    err: str

    @property
    def errors(self) -> list[tuple[str, str]]:
        """(``path:line:column``, message with hint) of every error line, in printed order."""
        return [(m["where"], m["text"]) for m in map(_PROBLEM.match, self.out.splitlines()) if m]

    def only_error(self) -> tuple[str, str]:
        """The single error reported; fails if there is none or more than one."""
        assert len(self.errors) == 1, self.out + self.err
        return self.errors[0]


def write(repo: Path, rel: str, body: str | bytes) -> Path:
    """Write ``body`` (dedented when text) at ``rel`` inside ``repo``."""
    path = repo / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(body, bytes):
        path.write_bytes(body)
    else:
        path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


@pytest.fixture
def check(example_repo: Path, run_cli: Callable[..., Any]) -> Callable[..., Validation]:
    """Write ``files`` (path → body) into the example repo, then run `diplobot validate`."""

    def run(files: Mapping[str, str | bytes] | None = None, *options: str) -> Validation:
        for rel, body in (files or {}).items():
            write(example_repo, rel, body)
        result = run_cli("validate", "--root", str(example_repo), *options)
        return Validation(result.code, result.out, result.err)

    return run
