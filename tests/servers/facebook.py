"""A fake Facebook Graph API (Pages) on 127.0.0.1, as rude as the real one, for ``requests``.

:class:`FacebookServer` is a :class:`~servers.translate.FakeTranslationServer` (the shared HTTP
machinery: ``ThreadingHTTPServer`` on ``127.0.0.1:0``, context manager, ``calls``, ``errors``)
that speaks the Graph API of a few pages, each with its page access token::

    with FacebookServer(pages={"fr": FacebookPage("tok", "1000000000001", "FranceDiplo")}) as fb:
        requests.post(f"{fb.url}/1000000000001/feed", data={"message": "Bonjour"},
                      headers={"Authorization": "Bearer tok"})
        assert [p.text for p in fb.stored("fr")] == ["Bonjour"]

``fb.url`` is ``http://127.0.0.1:PORT/v21.0`` (no trailing slash): the stand-in for
``https://graph.facebook.com/v21.0``. A path without the version is refused, as a version the
fake does not speak.

What it checks, the way the Graph API does
------------------------------------------

* **The token**: ``Authorization: Bearer|OAuth <token>`` or ``access_token`` in the query or
  form. None → 400 ``#2500`` "An active access token must be used…"; an unknown one → 400
  ``#190`` "Invalid OAuth access token - Cannot parse access token"; an expired one
  (:meth:`FacebookServer.expire`) → 400 ``#190`` subcode 463 "Error validating access token:
  Session has expired…". Both answers carry ``WWW-Authenticate: OAuth "Facebook Platform"
  "invalid_token" …``.
* **appsecret_proof**: checked when given (400 ``#100`` "Invalid appsecret_proof provided in
  the API argument"); with ``require_proof=True`` (the app's "Require App Secret") a call
  without it → 400 ``#100`` "API calls from the server require an appsecret_proof argument".
* **The page**: a page token acts only on its own page; another page's id in ``/{page}/feed``
  → 403 ``#200`` (the pages_manage_posts permission answer).
* **Bodies**: a feed post needs ``message`` or ``attached_media`` (400 ``#100``); a message over
  63,206 characters → 400 ``#100``; each ``attached_media[n]`` must be the JSON
  ``{"media_fbid": ID}`` of an *unpublished* photo of the same page not yet used (400
  ``#100``); a photo needs a multipart ``source`` that is a JPEG, PNG, GIF or WEBP of at most
  10 MB (400 ``#324`` "Missing or invalid image file"); ``alt_text_custom`` is kept as the
  photo's alt text; ``published`` must be ``true`` or ``false``.
* **Duplicates**: a feed post whose message is the message of the page's *last* live post →
  400 ``#506`` "Duplicate status message" (subcode 1455006), as Facebook does.
* **Missing objects**: GET/DELETE/comment on an id that does not exist (or was deleted) → 400
  ``#100`` subcode 33 "Unsupported get|post|delete request. Object with ID '…' does not
  exist…".
* **Fields**: ``fields`` is parsed with field expansion (``attachments{media_type}``,
  ``comments.filter(stream).limit(100){id,message}``); a field a node does not have → 400
  ``#100`` "Tried accessing nonexisting field (…) on node type (…)". Comments are
  ``toplevel`` unless ``filter(stream)``; a reply to a reply attaches to the top-level comment,
  as Facebook flattens them.
* **Usage headers** on every answer: ``X-App-Usage`` and ``X-Business-Use-Case-Usage``
  (``{PAGE: [{"type": "pages", "call_count", "total_cputime", "total_time",
  "estimated_time_to_regain_access"}]}``).

Endpoints
---------

============================================  ==============================================
``GET /me``                                   the token's page: ``id``, ``name``, ``username``
``GET /debug_token?input_token=``             ``{"data": {"app_id", "type": "PAGE",
                                              "profile_id", "is_valid", "expires_at",
                                              "data_access_expires_at", "scopes", …}}``
``POST /{page}/feed``                         ``message``, ``attached_media[n]`` →
                                              ``{"id": "PAGE_POST"}``
``POST /{page}/photos``                       multipart ``source``, ``caption``,
                                              ``published``, ``alt_text_custom`` →
                                              ``{"id": PHOTO, "post_id": "PAGE_POST"}`` (or
                                              ``{"id": PHOTO}`` when unpublished)
``POST /{object}/comments``                   ``message``, ``attachment_id`` (an unpublished
                                              photo) → ``{"id": "POST_COMMENT"}``
``GET /{page}/published_posts``, ``/feed``    newest first; ``fields``, ``limit`` (≤ 100),
                                              ``since``, ``until`` (epoch seconds), ``after``
                                              cursor; ``paging.cursors`` and ``paging.next``
``GET /{object}``, ``GET /{object}/comments`` one post or comment; a post's comments
``DELETE /{object}``                          own post or comment → ``{"success": true}``
============================================  ==============================================

Faults
------

``fb.fail_next(kind, count=1, *, method=None, path=None, regain=15)`` answers the next
``count`` requests matching ``method`` and ``path`` (``fnmatch``, without the version:
``"/*/feed"``) with:

===================  ===========================================================================
``"4"``, ``"17"``,   the rate-limit error of that code (#4 application, #17 user, #32 page,
``"32"``, ``"341"``, #341 feed action, #613, #80001 Pages BUC), with usage headers at 100 % and
``"613"``,           ``estimated_time_to_regain_access`` = ``regain`` minutes
``"80001"``
``"506"``            the duplicate refusal
``"190"``            the expired-token error (subcode 463)
``"200"``            the missing-permission error (403)
``"100"``            an invalid-parameter error
``"500"``, ``"503"`` ``#1`` "An unknown error occurred" / ``#2`` "Service temporarily
                     unavailable" (``is_transient: true``); nothing stored
``drop_after_store`` process the request (a post IS stored), close without answering
``drop``             close without processing
``hang``             never answer (until the server stops)
``malformed``        200 with JSON cut off (nothing stored)
``trickle``          process the request (a post IS stored), then send the answer one byte
                     every ``seconds``: no read timeout ever fires
===================  ===========================================================================

Inspection: ``fb.stored(name)`` the page's live posts and comments, oldest first, as
:class:`StoredPost`; ``fb.photo(id)``; ``fb.requests`` every request as :class:`GraphRequest`;
``fb.errors`` the fake's own failures (a bug in the fake).
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import hmac
import itertools
import json
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

from requests.structures import CaseInsensitiveDict

from servers.translate import Call, FakeTranslationServer, Response, _Handler

VERSION = "v21.0"
MAX_MESSAGE = 63_206
MAX_PHOTO = 10 * 1024 * 1024
_JSON = "application/json; charset=UTF-8"
_IMAGE_MAGIC = {
    b"\xff\xd8\xff": "image/jpeg",
    b"\x89PNG\r\n\x1a\n": "image/png",
    b"GIF87a": "image/gif",
    b"GIF89a": "image/gif",
}
_RATE_MESSAGES = {
    4: "(#4) Application request limit reached",
    17: "(#17) User request limit reached",
    32: "(#32) Page request limit reached",
    341: "(#341) Feed action request limit reached",
    613: "(#613) Calls to this api have exceeded the rate limit.",
    80001: "There have been too many calls to this Page account. Wait a bit and try again. "
    "For more info, please refer to https://developers.facebook.com/docs/graph-api/overview/"
    "rate-limiting.",
}
_POST_FIELDS = frozenset(
    {
        "id",
        "message",
        "created_time",
        "updated_time",
        "permalink_url",
        "attachments",
        "comments",
        "from",
        "is_published",
        "status_type",
    }
)
_COMMENT_FIELDS = frozenset(
    {"id", "message", "created_time", "from", "parent", "attachment", "comments", "can_remove"}
)
_PAGE_FIELDS = frozenset({"id", "name", "username", "link"})
_ATTACHMENT_FIELDS = frozenset(
    {"media_type", "type", "subattachments", "target", "media", "description", "url"}
)


@dataclass
class FacebookPage:
    """A page the fake knows, and its page access token (its debug_token facts too)."""

    token: str
    id: str
    username: str | None = None
    name: str = "Page"
    expires_at: int = 0  # epoch seconds; 0: never (a token made from a long-lived user token)
    data_access_expires_at: int = 0
    scopes: tuple[str, ...] = (
        "pages_manage_posts",
        "pages_read_engagement",
        "pages_manage_engagement",
        "pages_show_list",
    )
    type: str = "PAGE"
    expired: bool = False


@dataclass(frozen=True)
class StoredPost:
    """A post or comment as the fake holds it."""

    id: str
    text: str
    alts: tuple[str, ...]
    reply_to: str | None  # for a comment: the object it was posted on (flattened)
    created: float


@dataclass(frozen=True)
class GraphRequest:
    method: str
    path: str  # without the version
    params: dict[str, Any]
    page: str | None  # the token's page name, when the token was valid
    status: int | None  # None: no answer (a drop)
    fault: str | None


@dataclass
class _Photo:
    id: str
    page: str
    data: bytes
    mime: str
    alt: str | None
    published: bool
    used: bool = False


@dataclass
class _Object:
    """A post (``post`` is None) or a comment (``post``: the post it is under)."""

    id: str
    page: str
    message: str
    created: float
    photos: list[_Photo]
    post: str | None = None
    parent: str | None = None  # a reply: the top-level comment it is under
    deleted: bool = False


@dataclass(frozen=True)
class _Fault:
    kind: str
    method: str | None
    path: str | None
    regain: int
    seconds: float = 0.5

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (
            self.path is None or fnmatchcase(path, self.path)
        )


class GraphError(Exception):
    """An error answer of the Graph API (raised inside the fake's handlers)."""

    def __init__(
        self,
        status: int,
        code: int,
        message: str,
        *,
        subcode: int | None = None,
        kind: str = "OAuthException",
        transient: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.subcode = status, code, message, subcode
        self.kind, self.transient, self.headers = kind, transient, dict(headers or {})


def _missing(verb: str, object_id: str) -> GraphError:
    return GraphError(
        400,
        100,
        f"Unsupported {verb} request. Object with ID '{object_id}' does not exist, cannot be "
        "loaded due to missing permissions, or does not support this operation. Please read "
        "the Graph API documentation at https://developers.facebook.com/docs/graph-api",
        subcode=33,
        kind="GraphMethodException",
    )


def _invalid(message: str) -> GraphError:
    return GraphError(400, 100, message)


def _time(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


# -- field expansion ----------------------------------------------------------------------------


@dataclass
class _Field:
    name: str
    modifiers: dict[str, str] = field(default_factory=dict)
    fields: dict[str, _Field] | None = None


def parse_fields(text: str) -> dict[str, _Field]:
    """``a,b{c},comments.filter(stream).limit(5){id}`` → name → :class:`_Field`.

    Raises:
        GraphError: the syntax is broken (#100, as Facebook answers it).
    """
    found, end = _parse_list(text, 0)
    if end != len(text):
        raise _invalid(f'Syntax error "Expected end of string instead of "{text[end:]}"."')
    return found


def _parse_list(text: str, at: int) -> tuple[dict[str, _Field], int]:
    found: dict[str, _Field] = {}
    while at < len(text):
        start = at
        while at < len(text) and (text[at].isalnum() or text[at] == "_"):
            at += 1
        if at == start:
            raise _invalid(f'Syntax error "Field name expected at character {at}."')
        item = _Field(text[start:at])
        while at < len(text) and text[at] == ".":
            close = text.find(")", at)
            open_ = text.find("(", at)
            if open_ < 0 or close < open_:
                raise _invalid(f'Syntax error "Expected "(" at character {at}."')
            item.modifiers[text[at + 1 : open_]] = text[open_ + 1 : close]
            at = close + 1
        if at < len(text) and text[at] == "{":
            item.fields, at = _parse_list(text, at + 1)
            if at >= len(text) or text[at] != "}":
                raise _invalid('Syntax error "Expected "}" instead of end of string."')
            at += 1
        found[item.name] = item
        if at < len(text) and text[at] == ",":
            at += 1
            continue
        break
    return found, at


def _check_fields(fields: Mapping[str, _Field], allowed: frozenset[str], node: str) -> None:
    for name in fields:
        if name not in allowed:
            raise _invalid(
                f"(#100) Tried accessing nonexisting field ({name}) on node type ({node})"
            )


# -- the server -------------------------------------------------------------------------------


class FacebookServer(FakeTranslationServer):
    """The Graph API of ``pages`` (the name tests use → :class:`FacebookPage`)."""

    FAULTS: ClassVar[frozenset[str]] = frozenset(
        {"drop_after_store", "drop", "hang", "malformed", "trickle"}
    )
    CODES: ClassVar[frozenset[str]] = frozenset(
        {"4", "17", "32", "341", "613", "80001", "506", "190", "200", "100", "500", "503"}
    )

    def __init__(
        self,
        *,
        pages: Mapping[str, FacebookPage],
        app_id: str = "555000111",
        app_secret: str = "app-secret",
        require_proof: bool = False,
    ) -> None:
        super().__init__()
        self.pages = dict(pages)
        self.app_id = app_id
        self.app_secret = app_secret
        #: The app's "Require App Secret" setting: every call must carry ``appsecret_proof``.
        self.require_proof = require_proof
        self._objects: dict[str, _Object] = {}
        self._photos: dict[str, _Photo] = {}
        self._requests: list[GraphRequest] = []
        self._graph_faults: list[_Fault] = []
        self._ids = itertools.count(1)
        self._calls_made = 0

    @property
    def url(self) -> str:
        return super().url + VERSION

    # -- scripting and inspection ---------------------------------------------------------

    def fail_next(
        self,
        kind: str,
        count: int = 1,
        *,
        method: str | None = None,
        path: str | None = None,
        regain: int = 15,
        seconds: float = 0.5,
    ) -> None:
        if kind not in self.FAULTS and kind not in self.CODES:
            valid = ", ".join(sorted(self.FAULTS | self.CODES))
            raise ValueError(f"unknown fault {kind!r}: use one of {valid}")
        with self._lock:
            self._graph_faults.extend(
                [_Fault(kind, method.upper() if method else None, path, regain, seconds)] * count
            )

    def expire(self, name: str) -> None:
        """The page's token is refused from now on (#190, subcode 463)."""
        self.pages[name].expired = True

    @property
    def requests(self) -> list[GraphRequest]:
        with self._lock:
            return list(self._requests)

    def stored(self, name: str) -> list[StoredPost]:
        """The page's live posts and comments, oldest first."""
        page = self.pages[name].id
        with self._lock:
            live = [o for o in self._objects.values() if o.page == page and not o.deleted]
            return [
                StoredPost(
                    o.id,
                    o.message,
                    tuple(p.alt or "" for p in o.photos),
                    (o.parent or o.post) if o.post else None,
                    o.created,
                )
                for o in sorted(live, key=lambda o: (o.created, o.id))
            ]

    def photo(self, photo_id: str) -> _Photo:
        with self._lock:
            return self._photos[photo_id]

    def add_post(self, name: str, message: str, *, created: float | None = None) -> str:
        """Put a post on the page directly (as if published elsewhere); its id."""
        page = self.pages[name].id
        with self._lock:
            post = _Object(self._post_id(page), page, message, created or time.time(), [])
            self._objects[post.id] = post
            return post.id

    def add_comment(self, name: str, on: str, message: str, *, author: str) -> str:
        """A comment by someone else (``author``: a user id) on a post of the page."""
        with self._lock:
            target = self._objects[on]
            comment = _Object(
                f"{on.split('_')[-1]}_{next(self._ids)}",
                author,
                message,
                time.time(),
                [],
                post=target.post or target.id,
            )
            self._objects[comment.id] = comment
            return comment.id

    # -- serving --------------------------------------------------------------------------

    def _serve(self, handler: _Handler) -> None:
        split = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length > 0 else b""
        headers: CaseInsensitiveDict[str] = CaseInsensitiveDict(dict(handler.headers.items()))
        params: dict[str, Any] = {
            k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()
        }
        files: dict[str, tuple[str, bytes]] = {}
        body_error: GraphError | None = None
        try:
            form, files = _parse_body(raw, headers.get("Content-Type", ""))
            params.update(form)
        except GraphError as exc:
            body_error = exc
        method = handler.command
        path = split.path
        version, _, rest = path.lstrip("/").partition("/")
        path = "/" + rest
        with self._lock:
            fault = next((f for f in self._graph_faults if f.matches(method, path)), None)
            if fault is not None:
                self._graph_faults.remove(fault)
            call = Call(
                method, path, params, params or None, headers, fault.kind if fault else None
            )
            self._calls.append(call)
        kind = fault.kind if fault else None
        handler.close_connection = kind in ("drop", "drop_after_store", "hang")
        page: str | None = None

        def record(status: int | None) -> None:
            with self._lock:
                self._requests.append(GraphRequest(method, path, params, page, status, kind))

        if kind in ("drop", "hang"):
            record(None)
            if kind == "hang":
                self._stopping.wait()
            return
        try:
            if version != VERSION:
                raise GraphError(400, 2635, f"Unknown version: {version}", kind="OAuthException")
            name = self._authenticate(headers, params)
            page = name
            self._check_proof(self.pages[name], params)
            if fault is not None and kind not in ("drop_after_store", "trickle"):
                response = self._fault(fault, self.pages[name])
            else:
                if body_error is not None:
                    raise body_error
                response = self._route(method, path, params, files, self.pages[name])
        except GraphError as exc:
            response = _error_response(exc)
        except Exception as exc:  # a bug in the fake
            self.errors.append(exc)
            response = Response(500, traceback.format_exc().encode(), "text/plain")
        if kind == "drop_after_store":
            record(None)
            return
        if page is not None and kind not in ("malformed",):
            response.headers.update(self._usage(self.pages[page], fault))
        record(response.status)
        if kind == "trickle" and fault is not None:
            self._trickle(handler, response, fault.seconds)
            return
        self._write(handler, response)

    def _trickle(self, handler: _Handler, response: Response, seconds: float) -> None:
        """The status line and headers at once, then the body one byte every ``seconds``:
        no read timeout ever fires."""
        handler.close_connection = True
        try:
            handler.send_response(response.status)
            handler.send_header("Content-Type", response.content_type)
            handler.send_header("Content-Length", str(len(response.body)))
            handler.send_header("Connection", "close")
            for name, value in response.headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.flush()
            for byte in response.body:
                if self._stopping.wait(seconds):
                    return
                handler.wfile.write(bytes([byte]))
                handler.wfile.flush()
        except ConnectionError:  # the client gave up, as it should
            pass

    def _usage(self, page: FacebookPage, fault: _Fault | None) -> dict[str, str]:
        with self._lock:
            self._calls_made += 1
            count = min(60, self._calls_made // 10)  # a busy page, well under its limit
        limited = fault is not None and fault.kind in ("4", "17", "32", "341", "613", "80001")
        share = 100 if limited else count
        regain = fault.regain if limited and fault is not None else 0
        business = {
            page.id: [
                {
                    "type": "pages",
                    "call_count": share,
                    "total_cputime": 1,
                    "total_time": 1,
                    "estimated_time_to_regain_access": regain,
                }
            ]
        }
        app = {"call_count": share, "total_cputime": 1, "total_time": 1}
        return {
            "X-Business-Use-Case-Usage": json.dumps(business),
            "X-App-Usage": json.dumps(app),
            "facebook-api-version": VERSION,
        }

    def _fault(self, fault: _Fault, page: FacebookPage) -> Response:
        kind = fault.kind
        if kind == "malformed":
            return Response(200, b'{"id": "', _JSON)
        code = int(kind)
        if code in (4, 17, 32, 341, 613, 80001):
            return _error_response(
                GraphError(
                    403 if code == 4 else 400,
                    code,
                    _RATE_MESSAGES[code],
                    subcode=2446079 if code == 80001 else None,
                    transient=True,
                )
            )
        if code == 506:
            return _error_response(_duplicate())
        if code == 190:
            return _error_response(_expired(page))
        if code == 200:
            return _error_response(_permission())
        if code == 100:
            return _error_response(_invalid("(#100) Invalid parameter"))
        if code == 500:
            return _error_response(GraphError(500, 1, "An unknown error occurred", transient=True))
        return _error_response(
            GraphError(503, 2, "Service temporarily unavailable", transient=True)
        )

    def _authenticate(self, headers: Mapping[str, str], params: Mapping[str, Any]) -> str:
        """The name of the page whose token the request carries."""
        token = params.get("access_token")
        auth = headers.get("Authorization", "")
        scheme, _, value = auth.partition(" ")
        if scheme.lower() in ("bearer", "oauth") and value:
            token = value.strip()
        if not token:
            raise GraphError(
                400,
                2500,
                "An active access token must be used to query information about the current user.",
            )
        for name, page in self.pages.items():
            if page.token == token:
                if page.expired:
                    raise _expired(page)
                return name
        raise GraphError(
            400,
            190,
            "Invalid OAuth access token - Cannot parse access token",
            headers={
                "WWW-Authenticate": 'OAuth "Facebook Platform" "invalid_token" '
                '"Invalid OAuth access token - Cannot parse access token"'
            },
        )

    def _check_proof(self, page: FacebookPage, params: Mapping[str, Any]) -> None:
        """``appsecret_proof``: HMAC-SHA256 of the token keyed by the app secret, checked when
        given, required when the app says so."""
        proof = params.get("appsecret_proof")
        if proof is None:
            if self.require_proof:
                raise GraphError(
                    400,
                    100,
                    "API calls from the server require an appsecret_proof argument",
                    kind="GraphMethodException",
                )
            return
        expected = hmac.new(
            self.app_secret.encode(), page.token.encode(), hashlib.sha256
        ).hexdigest()
        if not hmac.compare_digest(str(proof), expected):
            raise GraphError(
                400,
                100,
                "Invalid appsecret_proof provided in the API argument",
                kind="GraphMethodException",
            )

    # -- endpoints ------------------------------------------------------------------------

    def _route(
        self,
        method: str,
        path: str,
        params: dict[str, Any],
        files: dict[str, tuple[str, bytes]],
        page: FacebookPage,
    ) -> Response:
        parts = [p for p in path.split("/") if p]
        if parts == ["me"] and method == "GET":
            return self._me(page, params)
        if parts == ["debug_token"] and method == "GET":
            return self._debug_token(params)
        if len(parts) == 2 and parts[1] in ("feed", "photos") and method == "POST":
            if parts[0] not in (page.id, "me") or "pages_manage_posts" not in page.scopes:
                raise _permission()
            if parts[1] == "feed":
                return self._feed(page, params)
            return self._upload(page, params, files)
        if len(parts) == 2 and parts[1] in ("feed", "published_posts") and method == "GET":
            if parts[0] not in (page.id, "me"):
                raise _permission()
            _require(page, "pages_read_engagement")
            return self._list(page, params)
        if len(parts) == 2 and parts[1] == "comments":
            if method == "POST":
                _require(page, "pages_manage_engagement")
                return self._comment(page, parts[0], params)
            _require(page, "pages_read_engagement")
            if method == "GET":
                return self._comments(page, parts[0], params)
        if len(parts) == 1 and method in ("GET", "DELETE"):
            if method == "DELETE":
                return self._delete(page, parts[0])
            return self._get(page, parts[0], params)
        verb = {"POST": "post", "DELETE": "delete"}.get(method, "get")
        raise _missing(verb, parts[0] if parts else "")

    def _me(self, page: FacebookPage, params: Mapping[str, Any]) -> Response:
        fields = parse_fields(params.get("fields") or "id,name")
        _check_fields(fields, _PAGE_FIELDS, "Page")
        full = {
            "id": page.id,
            "name": page.name,
            "username": page.username,
            "link": f"https://www.facebook.com/{page.username or page.id}",
        }
        return _json({k: full[k] for k in fields if full.get(k) is not None})

    def _debug_token(self, params: Mapping[str, Any]) -> Response:
        token = params.get("input_token")
        if not token:
            raise _invalid("(#100) The parameter input_token is required")
        found = next((p for p in self.pages.values() if p.token == token), None)
        if found is None:
            return _json(
                {
                    "data": {
                        "error": {
                            "code": 190,
                            "message": "Invalid OAuth access token - Cannot parse access token",
                        },
                        "is_valid": False,
                        "scopes": [],
                    }
                }
            )
        data: dict[str, Any] = {
            "app_id": self.app_id,
            "type": found.type,
            "application": "diplobot",
            "data_access_expires_at": found.data_access_expires_at,
            "expires_at": found.expires_at,
            "is_valid": not found.expired,
            "issued_at": int(time.time()) - 86_400,
            "profile_id": found.id,
            "scopes": list(found.scopes),
            "user_id": "100000000000042",
        }
        if found.expired:
            data["error"] = {"code": 190, "subcode": 463, "message": "Session has expired"}
        return _json({"data": data})

    def _feed(self, page: FacebookPage, params: Mapping[str, Any]) -> Response:
        message = params.get("message")
        if message is not None and not isinstance(message, str):
            raise _invalid("(#100) param message must be a string.")
        attached: list[_Photo] = []
        for index in itertools.count():
            raw = params.get(f"attached_media[{index}]")
            if raw is None:
                break
            attached.append(self._attachable(page, raw, f"attached_media[{index}]"))
        stray = [
            k
            for k in params
            if k.startswith("attached_media")
            and k not in {f"attached_media[{i}]" for i in range(len(attached))}
        ]
        if stray:
            raise _invalid(f"(#100) param {stray[0]} is not a valid attached_media index")
        if not message and not attached:
            raise _invalid("(#100) Missing message or attachment")
        self._check_message(message or "")
        with self._lock:
            self._check_duplicate(page, message or "")
            post = _Object(self._post_id(page.id), page.id, message or "", time.time(), attached)
            for photo in attached:
                photo.used = True
            self._objects[post.id] = post
        return _json({"id": post.id})

    def _attachable(self, page: FacebookPage, raw: Any, name: str) -> _Photo:
        try:
            value = json.loads(raw) if isinstance(raw, str) else None
        except ValueError:
            value = None
        fbid = value.get("media_fbid") if isinstance(value, dict) else None
        with self._lock:
            photo = self._photos.get(str(fbid)) if fbid is not None else None
        if photo is None or photo.page != page.id or photo.published or photo.used:
            raise _invalid(f"(#100) param {name} must be a valid unpublished photo media_fbid")
        return photo

    def _check_message(self, message: str) -> None:
        if len(message) > MAX_MESSAGE:
            raise _invalid(f"(#100) The message is too long: it may hold {MAX_MESSAGE} characters")

    def _check_duplicate(self, page: FacebookPage, message: str) -> None:
        """Facebook refuses a status identical to the page's last one (lock held)."""
        posts = [
            o
            for o in self._objects.values()
            if o.page == page.id and o.post is None and not o.deleted
        ]
        if message and posts and max(posts, key=lambda o: o.created).message == message:
            raise _duplicate()

    def _upload(
        self, page: FacebookPage, params: Mapping[str, Any], files: Mapping[str, tuple[str, bytes]]
    ) -> Response:
        if "url" in params:
            raise _invalid("(#100) This fake takes images as a multipart source only")
        source = files.get("source")
        if source is None:
            raise GraphError(400, 324, "(#324) Requires upload file")
        data = source[1]
        mime = next((m for magic, m in _IMAGE_MAGIC.items() if data.startswith(magic)), None)
        if mime is None and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            mime = "image/webp"
        if mime is None or len(data) > MAX_PHOTO:
            raise GraphError(400, 324, "(#324) Missing or invalid image file")
        published = params.get("published", "true")
        if published not in ("true", "false", "1", "0"):
            raise _invalid("(#100) param published must be a boolean")
        is_published = published in ("true", "1")
        caption = params.get("caption") or ""
        self._check_message(caption)
        alt = params.get("alt_text_custom")
        with self._lock:
            photo = _Photo(
                str(next(self._ids) + 900_000_000), page.id, data, mime, alt, is_published
            )
            self._photos[photo.id] = photo
            if not is_published:
                return _json({"id": photo.id})
            post = _Object(self._post_id(page.id), page.id, caption, time.time(), [photo])
            photo.used = True
            self._objects[post.id] = post
        return _json({"id": photo.id, "post_id": post.id})

    def _comment(self, page: FacebookPage, on: str, params: Mapping[str, Any]) -> Response:
        message = params.get("message") or ""
        attachment = params.get("attachment_id")
        photos: list[_Photo] = []
        if attachment is not None:
            photos.append(
                self._attachable(page, json.dumps({"media_fbid": attachment}), "attachment_id")
            )
        if not message and not photos:
            raise _invalid("(#100) Missing message or attachment")
        self._check_message(message)
        with self._lock:
            target = self._objects.get(on)
            if target is None or target.deleted:
                raise _missing("post", on)
            top = target.post or target.id  # the post the thread is under
            if target.post is not None:
                # A reply to a reply is attached to the top-level comment.
                parent: str | None = target.parent or target.id
            else:
                parent = None
            number = next(self._ids)
            comment = _Object(
                f"{top.split('_')[-1]}_{number}",
                page.id,
                message,
                time.time(),
                photos,
                post=top,
                parent=parent,
            )
            for photo in photos:
                photo.used = True
            self._objects[comment.id] = comment
        return _json({"id": comment.id})

    def _list(self, page: FacebookPage, params: Mapping[str, Any]) -> Response:
        fields = parse_fields(params.get("fields") or "id,message,created_time")
        _check_fields(fields, _POST_FIELDS, "Post")
        try:
            limit = int(params.get("limit") or 25)
            since = float(params["since"]) if params.get("since") else None
            until = float(params["until"]) if params.get("until") else None
            after = int(params["after"]) if params.get("after") else 0
        except ValueError:
            raise _invalid("(#100) param limit, since, until or after is not a number") from None
        if not 1 <= limit <= 100:
            raise _invalid("(#100) The parameter limit must be between 1 and 100")
        with self._lock:
            posts = sorted(
                (
                    o
                    for o in self._objects.values()
                    if o.page == page.id
                    and o.post is None
                    and not o.deleted
                    and (since is None or o.created >= since)
                    and (until is None or o.created <= until)
                ),
                key=lambda o: (o.created, o.id),
                reverse=True,
            )
            chunk = posts[after : after + limit]
            data = [self._render(o, fields) for o in chunk]
        answer: dict[str, Any] = {"data": data}
        if chunk:
            answer["paging"] = {"cursors": {"before": str(after), "after": str(after + len(chunk))}}
            if after + len(chunk) < len(posts):
                answer["paging"]["next"] = (
                    f"https://graph.facebook.com/{VERSION}/{page.id}/published_posts"
                    f"?limit={limit}&after={after + len(chunk)}"
                )
        return _json(answer)

    def _get(self, page: FacebookPage, object_id: str, params: Mapping[str, Any]) -> Response:
        with self._lock:
            found = self._objects.get(object_id)
            if found is None or found.deleted:
                raise _missing("get", object_id)
            is_post = found.post is None
            fields = parse_fields(params.get("fields") or "id,message,created_time")
            _check_fields(
                fields,
                _POST_FIELDS if is_post else _COMMENT_FIELDS,
                "Post" if is_post else "Comment",
            )
            return _json(self._render(found, fields))

    def _comments(self, page: FacebookPage, object_id: str, params: Mapping[str, Any]) -> Response:
        """``GET /{object}/comments``: ``filter`` (toplevel, stream), ``order``
        (chronological, reverse_chronological), ``limit`` (≤ 100), ``after`` cursor."""
        fields = parse_fields(params.get("fields") or "id,message,created_time,from")
        _check_fields(fields, _COMMENT_FIELDS, "Comment")
        order = params.get("order") or "chronological"
        if order not in ("chronological", "reverse_chronological"):
            raise _invalid(
                "(#100) order must be one of the following values: chronological, "
                "reverse_chronological"
            )
        try:
            limit = int(params.get("limit") or 25)
            after = int(params["after"]) if params.get("after") else 0
        except ValueError:
            raise _invalid("(#100) param limit or after is not a number") from None
        if not 1 <= limit <= 100:
            raise _invalid("(#100) The parameter limit must be between 1 and 100")
        with self._lock:
            found = self._objects.get(object_id)
            if found is None or found.deleted:
                raise _missing("get", object_id)
            rendered = self._render_comments(found, fields, params.get("filter") or "toplevel")
        data = rendered["data"]
        if order == "reverse_chronological":
            data.reverse()
        chunk = data[after : after + limit]
        answer: dict[str, Any] = {"data": chunk}
        if chunk:
            answer["paging"] = {"cursors": {"before": str(after), "after": str(after + len(chunk))}}
            if after + len(chunk) < len(data):
                answer["paging"]["next"] = (
                    f"https://graph.facebook.com/{VERSION}/{object_id}/comments"
                    f"?limit={limit}&after={after + len(chunk)}"
                )
        return _json(answer)

    def _delete(self, page: FacebookPage, object_id: str) -> Response:
        with self._lock:
            found = self._objects.get(object_id)
            if found is None or found.deleted:
                raise _missing("delete", object_id)
            if found.page != page.id and (
                found.post is None or self._objects[found.post].page != page.id
            ):
                raise _permission()
            found.deleted = True
            for other in self._objects.values():  # a post's comments go with it
                if other.post == object_id or other.parent == object_id:
                    other.deleted = True
        return _json({"success": True})

    # -- rendering (lock held) ------------------------------------------------------------

    def _render(self, obj: _Object, fields: Mapping[str, _Field]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, item in fields.items():
            if name == "id":
                out["id"] = obj.id
            elif name == "message":
                if obj.message:
                    out["message"] = obj.message
            elif name == "created_time":
                out["created_time"] = _time(obj.created)
            elif name == "updated_time":
                out["updated_time"] = _time(obj.created)
            elif name == "permalink_url":
                out["permalink_url"] = f"https://www.facebook.com/{obj.id}"
            elif name == "is_published":
                out["is_published"] = True
            elif name == "status_type":
                out["status_type"] = "added_photos" if obj.photos else "mobile_status_update"
            elif name == "from":
                owner = next((p for p in self.pages.values() if p.id == obj.page), None)
                out["from"] = {"name": owner.name if owner else "Someone", "id": obj.page}
            elif name == "parent":
                if obj.parent:
                    out["parent"] = {"id": obj.parent}
            elif name == "can_remove":
                out["can_remove"] = True
            elif name == "attachments" and obj.post is None:
                if obj.photos:
                    out["attachments"] = {"data": [self._attachment(obj, item.fields)]}
            elif name == "attachment" and obj.post is not None:
                if obj.photos:
                    out["attachment"] = self._photo_attachment(obj.photos[0], item.fields)
            elif name == "comments":
                sub = item.fields or parse_fields("id,message,created_time")
                _check_fields(sub, _COMMENT_FIELDS, "Comment")
                rendered = self._render_comments(obj, sub, item.modifiers.get("filter", "toplevel"))
                if rendered["data"]:
                    limit = int(item.modifiers.get("limit", "25"))
                    rendered["data"] = rendered["data"][:limit]
                    out["comments"] = rendered
        return out

    def _render_comments(
        self, obj: _Object, fields: Mapping[str, _Field], filter_: str
    ) -> dict[str, Any]:
        if filter_ not in ("toplevel", "stream"):
            raise _invalid("(#100) filter must be one of the following values: toplevel, stream")
        if obj.post is None:
            under = [c for c in self._objects.values() if c.post == obj.id and not c.deleted]
            if filter_ == "toplevel":
                under = [c for c in under if c.parent is None]
        else:
            under = [c for c in self._objects.values() if c.parent == obj.id and not c.deleted]
        under.sort(key=lambda c: (c.created, c.id))
        data = [self._render(c, fields) for c in under]
        answer: dict[str, Any] = {"data": data}
        if data:
            answer["paging"] = {"cursors": {"before": "MAZDZD", "after": "MQZDZD"}}
        return answer

    def _attachment(self, obj: _Object, fields: Mapping[str, _Field] | None) -> dict[str, Any]:
        wanted = fields or parse_fields("media_type,type,target")
        _check_fields(wanted, _ATTACHMENT_FIELDS, "StoryAttachment")
        if len(obj.photos) == 1:
            return self._photo_attachment(obj.photos[0], wanted)
        full: dict[str, Any] = {
            "media_type": "album",
            "type": "album",
            "target": {"id": obj.id.split("_")[-1]},
            "url": f"https://www.facebook.com/{obj.id}",
            "subattachments": {
                "data": [
                    self._photo_attachment(p, parse_fields("media_type,type,target,description"))
                    for p in obj.photos
                ]
            },
        }
        return {k: v for k, v in full.items() if k in wanted}

    @staticmethod
    def _photo_attachment(photo: _Photo, fields: Mapping[str, _Field] | None) -> dict[str, Any]:
        wanted = fields or parse_fields("media_type,type,target")
        full: dict[str, Any] = {
            "media_type": "photo",
            "type": "photo",
            "target": {
                "id": photo.id,
                "url": f"https://www.facebook.com/photo.php?fbid={photo.id}",
            },
            "media": {"image": {"height": 1, "width": 1, "src": f"https://scontent/{photo.id}"}},
            "url": f"https://www.facebook.com/photo.php?fbid={photo.id}",
        }
        if photo.alt:
            full["description"] = photo.alt
        return {k: v for k, v in full.items() if k in wanted}

    def _post_id(self, page: str) -> str:
        return f"{page}_{next(self._ids) + 100_000_000}"


# -- errors and bodies --------------------------------------------------------------------------


def _duplicate() -> GraphError:
    return GraphError(400, 506, "Duplicate status message", subcode=1455006)


def _expired(page: FacebookPage) -> GraphError:
    return GraphError(
        400,
        190,
        "Error validating access token: Session has expired on Tuesday, 01-Dec-26 02:00:00 PST. "
        "The current time is Tuesday, 01-Dec-26 03:00:00 PST.",
        subcode=463,
        headers={
            "WWW-Authenticate": 'OAuth "Facebook Platform" "invalid_token" '
            '"Error validating access token: Session has expired"'
        },
    )


def _require(page: FacebookPage, scope: str) -> None:
    if scope not in page.scopes:
        raise GraphError(
            403,
            10,
            f"(#10) This endpoint requires the '{scope}' permission or the 'Page Public Content "
            "Access' feature.",
        )


def _permission() -> GraphError:
    return GraphError(
        403,
        200,
        "(#200) If posting to a page, requires both pages_read_engagement and "
        "pages_manage_posts as an admin with sufficient administrative permission",
    )


_TRACE = itertools.count(1)


def _error_response(exc: GraphError) -> Response:
    error: dict[str, Any] = {"message": exc.message, "type": exc.kind, "code": exc.code}
    if exc.subcode is not None:
        error["error_subcode"] = exc.subcode
    if exc.transient:
        error["is_transient"] = True
    if exc.code == 506:
        error["error_user_title"] = "Duplicate Status Update"
        error["error_user_msg"] = (
            "This status update is identical to the last one you posted. Try posting something "
            "different, or delete your previous update."
        )
    error["fbtrace_id"] = f"AbCdEf{next(_TRACE):06d}"
    response = _json({"error": error}, exc.status)
    response.headers.update(exc.headers)
    return response


def _json(payload: Any, status: int = 200) -> Response:
    return Response(status, json.dumps(payload, ensure_ascii=False).encode(), _JSON)


def _parse_body(
    raw: bytes, content_type: str
) -> tuple[dict[str, Any], dict[str, tuple[str, bytes]]]:
    """The form fields (strings) and files of a body: form-encoded, multipart or JSON."""
    if not raw:
        return {}, {}
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "application/x-www-form-urlencoded":
        text = raw.decode("utf-8")
        return {k: v[-1] for k, v in parse_qs(text, keep_blank_values=True).items()}, {}
    if kind == "application/json":
        try:
            body = json.loads(raw)
        except ValueError:
            raise _invalid("(#100) The request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise _invalid("(#100) The request body must be a JSON object")
        return {k: v if isinstance(v, str) else json.dumps(v) for k, v in body.items()}, {}
    if kind == "multipart/form-data":
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + raw
        )
        if not message.is_multipart():
            raise _invalid("(#100) The multipart body cannot be read")
        form: dict[str, Any] = {}
        files: dict[str, tuple[str, bytes]] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True) or b""
            filename = part.get_filename()
            if not isinstance(name, str):
                continue
            if filename is not None:
                files[name] = (filename, payload)
            else:
                form[name] = payload.decode("utf-8")
        return form, files
    raise _invalid(f"(#100) Unsupported Content-Type {kind}")
