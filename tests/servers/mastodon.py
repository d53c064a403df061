"""A fake Mastodon instance on 127.0.0.1, for the real Mastodon.py.

:class:`MastodonServer` is a :class:`~servers.translate.FakeTranslationServer` (the HTTP
machinery every fake shares: ``ThreadingHTTPServer`` on ``127.0.0.1:0``, context manager,
``calls``, ``errors``, ``fail_next``) speaking Mastodon's REST API (4.3) with bearer tokens::

    with MastodonServer(accounts={"francediplo": ("tok", "francediplo")}) as srv:
        api = Mastodon(access_token="tok", api_base_url=srv.url, ...)
        api.status_post("Bonjour", language="fr", idempotency_key="k")
        assert [s["text"] for s in srv.statuses("francediplo")] == ["Bonjour"]
        assert not srv.errors

``srv.url`` is ``http://127.0.0.1:PORT`` without a trailing slash: the instance's base URL.

What it checks, as a Mastodon instance does
-------------------------------------------

* **Bearer tokens**: a missing, unknown or revoked token → 401 ``{"error": "The access token is
  invalid"}`` (public reads, a status or an account's statuses, need none, but a token given
  is checked all the same); a token without the scope an endpoint needs (``read``/``write``,
  or their ``read:statuses``-style parts) → 403 ``{"error": "This action is outside the
  authorized scopes"}``.
* **Statuses** (``POST /api/v1/statuses``, form or JSON, ``media_ids[]``): a blank text without
  media → 422 ``Validation failed: Text can't be blank``; a text longer than
  ``max_characters`` (500), counted as Mastodon counts (each URL 23, a remote mention its local
  part) → 422 ``Validation failed: Text character limit of 500 exceeded``; more than 4 media →
  422; a media id that is not the account's, or already attached → 422 ``Media ... not found or
  already attached to another post``; an attachment still being processed → 422 ``Cannot attach
  files that have not finished processing. Try again in a moment!``; a reply to a missing or
  deleted status → 404 ``The post you are trying to reply to does not appear to exist.``;
  ``language`` not an ISO 639 code of the instance → the account's default (``None``).
* **Idempotency-Key**: per account, remembered for ``idempotency_ttl`` seconds (3,600, as
  Mastodon's Redis key): a repeated request answers the status the first one created (whatever
  its body), or 404 when that status was deleted since.
* **Media upload v2** (``POST /api/v2/media``, multipart ``file``, ``description`` ≤ 1,500
  characters, JPEG/PNG/GIF/WebP sniffed from the bytes, ≤ 16 MB) → 202 with ``url: null``: the
  attachment is processed asynchronously, and ``GET /api/v1/media/:id`` answers 206 (``url:
  null``) the first ``processing_polls`` times (1), then 200 with its ``url``.
* **Rate limits**: every answer carries ``X-RateLimit-Limit``, ``X-RateLimit-Remaining`` and
  ``X-RateLimit-Reset`` (ISO 8601, e.g. ``2026-12-01T04:00:00.000000Z``) of the 300-requests-
  per-5-minutes window; posting is limited to ``status_limit`` (300) statuses per account per 3
  hours, beyond which 429 ``{"error": "Too many requests"}`` with that window's reset.
* **HTML content**: a status's ``content`` is rendered as Mastodon renders plain text:
  paragraphs in ``<p>``, line breaks ``<br />``, ``&<>"'`` escaped, links shortened to 30
  visible characters with ``invisible`` and ``ellipsis`` spans, hashtags and known mentions as
  links (``mentions`` lists them with ``acct``: ``user`` here, ``user@domain`` elsewhere).
* **Link-header pagination** on ``GET /api/v1/accounts/:id/statuses`` (``limit`` ≤ 40,
  ``max_id``, ``since_id``, ``min_id``, ``exclude_replies``, ``exclude_reblogs``,
  ``only_media``): ``<…?max_id=oldest>; rel="next", <…?min_id=newest>; rel="prev"``.

Endpoints
---------

=========================================  ===================================================
``GET /api/v1/accounts/verify_credentials``  the token's account, with ``source``
``GET /api/v2/instance``, ``/api/v1/instance``  the instance (no token needed);
                                           ``configuration.statuses.max_characters``
``POST /api/v2/media``                     above; ``PUT /api/v1/media/:id`` sets
                                           ``description``; ``GET /api/v1/media/:id``
``POST /api/v1/statuses``                  above → 200 the Status
``GET /api/v1/statuses/:id``               404 ``Record not found`` when missing or deleted
``DELETE /api/v1/statuses/:id``            own statuses only (another's, or a missing one:
                                           404) → the Status with its source ``text``
``GET /api/v1/accounts/:id/statuses``      newest first, above; reblogs included unless
                                           ``exclude_reblogs``
``POST /api/v1/statuses/:id/reblog``       the account's reblog (a status: empty
                                           ``content``, the original in ``reblog``); the
                                           same one again when it exists (no second
                                           reblog); in the statuses limit; 404 when missing
``POST /api/v1/statuses/:id/unreblog``     the original; no error when not reblogged
=========================================  ===================================================

Any other request answers 404 ``{"error": "Not Found"}`` and is recorded in ``srv.errors`` (the
publisher asked for something Mastodon does not have).

Inspection: ``srv.statuses(name)`` the account's live statuses, oldest first (dicts: ``id``,
``text`` as sent, ``language``, ``reply_to``, ``media`` with ``description``, ``created_at``,
``idempotency_key``); ``srv.clock_skew`` puts the instance's clock ahead (or behind) by that
many seconds (statuses' ``created_at`` and ids); ``srv.media(id)``; ``srv.account(name)``;
``srv.add_status(name, text)`` puts one on the account directly; ``srv.revoke(name)``
invalidates its token.

Faults
------

``srv.fail_next(kind, count=1, *, method=None, path=None, reset=None, seconds=10.0, after=0)``
queues a fault for the next ``count`` requests matching ``method`` and ``path`` (``fnmatch``),
once ``after`` matching requests went through unharmed:

========================  =====================================================================
``"429"``                 429 ``{"error": "Too many requests"}``, ``X-RateLimit-Remaining: 0``
                          and ``X-RateLimit-Reset`` (``reset``: epoch seconds, default now+300)
``"401"``, ``"403"``      the token refused, the scope refused (bodies above)
``"422"``                 ``Validation failed: Text character limit of 500 exceeded``
``"500"``                 ``{"error": "We're sorry, but something went wrong on our end."}``
``"502"``, ``"503"``,     the reverse proxy's HTML error page (not JSON), as nginx sends it
``"504"``
``"drop"``                close without processing (nothing is stored)
``"drop_after_store"``    process the request (a status IS stored), close without answering
``"malformed_after_store"``  process, answer 200 with the first half of the JSON
``"slow"``                process, answer after ``seconds``
``"hang"``                read the request, never answer (released by :meth:`stop`)
``"trickle"``             process, then send the answer, status line first, one byte every
                          ``seconds``: no read timeout ever fires
========================  =====================================================================

Where Mastodon's behaviour was guessed: the 422 text for an unknown media id (Mastodon 4.2's
wording), the 500 body, and the order of the checks.
"""

