"""The translator contract every backend meets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable


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


@runtime_checkable
class BatchTranslator(Translator, Protocol):
    """A backend whose engine takes a list of texts in one request (LibreTranslate's ``q`` as
    a list, DeepL's ``text``, Microsoft's body): ``bot/translate/localize.py`` sends it at most
    ``batch_texts`` texts of at most ``batch_chars`` characters in all per request."""

    batch_texts: int
    batch_chars: int

    def translate_many(self, texts: Sequence[str], source: str, target: str) -> list[str]:
        """``texts`` translated, in order, in one request; a text the engine answered with an
        empty string is returned empty (the caller fails that text alone).

        Raises:
            TranslationTransient, TranslationPermanent: as :meth:`Translator.translate`, for
                the whole batch.
            BatchTooLarge: the server refused the batch for its size (a LibreTranslate with a
                smaller ``--batch-limit`` or ``--char-limit``): send the texts one by one.
        """
        ...


class BatchTooLarge(Exception):
    """The server refused a batch for its number of texts or characters."""
