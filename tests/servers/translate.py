"""Fake translation services on 127.0.0.1, speaking the wire protocols the real clients speak.

Each fake is a ``ThreadingHTTPServer`` on ``127.0.0.1:0`` in a daemon thread, used as a
context manager (``with LibreServer(api_key="k") as srv:``), with ``srv.url`` (ending in ``/``),
``srv.calls`` (every request received, as :class:`Call`), ``srv.fail_next(kind, count=1)``
(scripted faults) and ``srv.engine``, a :class:`FakeEngine` that translates a little French
and mangles unprotected entities the way real engines do, leaving ``⟦N⟧`` placeholders alone.

=========================  ====================================================================
Fake                       Point the real client at it
=========================  ====================================================================
:class:`LibreServer`       ``LibreTranslator(..., api_key=k, custom_url=srv.url)``
:class:`GoogleServer`      ``GoogleTranslator(...)`` then ``t._base_url = srv.url + "m"``
:class:`DeepLServer`       ``deepl.Translator(k, server_url=srv.url)``
:class:`MicrosoftServer`   ``t._base_url = srv.url + "translate?api-version=3.0"`` and override
                           ``_get_supported_languages`` (``__init__`` fetches a hard-coded
                           Microsoft URL, without a timeout)
:class:`MyMemoryServer`    ``MyMemoryTranslator(...)`` then ``t._base_url = srv.url + "get"``
=========================  ====================================================================

What the libraries raise
------------------------

deep-translator 1.11.4 and deepl 1.32.0, as pinned by ``tests/servers/test_translate_servers.py``.
"key" / "text": whether ``str(exc)`` contains the API key / the text being translated.
deep-translator's own exceptions derive from bare ``Exception``; ``requests``' derive from
``RequestException`` (an ``OSError``), and its ``JSONDecodeError`` is also a ``ValueError``.

==========  ===========  ====================================================  =====  =====
Library     Fault        Exception                                             key    text
==========  ===========  ====================================================  =====  =====
Libre       wrong key    ``deep_translator…AuthorizationException`` (403)      YES    no
Libre       429          ``ServerException("ERR_TOO_MANY_REQUESTS")``          no     no
Libre       500          ``ServerException("ERR_INTERNAL_SERVER_ERROR")``      no     no
Libre       malformed    ``requests.exceptions.JSONDecodeError``               no     no
Libre       drop         ``requests.exceptions.ConnectionError``               no     no
Libre       refused      ``requests.exceptions.ConnectionError`` (URL+query)   YES    YES
Libre       hang         blocks: no timeout is set; ends at server stop        –      –
Google      429          ``deep_translator…TooManyRequests``                   –      no
Google      500          ``deep_translator…RequestError``                      –      no
Google      malformed    ``deep_translator…TranslationNotFound``               –      YES
Google      drop         ``requests.exceptions.ConnectionError``               –      no
Google      refused      ``requests.exceptions.ConnectionError`` (URL+query)   –      YES
Google      hang         blocks: no timeout is set; ends at server stop        –      –
DeepL       wrong key    ``deepl.AuthorizationException`` (403)                no     no
DeepL       429          ``deepl.TooManyRequestsException`` ¹                  no     no
DeepL       500          ``deepl.DeepLException`` "Unexpected status code" ¹   no     no
DeepL       503          ``deepl.DeepLException`` "Service unavailable" ¹      no     no
DeepL       456          ``deepl.QuotaExceededException``                      no     no
DeepL       malformed    ``IndexError`` (no JSON → no translations → ``[0]``)  no     no
DeepL       drop         ``deepl.ConnectionException`` ¹                       no     no
DeepL       hang         ``deepl.ConnectionException`` "Request timed out" ²   no     no
Microsoft   wrong key    ``deep_translator…MicrosoftAPIerror`` (code 401000)   no     no
Microsoft   429, 500     ``MicrosoftAPIerror`` (code 429000, 500000)           no     no
Microsoft   malformed    ``requests.exceptions.JSONDecodeError``               no     no
Microsoft   drop         ``AttributeError`` (``None.json()``, after a warning  no     no
                         on the root logger)
Microsoft   hang         blocks: no timeout is set; ends at server stop        –      –
MyMemory    429          ``deep_translator…TooManyRequests``                   –      no
MyMemory    500          ``deep_translator…RequestError``                      –      no
MyMemory    malformed    ``requests.exceptions.JSONDecodeError``               –      no
MyMemory    drop         ``requests.exceptions.ConnectionError``               –      no
MyMemory    quota        none: the quota warning is *returned as the translation*
==========  ===========  ====================================================  =====  =====

Neither library reads ``Retry-After``. deep-translator never retries, and ``ServerException``
keeps only the message, not the status code.

¹ The SDK retries 429, every status ≥ 500 and connection errors itself, up to
``deepl.http_client.max_network_retries`` (5) times, sleeping an exponential backoff (1 s ×1.6
each time, ±23 % jitter, about 16 s in all) before it raises.
² Each attempt's timeout is ``max(backoff, deepl.http_client.min_connection_timeout)``, 10 s by
default, so a hanging server costs about a minute. Both knobs are module globals.
"""

