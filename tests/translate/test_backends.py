"""The translator contract, run against every backend through its real client library and
a local server speaking the real wire protocol."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from servers.translate import FakeEngine
from translate.conftest import KEY, Backend, make_backend

from bot.errors import TranslationPermanent, TranslationTransient
from bot.translate.base import Translator

TEXT = "la France salue l'accord avec le ministre"


def test_translates_through_the_real_client(backend: Backend) -> None:
    """The backend returns the engine's translation and makes exactly one request."""
    assert backend.translator.translate(TEXT, "fr", "en") == FakeEngine().translate(
        TEXT, "fr", "en"
    )
    assert len(backend.server.calls) == 1


@pytest.mark.parametrize("fault", ["429", "500", "503", "malformed", "drop"])
def test_server_faults_are_transient(backend: Backend, fault: str) -> None:
    """429, 5xx, a malformed answer and a dropped connection may pass: TranslationTransient."""
    backend.server.fail_next(fault)
    with pytest.raises(TranslationTransient) as info:
        backend.translator.translate(TEXT, "fr", "en")
    assert KEY not in str(info.value) and "salue" not in str(info.value)
    assert info.value.__cause__ is None  # the library's message may hold the key or text


def test_a_server_that_never_answers_fails_within_the_timeout(backend: Backend) -> None:
    """A hung server costs at most the timeout (plus a little), never forever."""
    translator = make_backend(backend.name, backend.server, timeout=0.5)
    backend.server.fail_next("hang")
    start = time.monotonic()
    with pytest.raises(TranslationTransient):
        translator.translate(TEXT, "fr", "en")
    assert time.monotonic() - start < 2.5


def test_a_wrong_key_is_permanent_and_its_message_hides_the_key(backend: Backend) -> None:
    """A rejected key will not work later: TranslationPermanent, without the key in it."""
    if not backend.keyed:
        pytest.skip(f"{backend.name} takes no key")
    translator = make_backend(backend.name, backend.server, key="WRONG-canary-key-77")
    with pytest.raises(TranslationPermanent) as info:
        translator.translate(TEXT, "fr", "en")
    assert "WRONG-canary-key-77" not in str(info.value)
    assert "DIPLOBOT_TRANSLATOR_KEY" in str(info.value)


def test_libre_without_url_says_which_variable_to_set() -> None:
    """A misconfiguration names the environment variable to fix."""
    from bot.errors import ConfigError
    from bot.settings import TranslatorSettings
    from bot.wiring import make_translator

    with pytest.raises(ConfigError, match="DIPLOBOT_TRANSLATOR_URL"):
        make_translator(TranslatorSettings(backend="libre"))
    with pytest.raises(ConfigError, match="choose one of: google, libre"):
        make_translator(TranslatorSettings(backend="babelfish"))


@pytest.mark.parametrize("fault", ["429", "500"])
def test_a_failed_call_is_tried_once_our_caller_owns_retries(backend: Backend, fault: str) -> None:
    """429 and 5xx reach the server once: no library retries inside the call (DeepL's SDK
    would try 5 times, sleeping), since backoff travels as data."""
    backend.server.fail_next(fault, count=5)
    with pytest.raises(TranslationTransient):
        backend.translator.translate(TEXT, "fr", "en")
    assert len(backend.server.calls) == 1


def test_two_backends_keep_their_own_timeouts_in_parallel_threads(backend: Backend) -> None:
    """Two hung calls in two threads end after their own backend's timeout (0.5 s and 2 s):
    timeouts belong to each instance, not to a process-wide setting."""
    short = make_backend(backend.name, backend.server, timeout=0.5)
    long = make_backend(backend.name, backend.server, timeout=2.0)
    backend.server.fail_next("hang", count=2)

    def timed(translator: Translator) -> float:
        start = time.monotonic()
        with pytest.raises(TranslationTransient):
            translator.translate(TEXT, "fr", "en")
        return time.monotonic() - start

    with ThreadPoolExecutor(2) as pool:
        slow = pool.submit(timed, long)
        time.sleep(0.1)
        fast = pool.submit(timed, short)
        assert fast.result(timeout=30) < 1.5
        assert slow.result(timeout=30) >= 1.5


def test_deepl_backend_leaves_the_sdk_globals_alone() -> None:
    """Making and using a DeepL backend changes none of ``deepl.http_client``'s globals."""
    import deepl.http_client as http_client
    from servers.translate import DeepLServer

    before = (
        http_client.max_network_retries,
        http_client.min_connection_timeout,
        http_client.user_agent,
    )
    with DeepLServer(api_key=KEY) as server:
        translator = make_backend("deepl", server, timeout=0.5)
        assert translator.translate(TEXT, "fr", "en")
    after = (
        http_client.max_network_retries,
        http_client.min_connection_timeout,
        http_client.user_agent,
    )
    assert after == before
