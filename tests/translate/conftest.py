"""Fixtures: every translation backend, wired to its fake server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from servers.translate import (
    DeepLServer,
    FakeTranslationServer,
    GoogleServer,
    LibreServer,
    MicrosoftServer,
    MyMemoryServer,
)

from bot.settings import Secret, TranslatorSettings
from bot.translate.base import Translator
from bot.wiring import make_translator

KEY = "CANARY-key-5f1d0c"


@dataclass
class Backend:
    name: str
    server: FakeTranslationServer
    translator: Translator
    keyed: bool


SERVERS = {
    "google": (GoogleServer, "m", False),
    "libre": (LibreServer, "", True),
    "deepl": (DeepLServer, "", True),
    "microsoft": (MicrosoftServer, "", True),
    "mymemory": (MyMemoryServer, "get", False),
}


def make_backend(
    name: str, server: FakeTranslationServer, timeout: float = 1.0, key: str = KEY
) -> Translator:
    path = SERVERS[name][1]
    return make_translator(
        TranslatorSettings(backend=name, url=server.url + path, key=Secret(key), timeout=timeout)
    )


@pytest.fixture(params=sorted(SERVERS))
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """Each backend in turn (the contract suite runs against all of them)."""
    name = request.param
    server_cls, _path, keyed = SERVERS[name]
    with server_cls(api_key=KEY if keyed else None) as server:
        yield Backend(name, server, make_backend(name, server), keyed)
