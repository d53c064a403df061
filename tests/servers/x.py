"""A fake X API v2 on 127.0.0.1, checked against X's own OpenAPI spec, for the real tweepy.

:class:`XServer` is a :class:`~servers.translate.FakeTranslationServer` (the HTTP machinery every
fake shares: ``ThreadingHTTPServer`` on ``127.0.0.1:0``, context manager, ``calls``, ``errors``,
``fail_next``) that speaks X API v2 with OAuth 1.0a user context::

    with XServer(accounts={"francediplo": ("tok", "tok-secret")}) as srv:
        client = tweepy.Client(**srv.credentials("francediplo"))
        client.session = RewritingSession(srv.url)   # https://api.twitter.com → srv.url
        client.create_tweet(text="Bonjour")
        assert [t["text"] for t in srv.timeline("francediplo")] == ["Bonjour"]
        assert not srv.errors

``srv.url`` is ``http://127.0.0.1:PORT`` *without* a trailing slash (unlike the translation
fakes): it stands in for ``https://api.twitter.com``. Requests must be signed for that URL.

What it checks
--------------

* **OAuth 1.0a** with oauthlib's ``ResourceEndpoint``: HMAC-SHA1 only, the configured consumer
  key and each account's access token and secret, ``oauth_timestamp`` within
  ``timestamp_window`` seconds (600) of the clock, and no nonce used twice. Form bodies
  (``application/x-www-form-urlencoded``) are part of the signature, JSON and multipart bodies
  are not. A failure is 401 ``{"title": "Unauthorized", "type": "about:blank", "status": 401,
  "detail": "Unauthorized"}``; the reason is in ``srv.requests[-1].note``.
* **The spec**: ``tests/data/x-api/openapi.json`` (OpenAPI 3.0, v2.167). Each request is matched
  to an operation; path and query parameters and the body (by Content-Type) are validated with
  jsonschema (Draft 4, ``$ref`` resolved through a ``referencing`` registry over the spec). A
  violation is answered 400 with X's problem JSON (``errors``, ``title: "Invalid Request"``,
  ``detail``, ``type: …/problems/invalid-request``) *and* recorded in ``srv.errors`` as a
  :class:`SpecViolation`, so ``assert not srv.errors`` catches it even when the client swallowed
  the 400. 2xx answers of the fake are validated against the operation's response schema too.
  One concession: the spec renamed ``tweet.fields`` to ``post.fields`` on the core endpoints,
  while tweepy 4.17 (and X) still use ``tweet.fields``; it is accepted as an alias.
* **X's own rules**: identical text from the same account within ``duplicate_window`` seconds
  (24 h) → 403 duplicate; text longer than ``max_weighted_length`` (280, twitter-text weighted;
  ``None`` turns it off) → 400; unknown, foreign, unfinished or expired media ids → 400 "Your
  media IDs are invalid."; a reply to a missing or deleted post → 403.

Endpoints
---------

========================================  ====================================================
``POST /2/tweets``                        ``{text, reply: {in_reply_to_tweet_id}, media:
                                          {media_ids}}`` → 201 ``{"data": {"id", "text",
                                          "edit_history_tweet_ids"}}``
``DELETE /2/tweets/{id}``                 own posts only → ``{"data": {"deleted": true}}``;
                                          someone else's → 403, a missing one → 404
``GET /2/tweets/{id}``, ``/2/tweets``     one post, or ``?ids=`` several; a missing one is a
                                          200 with ``errors`` (resource-not-found)
``GET /2/users/me``                       ``{"data": {"id", "name", "username"}}``
``GET /2/users/{id}/tweets``              newest first; ``max_results`` (5–100, default 10),
                                          ``pagination_token``, ``since_id``, ``until_id``,
                                          ``start_time``, ``end_time``, ``exclude=replies``,
                                          ``tweet.fields`` (``created_at``, ``author_id``,
                                          ``conversation_id``, ``in_reply_to_user_id``,
                                          ``referenced_tweets``, ``attachments``,
                                          ``entities`` with ``urls`` only),
                                          ``expansions=attachments.media_keys`` with
                                          ``media.fields`` (``alt_text``, ``width``,
                                          ``height``) → ``{"data", "includes", "meta":
                                          {"result_count", "newest_id", "oldest_id",
                                          "next_token"}}``; ``text`` as X gives it (below)
``POST /2/media/upload``                  multipart ``media`` (file bytes) +
                                          ``media_category``, or JSON with ``media`` base64
                                          → 200 ``{"data": {"id", "media_key", "size",
                                          "expires_after_secs", "image": {"image_type", "w",
                                          "h"}}}`` (``media_key`` is ``3_<id>`` for images)
``POST /2/media/upload/initialize``       JSON ``{media_type, total_bytes, media_category}``
                                          → ``{"data": {"id", "media_key",
                                          "expires_after_secs"}}``
``POST /2/media/upload/{id}/append``      multipart ``media`` + ``segment_index`` (or JSON,
                                          ``media`` base64) → ``{"data": {"expires_at"}}``
``POST /2/media/upload/{id}/finalize``    no body → as the one-shot upload answers
``GET /2/media/upload?media_id=…``        upload status → as the one-shot upload answers
``POST /2/media/metadata``                ``{"id", "metadata": {"alt_text": {"text"}}}`` →
                                          ``{"data": {"id", "associated_metadata"}}``
``POST /2/users/{id}/retweets``           ``{"tweet_id"}``, the authenticated user's id only
                                          (else 403) → ``{"data": {"retweeted": true,
                                          "rest_id"}}``; the repost is on the account's
                                          timeline ("RT @handle: text", ``referenced_tweets``
                                          ``retweeted``); a second one changes nothing and
                                          answers the same; a missing post → 404; more than
                                          ``repost_limit`` (50) in 15 min → 429
``DELETE /2/users/{id}/retweets/{src}``   → ``{"data": {"retweeted": false}}``, also when
                                          there was no repost (X: "succeeds with no action")
``GET /2/tweets/{id}/retweeted_by``       the users who repost it (one page)
========================================  ====================================================

Any other operation of the spec answers 501 and is recorded in ``srv.errors``.

The read endpoints give a post's ``text`` as X does, not as it was sent (``srv.timeline`` gives
it as sent):

* every URL is replaced by a ``https://t.co/…`` link; with ``tweet.fields=entities``,
  ``entities.urls[]`` gives ``url`` (the t.co link), ``expanded_url`` (the URL as written, with
  ``http://`` added when it had none), ``display_url``, ``start`` and ``end`` (X docs, "t.co
  link wrapper" and the Post object's ``entities.urls``; the spec's ``UrlEntity``);
* ``&``, ``<`` and ``>`` are HTML-escaped (``&amp;``, ``&lt;``, ``&gt;``), as X has always
  done in ``text`` (v1.1 and v2; e.g. sferik/twitter-ruby#348);
* a post with media ends with one more t.co link, after a space: the link to its media, whose
  entity has ``media_key`` and an ``expanded_url`` ending ``/status/<id>/photo/1`` (the spec's
  ``UrlEntity.media_key``; an answer of X quoted in codeforjapan/BirdXplorer#106).

Inspection and set-up
---------------------

``srv.timeline(name)`` the account's live posts, oldest first (dicts: ``id``, ``account``,
``author_id``, ``text``, ``created_at``, ``reply_to``, ``media`` with ``alt_text``,
``user_agent``: the User-Agent of the request that created it, which says which replica of
diplobot sent it); ``srv.requests`` every request as an :class:`XRequest` (method, path, query,
account, status, fault, body, note, user_agent); ``srv.calls`` the same as the translation
fakes record them (with headers);
``srv.errors`` spec violations and the fake's own failures; ``srv.media(id)`` an upload,
bytes included; ``srv.account(name)`` an :class:`XAccount`; ``srv.credentials(name)`` keyword
arguments for ``tweepy.Client``; ``srv.add_tweet(name, text, reply_to=, created_at=)`` puts a
post on a timeline directly; ``srv.reset()`` forgets requests and pending faults.

Faults
------

``srv.fail_next(kind, count=1, *, method=None, path=None, seconds=10.0, reset=None, after=0)``
queues a fault for the next ``count`` requests matching ``method`` and ``path`` (an ``fnmatch``
pattern such as ``"/2/tweets"`` or ``"/2/media/*"``), once ``after`` matching requests went
through unharmed; faults are consumed in order, one per request.

========================  =====================================================================
``"429"``                 429 with ``x-rate-limit-limit``, ``x-rate-limit-remaining: 0`` and
                          ``x-rate-limit-reset`` (epoch seconds: ``reset``, default now + 900)
``"429_no_reset"``        the same without ``x-rate-limit-reset``
``"429_daily"``           the 24-hour post cap: ``x-rate-limit-remaining`` is *not* 0; the
                          reset is in ``x-user-limit-24hour-reset`` (``reset``, default now +
                          86400) with ``x-user-limit-24hour-remaining: 0``
``"401"``                 X's Unauthorized problem
``"402"``                 ``{"account_id", "title": "CreditsDepleted", "detail": "Your enrolled
                          account [...] does not have any credits to fulfill this request.",
                          "type": "https://api.twitter.com/2/problems/credits"}``
``"403"``                 the duplicate-content refusal
``"500"``, ``"503"``      ``about:blank`` problem (any other status from 400 to 599 works too)
``"slow"``                process the request (a post IS stored), answer after ``seconds``
``"drop_after_store"``    process the request (a post IS stored), close without answering
``"drop_before_store"``   close without processing (nothing is stored); ``"drop"`` is an alias
``"hang"``                read the request, never answer
``"malformed"``           200 with JSON cut off mid-string (nothing is stored)
``"malformed_after_store"`` process the request (a post IS stored), answer 200 with the first
                          half of X's JSON
``"empty_2xx"``           process the request (a post IS stored), answer its 2xx status with
                          ``{}`` (X has answered ``201 {}``)
``"null_data"``           process the request (a post IS stored), answer ``{"data": null}``
``"trickle"``             process the request (a post IS stored), then send the answer, status
                          line first, one byte every ``seconds``: no read timeout ever fires
========================  =====================================================================

The processing faults answer a refusal (X's 4xx) as it is. Status faults answer without checking
the signature. ``slow``, ``hang`` and ``trickle`` are released by :meth:`stop`, which never
waits for them.

``srv.answer_next(status, body=b"", *, content_type=…, headers=None, process=False, count=1,
method=None, path=None)`` answers exactly that instead (any status, any bytes; after acting on
the request when ``process``): the fuzz tests' X, which may answer anything.

Where X is not documented, the fake guesses: the too-long answer (400 with twitter's usual
message), the wording of the 403 for deleting someone else's post, 404 for deleting a missing
one, the 402 body (as X was reported to send it in 2026), and the media type checks. For
reposts: a second repost of the same post answers 200 as the first did (X's v1.1 docs: "Twitter
will ignore attempts to perform duplicate retweets"; v1.1 was seen answering 403 "You have
already retweeted this Tweet." instead, which the publisher takes as done too), ``rest_id`` is
the reposted post's id (the spec: "The ID of the reposted Post"), a missing post is 404
resource-not-found, and another user's id in the path is 403.
"""

