"""The fake translation servers speak each protocol well enough for the real client libraries.

Every test here drives deep-translator or the ``deepl`` SDK (or plain ``requests`` where the
library cannot be made to do it) against a fake from ``servers.translate`` and asserts on what
the library returns or raises and on the requests the fake recorded. The fault tests pin the
exception table in the module docstring of ``translate.py``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import deepl
import pytest
import requests
from deep_translator import (
    GoogleTranslator,
    LibreTranslator,
    MicrosoftTranslator,
    MyMemoryTranslator,
)
from deep_translator import exceptions as dt_exc
from deepl import http_client

from servers.translate import (
    DeepLServer,
    FakeEngine,
    FakeTranslationServer,
    GoogleServer,
    LibreServer,
    MicrosoftServer,
    MyMemoryServer,
)

TEXT = "la France salue l'accord"
IN_ENGLISH = "the France welcomes the agreement"
KEY = "k-0123456789"


@pytest.fixture
def fast_deepl(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK's retry loop off and its 10 s minimum timeout down to 0.5 s (module globals)."""
    monkeypatch.setattr(http_client, "max_network_retries", 0)
    monkeypatch.setattr(http_client, "min_connection_timeout", 0.5)
    monkeypatch.setattr(http_client._BackoffTimer, "BACKOFF_INITIAL", 0.0)


# -- clients, built the way the adapters will build them -------------------------------------


def libre(srv: FakeTranslationServer, key: str = KEY) -> LibreTranslator:
    return LibreTranslator(source="fr", target="en", api_key=key, custom_url=srv.url)


def google(srv: FakeTranslationServer, target: str = "en") -> GoogleTranslator:
    translator = GoogleTranslator(source="fr", target=target)
    translator._base_url = srv.url + "m"
    return translator


def mymemory(srv: FakeTranslationServer) -> MyMemoryTranslator:
    translator = MyMemoryTranslator(source="fr-FR", target="en-GB")
    translator._base_url = srv.url + "get"
    return translator


def microsoft(srv: FakeTranslationServer, key: str = KEY) -> MicrosoftTranslator:
    """``MicrosoftTranslator`` fetches its language list from a hard-coded Microsoft URL in
    ``__init__``; this subclass fetches it from the fake instead."""
    languages_url = srv.url + "languages?api-version=3.0&scope=translation"

    class LocalMicrosoftTranslator(MicrosoftTranslator):
        def _get_supported_languages(self) -> dict[str, str]:
            table = requests.get(languages_url, timeout=5).json()["translation"]
            return {entry["name"].lower(): code for code, entry in table.items()}

    translator = LocalMicrosoftTranslator(source="fr", target="en", api_key=key)
    translator._base_url = srv.url + "translate?api-version=3.0"
    return translator


def deepl_translate(srv: FakeTranslationServer, key: str = KEY) -> str:
    translator = deepl.Translator(key, server_url=srv.url)
    try:
        result = translator.translate_text(TEXT, source_lang="FR", target_lang="EN-GB")
        assert isinstance(result, deepl.TextResult)
        return result.text
    finally:
        translator.close()


# -- the engine ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("en", "the France welcomes the agreement"),
        ("es", "la Francia saluda el acuerdo"),
        ("ar", "ال فرنسا ترحب الاتفاق"),
        ("EN-GB", "the France welcomes the agreement"),
    ],
)
def test_engine_translates_known_words_word_by_word(target: str, expected: str) -> None:
    """Known French words are translated one by one into the target's base language."""
    assert FakeEngine().translate(TEXT, "fr", target) == expected


def test_engine_keeps_capitalisation_and_unknown_words() -> None:
    """A capitalised word stays capitalised; words it does not know pass through."""
    assert FakeEngine().translate("La ministre Dupont salue", "auto", "en") == (
        "The minister Dupont welcomes"
    )


