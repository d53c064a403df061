"""Backend name → factory. An unknown name gets a message listing the valid ones.

The factories are called by ``bot/wiring.py`` (``make_translator``), which installs what a
backend's library needs first.
"""

from __future__ import annotations

from collections.abc import Callable

from bot.errors import ConfigError
from bot.settings import TranslatorSettings
from bot.translate.base import Translator


def _google(s: TranslatorSettings) -> Translator:
    from bot.translate.deep import GoogleBackend

    return GoogleBackend(s.url, s.timeout)


def _libre(s: TranslatorSettings) -> Translator:
    from bot.translate.deep import LibreBackend

    return LibreBackend(s.url, s.key, s.timeout)


def _microsoft(s: TranslatorSettings) -> Translator:
    from bot.translate.deep import MicrosoftBackend

    return MicrosoftBackend(s.url, s.key, s.timeout)


def _mymemory(s: TranslatorSettings) -> Translator:
    from bot.translate.deep import MyMemoryBackend

    return MyMemoryBackend(s.url, s.key, s.timeout)


def _deepl(s: TranslatorSettings) -> Translator:
    from bot.translate.deepl_sdk import DeepLBackend

    return DeepLBackend(s.url, s.key, s.timeout)


BACKENDS: dict[str, Callable[[TranslatorSettings], Translator]] = {
    "google": _google,
    "libre": _libre,
    "microsoft": _microsoft,
    "mymemory": _mymemory,
    "deepl": _deepl,
}
USES_DEEP_TRANSLATOR = frozenset({"google", "libre", "microsoft", "mymemory"})
"""The backends built on deep-translator (bot/translate/deep.py)."""


def backend(name: str) -> Callable[[TranslatorSettings], Translator]:
    """The factory of backend ``name``.

    Raises:
        ConfigError: no such backend; the message lists the valid ones.
    """
    try:
        return BACKENDS[name]
    except KeyError:
        raise ConfigError(
            f"DIPLOBOT_TRANSLATOR={name!r} is not a backend; choose one of: " + ", ".join(BACKENDS)
        ) from None