from __future__ import annotations

import base64
import binascii
import email.message
import hashlib
import json
import re
import struct
import threading
import time
import traceback
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from functools import cache
from http import HTTPStatus
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, unquote, urlsplit

from jsonschema import Draft4Validator
from oauthlib.oauth1 import RequestValidator, ResourceEndpoint
from oauthlib.oauth1.rfc5849 import SIGNATURE_HMAC_SHA1
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4
from requests.structures import CaseInsensitiveDict
from twitter_text import extract_urls_with_indices, parse_tweet

from servers.translate import Call, FakeTranslationServer, Response, _Handler

__all__ = [
    "DUPLICATE",
    "INVALID_MEDIA",
    "PROBLEMS",
    "REPLY_GONE",
    "SPEC_PATH",
    "TOO_LONG",
    "SpecViolation",
    "XAccount",
    "XRequest",
    "XServer",
]

SPEC_PATH = Path(__file__).resolve().parents[1] / "data" / "x-api" / "openapi.json"
_SPEC_URI = "urn:diplobot:x-api:openapi.json"
#: The spec enumerates problem types under api.x.com (X's older answers said api.twitter.com).
PROBLEMS = "https://api.x.com/2/problems/"
_JSON = "application/json; charset=utf-8"
_TWITTER_EPOCH_MS = 1288834974657
_MEDIA_LIFETIME = 86_400

DUPLICATE = "You are not allowed to create a Tweet with duplicate content."
TOO_LONG = (
    "Your Tweet text is too long. For more information on how Twitter determines text length"
    " see https://github.com/twitter/twitter-text."
)
INVALID_MEDIA = "Your media IDs are invalid."
REPLY_GONE = "You attempted to reply to a Tweet that is deleted or not visible to you."
_INVALID_DETAIL = "One or more parameters to your request was invalid."


class SpecViolation(Exception):
    """A request (or an answer of the fake) that does not conform to X's OpenAPI spec."""

    def __init__(self, method: str, path: str, messages: list[str]) -> None:
        super().__init__(f"{method} {path}: " + "; ".join(messages))
        self.method = method
        self.path = path
        self.messages = messages


@dataclass(frozen=True)
class XAccount:
    """One X account: ``account`` is the name tests use, ``handle`` the @username."""

    account: str
    handle: str
    user_id: str
    token: str
    token_secret: str = field(repr=False)


@dataclass(frozen=True)
class XRequest:
    """One request as X saw it.

    ``account`` is the authenticated account (for a scripted status fault: the owner of the
    ``oauth_token``, unverified), ``status`` what was answered (None: no answer was sent),
    ``body`` the parsed JSON, form or multipart fields, ``note`` why it failed, if it did.
    """

    method: str
    path: str
    query: dict[str, str]
    account: str | None
    status: int | None
    fault: str | None = None
    body: Any = None
    note: str | None = None
    user_agent: str | None = None  # who sent it: diplobot names its host and instance


@dataclass(frozen=True)
class _Fault:
    kind: str
    method: str | None
    path: str | None
    seconds: float
    reset: int | None
    answer: Response | None = None  # "answer": what to send instead of X's answer
    process: bool = False  # "answer": act on the request (store the post) first
    after: int = 0  # matching requests to let through before this one strikes

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (
            self.path is None or fnmatchcase(path, self.path)
        )


@dataclass
class _Tweet:
    id: str
    account: str
    text: str
    created_at: float
    reply_to: str | None
    media_ids: list[str]
    deleted: bool = False
    repost_of: str | None = None  # a repost (retweet): the id of the post it reposts
    user_agent: str | None = None  # the User-Agent of the request that created it


@dataclass
class _Media:
    id: str
    key: str
    account: str
    category: str
    media_type: str | None
    created_at: float
    total_bytes: int | None = None
    segments: dict[int, bytes] = field(default_factory=dict)
    data: bytes = b""
    finalized: bool = False
    alt_text: str | None = None
    width: int | None = None
    height: int | None = None


@dataclass
class _Incoming:
    method: str
    path: str
    uri: str
    query: dict[str, str]
    headers: CaseInsensitiveDict[str]
    raw: bytes
    complete: bool = True  # False: the connection ended before Content-Length bytes came

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "").split(";")[0].strip().lower()


@dataclass
class _Ctx:
    """What an endpoint handler gets: the authenticated account and the checked request."""

    account: XAccount
    path_params: dict[str, str]
    query: dict[str, str]
    body: Any
    user_agent: str | None = None


# --------------------------------------------------------------------------------------------
# The OpenAPI spec
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Operation:
    method: str
    template: str
    pattern: re.Pattern[str]
    spec: dict[str, Any]

    @property
    def operation_id(self) -> str:
        return str(self.spec["operationId"])


