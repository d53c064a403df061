"""Backend name → factory. An unknown name gets a message listing the valid ones."""

from __future__ import annotations

from collections.abc import Callable

from bot.config import TranslatorSettings
from bot.errors import ConfigError
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


def make_translator(settings: TranslatorSettings) -> Translator:
    try:
        factory = BACKENDS[settings.backend]
    except KeyError:
        raise ConfigError(
            f"DIPLOBOT_TRANSLATOR={settings.backend!r} is not a backend; choose one of: "
            + ", ".join(BACKENDS)
        ) from None
    return factory(settings)