from __future__ import annotations

import html
import json
import re
import struct
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlencode, urlsplit

from requests.structures import CaseInsensitiveDict

from servers.translate import Call, FakeTranslationServer, Response, _Handler
from servers.x import _parse_multipart

__all__ = ["MastodonServer", "MastodonUser"]

_JSON = "application/json; charset=utf-8"
INVALID_TOKEN = "The access token is invalid"
OUT_OF_SCOPE = "This action is outside the authorized scopes"
NOT_FOUND = "Record not found"
REPLY_GONE = "The post you are trying to reply to does not appear to exist."
NOT_PROCESSED = "Cannot attach files that have not finished processing. Try again in a moment!"
TOO_MANY_MEDIA = "Cannot attach more than 4 files."
LANGUAGES = frozenset(
    [
        "af",
        "ar",
        "be",
        "bg",
        "bn",
        "br",
        "ca",
        "cs",
        "cy",
        "da",
        "de",
        "el",
        "en",
        "eo",
        "es",
        "et",
        "eu",
        "fa",
        "fi",
        "fr",
        "ga",
        "gl",
        "he",
        "hi",
        "hr",
        "hu",
        "hy",
        "id",
        "is",
        "it",
        "ja",
        "ka",
        "kk",
        "ko",
        "ku",
        "la",
        "lt",
        "lv",
        "mk",
        "ms",
        "nl",
        "nn",
        "no",
        "oc",
        "pl",
        "pt",
        "ro",
        "ru",
        "sk",
        "sl",
        "sq",
        "sr",
        "sv",
        "ta",
        "th",
        "tr",
        "uk",
        "ur",
        "vi",
        "zh",
        "zh-CN",
        "zh-HK",
        "zh-TW",
        "ast",
        "ckb",
        "cnr",
        "kab",
        "kmr",
        "ldn",
        "lfn",
        "sco",
        "sma",
        "smj",
        "szl",
        "tok",
        "zba",
        "zgh",
    ]
)
_MEDIA_LIMIT = 16 * 1024 * 1024
_WINDOW = 300  # the general rate-limit window: 300 requests per 5 minutes
_STATUS_WINDOW = 3 * 3600  # 300 statuses per 3 hours
_URL = re.compile(r"(?<![\w/])https?://[^\s<>\"]+", re.IGNORECASE)
_TRAILING = ".,;:!?)'\""
_HASHTAG = re.compile(r"(?<![\w/#])#(\w*[^\W\d_]\w*)")
_MENTION = re.compile(r"(?<![\w/@])@([a-z0-9_]+)(?:@([a-z0-9][a-z0-9.\-]*[a-z0-9]))?", re.I)


@dataclass
class MastodonUser:
    """One account on the instance: ``name`` is what tests call it, ``username`` its @name."""

    name: str
    username: str
    id: str
    token: str = field(repr=False)
    scopes: frozenset[str] = frozenset({"read", "write"})
    language: str | None = None  # the account's default posting language
    revoked: bool = False


@dataclass
class _Status:
    id: str
    account: str  # the user's name
    text: str
    language: str | None
    reply_to: str | None
    media_ids: list[str]
    created_at: float
    idempotency_key: str | None = None
    deleted: bool = False
    reblog_of: str | None = None  # a reblog (boost): the id of the status it reblogs


@dataclass
class _Media:
    id: str
    account: str
    data: bytes
    mime: str
    description: str | None
    polls_left: int
    status_id: str | None = None
    width: int | None = None
    height: int | None = None
    declared: str | None = None  # the file part's Content-Type, as the client sent it