class _Spec:
    """X's OpenAPI document: operations by method and path, and schema validation."""

    #: Query parameters X still takes under their pre-"post" names: alias → spec name.
    ALIASES: ClassVar[dict[str, str]] = {"tweet.fields": "post.fields"}

    def __init__(self, path: Path) -> None:
        self.document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        self.version = str(self.document["info"]["version"])
        resource: Resource[Any] = DRAFT4.create_resource(self.document)
        self._registry: Registry[Any] = Registry().with_resource(_SPEC_URI, resource)
        self._validators: dict[int, tuple[Any, Draft4Validator]] = {}
        self._lock = threading.Lock()
        operations = []
        for template, item in self.document["paths"].items():
            regex = re.sub(r"\\\{[^/]+?\\\}", "([^/]+)", re.escape(template))
            for method, spec in item.items():
                if isinstance(spec, dict) and "operationId" in spec:
                    pattern = re.compile(f"^{regex}$")
                    operations.append(_Operation(method.upper(), template, pattern, spec))
        # Literal paths win over templated ones: /2/media/upload before /2/media/{media_key}.
        operations.sort(key=lambda op: (op.template.count("{"), op.template))
        self.operations = operations

    def find(self, method: str, path: str) -> tuple[_Operation, dict[str, str]] | None:
        for op in self.operations:
            match = op.pattern.match(path)
            if match and op.method == method:
                names = re.findall(r"\{([^/]+?)\}", op.template)
                return op, {n: unquote(v) for n, v in zip(names, match.groups(), strict=True)}
        return None

    def resolve(self, node: Any) -> Any:
        """Follow local ``$ref`` s until a node that is not a reference."""
        while isinstance(node, dict) and isinstance(node.get("$ref"), str):
            target: Any = self.document
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            node = target
        return node

    def errors(self, schema: dict[str, Any], instance: Any) -> list[Any]:
        with self._lock:
            entry = self._validators.get(id(schema))
            if entry is None:
                validator = Draft4Validator(_absolute(schema), registry=self._registry)
                entry = self._validators[id(schema)] = (schema, validator)
        return sorted(entry[1].iter_errors(instance), key=lambda e: e.json_path)

    def parameters(self, op: _Operation) -> list[dict[str, Any]]:
        return [self.resolve(p) for p in op.spec.get("parameters", [])]

    def check_parameters(
        self, op: _Operation, path_params: dict[str, str], query: dict[str, str]
    ) -> tuple[list[str], dict[str, Any]]:
        """Problems with the path and query parameters, and the query with aliases renamed."""
        problems: list[str] = []
        params = self.parameters(op)
        declared = {p["name"] for p in params if p["in"] == "query"}
        normalized: dict[str, Any] = {}
        for name, value in query.items():
            canonical = self.ALIASES.get(name, name)
            if canonical not in declared:
                problems.append(
                    f"The query parameter [{name}] is not one of [{','.join(sorted(declared))}]"
                )
            elif canonical != name:
                normalized[canonical] = value  # an alias: accepted, values not checked
            else:
                normalized[name] = value
        for param in params:
            where, name = param["in"], param["name"]
            source = path_params if where == "path" else query if where == "query" else None
            if source is None:
                continue
            if name not in source:
                if param.get("required") and not (
                    where == "query" and any(self.ALIASES.get(q) == name for q in query)
                ):
                    problems.append(f"The `{name}` {where} parameter is missing")
                continue
            raw = source[name]
            schema = param.get("schema", {})
            for error in self.errors(schema, self._coerce(raw, schema)):
                problems.append(f"The `{name}` {where} parameter value [{raw}] {error.message}")
        return problems, normalized

    def _coerce(self, raw: str, schema: dict[str, Any]) -> Any:
        kind = self.resolve(schema).get("type")
        if kind == "integer":
            return int(raw) if re.fullmatch(r"-?\d+", raw) else raw
        if kind == "boolean":
            return {"true": True, "false": False}.get(raw, raw)
        if kind == "array":
            items = self.resolve(schema).get("items", {})
            return [self._coerce(part, items) for part in raw.split(",")]
        return raw

    def check_body(self, op: _Operation, incoming: _Incoming) -> tuple[list[str], Any]:
        """Problems with the body (by its Content-Type), and the parsed body."""
        request_body = self.resolve(op.spec.get("requestBody"))
        if not request_body:
            return [], None
        content: dict[str, Any] = request_body.get("content", {})
        if not incoming.raw:
            if request_body.get("required"):
                return ["A request body is required"], None
            return [], None
        ctype = incoming.content_type
        if ctype not in content:
            return [f"Unsupported Content-Type [{ctype}]: use one of {sorted(content)}"], None
        try:
            body = _parse_body(incoming.raw, incoming.headers.get("Content-Type", ""))
        except ValueError as exc:
            return [f"The request body could not be parsed as {ctype}: {exc}"], None
        schema = content[ctype].get("schema", {})
        instance = _for_validation(body)
        if ctype != "application/json" and isinstance(instance, dict):
            # Form and multipart fields are text: read them as the types the schema declares.
            properties = self.resolve(schema).get("properties", {})
            instance = {
                k: self._coerce(v, properties[k]) if k in properties and isinstance(v, str) else v
                for k, v in instance.items()
            }
        return [f"{e.json_path}: {e.message}" for e in self.errors(schema, instance)], body

    def check_response(self, op: _Operation, status: int, payload: Any) -> list[str]:
        answer = op.spec.get("responses", {}).get(str(status))
        if answer is None:
            return [f"the spec declares no {status} answer"]
        schema = self.resolve(answer).get("content", {}).get("application/json", {}).get("schema")
        if schema is None:
            return []
        return [f"answer {e.json_path}: {e.message}" for e in self.errors(schema, payload)]


def _may_exceed(text: str, limit: int) -> bool:
    """False when ``text`` is surely within ``limit`` without counting it (counting costs
    about a millisecond, which the lag benchmark would measure): no code point weighs more
    than 2, and each URL (it needs a dot) counts 23 whatever its length."""
    normalized = unicodedata.normalize("NFC", text)
    return 2 * len(normalized) + 23 * normalized.count(".") > limit


@cache
def _spec() -> _Spec:
    return _Spec(SPEC_PATH)


def _absolute(schema: Any) -> Any:
    """A copy of an inline schema whose local ``$ref`` s point into the registered spec."""
    if isinstance(schema, dict):
        return {
            k: (
                _SPEC_URI + v
                if k == "$ref" and isinstance(v, str) and v.startswith("#")
                else _absolute(v)
            )
            for k, v in schema.items()
        }
    if isinstance(schema, list):
        return [_absolute(v) for v in schema]
    return schema


def _for_validation(body: Any) -> Any:
    """Multipart file contents stand in as strings (``format: binary``) for the schema."""
    if isinstance(body, dict):
        return {k: "<binary>" if isinstance(v, bytes) else v for k, v in body.items()}
    return body