from __future__ import annotations

import html
import json
import re
import sys
import threading
import traceback
import unicodedata
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar, Self
from urllib.parse import parse_qs, urlsplit

from requests.structures import CaseInsensitiveDict

__all__ = [
    "Call",
    "DeepLServer",
    "FakeEngine",
    "FakeTranslationServer",
    "GoogleServer",
    "LibreServer",
    "MicrosoftServer",
    "MyMemoryServer",
    "Response",
]

# --------------------------------------------------------------------------------------------
# The engine
# --------------------------------------------------------------------------------------------

#: French word → (English, Spanish, Arabic). Keys are lower case; lookups also try the word with
#: its accents stripped, so URL slugs (``politique-etrangere``) are found too. Elided articles
#: keep their apostrophe and translate to a word plus a space (or, in Arabic, a prefix).
_VOCABULARY: dict[str, tuple[str, str, str]] = {
    "l'": ("the ", "el ", "ال"),
    "d'": ("of ", "de ", "من "),
    "qu'": ("that ", "que ", "أن "),
    "la": ("the", "la", "ال"),
    "le": ("the", "el", "ال"),
    "les": ("the", "los", "ال"),
    "de": ("of", "de", "من"),
    "du": ("of the", "del", "من"),
    "des": ("of the", "de los", "من"),
    "et": ("and", "y", "و"),
    "avec": ("with", "con", "مع"),
    "pour": ("for", "para", "ل"),
    "à": ("to", "a", "إلى"),
    "au": ("to the", "al", "إلى"),
    "en": ("in", "en", "في"),
    "dans": ("in", "en", "في"),
    "sur": ("on", "sobre", "على"),
    "contre": ("against", "contra", "ضد"),
    "nous": ("we", "nosotros", "نحن"),
    "est": ("is", "es", "هو"),
    "france": ("France", "Francia", "فرنسا"),
    "française": ("French", "francesa", "الفرنسية"),
    "europe": ("Europe", "Europa", "أوروبا"),
    "européenne": ("European", "europea", "الأوروبية"),
    "salue": ("welcomes", "saluda", "ترحب"),
    "ministre": ("minister", "ministro", "الوزير"),
    "président": ("president", "presidente", "الرئيس"),
    "ambassade": ("embassy", "embajada", "سفارة"),
    "ambassadeur": ("ambassador", "embajador", "السفير"),
    "accord": ("agreement", "acuerdo", "اتفاق"),
    "droits": ("rights", "derechos", "حقوق"),
    "homme": ("man", "hombre", "الإنسان"),
    "humains": ("human", "humanos", "الإنسان"),
    "femmes": ("women", "mujeres", "النساء"),
    "paix": ("peace", "paz", "السلام"),
    "climat": ("climate", "clima", "المناخ"),
    "sommet": ("summit", "cumbre", "قمة"),
    "conférence": ("conference", "conferencia", "مؤتمر"),
    "diplomatie": ("diplomacy", "diplomacia", "الدبلوماسية"),
    "politique": ("policy", "política", "سياسة"),
    "étrangère": ("foreign", "exterior", "الخارجية"),
    "étrangères": ("foreign", "exteriores", "الخارجية"),
    "affaires": ("affairs", "asuntos", "الشؤون"),
    "coopération": ("cooperation", "cooperación", "التعاون"),
    "soutien": ("support", "apoyo", "دعم"),
    "partenaires": ("partners", "socios", "الشركاء"),
    "monde": ("world", "mundo", "العالم"),
    "visite": ("visit", "visita", "زيارة"),
    "signé": ("signed", "firmado", "وقع"),
    "historique": ("historic", "histórico", "تاريخي"),
    "nouvel": ("new", "nuevo", "جديد"),
    "nouveau": ("new", "nuevo", "جديد"),
    "merci": ("thank you", "gracias", "شكرا"),
    "bienvenue": ("welcome", "bienvenido", "مرحبا"),
    "actualités": ("news", "noticias", "أخبار"),
}
_TARGETS = ("en", "es", "ar")

#: Placeholders are how diplobot masks entities; the engine leaves them alone (unless told not to).
_TOKEN = re.compile(
    r"""
    (?P<placeholder>⟦\d+⟧)
    | (?P<url>https?://[^\s⟦⟧]+?)(?=[.,;:!?)\]»"']*(?:[\s⟦]|$))
    | (?P<hashtag>\#\w+)
    | (?P<mention>@\w+)
    | (?P<flag>[\U0001F1E6-\U0001F1FF]{2})
    | (?P<elision>\b(?:[LlDd]|[Qq]u)['’](?=[^\W\d_]))
    | (?P<word>[^\W\d_]+)
    """,
    re.VERBOSE,
)
_URL_HEAD = re.compile(r"(https?://[^/?#]*)(.*)", re.DOTALL)
_URL_WORD = re.compile(r"[^\W\d_]+")
_GONE = "\x00"  # marks a dropped token until the spaces around it are tidied


