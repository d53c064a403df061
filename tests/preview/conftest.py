"""Fixtures of the preview's tests (helpers and constants in ``preview/helpers.py``): the
example copy rendered by ``diplobot preview`` with machine translation from the fake
LibreTranslate, and Debian's chromium driven by Playwright."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from preview.helpers import CHROMIUM, DAYS, NOW, Rendered, example_copy
from servers.translate import LibreServer


@pytest.fixture
def translated_env(libre: LibreServer, monkeypatch: pytest.MonkeyPatch) -> LibreServer:
    """diplobot's machine translation goes to the fake LibreTranslate."""
    monkeypatch.setenv("DIPLOBOT_TRANSLATOR", "libre")
    monkeypatch.setenv("DIPLOBOT_TRANSLATOR_URL", libre.url)
    monkeypatch.setenv("DIPLOBOT_LOG_FORMAT", "text")
    monkeypatch.setenv("DIPLOBOT_LOG_LEVEL", "ERROR")
    return libre


@pytest.fixture
def rendered(tmp_path: Path, translated_env: LibreServer, run_cli: Callable[..., Any]) -> Rendered:
    """``diplobot preview`` of the example copy, 14 days from :data:`NOW`."""
    root = example_copy(tmp_path / "repo")
    out, state = tmp_path / "site", tmp_path / "state.sqlite"
    result = run_cli(
        "preview",
        "--root",
        str(root),
        "--state",
        f"sqlite:///{state}",
        "--from",
        f"{NOW:%Y-%m-%d %H:%M}",
        "--days",
        str(DAYS),
        "--out",
        str(out),
    )
    assert result.code == 0, result.err
    assert "file://" in result.out
    return Rendered(root, out, state)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless chromium (Debian's package, never a browser Playwright downloads)."""
    if not CHROMIUM.exists():
        why = (
            f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium; "
            ".ci/run does it when run as root)"
        )
        if os.environ.get("CI"):  # CI runs as root and installs it: a skip there hides a gap
            pytest.fail(why)
        pytest.skip(why)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    opened.errors = errors
    try:
        yield opened
    finally:
        context.close()
