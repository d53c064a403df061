"""Importing ``bot`` changes no library, and only the settings read the environment.

DESIGN.md ("Wiring"): nothing patches a library at import; library workarounds are installed
by ``bot/wiring.py``, per instance or once. Every module of ``bot`` is imported in a fresh
interpreter, and what tweepy, requests, deepl and ``warnings`` expose is compared before and
after.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
BOT = ROOT / "bot"

# Run in a fresh interpreter: imports the libraries, notes what they expose, imports every
# module of bot (but __main__, which runs the CLI), notes again, prints both as JSON.
PROBE = r"""
import importlib, json, pkgutil, sys, warnings

import deepl
import deepl.http_client
import oauthlib.oauth1
import requests
import requests.adapters
import ruamel.yaml  # these two add their own warnings filters when imported: not ours
import twitter_text  # (it imports pkg_resources, which adds one)
import tweepy
import tweepy.asynchronous.client

def note():
    seen = {}
    def put(group, name, value):
        seen.setdefault(group, {})[name] = repr(value) if not callable(value) else (
            f"{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', '?')}"
            f"@{id(value)}"
        )
    for name in ("request", "send", "get_adapter", "mount", "merge_environment_settings"):
        put("requests", f"Session.{name}", getattr(requests.Session, name))
    for name in ("request", "get", "post"):
        put("requests", name, getattr(requests, name))
    put("requests", "HTTPAdapter.send", requests.adapters.HTTPAdapter.send)
    for name in ("max_network_retries", "min_connection_timeout", "user_agent"):
        put("deepl", f"http_client.{name}", getattr(deepl.http_client, name))
    for name in ("HttpClient", "_BackoffTimer"):
        put("deepl", f"http_client.{name}", getattr(deepl.http_client, name))
    put("deepl", "Translator", deepl.Translator)
    for name in ("Client", "OAuth1UserHandler", "OAuth2BearerHandler"):
        put("tweepy", name, getattr(tweepy, name))
    for name in ("AsyncClient", "OAuthClient"):
        put("tweepy", f"asynchronous.client.{name}", getattr(tweepy.asynchronous.client, name))
    put("tweepy", "oauthlib.oauth1.Client", oauthlib.oauth1.Client)
    put("tweepy", "oauthlib.oauth1.Client.sign", oauthlib.oauth1.Client.sign)
    put("warnings", "filters", list(warnings.filters))
    return seen

before = note()
import bot
for info in pkgutil.walk_packages(bot.__path__, "bot."):
    if info.name != "bot.__main__":
        importlib.import_module(info.name)
print(json.dumps({"before": before, "after": note(), "modules": sorted(sys.modules)}))
"""


@pytest.fixture(scope="module")
def probe() -> dict[str, Any]:
    """What the libraries expose before and after importing every module of bot."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def changed(probe: dict[str, Any], group: str) -> dict[str, tuple[str, str]]:
    before, after = probe["before"][group], probe["after"][group]
    return {k: (before[k], after[k]) for k in before if before[k] != after[k]}


def test_every_module_of_bot_was_imported(probe: dict[str, Any]) -> None:
    """The probe imported the whole package, backends included (a check that can fail)."""
    for name in ("bot.wiring", "bot.settings", "bot.translate.deep", "bot.translate.deepl_sdk"):
        assert name in probe["modules"]


def test_importing_bot_leaves_requests_untouched(probe: dict[str, Any]) -> None:
    """``requests.Session.request``/``send`` and the module's functions are requests' own."""
    assert changed(probe, "requests") == {}


def test_importing_bot_leaves_deepl_untouched(probe: dict[str, Any]) -> None:
    """The DeepL SDK's globals (retries, minimum timeout, user agent) and classes are as
    shipped."""
    assert changed(probe, "deepl") == {}


def test_importing_bot_leaves_tweepy_untouched(probe: dict[str, Any]) -> None:
    """tweepy's clients, auth handlers and the OAuth client it signs with are tweepy's own."""
    assert changed(probe, "tweepy") == {}


def test_importing_bot_adds_no_warnings_filter(probe: dict[str, Any]) -> None:
    """``warnings.filters`` is the same list after the imports."""
    assert changed(probe, "warnings") == {}


def test_wiring_installs_deep_translator_timeout_without_touching_requests() -> None:
    """Making a deep-translator backend gives its client modules a timeout, and leaves
    ``requests.Session`` (and ``requests.get``) alone."""
    code = (
        "import requests, deep_translator.google as g\n"
        "before = (requests.Session.request, requests.Session.send, requests.get)\n"
        "assert g.requests is requests\n"
        "from bot.settings import TranslatorSettings\n"
        "from bot.wiring import make_translator\n"
        "make_translator(TranslatorSettings(backend='google'))\n"
        "assert (requests.Session.request, requests.Session.send, requests.get) == before\n"
        "assert g.requests is not requests and g.requests.get is not requests.get\n"
        "assert g.requests.exceptions is requests.exceptions\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr


# -- who reads the environment ----------------------------------------------------------------

READERS = {"bot/settings.py", "bot/wiring.py"}
"""The modules allowed to read the environment."""
_ENV_ATTRIBUTES = {"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"}


def environment_reads(path: Path) -> list[str]:
    """``file:line: what`` for every read of the environment in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found: list[str] = []
    for node in ast.walk(tree):
        what = None
        if (
            isinstance(node, ast.Attribute)
            and node.attr in _ENV_ATTRIBUTES
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
        ):
            what = f"os.{node.attr}"
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            names = [a.name for a in node.names if a.name in _ENV_ATTRIBUTES]
            what = f"from os import {', '.join(names)}" if names else None
        elif isinstance(node, ast.Name) and node.id in ("getenv", "environ"):
            what = node.id
        if what:
            found.append(f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}: {what}")
    return found


def test_environment_reads_are_found() -> None:
    """The scan sees the reads the settings make (a scan that finds nothing proves nothing)."""
    assert environment_reads(BOT / "settings.py")


def test_only_the_settings_read_the_environment() -> None:
    """No module of bot but bot/settings.py (and bot/wiring.py) reads ``os.environ``."""
    offenders = [
        line
        for path in sorted(BOT.rglob("*.py"))
        if str(path.relative_to(ROOT)) not in READERS
        for line in environment_reads(path)
    ]
    assert offenders == []