def _fold(word: str) -> str:
    """Lower case, typographic apostrophe made plain, accents stripped."""
    decomposed = unicodedata.normalize("NFKD", word.lower().replace("’", "'"))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


_FOLDED: dict[str, tuple[str, str, str]] = {_fold(k): v for k, v in _VOCABULARY.items()}


def _base_language(code: str | None) -> str:
    """``EN-GB``, ``en``, ``fr-FR``, ``ar-SA`` → ``en``, ``en``, ``fr``, ``ar``; none → auto."""
    return (code or "auto").replace("_", "-").split("-")[0].lower()


def _tidy(text: str) -> str:
    """Remove dropped tokens and the one run of spaces each leaves behind."""
    if _GONE not in text:
        return text
    text = re.sub(rf"[ \t]*{_GONE}+[ \t]*$", "", text, flags=re.MULTILINE)
    text = re.sub(rf"(?:^|(?<=[ \t])){_GONE}+[ \t]*", "", text, flags=re.MULTILINE)
    return text.replace(_GONE, "")


class FakeEngine:
    """Deterministic machine translation that treats unprotected entities as real engines do.

    French words it knows are translated word by word into English, Spanish or Arabic; other
    words pass through. Entities are mangled:

    - URLs: path words it knows are translated and a path segment equal to the source language
      becomes the target's (``/fr/diplomatie`` → ``/en/diplomacy``); the host is kept.
    - Hashtags get a space after ``#``, the word is translated if known, and for targets in
      :attr:`LOWERCASE_HASHTAGS` it is lower-cased (``#COP31`` → ``# cop31`` in Spanish).
    - Mentions get a space after ``@``.
    - Flag emoji (regional-indicator pairs) are dropped.

    Placeholders ``⟦N⟧`` are left exactly as they are, unless :attr:`drop_placeholders` (they
    vanish) or :attr:`duplicate_placeholders` (the first one comes out twice) is set.

    The source is taken to be French (``auto`` and ``None`` included); from any other source
    words pass through but entities are still mangled. Language codes may be regional and of
    any case (``EN-GB``, ``fr-FR``). Translating to the source language returns the text as is.
    """

    LOWERCASE_HASHTAGS: ClassVar[frozenset[str]] = frozenset({"es", "ar"})

    def __init__(
        self, *, drop_placeholders: bool = False, duplicate_placeholders: bool = False
    ) -> None:
        self.drop_placeholders = drop_placeholders
        self.duplicate_placeholders = duplicate_placeholders

    def translate(self, text: str, source: str | None, target: str) -> str:
        src, tgt = _base_language(source), _base_language(target)
        if src == "auto":
            src = "fr"
        if src == tgt:
            return text
        out: list[str] = []
        duplicated = False
        end = 0
        for match in _TOKEN.finditer(text):
            out.append(text[end : match.start()])
            end = match.end()
            token, kind = match.group(), match.lastgroup
            if kind == "placeholder":
                if self.drop_placeholders:
                    out.append(_GONE)
                elif self.duplicate_placeholders and not duplicated:
                    out.append(f"{token} {token}")
                    duplicated = True
                else:
                    out.append(token)
            elif kind == "url":
                out.append(self._url(token, src, tgt))
            elif kind == "hashtag":
                tag = self.word(token[1:], src, tgt)
                out.append("# " + (tag.lower() if tgt in self.LOWERCASE_HASHTAGS else tag))
            elif kind == "mention":
                out.append("@ " + token[1:])
            elif kind == "flag":
                out.append(_GONE)
            else:
                out.append(self.word(token, src, tgt))
        out.append(text[end:])
        return _tidy("".join(out))

    def word(self, word: str, source: str, target: str) -> str:
        """One word (or elided article) translated, keeping its capitalisation."""
        if source != "fr" or target not in _TARGETS:
            return word
        entry = _FOLDED.get(_fold(word))
        if entry is None:
            return word
        translated = entry[_TARGETS.index(target)]
        letters = word.rstrip("'’")
        if len(letters) > 1 and letters.isupper():
            return translated.upper()
        if letters[:1].isupper():
            return translated[:1].upper() + translated[1:]
        return translated

    def _url(self, url: str, source: str, target: str) -> str:
        match = _URL_HEAD.fullmatch(url)
        assert match is not None  # _TOKEN only yields URLs with a scheme
        head, rest = match.groups()

        def segment_word(word: re.Match[str]) -> str:
            if word.group().lower() == source:
                return target
            return self.word(word.group(), source, target)

        return head + _URL_WORD.sub(segment_word, rest)


