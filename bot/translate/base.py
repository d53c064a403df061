"""The translator contract every backend meets."""

from __future__ import annotations

from typing import Protocol


class Translator(Protocol):
    """Translates one text between two languages, given as BCP 47 tags (``fr``, ``zh-Hant``,
    ``pt-BR``); each backend names them its own way (``bot/translate/codes.py``).

    ``name`` identifies the backend in the cache key and in ``diplobot translate``'s output.
    """

    name: str

    def translate(self, text: str, source: str, target: str) -> str:
        """Return ``text`` translated from ``source`` into ``target``.

        Returns within the configured timeout (plus connection set-up), whatever the server does.

        Raises:
            TranslationTransient: may work later (429, 5xx, connection, timeout, empty answer).
            TranslationPermanent: will not work without a change (bad key, unsupported language).
            Neither message contains the key or the text.
        """
        ...