def test_engine_returns_text_unchanged_into_the_source_language() -> None:
    """Translating French into French changes nothing, entities included."""
    text = "🇫🇷 #COP31 @francediplo https://x.fr/fr/diplomatie"
    assert FakeEngine().translate(text, "fr", "FR") == text


def test_engine_translates_known_words_in_url_paths() -> None:
    """The language segment and known path words are translated; the host is kept."""
    text = "Lire https://www.diplomatie.gouv.fr/fr/diplomatie/climat."
    assert FakeEngine().translate(text, "fr", "en") == (
        "Lire https://www.diplomatie.gouv.fr/en/diplomacy/climate."
    )


@pytest.mark.parametrize(
    ("target", "expected"),
    [("en", "# COP31 with @ francediplo"), ("es", "# cop31 con @ francediplo")],
)
def test_engine_splits_hashtags_and_mentions(target: str, expected: str) -> None:
    """'#' and '@' are followed by a space; hashtags are lower-cased for Spanish."""
    assert FakeEngine().translate("#COP31 avec @francediplo", "fr", target) == expected


def test_engine_drops_flag_emoji_and_their_space() -> None:
    """Regional-indicator pairs vanish, leaving single spaces behind."""
    assert FakeEngine().translate("🇫🇷 la France 🇪🇺🇺🇳 et l'Europe 🇪🇺", "fr", "en") == (
        "the France and the Europe"
    )


def test_engine_leaves_placeholders_untouched() -> None:
    """⟦N⟧ tokens come out exactly as they went in, wherever they stand."""
    text = "⟦0⟧ la France salue⟦1⟧ l'accord ⟦12⟧"
    assert FakeEngine().translate(text, "fr", "es") == "⟦0⟧ la Francia saluda⟦1⟧ el acuerdo ⟦12⟧"


def test_engine_can_drop_placeholders() -> None:
    """With drop_placeholders the tokens are lost, as a misbehaving engine loses them."""
    engine = FakeEngine(drop_placeholders=True)
    assert engine.translate("⟦0⟧ la France ⟦1⟧ et ⟦2⟧", "fr", "en") == "the France and"


def test_engine_can_duplicate_the_first_placeholder() -> None:
    """With duplicate_placeholders the first token comes out twice, the others once."""
    engine = FakeEngine(duplicate_placeholders=True)
    assert engine.translate("⟦0⟧ la France ⟦1⟧", "fr", "en") == "⟦0⟧ ⟦0⟧ the France ⟦1⟧"


# -- LibreTranslate --------------------------------------------------------------------------


def test_libre_translates_through_deep_translator() -> None:
    """LibreTranslator gets the engine's translation; the fake saw one call with its params."""
    with LibreServer(api_key=KEY) as srv:
        assert libre(srv).translate(TEXT) == IN_ENGLISH
        [call] = srv.calls
    assert (call.method, call.path, call.body) == ("POST", "/translate", None)
    assert call.params == {
        "q": TEXT,
        "source": "fr",
        "target": "en",
        "format": "text",
        "api_key": KEY,
    }


@pytest.mark.parametrize("encoding", ["json", "data"])
def test_libre_accepts_json_and_form_bodies(encoding: str) -> None:
    """Parameters in a JSON or form body work as the real server's do, batches included."""
    body = {"q": TEXT, "source": "fr", "target": "es", "api_key": KEY}
    with LibreServer(api_key=KEY) as srv:
        if encoding == "json":
            single = requests.post(srv.url + "translate", json=body, timeout=5)
        else:
            single = requests.post(srv.url + "translate", data=body, timeout=5)
        batch = requests.post(
            srv.url + "translate", timeout=5, json={**body, "q": [TEXT, "et"], "source": "auto"}
        )
    assert single.json() == {"translatedText": "la Francia saluda el acuerdo"}
    assert batch.json()["translatedText"] == ["la Francia saluda el acuerdo", "y"]
    assert batch.json()["detectedLanguage"][0]["language"] == "fr"