# --------------------------------------------------------------------------------------------
# The HTTP machinery shared by every fake
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One request a fake received.

    ``params`` merges the query string with a form or JSON-object body (body wins); a key given
    once maps to a string, a repeated key to a list. ``body`` is the parsed JSON, the form as a
    dict, the raw text, or ``None`` when empty. ``fault`` is the scripted fault it consumed.
    """

    method: str
    path: str
    params: dict[str, Any]
    body: Any
    headers: CaseInsensitiveDict[str]
    fault: str | None = None


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)


def json_response(payload: Any, status: int = 200) -> Response:
    body = json.dumps(payload, ensure_ascii=False).encode()
    return Response(status, body, "application/json")


def html_response(page: str, status: int = 200) -> Response:
    return Response(status, page.encode(), "text/html; charset=utf-8")


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


def _flatten(query: dict[str, list[str]]) -> dict[str, Any]:
    return {key: values[0] if len(values) == 1 else values for key, values in query.items()}


def _first(params: Mapping[str, Any], key: str) -> str | None:
    value = params.get(key)
    if isinstance(value, list):
        return str(value[0]) if value else None
    return None if value is None else str(value)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _parse_body(raw: bytes, content_type: str) -> Any:
    if not raw:
        return None
    text = raw.decode("utf-8", "replace")
    if content_type == "application/json":
        try:
            return json.loads(text)
        except ValueError:
            return text
    if content_type == "application/x-www-form-urlencoded":
        return _flatten(parse_qs(text, keep_blank_values=True))
    return text


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeTranslationServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away mid-request (a SIGKILLed service's kept-alive connection)
        is what the crash tests do on purpose: no traceback on stderr for it."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # kept-alive connections: no 40 ms delayed-ACK stalls

    def do_GET(self) -> None:
        self.server.fake._serve(self)

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read ``calls``, not stderr."""


class FakeTranslationServer:
    """Base of the fakes: a ``ThreadingHTTPServer`` on ``127.0.0.1:0`` with scripted faults.

    Use as a context manager; ``url`` ends with ``/``. Subclasses implement :meth:`route`
    (the protocol), :meth:`error` (the protocol's error body for a status) and :meth:`malformed`
    (a 200 the client cannot parse).

    Faults, queued by :meth:`fail_next` and consumed one per request (any path):

    ``"429"``        429 with ``Retry-After: 1`` and the protocol's error body
    ``"500"``        500 with the protocol's error body (any other status code works the same)
    ``"malformed"``  200 with a body the client cannot parse
    ``"hang"``       read the request, never answer; released when the server stops
    ``"drop"``       read the request, close the connection without a response
    """

    FAULTS: ClassVar[frozenset[str]] = frozenset({"429", "500", "malformed", "hang", "drop"})

    def __init__(
        self,
        *,
        api_key: str | None = None,
        delay: float = 0.0,
        engine: FakeEngine | None = None,
    ) -> None:
        self.api_key = api_key
        self.delay = delay
        self.engine = engine if engine is not None else FakeEngine()
        #: Exceptions raised by the fake itself (a bug in the fake, answered with a 500).
        self.errors: list[BaseException] = []
        self._calls: list[Call] = []
        self._faults: deque[str] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> Self:
        if self._httpd is not None:
            raise RuntimeError(f"{type(self).__name__} already started")
        self._stopping.clear()
        httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        httpd.fake = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{type(self).__name__}-{httpd.server_address[1]}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        self._stopping.set()  # releases hanging and delayed requests
        httpd.shutdown()
        httpd.server_close()
        thread.join()
        self._httpd = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError(f"{type(self).__name__} is not running")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/"

    # -- scripting and inspection -----------------------------------------------------------

    @property
    def calls(self) -> list[Call]:
        """A snapshot of every request received so far, faulted ones included."""
        with self._lock:
            return list(self._calls)

    def fail_next(self, kind: str, count: int = 1) -> None:
        """Answer the next ``count`` requests with fault ``kind`` (see the class docstring)."""
        if kind not in self.FAULTS and not (kind.isdigit() and 400 <= int(kind) <= 599):
            valid = ", ".join(sorted(self.FAULTS))
            raise ValueError(f"unknown fault {kind!r}: use one of {valid} or a status code")
        with self._lock:
            self._faults.extend([kind] * count)

    def reset(self) -> None:
        """Forget recorded calls and pending faults."""
        with self._lock:
            self._calls.clear()
            self._faults.clear()

    # -- protocol hooks ---------------------------------------------------------------------

    def route(self, call: Call) -> Response:
        raise NotImplementedError

    def error(self, status: int, call: Call) -> Response:
        return json_response({"error": _phrase(status)}, status)

    def malformed(self, call: Call) -> Response:
        """A 200 the client cannot parse: JSON cut off mid-string by default."""
        return Response(200, b'{"translatedText": "', "application/json")

    def fault_response(self, kind: str, call: Call) -> Response:
        if kind == "malformed":
            return self.malformed(call)
        response = self.error(int(kind), call)
        if kind == "429":
            response.headers.setdefault("Retry-After", "1")
        return response

    # -- serving ----------------------------------------------------------------------------

    def _serve(self, handler: _Handler) -> None:
        call = self._read(handler)
        with self._lock:
            fault = self._faults.popleft() if self._faults else None
            self._calls.append(replace(call, fault=fault))
        handler.close_connection = True
        if fault == "hang":
            self._stopping.wait()
            return
        if fault == "drop":
            return
        if self.delay > 0 and self._stopping.wait(self.delay):
            return
        try:
            response = self.fault_response(fault, call) if fault else self.route(call)
        except Exception as exc:
            self.errors.append(exc)
            response = Response(500, traceback.format_exc().encode(), "text/plain")
        self._write(handler, response)

    @staticmethod
    def _read(handler: _Handler) -> Call:
        split = urlsplit(handler.path)
        params = _flatten(parse_qs(split.query, keep_blank_values=True))
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length > 0 else b""
        body = _parse_body(raw, handler.headers.get_content_type())
        if isinstance(body, dict):
            params.update(body)
        headers: CaseInsensitiveDict[str] = CaseInsensitiveDict(dict(handler.headers.items()))
        return Call(handler.command, split.path, params, body, headers)

    @staticmethod
    def _write(handler: _Handler, response: Response) -> None:
        try:
            handler.send_response(response.status)
            handler.send_header("Content-Type", response.content_type)
            handler.send_header("Content-Length", str(len(response.body)))
            if handler.close_connection:
                handler.send_header("Connection", "close")
            for name, value in response.headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(response.body)
        except ConnectionError:  # the client gave up (timeout) before we answered
            pass