def _parse_body(raw: bytes, content_type: str) -> Any:
    ctype = content_type.split(";")[0].strip().lower()
    if ctype == "application/json":
        return json.loads(raw.decode("utf-8"))
    if ctype == "application/x-www-form-urlencoded":
        form = parse_qs(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
        return {k: v[0] if len(v) == 1 else v for k, v in form.items()}
    if ctype == "multipart/form-data":
        return _parse_multipart(raw, content_type)
    return raw.decode("utf-8", "replace")


def _parse_multipart(raw: bytes, content_type: str) -> dict[str, str | bytes]:
    """``name`` → text for plain fields, bytes for file fields (parts with a ``filename``)."""
    header = email.message.Message()
    header["Content-Type"] = content_type
    boundary = header.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise ValueError("no boundary in Content-Type")
    delimiter = b"--" + boundary.encode("latin-1")
    fields: dict[str, str | bytes] = {}
    chunks = raw.split(delimiter)
    if len(chunks) < 3 or not chunks[-1].startswith(b"--"):
        raise ValueError("no closing boundary")
    for chunk in chunks[1:-1]:
        head, sep, content = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not sep:
            raise ValueError("a part has no blank line after its headers")
        part = email.message.Message()
        for line in head.decode("latin-1").split("\r\n"):
            name, colon, value = line.partition(":")
            if colon:
                part[name.strip()] = value.strip()
        field_name = part.get_param("name", header="content-disposition")
        if not isinstance(field_name, str):
            raise ValueError("a part has no name")
        content = content.removesuffix(b"\r\n")
        is_file = part.get_param("filename", header="content-disposition") is not None
        fields[field_name] = content if is_file else content.decode("utf-8")
    return fields


# --------------------------------------------------------------------------------------------
# OAuth 1.0a
# --------------------------------------------------------------------------------------------


class _Validator(RequestValidator):  # type: ignore[misc]
    """Credentials the fake knows; lenient on formats (X's keys are not oauthlib's 20-30)."""

    enforce_ssl = False
    allowed_signature_methods = (SIGNATURE_HMAC_SHA1,)
    dummy_client = "dummy-consumer-key"
    dummy_access_token = "dummy-access-token"

    def __init__(self, fake: XServer) -> None:
        super().__init__()
        self._fake = fake
        self._nonces: dict[tuple[str, str, str, str], int] = {}
        self._lock = threading.Lock()

    @property
    def timestamp_lifetime(self) -> int:
        return int(self._fake.timestamp_window)

    def check_client_key(self, client_key: str) -> bool:
        return bool(client_key)

    def check_access_token(self, request_token: str) -> bool:
        return bool(request_token)

    def check_nonce(self, nonce: str) -> bool:
        return bool(nonce)

    def validate_client_key(self, client_key: str, request: Any) -> bool:
        return bool(client_key == self._fake.consumer[0])

    def get_client_secret(self, client_key: str, request: Any) -> str:
        key, secret = self._fake.consumer
        return secret if client_key == key else "dummy"

    def validate_access_token(self, client_key: str, token: str, request: Any) -> bool:
        return self._fake._by_token(token) is not None

    def get_access_token_secret(self, client_key: str, token: str, request: Any) -> str:
        account = self._fake._by_token(token)
        return account.token_secret if account else "dummy"

    def validate_realms(self, *args: Any, **kwargs: Any) -> bool:
        return True

    def validate_timestamp_and_nonce(
        self,
        client_key: str,
        timestamp: str,
        nonce: str,
        request: Any,
        request_token: str | None = None,
        access_token: str | None = None,
    ) -> bool:
        key = (client_key, access_token or request_token or "", timestamp, nonce)
        now = time.time()
        with self._lock:
            if key in self._nonces:
                request.x_replayed = True
                return False
            horizon = now - 2 * self.timestamp_lifetime
            if len(self._nonces) > 10_000:
                self._nonces = {k: t for k, t in self._nonces.items() if t > horizon}
            self._nonces[key] = int(timestamp)
        return True


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------


def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(payload, ensure_ascii=False).encode()
    return Response(status, body, _JSON, dict(headers or {}))


def _problem(status: int, title: str, detail: str, kind: str = "about:blank") -> Response:
    return _json({"title": title, "detail": detail, "type": kind, "status": status}, status)


def _invalid(messages: Iterable[str], parameters: Mapping[str, str] | None = None) -> Response:
    errors: list[dict[str, Any]] = []
    for message in messages:
        error: dict[str, Any] = {"message": message}
        if parameters:
            error["parameters"] = {k: [v] for k, v in parameters.items()}
        errors.append(error)
    return _json(
        {
            "errors": errors,
            "title": "Invalid Request",
            "detail": _INVALID_DETAIL,
            "type": PROBLEMS + "invalid-request",
        },
        400,
    )


def _unauthorized() -> Response:
    return _problem(401, "Unauthorized", "Unauthorized")


def _iso(epoch: float) -> str:
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _parse_time(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _sniff(data: bytes) -> tuple[str | None, int | None, int | None]:
    """MIME type, width and height of an image (or video) from its first bytes."""
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
    if data[4:8] == b"ftyp":
        return "video/mp4", None, None
    return None, None, None


_MEDIA_KINDS: dict[str, tuple[str, str, int]] = {
    # category → (key prefix, media "type", size limit in bytes)
    "tweet_image": ("3", "photo", 5 * 1024 * 1024),
    "dm_image": ("3", "photo", 5 * 1024 * 1024),
    "tweet_gif": ("16", "animated_gif", 15 * 1024 * 1024),
    "dm_gif": ("16", "animated_gif", 15 * 1024 * 1024),
    "tweet_video": ("7", "video", 512 * 1024 * 1024),
    "dm_video": ("7", "video", 512 * 1024 * 1024),
    "amplify_video": ("13", "video", 512 * 1024 * 1024),
    "subtitles": ("3", "subtitles", 5 * 1024 * 1024),
}


class XServer(FakeTranslationServer):
    """X API v2 for tweepy and raw OAuth1-signed requests; see the module docstring.

    ``accounts`` maps the name tests use to ``(access_token, access_token_secret)`` or
    ``(access_token, access_token_secret, handle)`` (the handle defaults to the name).
    """

    FAULTS: ClassVar[frozenset[str]] = frozenset(
        {
            "429",
            "429_no_reset",
            "429_daily",
            "slow",
            "drop",
            "drop_after_store",
            "drop_before_store",
            "hang",
            "malformed",
            "malformed_after_store",
            "empty_2xx",
            "null_data",
            "trickle",
        }
    )
    #: Faults that act on the request (a post IS stored) before they spoil the answer.
    PROCESSING: ClassVar[frozenset[str]] = frozenset(
        {"slow", "drop_after_store", "malformed_after_store", "empty_2xx", "null_data", "trickle"}
    )
    #: ``account_id`` in the 402 body: the developer account, not an X user.
    DEVELOPER_ACCOUNT_ID: ClassVar[int] = 1500000000000000000

    def __init__(
        self,
        *,
        accounts: Mapping[str, tuple[str, str] | tuple[str, str, str]],
        consumer: tuple[str, str] = ("consumer-key", "consumer-secret"),
        timestamp_window: float = 600,
        duplicate_window: float | None = 86_400,
        max_weighted_length: int | None = 280,
        repost_limit: int | None = 50,
    ) -> None:
        super().__init__()
        self.consumer = consumer
        self.repost_limit = repost_limit
        self.timestamp_window = timestamp_window
        self.duplicate_window = duplicate_window
        self.max_weighted_length = max_weighted_length
        self.spec = _spec()
        self._accounts: dict[str, XAccount] = {}
        for number, (name, credentials) in enumerate(accounts.items(), start=1):
            token, secret, *rest = credentials
            handle = rest[0] if rest else name
            self._accounts[name] = XAccount(name, handle, str(1_000_000 + number), token, secret)
        self._tweets: dict[str, _Tweet] = {}
        self._by_text: dict[tuple[str, str], list[_Tweet]] = {}  # (account, text): duplicates
        self._media: dict[str, _Media] = {}
        self._requests: list[XRequest] = []
        self._x_faults: list[_Fault] = []
        self._last_id = 0
        self._oauth = ResourceEndpoint(_Validator(self))
        self._handlers: dict[str, Callable[[_Ctx], Response]] = {
            "createPosts": self._create_post,
            "deletePosts": self._delete_post,
            "getUsersMe": self._me,
            "getUsersPosts": self._user_posts,
            "getPostsById": self._post_by_id,
            "getPostsByIds": self._posts_by_ids,
            "mediaUpload": self._upload,
            "getMediaUploadStatus": self._upload_status,
            "initializeMediaUpload": self._upload_initialize,
            "appendMediaUpload": self._upload_append,
            "finalizeMediaUpload": self._upload_finalize,
            "createMediaMetadata": self._media_metadata,
            "repostPost": self._repost,
            "unrepostPost": self._unrepost,
            "getPostsRepostedBy": self._reposted_by,
        }
        self._reposts_made: dict[str, list[float]] = {}  # account → its recent repost requests

    # -- configuration and inspection -------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``, the stand-in for ``https://api.twitter.com``."""
        return super().url.rstrip("/")

    def account(self, name: str) -> XAccount:
        try:
            return self._accounts[name]
        except KeyError:
            raise KeyError(
                f"no account {name!r}: configured are {sorted(self._accounts)}"
            ) from None

    def credentials(self, name: str) -> dict[str, str]:
        """Keyword arguments for ``tweepy.Client`` acting as account ``name``."""
        account = self.account(name)
        return {
            "consumer_key": self.consumer[0],
            "consumer_secret": self.consumer[1],
            "access_token": account.token,
            "access_token_secret": account.token_secret,
        }

    @property
    def requests(self) -> list[XRequest]:
        """A snapshot of every request received, in order, faulted ones included."""
        with self._lock:
            return list(self._requests)

    def timeline(self, name: str) -> list[dict[str, Any]]:
        """The account's live posts, oldest first: ``id``, ``account``, ``author_id``, ``text``,
        ``created_at`` (aware datetime), ``reply_to``, ``media`` (``id``, ``media_key``,
        ``type``, ``alt_text``)."""
        account = self.account(name)
        with self._lock:
            tweets = [t for t in self._tweets.values() if t.account == name and not t.deleted]
            return [self._describe(t, account) for t in sorted(tweets, key=lambda t: int(t.id))]

    def media(self, media_id: str) -> dict[str, Any]:
        """An uploaded media item: ``id``, ``media_key``, ``account``, ``media_category``,
        ``type``, ``size``, ``data`` (the bytes), ``alt_text``, ``finalized``."""
        with self._lock:
            item = self._media[media_id]
            return {
                "id": item.id,
                "media_key": item.key,
                "account": item.account,
                "media_category": item.category,
                "type": _MEDIA_KINDS[item.category][1],
                "size": len(item.data),
                "data": item.data,
                "alt_text": item.alt_text,
                "finalized": item.finalized,
            }

    def add_tweet(
        self,
        name: str,
        text: str,
        *,
        reply_to: str | None = None,
        created_at: datetime | None = None,
    ) -> dict[str, Any]:
        """Put a post on the account's timeline directly (as if posted earlier, elsewhere).

        Its id is derived from ``created_at`` (default: now), as X's ids are from post times.
        """
        account = self.account(name)
        moment = created_at.timestamp() if created_at else time.time()
        with self._lock:
            tweet = _Tweet(self._next_id(moment), name, text, moment, reply_to, [])
            self._store(tweet)
            return self._describe(tweet, account)

    def fail_next(
        self,
        kind: str,
        count: int = 1,
        *,
        method: str | None = None,
        path: str | None = None,
        seconds: float = 10.0,
        reset: int | None = None,
        after: int = 0,
    ) -> None:
        """Answer the next ``count`` requests matching ``method``/``path`` with fault ``kind``,
        once ``after`` matching requests have been served normally (part 2 of a thread)."""
        if kind not in self.FAULTS and not (kind.isdigit() and 400 <= int(kind) <= 599):
            valid = ", ".join(sorted(self.FAULTS))
            raise ValueError(f"unknown fault {kind!r}: use one of {valid} or a status code")
        method = method.upper() if method else None
        faults = [_Fault(kind, method, path, seconds, reset, after=after)]
        faults += [_Fault(kind, method, path, seconds, reset)] * (count - 1)
        with self._lock:
            self._x_faults.extend(faults)

    def answer_next(
        self,
        status: int,
        body: bytes = b"",
        *,
        content_type: str = _JSON,
        headers: Mapping[str, str] | None = None,
        process: bool = False,
        count: int = 1,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        """Answer the next ``count`` requests matching ``method``/``path`` with exactly this
        (any status from 100 to 999, any body, extra headers; ``Content-Length`` is always
        right). ``process``: act on the request first, so a post IS stored whatever the answer
        says. For answers no named fault gives (the fuzz tests of the publisher)."""
        if not 100 <= status <= 999:
            raise ValueError(f"status {status} is not a three-digit HTTP status")
        answer = Response(status, body, content_type, dict(headers or {}))
        fault = _Fault(
            "answer", method.upper() if method else None, path, 0.0, None, answer, process
        )
        with self._lock:
            self._x_faults.extend([fault] * count)

    def reset(self) -> None:
        """Forget recorded requests and pending faults (timelines and media stay)."""
        super().reset()
        with self._lock:
            self._requests.clear()
            self._x_faults.clear()

    # -- serving ----------------------------------------------------------------------------

    def _serve(self, handler: _Handler) -> None:
        incoming = self._read_incoming(handler)
        if not incoming.complete:
            # The client went away in the middle of its request (killed between writing the
            # head and the body): like any HTTP server, X never sees a request it did not
            # receive whole. Nothing is processed, recorded or answered.
            handler.close_connection = True
            return
        with self._lock:
            fault = next(
                (f for f in self._x_faults if f.matches(incoming.method, incoming.path)), None
            )
            if fault is not None:
                index = self._x_faults.index(fault)
                if fault.after:  # not yet: this request goes through, one fewer to wait for
                    self._x_faults[index] = replace(fault, after=fault.after - 1)
                    fault = None
                else:
                    del self._x_faults[index]
        kind = fault.kind if fault else None
        try:
            logged_body = _parse_body(incoming.raw, incoming.headers.get("Content-Type", ""))
        except ValueError:
            logged_body = incoming.raw.decode("utf-8", "replace")
        logged_body = logged_body if incoming.raw else None
        with self._lock:
            params: dict[str, Any] = dict(incoming.query)
            if isinstance(logged_body, dict):
                params.update(logged_body)
            call = Call(incoming.method, incoming.path, params, logged_body, incoming.headers)
            self._calls.append(replace(call, fault=kind))
        # Like X, answers keep the connection open (HTTP/1.1); faults that cut it close it.
        handler.close_connection = kind in (
            "drop",
            "drop_before_store",
            "drop_after_store",
            "hang",
            "trickle",
            "answer",  # a scripted answer may be one the client cannot frame (a 204 with a body)
        )

        def record(account: str | None, status: int | None, note: str | None = None) -> None:
            entry = XRequest(
                incoming.method,
                incoming.path,
                incoming.query,
                account,
                status,
                kind,
                logged_body,
                note,
                incoming.headers.get("User-Agent"),
            )
            with self._lock:
                self._requests.append(entry)

        if kind in ("drop", "drop_before_store", "hang"):
            record(self._token_owner(incoming), None, f"{kind}: no answer")
            if kind == "hang":
                self._stopping.wait()
            return
        account: str | None = None
        note: str | None = None
        try:
            if fault is None or kind in self.PROCESSING or (fault.answer and fault.process):
                account, response, note = self._process(incoming)
                if fault is not None:
                    response = self._spoil(fault, response)
            else:
                account = self._token_owner(incoming)
                response = self._fault_response(fault)
        except Exception as exc:
            self.errors.append(exc)
            response = Response(500, traceback.format_exc().encode(), "text/plain")
            note = f"the fake failed: {exc!r}"
        if kind == "drop_after_store":
            record(account, None, f"processed ({response.status}), then dropped")
            return
        record(account, response.status, note)
        if kind == "slow" and self._stopping.wait(fault.seconds if fault else 0):
            handler.close_connection = True
            return
        response.headers.setdefault("api-version", self.spec.version)
        if kind == "trickle":
            self._trickle(handler, response, fault.seconds if fault else 1.0)
            return
        self._write(handler, response)

    @staticmethod
    def _spoil(fault: _Fault, response: Response) -> Response:
        """The answer a processing fault sends in place of X's ``response``."""
        if fault.answer is not None:
            return replace(fault.answer, headers=dict(fault.answer.headers))
        if not 200 <= response.status < 300:
            return response  # X refused the request: the refusal is answered as it is
        if fault.kind == "empty_2xx":
            return Response(response.status, b"{}", _JSON)
        if fault.kind == "null_data":
            return Response(response.status, b'{"data": null}', _JSON)
        if fault.kind == "malformed_after_store":
            return Response(200, response.body[: max(1, len(response.body) // 2)], _JSON)
        return response

    def _trickle(self, handler: _Handler, response: Response, seconds: float) -> None:
        """Write the whole answer, status line first, one byte every ``seconds``: each byte
        comes well within a read timeout, so only an overall deadline ends the request."""
        head = [f"HTTP/1.1 {response.status} {_phrase_of(response.status)}"]
        head += [f"Content-Type: {response.content_type}", f"Content-Length: {len(response.body)}"]
        head += ["Connection: close", *(f"{k}: {v}" for k, v in response.headers.items())]
        raw = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + response.body
        try:
            for offset in range(len(raw)):
                if self._stopping.wait(seconds):
                    return
                handler.wfile.write(raw[offset : offset + 1])
        except OSError:  # the client gave up (its deadline) before the end
            pass

    @staticmethod
    def _read_incoming(handler: _Handler) -> _Incoming:
        split = urlsplit(handler.path)
        query = {k: v[0] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length > 0 else b""
        headers: CaseInsensitiveDict[str] = CaseInsensitiveDict(dict(handler.headers.items()))
        host = headers.get("Host") or f"127.0.0.1:{handler.server.server_address[1]}"
        return _Incoming(
            handler.command,
            split.path,
            f"http://{host}{handler.path}",
            query,
            headers,
            raw,
            complete=len(raw) == max(length, 0),
        )

    def _fault_response(self, fault: _Fault) -> Response:
        kind, now = fault.kind, int(time.time())
        if fault.answer is not None:
            return replace(fault.answer, headers=dict(fault.answer.headers))
        if kind == "malformed":
            return Response(200, b'{"data": {"id": "', _JSON)
        if kind.startswith("429"):
            response = _problem(429, "Too Many Requests", "Too Many Requests")
            reset = fault.reset if fault.reset is not None else now + 900
            headers = {"x-rate-limit-limit": "100", "x-rate-limit-remaining": "0"}
            if kind == "429":
                headers["x-rate-limit-reset"] = str(reset)
            elif kind == "429_daily":
                daily = fault.reset if fault.reset is not None else now + 86_400
                headers = {
                    "x-rate-limit-limit": "100",
                    "x-rate-limit-remaining": "99",
                    "x-rate-limit-reset": str(now + 900),
                    "x-user-limit-24hour-limit": "17",
                    "x-user-limit-24hour-remaining": "0",
                    "x-user-limit-24hour-reset": str(daily),
                    "x-app-limit-24hour-limit": "1500",
                    "x-app-limit-24hour-remaining": "1483",
                    "x-app-limit-24hour-reset": str(daily),
                }
            response.headers.update(headers)
            return response
        status = int(kind)
        if status == 401:
            return _unauthorized()
        if status == 402:
            developer = self.DEVELOPER_ACCOUNT_ID
            return _json(
                {
                    "account_id": developer,
                    "title": "CreditsDepleted",
                    "detail": f"Your enrolled account [{developer}] does not have any credits"
                    " to fulfill this request.",
                    "type": "https://api.twitter.com/2/problems/credits",
                },
                402,
            )
        if status == 403:
            return _problem(403, "Forbidden", DUPLICATE)
        phrase = _phrase_of(status)
        return _problem(status, phrase, phrase)

    def _token_owner(self, incoming: _Incoming) -> str | None:
        match = re.search(r'oauth_token="([^"]*)"', incoming.headers.get("Authorization", ""))
        account = self._by_token(unquote(match.group(1))) if match else None
        return account.account if account else None

    def _by_token(self, token: str) -> XAccount | None:
        return next((a for a in self._accounts.values() if a.token == token), None)

    def _authenticate(self, incoming: _Incoming) -> tuple[XAccount | None, str | None]:
        form = incoming.content_type == "application/x-www-form-urlencoded"
        body = incoming.raw.decode("utf-8", "replace") if form else None
        try:
            valid, request = self._oauth.validate_protected_resource_request(
                incoming.uri, incoming.method, body, dict(incoming.headers)
            )
        except ValueError as exc:
            return None, f"malformed request: {exc}"
        if valid:
            return self._by_token(request.resource_owner_key), None
        if request is None:
            return None, "no OAuth 1.0a Authorization header (or a malformed one)"
        if getattr(request, "x_replayed", False):
            return None, "nonce already used"
        log = request.validator_log
        if not log:
            try:
                skew = abs(time.time() - int(request.timestamp))
            except (TypeError, ValueError):
                skew = 0
            if skew > self.timestamp_window:
                return None, f"timestamp {skew:.0f} s away from the server clock"
            return None, "bad OAuth parameters (signature method, version or token)"
        failed = [
            {"client": "unknown consumer key", "resource_owner": "unknown access token"}.get(k, k)
            for k, ok in log.items()
            if not ok
        ]
        return None, ("invalid " + ", ".join(failed)) if failed else "rejected"

    def _process(self, incoming: _Incoming) -> tuple[str | None, Response, str | None]:
        account, note = self._authenticate(incoming)
        if account is None:
            return None, _unauthorized(), note
        found = self.spec.find(incoming.method, incoming.path)
        if found is None:
            self.errors.append(
                SpecViolation(incoming.method, incoming.path, ["no such operation in the spec"])
            )
            return account.account, _problem(404, "Not Found", "Not Found"), "not in the spec"
        op, path_params = found
        handler = self._handlers.get(op.operation_id)
        if handler is None:
            exc = NotImplementedError(
                f"{op.method} {op.template} ({op.operation_id}) is in X's spec but not in the fake"
            )
            self.errors.append(exc)
            return account.account, _problem(501, "Not Implemented", str(exc)), str(exc)
        problems, query = self.spec.check_parameters(op, path_params, incoming.query)
        body_problems, body = self.spec.check_body(op, incoming)
        problems += body_problems
        if problems:
            self.errors.append(SpecViolation(incoming.method, incoming.path, problems))
            return account.account, _invalid(problems), "; ".join(problems)
        ctx = _Ctx(account, path_params, query, body, incoming.headers.get("User-Agent"))
        response = handler(ctx)
        if 200 <= response.status < 300:
            answer = self.spec.check_response(op, response.status, json.loads(response.body))
            if answer:
                self.errors.append(SpecViolation(incoming.method, incoming.path, answer))
        note = None
        if response.status >= 400:
            payload = json.loads(response.body)
            note = (
                payload.get("detail")
                if not payload.get("errors")
                else "; ".join(e.get("message", "") for e in payload["errors"])
            )
        return account.account, response, note

    # -- state helpers (call with the lock held) ---------------------------------------------

    def _next_id(self, moment: float | None = None) -> str:
        """A snowflake-like id: a string of digits that orders posts by time.

        Without ``moment`` (now) ids strictly increase; with one (a post put on a timeline by
        :meth:`add_tweet`) the id is that moment's, bumped only past a collision.
        """
        if moment is None:
            snowflake = (int(time.time() * 1000) - _TWITTER_EPOCH_MS) << 22
            self._last_id = max(snowflake, self._last_id + 1)
            return str(self._last_id)
        number = max(int(moment * 1000) - _TWITTER_EPOCH_MS, 1) << 22
        while str(number) in self._tweets or str(number) in self._media:
            number += 1
        self._last_id = max(self._last_id, number)
        return str(number)

    def _describe(self, tweet: _Tweet, account: XAccount) -> dict[str, Any]:
        media = []
        for media_id in tweet.media_ids:
            item = self._media[media_id]
            kind = _MEDIA_KINDS[item.category][1]
            media.append(
                {"id": item.id, "media_key": item.key, "type": kind, "alt_text": item.alt_text}
            )
        return {
            "id": tweet.id,
            "account": tweet.account,
            "author_id": account.user_id,
            "text": tweet.text,
            "created_at": datetime.fromtimestamp(tweet.created_at, UTC),
            "reply_to": tweet.reply_to,
            "media": media,
            "repost_of": tweet.repost_of,
            "user_agent": tweet.user_agent,
        }

    def _usable_media(self, account: XAccount, media_id: str) -> bool:
        item = self._media.get(media_id)
        return (
            item is not None
            and item.account == account.account
            and item.finalized
            and time.time() - item.created_at <= _MEDIA_LIFETIME
        )

    # -- posts ------------------------------------------------------------------------------

    def _create_post(self, ctx: _Ctx) -> Response:
        body = ctx.body
        text: str = body.get("text", "")
        reply_to = body.get("reply", {}).get("in_reply_to_tweet_id")
        media_ids: list[str] = body.get("media", {}).get("media_ids", [])
        limit = self.max_weighted_length
        too_long = (
            limit is not None
            and text
            and _may_exceed(text, limit)
            and parse_tweet(text).weightedLength > limit
        )
        if too_long:
            return _invalid([TOO_LONG])
        with self._lock:
            if not all(self._usable_media(ctx.account, m) for m in media_ids):
                return _invalid([INVALID_MEDIA])
            if reply_to is not None:
                target = self._tweets.get(reply_to)
                if target is None or target.deleted:
                    return _problem(403, "Forbidden", REPLY_GONE)
            now = time.time()
            if text and any(
                not t.deleted
                and (self.duplicate_window is None or now - t.created_at <= self.duplicate_window)
                for t in self._by_text.get((ctx.account.account, text), ())
            ):
                return _problem(403, "Forbidden", DUPLICATE)
            tweet = _Tweet(
                self._next_id(),
                ctx.account.account,
                text,
                now,
                reply_to,
                media_ids,
                user_agent=ctx.user_agent,
            )
            self._store(tweet)
        data = {"id": tweet.id, "text": text, "edit_history_tweet_ids": [tweet.id]}
        return _json({"data": data}, 201)

    def _store(self, tweet: _Tweet) -> None:
        """Under the lock: keep ``tweet``, indexed by id and by (account, text)."""
        self._tweets[tweet.id] = tweet
        self._by_text.setdefault((tweet.account, tweet.text), []).append(tweet)

    def _delete_post(self, ctx: _Ctx) -> Response:
        tweet_id = ctx.path_params["id"]
        with self._lock:
            tweet = self._tweets.get(tweet_id)
            if tweet is None or tweet.deleted:
                return self._not_found("tweet", "id", tweet_id)
            if tweet.account != ctx.account.account:
                return _problem(403, "Forbidden", "You are not authorized to delete this Tweet.")
            tweet.deleted = True
            for other in self._tweets.values():  # its reposts go with it
                if other.repost_of == tweet_id:
                    other.deleted = True
        return _json({"data": {"deleted": True}})

    # -- reposts ----------------------------------------------------------------------------

    def reposts(self, name: str) -> list[str]:
        """The ids of the posts account ``name`` reposts now (live reposts), oldest first."""
        with self._lock:
            return [
                t.repost_of
                for t in sorted(self._tweets.values(), key=lambda t: int(t.id))
                if t.account == name and t.repost_of is not None and not t.deleted
            ]

    def _live_repost(self, account: str, source: str) -> _Tweet | None:
        """Under the lock: ``account``'s live repost of post ``source``."""
        return next(
            (
                t
                for t in self._tweets.values()
                if t.account == account and t.repost_of == source and not t.deleted
            ),
            None,
        )

    def _not_yours(self, ctx: _Ctx) -> Response | None:
        """X acts only for the authenticated user: another user's id in the path is a 403."""
        if ctx.path_params["id"] == ctx.account.user_id:
            return None
        return _problem(403, "Forbidden", "You are not permitted to perform this action.")

    def _repost(self, ctx: _Ctx) -> Response:
        """``POST /2/users/:id/retweets`` ``{"tweet_id"}``: the repost appears on the
        account's timeline as X shows one ("RT @handle: text", ``referenced_tweets`` of type
        ``retweeted``). X keeps one repost of a post per account: a second request changes
        nothing and answers as the first did (X's docs: "Twitter will ignore attempts to
        perform duplicate retweets"). An unknown or deleted post: 404 resource-not-found.
        At most ``repost_limit`` requests per account in 15 minutes (X's documented user
        limit: 50), then 429 with the window's reset."""
        refused = self._not_yours(ctx)
        if refused is not None:
            return refused
        source_id: str = ctx.body["tweet_id"]
        name = ctx.account.account
        now = time.time()
        with self._lock:
            if self.repost_limit is not None:
                made = [t for t in self._reposts_made.get(name, []) if now - t < 900]
                if len(made) >= self.repost_limit:
                    response = _problem(429, "Too Many Requests", "Too Many Requests")
                    response.headers.update(
                        {
                            "x-rate-limit-limit": str(self.repost_limit),
                            "x-rate-limit-remaining": "0",
                            "x-rate-limit-reset": str(int(made[0] + 900) + 1),
                        }
                    )
                    return response
                self._reposts_made[name] = [*made, now]
            source = self._tweets.get(source_id)
            if source is None or source.deleted or source.repost_of is not None:
                return self._not_found("tweet", "tweet_id", source_id)
            if self._live_repost(name, source_id) is None:
                owner = self._accounts[source.account]
                text = f"RT @{owner.handle}: {source.text}"
                repost = _Tweet(self._next_id(), name, text, now, None, [], repost_of=source_id)
                self._tweets[repost.id] = repost  # not in _by_text: a repost is no duplicate
        return _json({"data": {"retweeted": True, "rest_id": source_id}})

    def _unrepost(self, ctx: _Ctx) -> Response:
        """``DELETE /2/users/:id/retweets/:source_tweet_id``: succeeds with no action when
        the account does not repost it (X's docs)."""
        refused = self._not_yours(ctx)
        if refused is not None:
            return refused
        with self._lock:
            repost = self._live_repost(ctx.account.account, ctx.path_params["source_tweet_id"])
            if repost is not None:
                repost.deleted = True
        return _json({"data": {"retweeted": False}})

    def _reposted_by(self, ctx: _Ctx) -> Response:
        """``GET /2/tweets/:id/retweeted_by``: the users who repost it (one page of up to
        ``max_results``, 100 by default; no pagination beyond it here)."""
        source_id = ctx.path_params["id"]
        limit = int(ctx.query.get("max_results", 100))
        with self._lock:
            source = self._tweets.get(source_id)
            if source is None or source.deleted:
                return self._not_found("tweet", "id", source_id, status=200)
            names = [
                t.account
                for t in sorted(self._tweets.values(), key=lambda t: int(t.id))
                if t.repost_of == source_id and not t.deleted
            ][:limit]
        users = [
            {"id": a.user_id, "name": a.handle, "username": a.handle}
            for a in (self._accounts[n] for n in names)
        ]
        payload: dict[str, Any] = {"meta": {"result_count": len(users)}}
        if users:
            payload["data"] = users
        return _json(payload)

    @staticmethod
    def _not_found(resource: str, parameter: str, value: str, status: int = 404) -> Response:
        problem = {
            "value": value,
            "detail": f"Could not find {resource} with {parameter}: [{value}].",
            "title": "Not Found Error",
            "resource_type": resource,
            "parameter": parameter,
            "resource_id": value,
            "type": PROBLEMS + "resource-not-found",
        }
        return _json({"errors": [problem]}, status)

    # -- users ------------------------------------------------------------------------------

    def _me(self, ctx: _Ctx) -> Response:
        account = ctx.account
        data = {"id": account.user_id, "name": account.handle, "username": account.handle}
        return _json({"data": data})

    def _user_posts(self, ctx: _Ctx) -> Response:
        user_id, query = ctx.path_params["id"], ctx.query
        owner = next((a for a in self._accounts.values() if a.user_id == user_id), None)
        if owner is None:
            return self._not_found("user", "id", user_id, status=200)
        max_results = int(query.get("max_results", 10))
        exclude = set(_csv(query.get("exclude")))
        try:
            start = _parse_time(query["start_time"]) if "start_time" in query else None
            end = _parse_time(query["end_time"]) if "end_time" in query else None
        except ValueError as exc:
            return _invalid([f"Invalid start_time or end_time: {exc}"])
        since, until = query.get("since_id"), query.get("until_id")
        with self._lock:
            tweets = sorted(
                (
                    t
                    for t in self._tweets.values()
                    if t.account == owner.account
                    and not t.deleted
                    and not ("replies" in exclude and t.reply_to)
                    and (start is None or t.created_at >= start)
                    and (end is None or t.created_at <= end)
                    and (since is None or int(t.id) > int(since))
                    and (until is None or int(t.id) < int(until))
                ),
                key=lambda t: int(t.id),
                reverse=True,
            )
            first = 0
            if "pagination_token" in query:
                after = _untoken(query["pagination_token"])
                if after is None:
                    token = query["pagination_token"]
                    return _invalid(
                        [f"The `pagination_token` query parameter value [{token}] is not valid"],
                        {"pagination_token": token},
                    )
                first = next((i for i, t in enumerate(tweets) if int(t.id) <= after), len(tweets))
            page = tweets[first : first + max_results]
            rest = tweets[first + max_results :]
            payload = self._posts_payload(page, query)
        meta: dict[str, Any] = {"result_count": len(page)}
        if page:
            meta["newest_id"], meta["oldest_id"] = page[0].id, page[-1].id
        if rest:
            meta["next_token"] = _token(int(rest[0].id))
        payload["meta"] = meta
        return _json(payload)

    def _post_by_id(self, ctx: _Ctx) -> Response:
        tweet_id = ctx.path_params["id"]
        with self._lock:
            tweet = self._tweets.get(tweet_id)
            if tweet is None or tweet.deleted:
                return self._not_found("tweet", "id", tweet_id, status=200)
            payload = self._posts_payload([tweet], ctx.query)
        payload["data"] = payload["data"][0]
        return _json(payload)

    def _posts_by_ids(self, ctx: _Ctx) -> Response:
        ids = _csv(ctx.query["ids"])
        with self._lock:
            found = [self._tweets.get(i) for i in ids]
            payload = self._posts_payload([t for t in found if t and not t.deleted], ctx.query)
        missing = [i for i, t in zip(ids, found, strict=True) if t is None or t.deleted]
        if missing:
            payload["errors"] = [
                json.loads(self._not_found("tweet", "ids", i).body)["errors"][0] for i in missing
            ]
        return _json(payload)

    def _posts_payload(self, tweets: list[_Tweet], query: Mapping[str, str]) -> dict[str, Any]:
        """``data`` (absent when empty) and ``includes.media``, as X renders posts."""
        fields = set(_csv(query.get("post.fields")))
        payload: dict[str, Any] = {}
        if tweets:
            payload["data"] = [self._render(t, fields) for t in tweets]
        media = [self._media[m] for t in tweets for m in t.media_ids]
        if media and "attachments.media_keys" in _csv(query.get("expansions")):
            media_fields = set(_csv(query.get("media.fields")))
            payload["includes"] = {"media": [_render_media(m, media_fields) for m in media]}
        return payload

    def _render(self, tweet: _Tweet, fields: set[str]) -> dict[str, Any]:
        owner = self._accounts[tweet.account]
        text, urls = self._display(tweet, owner)
        data: dict[str, Any] = {
            "id": tweet.id,
            "text": text,
            "edit_history_tweet_ids": [tweet.id],
        }
        if "entities" in fields and urls:
            data["entities"] = {"urls": urls}
        if "created_at" in fields:
            data["created_at"] = _iso(tweet.created_at)
        if "author_id" in fields:
            data["author_id"] = owner.user_id
        if "conversation_id" in fields:
            root = tweet
            while root.reply_to and root.reply_to in self._tweets:
                root = self._tweets[root.reply_to]
            data["conversation_id"] = root.reply_to or root.id
        if tweet.reply_to and "in_reply_to_user_id" in fields:
            parent = self._tweets.get(tweet.reply_to)
            if parent is not None:
                data["in_reply_to_user_id"] = self._accounts[parent.account].user_id
        if tweet.reply_to and "referenced_tweets" in fields:
            data["referenced_tweets"] = [{"type": "replied_to", "id": tweet.reply_to}]
        if tweet.repost_of and "referenced_tweets" in fields:
            data["referenced_tweets"] = [{"type": "retweeted", "id": tweet.repost_of}]
        if tweet.media_ids and "attachments" in fields:
            data["attachments"] = {"media_keys": [self._media[m].key for m in tweet.media_ids]}
        return data

    def _display(self, tweet: _Tweet, owner: XAccount) -> tuple[str, list[dict[str, Any]]]:
        """A post's ``text`` as X's read endpoints give it, and its ``entities.urls``.

        As X does: every URL is replaced by a t.co link (``expanded_url`` is the URL as
        written, with ``http://`` added when it had no scheme); ``&``, ``<`` and ``>`` are
        HTML-escaped; a post with media ends with one more t.co link, to the media, whose
        entity carries ``media_key``. Offsets count code points of the returned text."""
        out, urls, done = "", [], 0
        # Every URL holds a dot; finding URLs costs about a millisecond a text (the lag
        # benchmark reads timelines).
        found_urls = extract_urls_with_indices(tweet.text) if "." in tweet.text else []
        for n, found in enumerate(found_urls):
            start, end = found["indices"]
            out += _escape(tweet.text[done:start])
            link = _tco(tweet.id, n)
            url = found["url"]
            expanded = url if re.match(r"(?i)https?://", url) else "http://" + url
            display = re.sub(r"(?i)^https?://(www\.)?", "", url)
            display = display if len(display) <= 26 else display[:25] + "…"
            entity = {"start": len(out), "end": len(out) + len(link), "url": link}
            urls.append({**entity, "expanded_url": expanded, "display_url": display})
            out += link
            done = end
        out += _escape(tweet.text[done:])
        if tweet.media_ids:
            link = _tco(tweet.id, 99)
            out = f"{out} {link}" if out else link
            urls.append(
                {
                    "start": len(out) - len(link),
                    "end": len(out),
                    "url": link,
                    "expanded_url": f"https://x.com/{owner.handle}/status/{tweet.id}/photo/1",
                    "display_url": f"pic.x.com/{link.rsplit('/', 1)[1]}",
                    "media_key": self._media[tweet.media_ids[0]].key,
                }
            )
        return out, urls

    # -- media ------------------------------------------------------------------------------

    def _new_media(self, account: XAccount, category: str, media_type: str | None) -> _Media:
        media_id = self._next_id()
        prefix = _MEDIA_KINDS[category][0]
        item = _Media(
            media_id, f"{prefix}_{media_id}", account.account, category, media_type, time.time()
        )
        self._media[media_id] = item
        return item

    @staticmethod
    def _media_bytes(value: Any) -> bytes | None:
        if isinstance(value, bytes):
            return value
        try:
            return base64.b64decode(str(value), validate=True)
        except (binascii.Error, ValueError):
            return None

    def _complete(self, item: _Media, data: bytes) -> Response | None:
        """Check and store the media's bytes; a 400 if X would refuse them."""
        _, kind, limit = _MEDIA_KINDS[item.category]
        if len(data) > limit:
            return _invalid([f"File size exceeds {limit} bytes."])
        mime, width, height = _sniff(data)
        expected = {"photo": "image/", "animated_gif": "image/gif", "video": "video/"}.get(kind)
        if expected and not (mime or "").startswith(expected):
            return _invalid([f"media type unrecognized for media_category {item.category}."])
        item.data, item.finalized = data, True
        item.media_type = item.media_type or mime
        item.width, item.height = width, height
        return None

    def _media_data(self, item: _Media) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": item.id,
            "media_key": item.key,
            "size": len(item.data),
            "expires_after_secs": max(0, int(item.created_at + _MEDIA_LIFETIME - time.time())),
        }
        kind = _MEDIA_KINDS[item.category][1]
        if kind in ("photo", "animated_gif"):
            image: dict[str, Any] = {"image_type": item.media_type or "image/jpeg"}
            if item.width is not None:
                image["w"], image["h"] = item.width, item.height
            data["image"] = image
        elif kind == "video":
            data["video"] = {"video_type": item.media_type or "video/mp4"}
            data["processing_info"] = {"state": "succeeded", "progress_percent": 100}
        return data

    def _upload(self, ctx: _Ctx) -> Response:
        data = self._media_bytes(ctx.body["media"])
        if data is None:
            return _invalid(["media: not valid base64"])
        with self._lock:
            item = self._new_media(ctx.account, ctx.body["media_category"], None)
            refused = self._complete(item, data)
            if refused is not None:
                del self._media[item.id]
                return refused
            return _json({"data": self._media_data(item)})

    def _owned_media(self, ctx: _Ctx, media_id: str) -> _Media | Response:
        item = self._media.get(media_id)
        if item is None or item.account != ctx.account.account:
            return self._not_found("media", "media_id", media_id)
        return item

    def _upload_status(self, ctx: _Ctx) -> Response:
        with self._lock:
            item = self._owned_media(ctx, ctx.query["media_id"])
            if isinstance(item, Response):
                return item
            return _json({"data": self._media_data(item)})

    def _upload_initialize(self, ctx: _Ctx) -> Response:
        body = ctx.body
        category = body.get("media_category", "tweet_image")
        with self._lock:
            item = self._new_media(ctx.account, category, body.get("media_type"))
            item.total_bytes = body.get("total_bytes")
            data = {
                "id": item.id,
                "media_key": item.key,
                "expires_after_secs": _MEDIA_LIFETIME,
            }
        return _json({"data": data})

    def _upload_append(self, ctx: _Ctx) -> Response:
        data = self._media_bytes(ctx.body["media"])
        if data is None:
            return _invalid(["media: not valid base64"])
        with self._lock:
            item = self._owned_media(ctx, ctx.path_params["id"])
            if isinstance(item, Response):
                return item
            if item.finalized:
                return _invalid([f"Media {item.id} is already finalized."])
            item.segments[int(ctx.body["segment_index"])] = data
            expires_at = int(item.created_at + _MEDIA_LIFETIME)
        return _json({"data": {"expires_at": expires_at}})

    def _upload_finalize(self, ctx: _Ctx) -> Response:
        with self._lock:
            item = self._owned_media(ctx, ctx.path_params["id"])
            if isinstance(item, Response):
                return item
            if not item.finalized:
                indexes = sorted(item.segments)
                if indexes != list(range(len(indexes))) or not indexes:
                    return _invalid([f"Segments {indexes} of media {item.id} are not 0..n-1."])
                data = b"".join(item.segments[i] for i in indexes)
                if item.total_bytes is not None and len(data) != item.total_bytes:
                    return _invalid(
                        [f"File size mismatch: got {len(data)} bytes, expected {item.total_bytes}."]
                    )
                refused = self._complete(item, data)
                if refused is not None:
                    return refused
                item.segments.clear()
            return _json({"data": self._media_data(item)})

    def _media_metadata(self, ctx: _Ctx) -> Response:
        body = ctx.body
        with self._lock:
            item = self._owned_media(ctx, body["id"])
            if isinstance(item, Response):
                return item
            metadata = body.get("metadata", {})
            if "alt_text" in metadata:
                item.alt_text = metadata["alt_text"]["text"]
        return _json({"data": {"id": item.id, "associated_metadata": metadata}})


def _render_media(item: _Media, fields: set[str]) -> dict[str, Any]:
    data: dict[str, Any] = {"media_key": item.key, "type": _MEDIA_KINDS[item.category][1]}
    if "alt_text" in fields and item.alt_text is not None:
        data["alt_text"] = item.alt_text
    if "width" in fields and item.width is not None:
        data["width"] = item.width
    if "height" in fields and item.height is not None:
        data["height"] = item.height
    return data


def _escape(text: str) -> str:
    """X's escaping of post text: ``&``, ``<`` and ``>`` only (quotes are left alone)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _tco(tweet_id: str, n: int) -> str:
    """A t.co link, stable for one post and one URL in it (X's are 10 characters long)."""
    digest = hashlib.sha256(f"{tweet_id}:{n}".encode()).digest()
    return "https://t.co/" + base64.b32encode(digest).decode()[:10]


def _phrase_of(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


def _csv(value: str | None) -> list[str]:
    return [part for part in (value or "").split(",") if part]


def _token(tweet_id: int) -> str:
    return base64.b32encode(tweet_id.to_bytes(8, "big")).decode().rstrip("=").lower()


def _untoken(token: str) -> int | None:
    try:
        raw = base64.b32decode(token.upper() + "=" * (-len(token) % 8))
    except (binascii.Error, ValueError):
        return None
    return int.from_bytes(raw, "big") if len(raw) == 8 else None