@dataclass(frozen=True)
class _Fault:
    kind: str
    method: str | None
    path: str | None
    reset: int | None
    seconds: float
    after: int = 0  # matching requests to let through before this one strikes

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (
            self.path is None or fnmatchcase(path, self.path)
        )


class Unsupported(Exception):
    """A request for something the fake (and Mastodon) does not have."""


class MastodonServer(FakeTranslationServer):
    """A Mastodon instance; see the module docstring.

    ``accounts`` maps the name tests use to ``(token, username)``.
    """

    FAULTS: ClassVar[frozenset[str]] = frozenset(
        {"429", "drop", "drop_after_store", "malformed_after_store", "slow", "hang", "trickle"}
    )
    PROCESSING: ClassVar[frozenset[str]] = frozenset(
        {"drop_after_store", "malformed_after_store", "slow", "trickle"}
    )

    def __init__(
        self,
        *,
        accounts: Mapping[str, tuple[str, str]],
        max_characters: int = 500,
        idempotency_ttl: float = 3600,
        processing_polls: int = 1,
        status_limit: int = 300,
        remote: Mapping[str, str] | None = None,
        clock_skew: float = 0.0,
    ) -> None:
        super().__init__()
        self.clock_skew = clock_skew  # seconds the instance's clock is ahead (behind: < 0)
        self.max_characters = max_characters
        self.idempotency_ttl = idempotency_ttl
        self.processing_polls = processing_polls
        self.status_limit = status_limit
        self.remote = dict(remote or {})  # "user@domain" → profile URL: mentions it resolves
        self._users: dict[str, MastodonUser] = {}
        for number, (name, (token, username)) in enumerate(accounts.items(), start=1):
            self._users[name] = MastodonUser(name, username, str(109_000_000 + number), token)
        self._statuses: dict[str, _Status] = {}
        self._media: dict[str, _Media] = {}
        self._idempotency: dict[tuple[str, str], tuple[str, float]] = {}
        self._posted: dict[str, list[float]] = {}  # user name → when each status was created
        self._mastodon_faults: list[_Fault] = []
        self._last_id = 0
        self._requests_in_window: list[float] = []

    # -- configuration and inspection -------------------------------------------------------

    @property
    def url(self) -> str:
        return super().url.rstrip("/")

    def account(self, name: str) -> MastodonUser:
        return self._users[name]

    def revoke(self, name: str) -> None:
        """The account's token stops working (401), as when its user revokes the app."""
        with self._lock:
            self._users[name].revoked = True

    def statuses(self, name: str) -> list[dict[str, Any]]:
        """The account's live statuses, oldest first, as they were sent."""
        with self._lock:
            found = [
                s
                for s in self._statuses.values()
                if s.account == name and not s.deleted and s.reblog_of is None
            ]
            return [
                {
                    "id": s.id,
                    "text": s.text,
                    "language": s.language,
                    "reply_to": s.reply_to,
                    "media": [
                        {
                            "id": m,
                            "description": self._media[m].description,
                            "mime": self._media[m].mime,
                        }
                        for m in s.media_ids
                    ],
                    "created_at": s.created_at,
                    "idempotency_key": s.idempotency_key,
                }
                for s in sorted(found, key=lambda s: int(s.id))
            ]

    def reblogs(self, name: str) -> list[str]:
        """The ids of the statuses account ``name`` reblogs now, oldest reblog first."""
        with self._lock:
            return [
                s.reblog_of
                for s in sorted(self._statuses.values(), key=lambda s: int(s.id))
                if s.account == name and s.reblog_of is not None and not s.deleted
            ]

    def media(self, media_id: str) -> _Media:
        with self._lock:
            return self._media[media_id]

    def add_status(
        self, name: str, text: str, *, reply_to: str | None = None, created_at: float | None = None
    ) -> str:
        """Put a status on the account directly (another publisher's, say); its id."""
        with self._lock:
            moment = time.time() if created_at is None else created_at
            status = _Status(self._next_id(moment), name, text, None, reply_to, [], moment)
            self._statuses[status.id] = status
            return status.id

    def fail_next(  # type: ignore[override]
        self,
        kind: str,
        count: int = 1,
        *,
        method: str | None = None,
        path: str | None = None,
        reset: int | None = None,
        seconds: float = 10.0,
        after: int = 0,
    ) -> None:
        if kind not in self.FAULTS and not (kind.isdigit() and 400 <= int(kind) <= 599):
            raise ValueError(f"unknown fault {kind!r}")
        with self._lock:
            fault = _Fault(kind, method, path, reset, seconds, after)
            self._mastodon_faults.extend([fault] * count)

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self._mastodon_faults.clear()

    # -- serving ----------------------------------------------------------------------------

    def _serve(self, handler: _Handler) -> None:
        split = urlsplit(handler.path)
        query = {k: v if len(v) > 1 else v[0] for k, v in parse_qs(split.query).items()}
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length > 0 else b""
        headers: CaseInsensitiveDict[str] = CaseInsensitiveDict(dict(handler.headers.items()))
        if len(raw) != max(length, 0):
            handler.close_connection = True  # the client went away mid-request
            return
        method, path = handler.command, split.path
        with self._lock:
            fault = next((f for f in self._mastodon_faults if f.matches(method, path)), None)
            if fault is not None:
                index = self._mastodon_faults.index(fault)
                if fault.after:  # not yet: this request goes through, one fewer to wait for
                    self._mastodon_faults[index] = replace(fault, after=fault.after - 1)
                    fault = None
                else:
                    del self._mastodon_faults[index]
        kind = fault.kind if fault else None
        try:
            body = self._body(raw, headers.get("Content-Type", ""))
        except ValueError as exc:
            self.errors.append(exc)
            body = None
        params: dict[str, Any] = dict(query)
        if isinstance(body, dict):
            params.update(body)
        with self._lock:
            self._calls.append(Call(method, path, params, body, headers, kind))
        handler.close_connection = kind in ("drop", "drop_after_store", "hang", "slow", "trickle")
        if kind == "hang":
            self._stopping.wait()
            return
        if kind == "drop":
            return
        try:
            if fault is None or kind in self.PROCESSING:
                response = self._route(method, path, params, headers)
            else:
                response = self._fault_response(fault)
        except Exception as exc:
            self.errors.append(exc)
            response = Response(500, traceback.format_exc().encode(), "text/plain")
        if kind == "drop_after_store":
            return
        if kind == "malformed_after_store" and 200 <= response.status < 300:
            response = Response(200, response.body[: max(1, len(response.body) // 2)], _JSON)
        if kind == "slow" and fault is not None and self._stopping.wait(fault.seconds):
            return
        self._rate_headers(response)
        if kind == "trickle" and fault is not None:
            self._trickle(handler, response, fault.seconds)
            return
        self._write(handler, response)

    def _trickle(self, handler: _Handler, response: Response, seconds: float) -> None:
        """The whole answer, status line first, one byte every ``seconds``: each byte comes
        well within a read timeout, so only an overall deadline ends the request."""
        head = [f"HTTP/1.1 {response.status} OK", f"Content-Type: {response.content_type}"]
        head += [f"Content-Length: {len(response.body)}", "Connection: close"]
        head += [f"{k}: {v}" for k, v in response.headers.items()]
        raw = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + response.body
        try:
            for offset in range(len(raw)):
                if self._stopping.wait(seconds):
                    return
                handler.wfile.write(raw[offset : offset + 1])
                handler.wfile.flush()
        except OSError:  # the client gave up (its deadline) before the end
            pass

    @staticmethod
    def _body(raw: bytes, content_type: str) -> Any:
        if not raw:
            return None
        ctype = content_type.split(";")[0].strip().lower()
        if ctype == "application/json":
            return json.loads(raw.decode("utf-8"))
        if ctype == "application/x-www-form-urlencoded":
            form = parse_qs(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
            return {k: v if k.endswith("[]") or len(v) > 1 else v[0] for k, v in form.items()}
        if ctype == "multipart/form-data":
            fields: dict[str, Any] = dict(_parse_multipart(raw, content_type))
            declared = re.search(
                rb'name="file"[^\r\n]*\r\n(?:[^\r\n]+\r\n)*?Content-Type: *([^\r\n]+)', raw, re.I
            )
            if declared:  # the type the client declared for the file (Mastodon sniffs its own)
                fields["file.content_type"] = declared[1].decode("latin-1")
            return fields
        raise ValueError(f"a body of type {ctype!r}: Mastodon takes JSON, a form or multipart")

    def _rate_headers(self, response: Response) -> None:
        now = time.time()
        with self._lock:
            self._requests_in_window = [t for t in self._requests_in_window if t > now - _WINDOW]
            self._requests_in_window.append(now)
            used = len(self._requests_in_window)
            start = self._requests_in_window[0]
        response.headers.setdefault("X-RateLimit-Limit", "300")
        response.headers.setdefault("X-RateLimit-Remaining", str(max(0, 300 - used)))
        response.headers.setdefault("X-RateLimit-Reset", _iso(start + _WINDOW, micro=True))

    def _fault_response(self, fault: _Fault) -> Response:
        kind = fault.kind
        if kind == "429":
            reset = fault.reset if fault.reset is not None else int(time.time()) + 300
            response = _error(429, "Too many requests")
            response.headers.update(
                {
                    "X-RateLimit-Limit": "300",
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": _iso(reset, micro=True),
                }
            )
            return response
        status = int(kind)
        if status == 401:
            return _error(401, INVALID_TOKEN)
        if status == 403:
            return _error(403, OUT_OF_SCOPE)
        if status == 422:
            return _error(
                422, f"Validation failed: Text character limit of {self.max_characters} exceeded"
            )
        if status == 404:
            return _error(404, NOT_FOUND)
        if status in (502, 503, 504):
            phrase = {
                502: "Bad Gateway",
                503: "Service Temporarily Unavailable",
                504: "Gateway Time-out",
            }
            page = (
                f"<html>\r\n<head><title>{status} {phrase[status]}</title></head>\r\n<body>\r\n"
                f"<center><h1>{status} {phrase[status]}</h1></center>\r\n<hr><center>nginx</center>"
                "\r\n</body>\r\n</html>\r\n"
            )
            return Response(status, page.encode(), "text/html")
        if status == 500:
            return _error(500, "We're sorry, but something went wrong on our end.")
        return _error(status, f"HTTP {status}")

    def _user(self, headers: CaseInsensitiveDict[str]) -> MastodonUser | None:
        match = re.fullmatch(r"Bearer (\S+)", headers.get("Authorization", ""))
        if not match:
            return None
        return next(
            (u for u in self._users.values() if u.token == match[1] and not u.revoked), None
        )

    def _route(
        self, method: str, path: str, params: dict[str, Any], headers: CaseInsensitiveDict[str]
    ) -> Response:
        path = path.rstrip("/") or "/"
        if method == "GET" and path in ("/api/v2/instance", "/api/v1/instance"):
            return _json(self._instance(v2=path.startswith("/api/v2")))
        # (method, path, scope needed (None: public, as a public status is), handler)
        routes: list[tuple[str, str, str | None, Any]] = [
            ("GET", r"/api/v1/accounts/verify_credentials", "read:accounts", self._me),
            ("POST", r"/api/v2/media", "write:media", self._upload),
            ("GET", r"/api/v1/media/(\d+)", "write:media", self._get_media),
            ("PUT", r"/api/v1/media/(\d+)", "write:media", self._put_media),
            ("POST", r"/api/v1/statuses", "write:statuses", self._post_status),
            ("GET", r"/api/v1/statuses/(\d+)", None, self._get_status),
            ("DELETE", r"/api/v1/statuses/(\d+)", "write:statuses", self._delete_status),
            ("POST", r"/api/v1/statuses/(\d+)/reblog", "write:statuses", self._reblog),
            ("POST", r"/api/v1/statuses/(\d+)/unreblog", "write:statuses", self._unreblog),
            ("GET", r"/api/v1/accounts/(\d+)/statuses", None, self._account_statuses),
        ]
        for route_method, pattern, scope, handler in routes:
            match = re.fullmatch(pattern, path)
            if route_method != method or not match:
                continue
            user = self._user(headers)
            if user is None and (scope is not None or "Authorization" in headers):
                return _error(401, INVALID_TOKEN)  # public reads too check a token given
            if (
                scope
                and user
                and scope not in user.scopes
                and scope.split(":")[0] not in user.scopes
            ):
                return _error(403, OUT_OF_SCOPE)
            response: Response = handler(user, params, headers, *match.groups())
            return response
        self.errors.append(Unsupported(f"{method} {path}"))
        return _error(404, "Not Found")

    # -- endpoints --------------------------------------------------------------------------

    def _instance(self, *, v2: bool) -> dict[str, Any]:
        statuses = {
            "max_characters": self.max_characters,
            "max_media_attachments": 4,
            "characters_reserved_per_url": 23,
        }
        media = {
            "supported_mime_types": ["image/jpeg", "image/png", "image/gif", "image/webp"],
            "image_size_limit": _MEDIA_LIMIT,
            "description_limit": 1500,
        }
        host = urlsplit(self.url).netloc
        if not v2:
            return {
                "uri": host,
                "title": "Fake Mastodon",
                "version": "4.3.0",
                "configuration": {"statuses": statuses, "media_attachments": media},
            }
        return {
            "domain": host,
            "title": "Fake Mastodon",
            "version": "4.3.0",
            "source_url": "https://github.com/mastodon/mastodon",
            "usage": {"users": {"active_month": len(self._users)}},
            "api_versions": {"mastodon": 2},
            "configuration": {
                "urls": {"streaming": f"ws://{host}"},
                "accounts": {"max_featured_tags": 10, "max_pinned_statuses": 5},
                "statuses": statuses,
                "media_attachments": media,
                "translation": {"enabled": False},
            },
            "registrations": {"enabled": False, "approval_required": False, "message": None},
            "contact": {"email": "admin@example.org", "account": None},
            "rules": [],
        }

    def _account_json(self, user: MastodonUser, *, source: bool = False) -> dict[str, Any]:
        found: dict[str, Any] = {
            "id": user.id,
            "username": user.username,
            "acct": user.username,
            "display_name": user.username,
            "locked": False,
            "bot": True,
            "discoverable": True,
            "group": False,
            "created_at": "2024-01-01T00:00:00.000Z",
            "note": "",
            "url": f"{self.url}/@{user.username}",
            "uri": f"{self.url}/users/{user.username}",
            "avatar": f"{self.url}/avatars/original/missing.png",
            "avatar_static": f"{self.url}/avatars/original/missing.png",
            "header": f"{self.url}/headers/original/missing.png",
            "header_static": f"{self.url}/headers/original/missing.png",
            "followers_count": 0,
            "following_count": 0,
            "statuses_count": sum(
                1 for s in self._statuses.values() if s.account == user.name and not s.deleted
            ),
            "last_status_at": None,
            "emojis": [],
            "fields": [],
        }
        if source:
            found["source"] = {
                "privacy": "public",
                "sensitive": False,
                "language": user.language,
                "note": "",
                "fields": [],
                "follow_requests_count": 0,
            }
        return found

    def _me(self, user: MastodonUser, *_: Any) -> Response:
        with self._lock:
            return _json(self._account_json(user, source=True))

    def _upload(self, user: MastodonUser, params: dict[str, Any], *_: Any) -> Response:
        data = params.get("file")
        if not isinstance(data, bytes) or not data:
            return _error(422, "Validation failed: File can't be blank")
        description = params.get("description")
        if description is not None and not isinstance(description, str):
            return _error(422, "Validation failed: Description is invalid")
        if description is not None and len(description) > 1500:
            return _error(
                422, "Validation failed: Description is too long (maximum is 1500 characters)"
            )
        if len(data) > _MEDIA_LIMIT:
            return _error(422, "Validation failed: File file size must be less than 16 MB")
        mime, width, height = _sniff(data)
        if mime is None:
            return _error(422, "Validation failed: File content type is invalid, File is invalid")
        with self._lock:
            item = _Media(
                self._next_id(),
                user.name,
                data,
                mime,
                description or None,
                self.processing_polls,
                width=width,
                height=height,
                declared=params.get("file.content_type"),
            )
            self._media[item.id] = item
            return _json(self._media_json(item), 202 if item.polls_left > 0 else 200)

    def _media_json(self, item: _Media) -> dict[str, Any]:
        ready = item.polls_left <= 0
        base = f"{self.url}/system/media_attachments/files/{item.id}"
        meta = {}
        if item.width and item.height:
            meta = {"original": {"width": item.width, "height": item.height}}
        return {
            "id": item.id,
            "type": "image",
            "url": f"{base}/original/image.{item.mime.split('/')[1]}" if ready else None,
            "preview_url": f"{base}/small/image.{item.mime.split('/')[1]}",
            "remote_url": None,
            "preview_remote_url": None,
            "text_url": None,
            "meta": meta,
            "description": item.description,
            "blurhash": None,
        }

    def _own_media(self, user: MastodonUser, media_id: str) -> _Media | None:
        item = self._media.get(media_id)
        return item if item is not None and item.account == user.name else None

    def _get_media(self, user: MastodonUser, _p: Any, _h: Any, media_id: str) -> Response:
        with self._lock:
            item = self._own_media(user, media_id)
            if item is None:
                return _error(404, NOT_FOUND)
            if item.polls_left > 0:
                item.polls_left -= 1
                return _json(self._media_json(item), 206)
            return _json(self._media_json(item))

    def _put_media(
        self, user: MastodonUser, params: dict[str, Any], _h: Any, media_id: str
    ) -> Response:
        with self._lock:
            item = self._own_media(user, media_id)
            if item is None or item.status_id is not None:
                return _error(404, NOT_FOUND)
            description = params.get("description")
            if isinstance(description, str):
                if len(description) > 1500:
                    return _error(
                        422,
                        "Validation failed: Description is too long (maximum is 1500 characters)",
                    )
                item.description = description or None
            return _json(self._media_json(item))

    def _post_status(
        self, user: MastodonUser, params: dict[str, Any], headers: CaseInsensitiveDict[str]
    ) -> Response:
        now = time.time() + self.clock_skew
        key = headers.get("Idempotency-Key")
        with self._lock:
            if key:
                known = self._idempotency.get((user.name, key))
                if known is not None and known[1] > now - self.idempotency_ttl:
                    status = self._statuses[known[0]]
                    if status.deleted:
                        return _error(404, NOT_FOUND)
                    return _json(self._status_json(status))
            posted = [t for t in self._posted.get(user.name, []) if t > now - _STATUS_WINDOW]
            self._posted[user.name] = posted
            if len(posted) >= self.status_limit:
                response = _error(429, "Too many requests")
                response.headers.update(
                    {
                        "X-RateLimit-Limit": str(self.status_limit),
                        "X-RateLimit-Remaining": "0",
                        "X-RateLimit-Reset": _iso(posted[0] + _STATUS_WINDOW, micro=True),
                    }
                )
                return response
            text = params.get("status")
            text = text if isinstance(text, str) else ""
            raw_ids = params.get("media_ids[]", params.get("media_ids"))
            media_ids = (
                [str(m) for m in raw_ids]
                if isinstance(raw_ids, list)
                else ([str(raw_ids)] if raw_ids not in (None, "") else [])
            )
            if len(media_ids) > 4:
                return _error(422, TOO_MANY_MEDIA)
            found = [self._own_media(user, m) for m in media_ids]
            missing = [
                m
                for m, item in zip(media_ids, found, strict=True)
                if item is None or item.status_id
            ]
            if missing:
                return _error(
                    422,
                    f"Media {', '.join(missing)} not found or already attached to another post",
                )
            if any(item is not None and item.polls_left > 0 for item in found):
                return _error(422, NOT_PROCESSED)
            if not text.strip() and not media_ids:
                return _error(422, "Validation failed: Text can't be blank")
            if _length(text) > self.max_characters:
                return _error(
                    422,
                    f"Validation failed: Text character limit of {self.max_characters} exceeded",
                )
            reply_to = params.get("in_reply_to_id")
            reply_to = str(reply_to) if reply_to not in (None, "") else None
            if reply_to is not None:
                parent = self._statuses.get(reply_to)
                if parent is None or parent.deleted:
                    return _error(404, REPLY_GONE)
            language = params.get("language")
            if not (isinstance(language, str) and language in LANGUAGES):
                language = user.language
            status = _Status(
                self._next_id(now), user.name, text, language, reply_to, media_ids, now, key
            )
            for item in found:
                if item is not None:
                    item.status_id = status.id
            self._statuses[status.id] = status
            self._posted[user.name].append(now)
            if key:
                self._idempotency[(user.name, key)] = (status.id, now)
            return _json(self._status_json(status))

    def _visible(self, status_id: str) -> _Status | None:
        status = self._statuses.get(status_id)
        return status if status is not None and not status.deleted else None

    def _get_status(self, _u: MastodonUser | None, _p: Any, _h: Any, status_id: str) -> Response:
        with self._lock:
            status = self._visible(status_id)
            return _json(self._status_json(status)) if status else _error(404, NOT_FOUND)

    def _delete_status(self, user: MastodonUser, _p: Any, _h: Any, status_id: str) -> Response:
        with self._lock:
            status = self._visible(status_id)
            if status is None or status.account != user.name:
                return _error(404, NOT_FOUND)
            status.deleted = True
            for other in self._statuses.values():  # its reblogs go with it
                if other.reblog_of == status.id:
                    other.deleted = True
            answer = self._status_json(status)
            answer["text"] = status.text
            return _json(answer)

    def _own_reblog(self, user: MastodonUser, status_id: str) -> _Status | None:
        """Under the lock: ``user``'s live reblog of ``status_id``."""
        return next(
            (
                s
                for s in self._statuses.values()
                if s.account == user.name and s.reblog_of == status_id and not s.deleted
            ),
            None,
        )

    def _reblog(self, user: MastodonUser, _p: Any, _h: Any, status_id: str) -> Response:
        """``POST /api/v1/statuses/:id/reblog``: the reblog, a status of the account whose
        ``reblog`` is the original. Mastodon's ReblogService returns the account's existing
        reblog of that status when there is one (no second reblog), reblogs the original
        of a reblog, counts it in the 300-statuses-per-3-hours limit, and answers 404 for a
        missing or deleted status."""
        now = time.time() + self.clock_skew
        with self._lock:
            original = self._visible(status_id)
            if original is not None and original.reblog_of is not None:
                original = self._visible(original.reblog_of)
            if original is None:
                return _error(404, NOT_FOUND)
            existing = self._own_reblog(user, original.id)
            if existing is not None:
                return _json(self._status_json(existing))
            posted = [t for t in self._posted.get(user.name, []) if t > now - _STATUS_WINDOW]
            self._posted[user.name] = posted
            if len(posted) >= self.status_limit:
                response = _error(429, "Too many requests")
                response.headers.update(
                    {
                        "X-RateLimit-Limit": str(self.status_limit),
                        "X-RateLimit-Remaining": "0",
                        "X-RateLimit-Reset": _iso(posted[0] + _STATUS_WINDOW, micro=True),
                    }
                )
                return response
            reblog = _Status(
                self._next_id(now), user.name, "", None, None, [], now, reblog_of=original.id
            )
            self._statuses[reblog.id] = reblog
            self._posted[user.name].append(now)
            return _json(self._status_json(reblog))

    def _unreblog(self, user: MastodonUser, _p: Any, _h: Any, status_id: str) -> Response:
        """``POST /api/v1/statuses/:id/unreblog``: the original, no longer reblogged by the
        account (also when it was not); 404 for a missing or deleted status."""
        with self._lock:
            original = self._visible(status_id)
            if original is None:
                return _error(404, NOT_FOUND)
            reblog = self._own_reblog(user, original.id)
            if reblog is not None:
                reblog.deleted = True
            answer = self._status_json(original)
            answer["reblogged"] = False
            return _json(answer)

    def _account_statuses(
        self, _u: MastodonUser | None, params: dict[str, Any], _h: Any, account_id: str
    ) -> Response:
        with self._lock:
            owner = next((u for u in self._users.values() if u.id == account_id), None)
            if owner is None:
                return _error(404, NOT_FOUND)
            try:
                limit = max(1, min(40, int(params.get("limit") or 20)))
                bounds = {
                    k: int(params[k]) for k in ("max_id", "since_id", "min_id") if k in params
                }
            except (TypeError, ValueError):
                return _error(400, "Invalid parameter")
            truthy = {k for k, v in params.items() if str(v).lower() in ("1", "true")}
            found = [
                s
                for s in self._statuses.values()
                if s.account == owner.name
                and not s.deleted
                and ("exclude_reblogs" not in truthy or s.reblog_of is None)
                and ("exclude_replies" not in truthy or s.reply_to is None)
                and ("only_media" not in truthy or s.media_ids)
                and ("max_id" not in bounds or int(s.id) < bounds["max_id"])
                and ("since_id" not in bounds or int(s.id) > bounds["since_id"])
                and ("min_id" not in bounds or int(s.id) > bounds["min_id"])
            ]
            found.sort(key=lambda s: int(s.id), reverse=True)
            # min_id pages upward: the statuses just above it, still answered newest first
            page = found[-limit:] if "min_id" in bounds else found[:limit]
            response = _json([self._status_json(s) for s in page])
            if page:
                base = f"{self.url}/api/v1/accounts/{account_id}/statuses"
                keep = {
                    k: v for k, v in params.items() if k not in ("max_id", "since_id", "min_id")
                }
                next_url = f"{base}?{urlencode({**keep, 'max_id': page[-1].id}, doseq=True)}"
                prev_url = f"{base}?{urlencode({**keep, 'min_id': page[0].id}, doseq=True)}"
                response.headers["Link"] = f'<{next_url}>; rel="next", <{prev_url}>; rel="prev"'
            return response

    # -- rendering --------------------------------------------------------------------------

    def _status_json(self, status: _Status) -> dict[str, Any]:
        user = self._users[status.account]
        if status.reblog_of is not None:  # a reblog: empty, the original in ``reblog``
            answer = self._status_json(replace(status, reblog_of=None))
            answer.update(
                {
                    "content": "",
                    "language": None,
                    "uri": f"{self.url}/users/{user.username}/statuses/{status.id}/activity",
                    "url": None,
                    "reblog": self._status_json(self._statuses[status.reblog_of]),
                    "reblogged": True,
                }
            )
            return answer
        content, mentions, tags = self._render(status.text)
        parent = self._statuses.get(status.reply_to) if status.reply_to else None
        return {
            "id": status.id,
            "created_at": _iso(status.created_at),
            "in_reply_to_id": status.reply_to,
            "in_reply_to_account_id": self._users[parent.account].id if parent else None,
            "sensitive": False,
            "spoiler_text": "",
            "visibility": "public",
            "language": status.language,
            "uri": f"{self.url}/users/{user.username}/statuses/{status.id}",
            "url": f"{self.url}/@{user.username}/{status.id}",
            "replies_count": 0,
            "reblogs_count": 0,
            "favourites_count": 0,
            "edited_at": None,
            "content": content,
            "reblog": None,
            "application": {"name": "diplobot", "website": None},
            "account": self._account_json(user),
            "media_attachments": [self._media_json(self._media[m]) for m in status.media_ids],
            "mentions": mentions,
            "tags": tags,
            "emojis": [],
            "card": None,
            "poll": None,
        }

    def _render(self, text: str) -> tuple[str, list[dict[str, Any]], list[dict[str, Any]]]:
        """Mastodon's TextFormatter for a local plain-text status."""
        host = (urlsplit(self.url).hostname or "").lower()  # LOCAL_DOMAIN: no port
        mentions: list[dict[str, Any]] = []
        tags: list[dict[str, Any]] = []
        spans: list[tuple[int, int, str]] = []
        for match in _URL.finditer(text):
            url = match.group().rstrip(_TRAILING)
            spans.append((match.start(), match.start() + len(url), _link(url)))
        taken = lambda a, b: any(s < b and a < e for s, e, _ in spans)  # noqa: E731
        for match in _HASHTAG.finditer(text):
            if taken(match.start(), match.end()):
                continue
            name = match[1]
            url = f"{self.url}/tags/{name.lower()}"
            tags.append({"name": name.lower(), "url": url})
            anchor = (
                f'<a href="{url}" class="mention hashtag" rel="tag">'
                f"#<span>{html.escape(name)}</span></a>"
            )
            spans.append((match.start(), match.end(), anchor))
        for match in _MENTION.finditer(text):
            if taken(match.start(), match.end()):
                continue
            username, domain = match[1], (match[2] or "").lower()
            local = next(
                (
                    u
                    for u in self._users.values()
                    if u.username.lower() == username.lower() and domain in ("", host)
                ),
                None,
            )
            if local is not None:
                acct, url, account_id = local.username, f"{self.url}/@{local.username}", local.id
            elif f"{username}@{domain}".lower() in {k.lower() for k in self.remote}:
                acct = next(k for k in self.remote if k.lower() == f"{username}@{domain}".lower())
                url, account_id = self.remote[acct], str(200_000 + len(acct))
            else:
                continue  # an account the instance does not know: left as text
            short = acct.split("@")[0]
            mentions.append({"id": account_id, "username": short, "url": url, "acct": acct})
            anchor = (
                f'<span class="h-card" translate="no"><a href="{html.escape(url)}" '
                f'class="u-url mention">@<span>{html.escape(short)}</span></a></span>'
            )
            spans.append((match.start(), match.end(), anchor))
        out, at = [], 0
        for start, end, anchor in sorted(spans):
            out.append(_escape(text[at:start]))
            out.append(anchor)
            at = end
        out.append(_escape(text[at:]))
        rendered = "".join(out).strip()
        paragraphs = [p for p in re.split(r"\n\n+", rendered) if p.strip()]
        content = "".join(
            f"<p>{p.strip(chr(10)).replace(chr(10), '<br />')}</p>" for p in paragraphs
        )
        return content, mentions, tags

    def _next_id(self, moment: float | None = None) -> str:
        """A snowflake id, as Mastodon's: milliseconds since the epoch, shifted 16 bits."""
        ms = int((time.time() if moment is None else moment) * 1000)
        self._last_id = max(self._last_id + 1, ms << 16)
        return str(self._last_id)


def _link(url: str) -> str:
    """A URL as Mastodon's formatter writes it: the scheme and ``www.`` invisible, the rest
    cut to 30 characters with an ellipsis."""
    prefix = re.match(r"https?://(?:www\.)?", url, re.I)
    cut = prefix.end() if prefix else 0
    shown, hidden = url[cut:][:30], url[cut:][30:]
    klass = "ellipsis" if hidden else ""
    return (
        f'<a href="{html.escape(url)}" target="_blank" rel="nofollow noopener" translate="no">'
        f'<span class="invisible">{html.escape(url[:cut])}</span>'
        f'<span class="{klass}">{html.escape(shown)}</span>'
        f'<span class="invisible">{html.escape(hidden)}</span></a>'
    )


def _escape(text: str) -> str:
    return html.escape(text, quote=True).replace("&#x27;", "&#39;")


def _length(text: str) -> int:
    """As Mastodon's StatusLengthValidator: each URL 23, a remote mention its local part."""
    text = _URL.sub("x" * 23, text)
    return len(_MENTION.sub(lambda m: "@" + m[1], text))


def _iso(epoch: float, *, micro: bool = False) -> str:
    moment = datetime.fromtimestamp(epoch, UTC)
    if micro:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _json(payload: Any, status: int = 200) -> Response:
    return Response(status, json.dumps(payload, ensure_ascii=False).encode(), _JSON)


def _error(status: int, message: str) -> Response:
    return _json({"error": message}, status)


def _sniff(data: bytes) -> tuple[str | None, int | None, int | None]:
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return "image/png", width, height
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return "image/gif", width, height
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg", None, None
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp", None, None
    return None, None, None