# --------------------------------------------------------------------------------------------
# LibreTranslate
# --------------------------------------------------------------------------------------------


class LibreServer(FakeTranslationServer):
    """LibreTranslate: ``POST /translate`` and ``GET /languages``.

    ``q``, ``source``, ``target``, ``format`` and ``api_key`` are read from the query string
    (deep-translator's way: an empty body), a form or a JSON body. ``q`` may be a list (batch:
    ``translatedText`` is then a list). ``batch_limit`` and ``char_limit`` play the server's
    ``--batch-limit`` and ``--char-limit`` (default: none), refused with its 400 messages.
    With ``api_key`` configured a missing or wrong key gets 403 ``{"error": "Invalid API key"}``.
    """

    LANGUAGES: ClassVar[dict[str, str]] = {
        "ar": "Arabic",
        "en": "English",
        "es": "Spanish",
        "fr": "French",
        "pt": "Portuguese",
        "zh": "Chinese",
        "zt": "Chinese (traditional)",
    }
    _MESSAGES: ClassVar[dict[int, str]] = {
        429: "Too many request limits violations",
        500: "Internal Server Error",
    }
    batch_limit: int | None = None  # the server's --batch-limit: most texts in one ``q`` list
    char_limit: int | None = None  # its --char-limit: most characters in one request

    def route(self, call: Call) -> Response:
        if call.path == "/languages" and call.method == "GET":
            codes = list(self.LANGUAGES)
            return json_response(
                [{"code": c, "name": n, "targets": codes} for c, n in self.LANGUAGES.items()]
            )
        if call.path == "/translate" and call.method == "POST":
            return self._translate(call)
        return json_response({"error": "Not Found"}, 404)

    def _translate(self, call: Call) -> Response:
        params = call.params
        if self.api_key is not None and _first(params, "api_key") != self.api_key:
            return json_response({"error": "Invalid API key"}, 403)
        for name in ("q", "source", "target"):
            if not params.get(name):
                return json_response({"error": f"Invalid request: missing {name} parameter"}, 400)
        source, target = _first(params, "source") or "", _first(params, "target") or ""
        for code in (source, target):
            if code != "auto" and code not in self.LANGUAGES:
                return json_response({"error": f"{code} is not supported"}, 400)
        if target == "auto":
            return json_response({"error": "auto is not supported"}, 400)
        texts = _as_list(params["q"])
        batch = isinstance(params["q"], list)
        # LibreTranslate's --batch-limit and --char-limit (unlimited by default), its messages.
        if batch and self.batch_limit is not None and len(texts) > self.batch_limit:
            message = (
                f"Invalid request: request ({len(texts)}) exceeds text limit ({self.batch_limit})"
            )
            return json_response({"error": message}, 400)
        chars = sum(len(str(text)) for text in texts)
        if self.char_limit is not None and chars > self.char_limit:
            message = (
                f"Invalid request: request ({chars}) exceeds character limit ({self.char_limit})"
            )
            return json_response({"error": message}, 400)
        translated = [self.engine.translate(str(text), source, target) for text in texts]
        result: dict[str, Any] = {"translatedText": translated if batch else translated[0]}
        if source == "auto":
            detected = {"confidence": 90.0, "language": "fr"}
            result["detectedLanguage"] = [detected] * len(texts) if batch else detected
        return json_response(result)

    def error(self, status: int, call: Call) -> Response:
        message = self._MESSAGES.get(status) or _phrase(status)
        return json_response({"error": message}, status)


# --------------------------------------------------------------------------------------------
# Google Translate's mobile page, as deep-translator scrapes it
# --------------------------------------------------------------------------------------------

