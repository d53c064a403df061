"""Fixtures every test suite may use: the bundled example repository, the CLI run in-process,
the fake X (the example's four accounts) and fake LibreTranslate, and the state's databases
(``postgres``, ``pg_url``, and ``state_url`` run once on SQLite, once on PostgreSQL: see
tests/servers/postgres.py)."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from example import keep_platforms
from publish.conftest import ACCOUNTS, APP
from servers.postgres import pg_url, postgres, state_url, state_urls
from servers.translate import LibreServer
from servers.x import XServer

from bot.cli import main

__all__ = ["pg_url", "postgres", "state_url", "state_urls"]  # fixtures, registered by being here

ROOT = Path(__file__).resolve().parents[1]
"""The project checkout; its content/ and schedules/ are the bundled example repository."""


@pytest.fixture
def example_repo(tmp_path: Path) -> Path:
    """A private copy of the bundled example repository (content/ and schedules/)."""
    repo = tmp_path / "repo"
    for part in ("content", "schedules"):
        shutil.copytree(ROOT / part, repo / part, symlinks=True)
    return repo


@pytest.fixture
def repo(example_repo: Path) -> Path:
    """The same copy of the example with its X accounts only (the four the fake X knows),
    under the short name the publishing tests use."""
    return keep_platforms(example_repo, {"x"})


@pytest.fixture
def x() -> Iterator[XServer]:
    """The fake X API with the example's four accounts and their canary credentials."""
    with XServer(accounts=ACCOUNTS, consumer=APP) as server:
        yield server


@pytest.fixture
def libre() -> Iterator[LibreServer]:
    with LibreServer() as server:
        yield server


@dataclass(frozen=True)
class CliResult:
    """What a user sees after one `diplobot` command."""

    code: int
    out: str
    err: str


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run `diplobot ARGS...` in-process; usage errors (SystemExit) become their exit code."""

    def run(*argv: str) -> CliResult:
        capsys.readouterr()
        try:
            code = main(list(argv))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run