def test_libre_lists_languages() -> None:
    """GET /languages lists code, name and targets."""
    with LibreServer() as srv:
        languages = requests.get(srv.url + "languages", timeout=5).json()
    assert {lang["code"] for lang in languages} == {"ar", "en", "es", "fr", "pt", "zh", "zt"}
    assert all(set(lang) == {"code", "name", "targets"} for lang in languages)


def test_libre_wrong_key_raises_authorization_exception_with_the_key() -> None:
    """A wrong key is a 403; deep-translator's AuthorizationException repeats the key."""
    with LibreServer(api_key=KEY) as srv, pytest.raises(dt_exc.AuthorizationException) as info:
        libre(srv, key="wrong-secret").translate(TEXT)
    assert "wrong-secret" in str(info.value)


def test_libre_without_configured_key_accepts_any() -> None:
    """A server built without api_key does not check it."""
    with LibreServer() as srv:
        assert libre(srv, key="anything").translate("et") == "and"


# -- Google's mobile page --------------------------------------------------------------------


def test_google_translates_through_deep_translator() -> None:
    """GoogleTranslator with _base_url on the fake reads the translation from div.t0."""
    with GoogleServer() as srv:
        assert google(srv).translate(TEXT) == IN_ENGLISH
        [call] = srv.calls
    assert (call.method, call.path) == ("GET", "/m")
    assert call.params == {"sl": "fr", "tl": "en", "q": TEXT}


def test_google_escapes_html_in_the_translation() -> None:
    """Markup characters in the text survive the page as text."""
    with GoogleServer() as srv:
        assert google(srv).translate("la France & <l'Europe>") == "the France & <the Europe>"


def test_google_not_found_message_carries_the_text() -> None:
    """A page without a result raises TranslationNotFound, whose message repeats the text."""
    with GoogleServer() as srv:
        srv.fail_next("malformed")
        with pytest.raises(dt_exc.TranslationNotFound) as info:
            google(srv).translate(TEXT)
    assert TEXT in str(info.value)


# -- DeepL -----------------------------------------------------------------------------------


def test_deepl_translates_through_the_sdk() -> None:
    """translate_text returns the engine's text; the fake saw the key header and a JSON body."""
    with DeepLServer(api_key=KEY) as srv:
        assert deepl_translate(srv) == IN_ENGLISH
        [call] = srv.calls
    assert (call.method, call.path) == ("POST", "/v2/translate")
    assert call.headers["Authorization"] == f"DeepL-Auth-Key {KEY}"
    assert call.body["text"] == [TEXT]
    assert (call.body["source_lang"], call.body["target_lang"]) == ("FR", "EN-GB")


def test_deepl_batch_reports_detected_language_and_billed_characters() -> None:
    """A list in gives a list of TextResult out, with the fields the SDK parses."""
    with DeepLServer(api_key=KEY) as srv:
        translator = deepl.Translator(KEY, server_url=srv.url)
        results = translator.translate_text([TEXT, "et"], target_lang="AR")
        usage = translator.get_usage()
        translator.close()
    assert isinstance(results, list)
    assert [r.text for r in results] == ["ال فرنسا ترحب الاتفاق", "و"]
    assert [r.detected_source_lang for r in results] == ["FR", "FR"]
    assert [r.billed_characters for r in results] == [len(TEXT), 2]
    assert usage.character.count == len(TEXT) + 2


def test_deepl_accepts_form_bodies_like_older_sdks() -> None:
    """Form-encoded text/target_lang (SDKs before JSON bodies) translate the same."""
    with DeepLServer(api_key=KEY) as srv:
        response = requests.post(
            srv.url + "v2/translate",
            data={"text": [TEXT], "target_lang": "ES"},
            headers={"Authorization": f"DeepL-Auth-Key {KEY}"},
            timeout=5,
        )
    assert response.json() == {
        "translations": [
            {
                "detected_source_language": "FR",
                "text": "la Francia saluda el acuerdo",
                "billed_characters": len(TEXT),
            }
        ]
    }