_GOOGLE_PAGE = """<!DOCTYPE html>
<html lang="{tl}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>Google Translate</title></head>
<body><div class="root-container">
<div class="header"><a href="/m?sl={sl}&amp;tl={tl}">Google Translate</a></div>
<form action="/m" class="input-container">
<input type="hidden" name="sl" value="{sl}"><input type="hidden" name="tl" value="{tl}">
<textarea name="q" class="input-field">{source}</textarea>
<input type="submit" value="Translate"></form>
<div class="result-header">{tl}</div>
<div class="t0">{translation}</div>
</div></body></html>
"""
_GOOGLE_UNUSUAL_TRAFFIC = """<html><head><title>Sorry...</title></head><body>
<div id="infoDiv">Our systems have detected unusual traffic from your computer network.
This page checks to see if it's really you sending the requests, and not a robot.</div>
</body></html>
"""
_GOOGLE_ERROR = """<!DOCTYPE html><html lang=en><meta charset=utf-8>
<title>Error {status} ({phrase})!!1</title>
<p><b>{status}.</b> <ins>That's an error.</ins></p></html>
"""
_GOOGLE_CONSENT = """<!DOCTYPE html><html><head><title>Before you continue</title></head>
<body><form action="https://consent.google.com/save" method="POST">
<div class="consent-text">Before you continue to Google</div>
<button>Accept all</button></form></body></html>
"""


class GoogleServer(FakeTranslationServer):
    """Google Translate's mobile page: ``GET /m?sl=..&tl=..&q=..`` → HTML with ``div.t0``.

    Point ``GoogleTranslator`` at it by setting ``translator._base_url = srv.url + "m"``.
    No authentication. ``malformed`` answers the cookie-consent page, which has no result.
    """

    def route(self, call: Call) -> Response:
        if call.path != "/m" or call.method != "GET":
            return self.error(404, call)
        text, target = _first(call.params, "q"), _first(call.params, "tl")
        source = _first(call.params, "sl") or "auto"
        if text is None or not target:
            return self.error(400, call)
        translation = self.engine.translate(text, source, target)
        page = _GOOGLE_PAGE.format(
            sl=html.escape(source),
            tl=html.escape(target),
            source=html.escape(text),
            translation=html.escape(translation),
        )
        return html_response(page)

    def error(self, status: int, call: Call) -> Response:
        if status == 429:
            return html_response(_GOOGLE_UNUSUAL_TRAFFIC, 429)
        page = _GOOGLE_ERROR.format(status=status, phrase=_phrase(status))
        return html_response(page, status)

    def malformed(self, call: Call) -> Response:
        return html_response(_GOOGLE_CONSENT)


# --------------------------------------------------------------------------------------------
# DeepL API v2
# --------------------------------------------------------------------------------------------


