"""Backends through deep-translator: Google (keyless), LibreTranslate, Microsoft, MyMemory.

deep-translator needs three corrections, all made here at the boundary:

- It sets no timeout on any request, and takes no session or timeout to give it one: its
  modules call ``requests.get``/``requests.post`` themselves. :func:`install_default_timeout`
  (called once by ``bot/wiring.py`` before the first backend is made, never on import) gives
  those modules a ``requests`` whose ``get`` and ``post`` add the timeout of the current
  :func:`request_timeout` block. ``requests`` itself is left alone: other users of it (the
  alert webhook, DeepL's SDK) keep their own timeouts.
- Its exceptions derive from bare ``Exception``; ``AuthorizationException`` carries the API key,
  and ``requests`` errors carry the URL, which for LibreTranslate holds the key and the text in
  its query string. They are mapped to our errors *without* their message or cause
  (``from None``): only the exception's class name and the HTTP status are kept.
- It reads API keys from the environment at import time; keys are passed explicitly instead.
"""

from __future__ import annotations

import contextlib
import importlib
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import requests
from deep_translator import exceptions as dt_errors

from bot.content.languages import ISO_639_1
from bot.errors import TranslationPermanent, TranslationTransient
from bot.settings import Secret
from bot.translate.base import BatchTooLarge
from bot.translate.codes import code

_local = threading.local()
_install_lock = threading.Lock()
_CLIENT_MODULES = (
    "deep_translator.google",
    "deep_translator.libre",
    "deep_translator.microsoft",
    "deep_translator.mymemory",
)
"""deep-translator's modules of the clients we use: each calls ``requests.get``/``post``."""


def _with_timeout(kwargs: dict[str, Any]) -> dict[str, Any]:
    timeout = getattr(_local, "timeout", None)
    if timeout is not None and kwargs.get("timeout") is None:
        kwargs["timeout"] = timeout
    return kwargs