def test_deepl_lists_source_and_target_languages() -> None:
    """get_source_languages and get_target_languages parse the fake's lists."""
    with DeepLServer(api_key=KEY) as srv:
        translator = deepl.Translator(KEY, server_url=srv.url)
        sources = {lang.code for lang in translator.get_source_languages()}
        targets = {lang.code for lang in translator.get_target_languages()}
        translator.close()
    assert sources == {"AR", "EN", "ES", "FR", "PT", "ZH"}
    assert {"EN-GB", "ES", "AR", "PT-BR", "ZH-HANS", "ZH-HANT"} <= targets


def test_deepl_wrong_key_raises_authorization_exception_without_the_key() -> None:
    """A wrong key is a 403; the SDK's AuthorizationException does not repeat it."""
    with DeepLServer(api_key=KEY) as srv, pytest.raises(deepl.AuthorizationException) as info:
        deepl_translate(srv, key="wrong-secret")
    assert "wrong-secret" not in str(info.value)
    assert info.value.http_status_code == 403


def test_deepl_sdk_retries_429_by_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK retries a 429 (after its own backoff, not Retry-After): two calls, one result."""
    monkeypatch.setattr(http_client._BackoffTimer, "BACKOFF_INITIAL", 0.01)
    with DeepLServer(api_key=KEY) as srv:
        srv.fail_next("429")
        assert deepl_translate(srv) == IN_ENGLISH
        assert [call.fault for call in srv.calls] == ["429", None]


# -- Microsoft and MyMemory ------------------------------------------------------------------


def test_microsoft_translates_through_deep_translator() -> None:
    """MicrosoftTranslator gets the translation; the fake saw the key header and JSON list."""
    with MicrosoftServer(api_key=KEY) as srv:
        assert microsoft(srv).translate(TEXT) == IN_ENGLISH
        languages, call = srv.calls
    assert languages.path == "/languages"
    assert (call.method, call.path, call.body) == ("POST", "/translate", [{"text": TEXT}])
    assert call.params == {"api-version": "3.0", "from": "fr", "to": "en"}
    assert call.headers["Ocp-Apim-Subscription-Key"] == KEY


def test_microsoft_wrong_key_raises_api_error_without_the_key() -> None:
    """A wrong key is a 401 whose error object becomes MicrosoftAPIerror."""
    with MicrosoftServer(api_key=KEY) as srv, pytest.raises(dt_exc.MicrosoftAPIerror) as info:
        microsoft(srv, key="wrong-secret").translate(TEXT)
    assert "401000" in str(info.value)
    assert "wrong-secret" not in str(info.value)


def test_mymemory_translates_through_deep_translator() -> None:
    """MyMemoryTranslator reads responseData.translatedText; langpair is fr-FR|en-GB."""
    with MyMemoryServer() as srv:
        translator = mymemory(srv)
        assert translator.translate(TEXT) == IN_ENGLISH
        assert translator.translate(TEXT, return_all=True)[1]["translation"] == IN_ENGLISH
        call = srv.calls[0]
    assert (call.method, call.path) == ("GET", "/get")
    assert call.params == {"q": TEXT, "langpair": "fr-FR|en-GB"}


def test_mymemory_quota_warning_comes_back_as_a_translation() -> None:
    """MyMemory's in-band quota warning (HTTP 200) is returned by the library as the text."""
    with MyMemoryServer() as srv:
        srv.fail_next("quota")
        assert mymemory(srv).translate(TEXT) == MyMemoryServer.QUOTA_WARNING


# -- faults, through each library ------------------------------------------------------------

DeepTranslatorFactory = Callable[[FakeTranslationServer], Any]