class DeepLServer(FakeTranslationServer):
    """DeepL API v2 as the ``deepl`` SDK calls it.

    ``POST /v2/translate`` (JSON body from SDK 1.32, form body from older SDKs; ``text`` is a
    list, at most 50 texts and 128 KiB a request as DeepL documents), ``GET /v2/usage``,
    ``GET /v2/languages`` (``type=target`` in the query or body).
    Every request must carry ``Authorization: DeepL-Auth-Key <key>``; with ``api_key``
    configured the key must match. Otherwise 403 with an empty body. Answers include
    ``billed_characters``, which the SDK requires (it calls ``int()`` on it).
    """

    SOURCE_LANGUAGES: ClassVar[dict[str, str]] = {
        "AR": "Arabic",
        "EN": "English",
        "ES": "Spanish",
        "FR": "French",
        "PT": "Portuguese",
        "ZH": "Chinese",
    }
    TARGET_LANGUAGES: ClassVar[dict[str, tuple[str, bool]]] = {
        "AR": ("Arabic", False),
        "EN-GB": ("English (British)", False),
        "EN-US": ("English (American)", False),
        "ES": ("Spanish", True),
        "FR": ("French", True),
        "PT-BR": ("Portuguese (Brazilian)", True),
        "PT-PT": ("Portuguese (European)", True),
        "ZH-HANS": ("Chinese (simplified)", False),
        "ZH-HANT": ("Chinese (traditional)", False),
    }
    MAX_TEXTS: ClassVar[int] = 50  # DeepL's limits of one request: 50 texts, 128 KiB
    MAX_BODY: ClassVar[int] = 128 * 1024
    _MESSAGES: ClassVar[dict[int, str]] = {
        400: "Bad request",
        404: "Not found",
        429: "Too many requests",
        456: "Quota Exceeded",
        500: "Internal server error",
        503: "Service unavailable",
    }

    def __init__(
        self,
        *,
        api_key: str | None = None,
        delay: float = 0.0,
        engine: FakeEngine | None = None,
        character_limit: int = 500_000,
    ) -> None:
        super().__init__(api_key=api_key, delay=delay, engine=engine)
        self.character_limit = character_limit
        self.character_count = 0

    def route(self, call: Call) -> Response:
        authorization = call.headers.get("Authorization", "")
        if not authorization.startswith("DeepL-Auth-Key ") or (
            self.api_key is not None and authorization != f"DeepL-Auth-Key {self.api_key}"
        ):
            return Response(403, b"", "application/json")
        if call.path == "/v2/translate" and call.method == "POST":
            return self._translate(call)
        if call.path == "/v2/usage":
            return json_response(
                {"character_count": self.character_count, "character_limit": self.character_limit}
            )
        if call.path == "/v2/languages":
            if (_first(call.params, "type") or "source") == "target":
                return json_response(
                    [
                        {"language": code, "name": name, "supports_formality": formality}
                        for code, (name, formality) in self.TARGET_LANGUAGES.items()
                    ]
                )
            return json_response(
                [{"language": c, "name": n} for c, n in self.SOURCE_LANGUAGES.items()]
            )
        return self.error(404, call)

    def _translate(self, call: Call) -> Response:
        texts = [str(text) for text in _as_list(call.params.get("text"))]
        target = (_first(call.params, "target_lang") or "").upper()
        source = (_first(call.params, "source_lang") or "").upper() or None
        if not texts:
            return json_response({"message": "Parameter 'text' not specified."}, 400)
        if int(call.headers.get("Content-Length") or 0) > self.MAX_BODY:
            return json_response({"message": "Request Entity Too Large"}, 413)
        if len(texts) > self.MAX_TEXTS:
            return json_response({"message": "Too many texts in one request."}, 400)
        if not target:
            return json_response({"message": "Parameter 'target_lang' not specified."}, 400)
        if target not in self.TARGET_LANGUAGES and target not in {"EN", "PT"}:
            return json_response({"message": "Value for 'target_lang' not supported."}, 400)
        if source is not None and source not in self.SOURCE_LANGUAGES:
            return json_response({"message": "Value for 'source_lang' not supported."}, 400)
        with self._lock:
            self.character_count += sum(len(text) for text in texts)
        return json_response(
            {
                "translations": [
                    {
                        "detected_source_language": source or "FR",
                        "text": self.engine.translate(text, source, target),
                        "billed_characters": len(text),
                    }
                    for text in texts
                ]
            }
        )

    def error(self, status: int, call: Call) -> Response:
        message = self._MESSAGES.get(status) or _phrase(status)
        return json_response({"message": message}, status)

    def malformed(self, call: Call) -> Response:
        return Response(200, b'{"translations": [{"text": "', "application/json")


# --------------------------------------------------------------------------------------------
# Microsoft Translator v3 and MyMemory (deep-translator's other backends)
# --------------------------------------------------------------------------------------------


class MicrosoftServer(FakeTranslationServer):
    """Microsoft Translator v3: ``POST /translate?api-version=3.0&from=..&to=..``.

    Body ``[{"text": ...}, ...]``; answer ``[{"translations": [{"text", "to"}, ...]}, ...]`` (one
    entry per ``to``, which may repeat); at most 1,000 texts and 50,000 characters a request
    (400077 beyond, as Microsoft documents). Key in ``Ocp-Apim-Subscription-Key``: missing, or
    wrong when ``api_key`` is configured, gets 401 with code 401000. ``from=auto`` is treated
    as no ``from`` (detection). ``GET /languages?api-version=3.0`` needs no key, as for real.
    """

    LANGUAGES: ClassVar[dict[str, tuple[str, str, str]]] = {
        "ar": ("Arabic", "العربية", "rtl"),
        "en": ("English", "English", "ltr"),
        "es": ("Spanish", "Español", "ltr"),
        "fr": ("French", "Français", "ltr"),
        "pt": ("Portuguese (Brazil)", "Português (Brasil)", "ltr"),
        "pt-pt": ("Portuguese (Portugal)", "Português (Portugal)", "ltr"),
        "zh-hans": ("Chinese Simplified", "中文 (简体)", "ltr"),
        "zh-hant": ("Chinese Traditional", "繁體中文 (繁體)", "ltr"),
    }
    _MESSAGES: ClassVar[dict[int, str]] = {
        401: "The request is not authorized because credentials are missing or invalid.",
        429: "The server rejected the request because the client has exceeded request limits.",
        500: "An unexpected error occurred.",
        503: "The server temporarily unavailable.",
    }

    @staticmethod
    def _error(status: int, code: int, message: str) -> Response:
        return json_response({"error": {"code": code, "message": message}}, status)

    def route(self, call: Call) -> Response:
        if _first(call.params, "api-version") != "3.0":
            return self._error(400, 400021, "The API version parameter is missing or invalid.")
        if call.path == "/languages" and call.method == "GET":
            return json_response(
                {
                    "translation": {
                        code: {"name": name, "nativeName": native, "dir": direction}
                        for code, (name, native, direction) in self.LANGUAGES.items()
                    }
                }
            )
        if call.path == "/translate" and call.method == "POST":
            return self._translate(call)
        return self._error(404, 404000, "The requested resource was not found.")

    def _translate(self, call: Call) -> Response:
        key = call.headers.get("Ocp-Apim-Subscription-Key")
        if not key or (self.api_key is not None and key != self.api_key):
            return self.error(401, call)
        targets = [str(t).lower() for t in _as_list(call.params.get("to"))]
        if not targets or any(t not in self.LANGUAGES for t in targets):
            return self._error(400, 400036, "The target language is not valid.")
        source = (_first(call.params, "from") or "auto").lower()
        if source != "auto" and source not in self.LANGUAGES:
            return self._error(400, 400035, "The source language is not valid.")
        items = call.body
        if not isinstance(items, list) or not all(
            isinstance(item, dict) and isinstance(item.get("text"), str) for item in items
        ):
            return self._error(400, 400074, "The body of the request is not valid JSON.")
        if len(items) > 1000 or sum(len(item["text"]) for item in items) > 50_000:
            return self._error(400, 400077, "The maximum request size has been exceeded.")
        results = []
        for item in items:
            result: dict[str, Any] = {
                "translations": [
                    {"text": self.engine.translate(item["text"], source, t), "to": t}
                    for t in targets
                ]
            }
            if source == "auto":
                result["detectedLanguage"] = {"language": "fr", "score": 1.0}
            results.append(result)
        return json_response(results)

    def error(self, status: int, call: Call) -> Response:
        message = self._MESSAGES.get(status) or _phrase(status)
        return self._error(status, status * 1000, message)

    def malformed(self, call: Call) -> Response:
        return Response(200, b'[{"translations": [{"text": "', "application/json")


