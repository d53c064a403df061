"""DeepL through its official SDK (deep-translator's DeepL backend uses the authentication
DeepL removed and lacks Arabic).

The SDK retries 429/5xx up to 5 times with backoff inside the call, and its timeout is
``max(backoff, min_connection_timeout)``: both knobs are module globals of ``deepl.http_client``,
shared by every thread and every client. Our caller owns retries (backoff travels as data) and
each backend has its own timeout, so each backend gives its ``deepl.Translator`` an HTTP client
of its own (:class:`_FailFastClient`: one attempt, our timeout) and the SDK's globals are never
touched. The SDK takes no client as an argument: it is set on ``Translator._client``, the
attribute the SDK's own constructor sets (the contract tests fail if an SDK release renames it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import deepl
import deepl.http_client
import requests

from bot.errors import ConfigError, TranslationPermanent, TranslationTransient
from bot.settings import Secret
from bot.translate.base import BatchTooLarge
from bot.translate.codes import code


class _FailFastClient(deepl.http_client.HttpClient):
    """The SDK's HTTP client with one attempt per call and a fixed timeout per request."""

    def __init__(self, timeout: float) -> None:
        super().__init__(send_platform_info=False)
        self.timeout = timeout

    def _should_retry(self, response: Any, exception: Any, num_retries: int) -> bool:
        return False

    def _internal_request(
        self, request: requests.PreparedRequest, stream: bool, timeout: float = 0.0, **kwargs: Any
    ) -> Any:
        return super()._internal_request(request, stream, timeout=self.timeout, **kwargs)


class DeepLBackend:
    """DeepL API v2 (Free keys end in ':fx' and use the free endpoint automatically)."""

    name = "deepl"

    def __init__(self, url: str | None, key: Secret | None, timeout: float = 20.0) -> None:
        if not key:
            raise ConfigError("DIPLOBOT_TRANSLATOR=deepl needs DIPLOBOT_TRANSLATOR_KEY")
        self.timeout = timeout
        self._client = deepl.Translator(key.reveal(), server_url=url, send_platform_info=False)
        self._client._client.close()  # type: ignore[no-untyped-call]  # its unused session
        self._client._client = _FailFastClient(timeout)

    def translate(self, text: str, source: str, target: str) -> str:
        (translated,) = self.translate_many([text], source, target)
        if not translated.strip():
            raise TranslationTransient("deepl returned an empty translation")
        return translated

    batch_texts = 50  # DeepL's most texts a request
    # Its request body is at most 128 KiB, and the SDK's JSON escapes every non-ASCII character
    # (\uXXXX, twice for an emoji): 12 bytes a character at worst.
    batch_chars = 10_000

    def translate_many(self, texts: Sequence[str], source: str, target: str) -> list[str]:
        """One request with ``text`` as a list: the SDK sends a list for one text too, so this
        is the very request :meth:`translate` sends, with more texts."""
        try:
            results = self._client.translate_text(
                list(texts),
                source_lang=code(self.name, source, "source"),
                target_lang=code(self.name, target),
                preserve_formatting=True,
            )
        except deepl.AuthorizationException:
            raise TranslationPermanent(
                "deepl rejected the API key: check DIPLOBOT_TRANSLATOR_KEY"
            ) from None
        except deepl.QuotaExceededException:
            raise TranslationPermanent("deepl quota exceeded for this billing period") from None
        except deepl.TooManyRequestsException:
            raise TranslationTransient("deepl is rate-limiting us (429)") from None
        except deepl.ConnectionException:
            raise TranslationTransient(
                f"deepl did not answer within {self.timeout:g} s or the connection failed"
            ) from None
        except deepl.DeepLException as exc:
            status = getattr(exc, "http_status_code", None)
            if status == 413:
                raise BatchTooLarge(f"deepl refused {len(texts)} texts in one request") from None
            if status is not None and 400 <= status < 500 and status != 429:
                raise TranslationPermanent(
                    f"deepl refused the request (HTTP {status}); is '{target}' supported?"
                ) from None
            raise TranslationTransient(f"deepl failed (HTTP {status or '?'})") from None
        except (ValueError, KeyError, TypeError, IndexError) as exc:  # malformed answers
            raise TranslationTransient(f"deepl failed ({type(exc).__name__})") from None
        if not isinstance(results, list) or len(results) != len(texts):
            raise TranslationTransient("deepl failed (not one translation per text)")
        return [r.text for r in results]