#: (server class, client factory, fault) → the exception the library raises. Mirrors the table
#: in the docstring of translate.py.
LIBRARY_FAULTS: list[tuple[type[FakeTranslationServer], DeepTranslatorFactory, str, type]] = [
    (LibreServer, libre, "429", dt_exc.ServerException),
    (LibreServer, libre, "500", dt_exc.ServerException),
    (LibreServer, libre, "malformed", requests.exceptions.JSONDecodeError),
    (LibreServer, libre, "drop", requests.exceptions.ConnectionError),
    (GoogleServer, google, "429", dt_exc.TooManyRequests),
    (GoogleServer, google, "500", dt_exc.RequestError),
    (GoogleServer, google, "malformed", dt_exc.TranslationNotFound),
    (GoogleServer, google, "drop", requests.exceptions.ConnectionError),
    (MicrosoftServer, microsoft, "429", dt_exc.MicrosoftAPIerror),
    (MicrosoftServer, microsoft, "500", dt_exc.MicrosoftAPIerror),
    (MicrosoftServer, microsoft, "malformed", requests.exceptions.JSONDecodeError),
    (MicrosoftServer, microsoft, "drop", AttributeError),
    (MyMemoryServer, mymemory, "429", dt_exc.TooManyRequests),
    (MyMemoryServer, mymemory, "500", dt_exc.RequestError),
    (MyMemoryServer, mymemory, "malformed", requests.exceptions.JSONDecodeError),
    (MyMemoryServer, mymemory, "drop", requests.exceptions.ConnectionError),
]


@pytest.mark.parametrize(
    ("server_class", "client", "fault", "expected"),
    LIBRARY_FAULTS,
    ids=[f"{s.__name__}-{f}" for s, _, f, _ in LIBRARY_FAULTS],
)
def test_deep_translator_raises_for_each_fault(
    server_class: type[FakeTranslationServer],
    client: DeepTranslatorFactory,
    fault: str,
    expected: type[BaseException],
) -> None:
    """Each scripted fault makes deep-translator raise the documented exception, once."""
    with server_class(api_key=KEY) as srv:
        translator = client(srv)  # Microsoft's constructor makes a request of its own
        srv.fail_next(fault)
        with pytest.raises(expected):
            translator.translate(TEXT)
        assert srv.calls[-1].fault == fault
        assert translator.translate(TEXT) == IN_ENGLISH  # no retry inside; the next one works


@pytest.mark.parametrize(
    ("fault", "expected", "status"),
    [
        ("429", deepl.TooManyRequestsException, 429),
        ("500", deepl.DeepLException, 500),
        ("503", deepl.DeepLException, 503),
        ("456", deepl.QuotaExceededException, 456),
        ("malformed", IndexError, None),
        ("drop", deepl.ConnectionException, None),
        ("hang", deepl.ConnectionException, None),
    ],
)
@pytest.mark.usefixtures("fast_deepl")
def test_deepl_sdk_raises_for_each_fault(
    fault: str, expected: type[BaseException], status: int | None
) -> None:
    """With its retries off, the SDK raises the documented exception, hang included."""
    with DeepLServer(api_key=KEY) as srv:
        srv.fail_next(fault)
        started = time.monotonic()
        with pytest.raises(expected) as info:
            deepl_translate(srv)
        assert time.monotonic() - started < 2.0
        assert getattr(info.value, "http_status_code", None) == status
        assert KEY not in str(info.value)
        assert TEXT not in str(info.value)
        assert len(srv.calls) == 1


def test_fault_count_is_consumed_one_per_request() -> None:
    """fail_next('500', count=2) fails exactly the next two requests."""
    with LibreServer() as srv:
        srv.fail_next("500", count=2)
        translator = libre(srv)
        for _ in range(2):
            with pytest.raises(dt_exc.ServerException):
                translator.translate(TEXT)
        assert translator.translate(TEXT) == IN_ENGLISH
        assert [call.fault for call in srv.calls] == ["500", "500", None]