class MyMemoryServer(FakeTranslationServer):
    """MyMemory: ``GET /get?q=..&langpair=fr-FR|en-GB`` → ``responseData.translatedText``.

    No authentication. Errors in the request are reported the way MyMemory reports them: HTTP
    200 with ``responseStatus`` 403 and the message as ``translatedText``. An extra fault,
    ``"quota"``, answers MyMemory's daily-quota warning the same way (HTTP 200,
    ``responseStatus`` 429, ``quotaFinished`` true), which clients take for a translation.
    """

    FAULTS: ClassVar[frozenset[str]] = FakeTranslationServer.FAULTS | {"quota"}
    QUOTA_WARNING: ClassVar[str] = (
        "MYMEMORY WARNING: YOU USED ALL AVAILABLE FREE TRANSLATIONS FOR TODAY. NEXT AVAILABLE IN"
        "  10 HOURS 20 MINUTES 35 SECONDS VISIT HTTPS://MYMEMORY.TRANSLATED.NET/DOC/USAGELIMITS.PHP"
        " TO TRANSLATE MORE"
    )

    @staticmethod
    def _body(translation: str, status: int, *, quota_finished: bool = False) -> dict[str, Any]:
        return {
            "responseData": {"translatedText": translation, "match": 0.85 if status == 200 else 0},
            "quotaFinished": quota_finished,
            "mtLangSupported": None,
            "responseDetails": "" if status == 200 else translation,
            "responseStatus": status,
            "responderId": None,
            "exception_code": None,
            "matches": [],
        }

    def route(self, call: Call) -> Response:
        if call.path != "/get" or call.method != "GET":
            return json_response(self._body("NOT FOUND", 404), 404)
        text, langpair = _first(call.params, "q"), _first(call.params, "langpair") or ""
        if not text:
            message = "NO QUERY SPECIFIED. EXAMPLE REQUEST: GET?Q=HELLO&LANGPAIR=EN|IT"
            return json_response(self._body(message, 403))
        source, bar, target = langpair.partition("|")
        if not bar or not source or not target:
            message = (
                "INVALID LANGUAGE PAIR SPECIFIED. EXAMPLE: LANGPAIR=EN|IT USING 2 LETTER ISO OR"
                " RFC3066 LIKE ZH-CN. ALMOST ALL LANGUAGES SUPPORTED BUT SOME MAY HAVE NO CONTENT"
            )
            return json_response(self._body(message, 403))
        translation = self.engine.translate(text, source, target)
        body = self._body(translation, 200)
        body["matches"] = [
            {
                "id": "0",
                "segment": text,
                "translation": translation,
                "source": source,
                "target": target,
                "quality": 74,
                "reference": None,
                "usage-count": 0,
                "subject": "",
                "created-by": "MT!",
                "last-updated-by": "MT!",
                "create-date": "2026-01-01 00:00:00",
                "last-update-date": "2026-01-01 00:00:00",
                "match": 0.85,
                "model": "neural",
            }
        ]
        return json_response(body)

    def fault_response(self, kind: str, call: Call) -> Response:
        if kind == "quota":
            return json_response(self._body(self.QUOTA_WARNING, 429, quota_finished=True))
        return super().fault_response(kind, call)

    def error(self, status: int, call: Call) -> Response:
        return json_response(self._body(_phrase(status).upper(), status), status)