class _TimedRequests:
    """``requests`` as deep-translator's client modules see it once installed: the same
    module, whose ``get`` and ``post`` add the timeout of the current :func:`request_timeout`
    block (none outside one, as before)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(requests, name)

    def get(self, url: str, params: Any = None, **kwargs: Any) -> requests.Response:
        return requests.get(url, params=params, **_with_timeout(kwargs))

    def post(
        self, url: str, data: Any = None, json: Any = None, **kwargs: Any
    ) -> requests.Response:
        return requests.post(url, data=data, json=json, **_with_timeout(kwargs))


def install_default_timeout() -> None:
    """Give deep-translator's client modules their ``requests`` with a default timeout (once;
    calling again changes nothing)."""
    with _install_lock:
        for name in _CLIENT_MODULES:
            module = importlib.import_module(name)
            if not isinstance(getattr(module, "requests", None), _TimedRequests):
                module.requests = _TimedRequests()  # type: ignore[attr-defined]


@contextlib.contextmanager
def request_timeout(seconds: float) -> Iterator[None]:
    """Give every deep-translator request without its own timeout this one, in this thread."""
    previous = getattr(_local, "timeout", None)
    _local.timeout = seconds
    try:
        yield
    finally:
        _local.timeout = previous


_PERMANENT = (
    dt_errors.LanguageNotSupportedException,
    dt_errors.InvalidSourceOrTargetLanguage,
    dt_errors.NotValidPayload,
    dt_errors.NotValidLength,
    dt_errors.ApiKeyException,
)
_TRANSIENT = (
    dt_errors.TooManyRequests,
    dt_errors.RequestError,
    dt_errors.ServerException,
    dt_errors.TranslationNotFound,
    dt_errors.ElementNotFoundInGetRequest,
    dt_errors.MicrosoftAPIerror,
    requests.RequestException,
    ValueError,  # a malformed JSON answer (requests' JSONDecodeError is a ValueError)
    KeyError,
    TypeError,
    IndexError,
    AttributeError,  # MicrosoftTranslator on a dropped connection calls None.json()
)


def call_mapped(name: str, target: str, fn: Callable[[], Any], timeout: float) -> str:
    """Run one deep-translator call with a timeout, mapping its errors to ours."""
    with mapped_errors(name, target, timeout):
        result = fn()
    if not isinstance(result, str) or not result.strip():
        raise TranslationTransient(f"{name} returned an empty translation")
    return result


@contextlib.contextmanager
def mapped_errors(name: str, target: str, timeout: float) -> Iterator[None]:
    """Run the block (deep-translator calls, or requests raising deep-translator's errors) with
    a timeout, mapping its errors to ours, without their message or cause."""
    try:
        with request_timeout(timeout):
            yield
    except dt_errors.AuthorizationException:
        raise TranslationPermanent(
            f"{name} rejected the API key: check DIPLOBOT_TRANSLATOR_KEY"
        ) from None
    except dt_errors.MicrosoftAPIerror as exc:
        # api_message is Microsoft's error object, e.g. {'code': 401000, 'message': ...}.
        code = str(exc.api_message)
        if "'code': 401" in code or "'code': 403" in code:
            raise TranslationPermanent(
                f"{name} rejected the API key: check DIPLOBOT_TRANSLATOR_KEY"
            ) from None
        if "'code': 400" in code:
            raise TranslationPermanent(f"{name} refused the request for '{target}'") from None
        raise TranslationTransient(f"{name} answered with an error") from None
    except _PERMANENT as exc:
        raise TranslationPermanent(
            f"{name} cannot translate into '{target}' ({type(exc).__name__})"
        ) from None
    except requests.Timeout:
        raise TranslationTransient(f"{name} did not answer within {timeout:g} s") from None
    except dt_errors.TooManyRequests:
        raise TranslationTransient(f"{name} is rate-limiting us (429)") from None
    except dt_errors.ServerException as exc:
        # Its value is an HTTP status or a LibreTranslate error name, never the key or text.
        status = str(getattr(exc, "val", "?"))
        if "TOO_MANY" in status or status == "429":
            raise TranslationTransient(f"{name} is rate-limiting us (429)") from None
        raise TranslationTransient(f"{name} answered with an error ({status})") from None
    except _TRANSIENT as exc:
        raise TranslationTransient(f"{name} failed ({type(exc).__name__})") from None


class GoogleBackend:
    """Google Translate's keyless mobile page (what deep-translator scrapes)."""

    name = "google"

    def __init__(self, url: str | None = None, timeout: float = 20.0) -> None:
        self.url = url
        self.timeout = timeout

    def translate(self, text: str, source: str, target: str) -> str:
        from deep_translator import GoogleTranslator

        def run() -> Any:
            client = GoogleTranslator(
                source=code(self.name, source, "source"), target=code(self.name, target)
            )
            if self.url:
                client._base_url = self.url  # the fake server in tests, or a proxy
            return client.translate(text)

        return call_mapped(self.name, target, run, self.timeout)


class LibreBackend:
    """A LibreTranslate server, typically self-hosted (text never leaves the institution)."""

    name = "libre"

    def __init__(self, url: str | None, key: Secret | None, timeout: float = 20.0) -> None:
        if not url:
            from bot.errors import ConfigError

            raise ConfigError(
                "DIPLOBOT_TRANSLATOR=libre needs DIPLOBOT_TRANSLATOR_URL, e.g. "
                "http://libretranslate:5000/"
            )
        # deep-translator ignores base_url and needs a trailing slash on custom_url.
        self.url = url if url.endswith("/") else url + "/"
        self.key = key
        self.timeout = timeout

    def translate(self, text: str, source: str, target: str) -> str:
        from deep_translator import LibreTranslator

        def run() -> Any:
            # deep-translator refuses an empty key even for keyless self-hosted servers.
            key = self.key.reveal() if self.key else "none"
            src, dst = code(self.name, source, "source"), code(self.name, target)
            # deep-translator's list of LibreTranslate codes lacks "zt" (Chinese, traditional):
            # the client is made with the language and given the code by its public setter.
            client = LibreTranslator(
                source=_LIBRE_LISTED.get(src, src),
                target=_LIBRE_LISTED.get(dst, dst),
                api_key=key,
                custom_url=self.url,
            )
            client.source, client.target = src, dst
            return client.translate(text)

        return call_mapped(self.name, target, run, self.timeout)

    batch_texts = 50
    batch_chars = 20_000

    def translate_many(self, texts: Sequence[str], source: str, target: str) -> list[str]:
        """One ``POST /translate`` with ``q`` as a list (LibreTranslate answers
        ``translatedText`` as a list). The client is made as :meth:`translate` makes it, for
        its language checks and codes; its errors are mapped the same way."""
        from deep_translator import LibreTranslator

        key = self.key.reveal() if self.key else "none"
        with mapped_errors(self.name, target, _batch_timeout(self.timeout, len(texts))):
            src, dst = code(self.name, source, "source"), code(self.name, target)
            client = LibreTranslator(
                source=_LIBRE_LISTED.get(src, src),
                target=_LIBRE_LISTED.get(dst, dst),
                api_key=key,
                custom_url=self.url,
            )
            client.source, client.target = src, dst  # as translate() makes it
            body = {"q": list(texts), "source": client._source, "target": client._target}
            body |= {"format": "text", "api_key": key}
            response = requests.post(
                client._base_url + "translate",
                json=body,
                timeout=_batch_timeout(self.timeout, len(texts)),
            )
            if response.status_code == 403:
                raise dt_errors.AuthorizationException(key)
            if response.status_code == 400 and "exceeds" in _error_text(response):
                raise BatchTooLarge(f"{self.name} refused {len(texts)} texts in one request")
            if response.status_code != 200:
                raise dt_errors.ServerException(response.status_code)
            answer = response.json()["translatedText"]
            return _answers(answer, len(texts))


class MyMemoryBackend:
    """MyMemory (free tier; wants region codes like fr-FR)."""

    name = "mymemory"

    def __init__(
        self, url: str | None = None, key: Secret | None = None, timeout: float = 20.0
    ) -> None:
        self.url = url
        self.key = key  # MyMemory's "de" parameter: a contact e-mail raising the quota
        self.timeout = timeout

    def translate(self, text: str, source: str, target: str) -> str:
        from deep_translator import MyMemoryTranslator

        def run() -> Any:
            client = MyMemoryTranslator(
                source=code(self.name, source, "source"),
                target=code(self.name, target),
                email=self.key.reveal() if self.key else None,
            )
            if self.url:
                client._base_url = self.url
            return client.translate(text)

        result = call_mapped(self.name, target, run, self.timeout)
        # Over quota, MyMemory answers 200 with its warning *as the translation*.
        if result.lstrip().upper().startswith("MYMEMORY WARNING"):
            raise TranslationTransient("mymemory: daily quota used up")
        return result


class MicrosoftBackend:
    """Microsoft Translator (Azure AI Translator) v3, with a subscription key."""

    name = "microsoft"

    def __init__(self, url: str | None, key: Secret | None, timeout: float = 20.0) -> None:
        if not key:
            from bot.errors import ConfigError

            raise ConfigError("DIPLOBOT_TRANSLATOR=microsoft needs DIPLOBOT_TRANSLATOR_KEY")
        self.url = url
        self.key = key
        self.timeout = timeout

    def translate(self, text: str, source: str, target: str) -> str:
        from deep_translator import MicrosoftTranslator

        class _Translator(MicrosoftTranslator):  # type: ignore[misc]
            def _get_supported_languages(self) -> dict[str, str]:
                # deep-translator fetches this list from a hard-coded Microsoft URL on every
                # construction; ISO 639-1 codes and bot/translate/codes.py's are what we pass.
                return {lang: lang for lang in (*ISO_639_1, *_MICROSOFT_VARIANTS)}

        key = self.key.reveal() if self.key else ""

        def run() -> Any:
            client = _Translator(
                api_key=key,
                source=code(self.name, source, "source"),
                target=code(self.name, target),
            )
            if self.url:
                client._base_url = self.url.rstrip("/") + "/translate?api-version=3.0"
            return client.translate(text)

        return call_mapped(self.name, target, run, self.timeout)

    batch_texts = 100  # Microsoft takes up to 1,000 texts and 50,000 characters a request
    batch_chars = 40_000

    def translate_many(self, texts: Sequence[str], source: str, target: str) -> list[str]:
        """One ``POST /translate`` with every text in the body (``[{"text": …}, …]``), the
        request :meth:`translate` sends for one; its errors are mapped the same way."""
        from deep_translator import MicrosoftTranslator

        class _Translator(MicrosoftTranslator):  # type: ignore[misc]
            def _get_supported_languages(self) -> dict[str, str]:
                return {lang: lang for lang in (*ISO_639_1, *_MICROSOFT_VARIANTS)}

        key = self.key.reveal() if self.key else ""
        timeout = _batch_timeout(self.timeout, len(texts))
        with mapped_errors(self.name, target, timeout):
            client = _Translator(
                api_key=key,
                source=code(self.name, source, "source"),
                target=code(self.name, target),
            )
            if self.url:
                client._base_url = self.url.rstrip("/") + "/translate?api-version=3.0"
            response = requests.post(
                client._base_url,
                params={"from": client._source, "to": client._target},
                headers=client.headers,
                json=[{"text": text} for text in texts],
                timeout=timeout,
            )
            answer = response.json()
            if isinstance(answer, dict):
                error = answer["error"]
                if isinstance(error, dict) and error.get("code") in (400050, 400077):
                    raise BatchTooLarge(f"{self.name} refused {len(texts)} texts in one request")
                raise dt_errors.MicrosoftAPIerror(error)
            return _answers([item["translations"][0]["text"] for item in answer], len(texts))


def _batch_timeout(timeout: float, texts: int) -> float:
    """A request carrying ``texts`` texts: the timeout of one, and as long again for every 10
    more (a self-hosted engine translates them one after the other)."""
    return timeout * (1 + texts // 10)


def _error_text(response: requests.Response) -> str:
    try:
        found = response.json().get("error", "")
    except ValueError:
        return ""
    return found if isinstance(found, str) else ""


def _answers(answer: Any, expected: int) -> list[str]:
    """The engine's list of translations, checked: one string per text sent."""
    if not isinstance(answer, list) or len(answer) != expected:
        raise ValueError("the answer does not have one translation per text")
    return [text if isinstance(text, str) else "" for text in answer]


_LIBRE_LISTED = {"zt": "zh"}
"""LibreTranslate codes missing from deep-translator's list → a listed code to build with."""
_MICROSOFT_VARIANTS = ("zh-Hans", "zh-Hant", "pt-pt")
"""Microsoft's codes for variants (bot/translate/codes.py) beside the ISO 639-1 ones."""