def test_429_carries_retry_after_and_the_protocol_error_body() -> None:
    """A scripted 429 has Retry-After: 1 and the service's own error shape."""
    with DeepLServer(api_key=KEY) as deepl_srv, LibreServer() as libre_srv:
        deepl_srv.fail_next("429")
        libre_srv.fail_next("429")
        from_deepl = requests.post(deepl_srv.url + "v2/translate", timeout=5)
        from_libre = requests.post(libre_srv.url + "translate", timeout=5)
    assert from_deepl.status_code == from_libre.status_code == 429
    assert from_deepl.headers["Retry-After"] == from_libre.headers["Retry-After"] == "1"
    assert from_deepl.json() == {"message": "Too many requests"}
    assert "error" in from_libre.json()


def test_fail_next_rejects_unknown_faults() -> None:
    """A typo in a fault name fails loudly, listing the valid ones."""
    with pytest.raises(ValueError, match="hang"):
        LibreServer().fail_next("timeout")


# -- hang, drop, delay and shutdown ----------------------------------------------------------


def test_hang_times_out_on_the_client_side() -> None:
    """deep-translator sets no timeout, so a raw request with one shows the hang is bounded."""
    with LibreServer() as srv:
        srv.fail_next("hang")
        started = time.monotonic()
        with pytest.raises(requests.exceptions.ReadTimeout):
            requests.post(srv.url + "translate", params={"q": TEXT}, timeout=0.3)
        assert time.monotonic() - started < 1.0
        assert [call.fault for call in srv.calls] == ["hang"]


def test_stop_releases_a_hanging_library_call() -> None:
    """Stopping the server ends a deep-translator call stuck in 'hang' with ConnectionError."""
    outcome: list[BaseException] = []

    def call_library(translator: LibreTranslator) -> None:
        try:
            translator.translate(TEXT)
        except BaseException as exc:
            outcome.append(exc)

    srv = LibreServer().start()
    srv.fail_next("hang")
    worker = threading.Thread(target=call_library, args=(libre(srv),), daemon=True)
    worker.start()
    deadline = time.monotonic() + 5
    while not srv.calls and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    srv.stop()
    worker.join(timeout=5)
    assert time.monotonic() - started < 1.0
    assert not worker.is_alive()
    assert [type(exc) for exc in outcome] == [requests.exceptions.ConnectionError]


def test_connection_refused_message_carries_key_and_text() -> None:
    """deep-translator's requests error names the URL, query string (key, text) included."""
    with LibreServer() as srv:
        translator = libre(srv)
    with pytest.raises(requests.exceptions.ConnectionError) as info:
        translator.translate(TEXT)
    assert KEY in str(info.value)
    assert "la+France" in str(info.value)


def test_delay_slows_every_response() -> None:
    """delay= holds each answer back by that many seconds."""
    with LibreServer(delay=0.1) as srv:
        started = time.monotonic()
        assert libre(srv).translate(TEXT) == IN_ENGLISH
    assert time.monotonic() - started >= 0.1


def test_calls_are_recorded_from_concurrent_clients() -> None:
    """Requests from many threads at once are all answered and all recorded."""
    with GoogleServer(delay=0.05) as srv:
        results: list[str] = []
        lock = threading.Lock()

        def worker() -> None:
            translated = google(srv, target="es").translate(TEXT)
            with lock:
                results.append(translated)

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=5)
        assert len(srv.calls) == 8
    assert results == ["la Francia saluda el acuerdo"] * 8
    assert srv.errors == []


@pytest.fixture
def running_servers() -> Iterator[list[FakeTranslationServer]]:
    classes: list[type[FakeTranslationServer]] = [LibreServer, GoogleServer, DeepLServer]
    servers = [cls().start() for cls in classes]
    yield servers
    for srv in servers:
        srv.stop()


def test_servers_bind_loopback_on_distinct_ports(
    running_servers: list[FakeTranslationServer],
) -> None:
    """Each fake listens on 127.0.0.1 on its own ephemeral port; url ends with '/'."""
    urls = [srv.url for srv in running_servers]
    assert all(url.startswith("http://127.0.0.1:") and url.endswith("/") for url in urls)
    assert len(set(urls)) == len(urls)
