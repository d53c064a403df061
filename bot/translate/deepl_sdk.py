"""DeepL through its official SDK (deep-translator's DeepL backend uses the authentication
DeepL removed and lacks Arabic)."""

from __future__ import annotations

import deepl
import deepl.http_client

from bot.config import Secret
from bot.errors import ConfigError, TranslationPermanent, TranslationTransient

# The SDK retries 429/5xx up to 5 times with backoff inside the call; our caller owns retries
# (backoff travels as data), so the SDK must fail fast. Module-level settings of the SDK.
deepl.http_client.max_network_retries = 0

_TARGETS = {"en": "EN-GB", "pt": "PT-PT", "zh": "ZH-HANS"}


class DeepLBackend:
    """DeepL API v2 (Free keys end in ':fx' and use the free endpoint automatically)."""

    name = "deepl"

    def __init__(self, url: str | None, key: Secret | None, timeout: float = 20.0) -> None:
        if not key:
            raise ConfigError("DIPLOBOT_TRANSLATOR=deepl needs DIPLOBOT_TRANSLATOR_KEY")
        self.timeout = timeout
        self._client = deepl.Translator(key.reveal(), server_url=url, send_platform_info=False)

    def translate(self, text: str, source: str, target: str) -> str:
        previous = deepl.http_client.min_connection_timeout
        try:
            # The SDK's per-request timeout (its deadline logic never goes below this value).
            deepl.http_client.min_connection_timeout = self.timeout
            result = self._client.translate_text(
                text,
                source_lang=source.upper(),
                target_lang=_TARGETS.get(target, target.upper()),
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
            if status is not None and 400 <= status < 500 and status != 429:
                raise TranslationPermanent(
                    f"deepl refused the request (HTTP {status}); is '{target}' supported?"
                ) from None
            raise TranslationTransient(f"deepl failed (HTTP {status or '?'})") from None
        except (ValueError, KeyError, TypeError, IndexError) as exc:  # malformed answers
            raise TranslationTransient(f"deepl failed ({type(exc).__name__})") from None
        finally:
            deepl.http_client.min_connection_timeout = previous
        translated = result.text if not isinstance(result, list) else result[0].text
        if not translated.strip():
            raise TranslationTransient("deepl returned an empty translation")
        return translated
