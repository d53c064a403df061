"""A fake Bluesky PDS on 127.0.0.1: XRPC over HTTP, for the real ``atproto`` SDK.

:class:`BlueskyServer` is a :class:`~servers.translate.FakeTranslationServer` (the shared HTTP
machinery: ``ThreadingHTTPServer`` on ``127.0.0.1:0``, context manager, ``calls``, ``errors``)
that answers ``/xrpc/<nsid>`` as a PDS does::

    with BlueskyServer(accounts={"fr": ("francediplo.bsky.social", "app-pass")}) as pds:
        client = atproto.Client(base_url=pds.url)
        client.login("francediplo.bsky.social", "app-pass")
        client.send_post("Bonjour")
        assert [p["text"] for p in pds.posts("fr")] == ["Bonjour"]
        assert not pds.errors

``pds.url`` is ``http://127.0.0.1:PORT`` (no trailing slash), the stand-in for
``https://bsky.social``; ``createSession`` answers a DID document whose PDS endpoint is that
URL, so the SDK keeps talking to the fake.

What it checks, as a PDS does
-----------------------------

* **Sessions.** ``createSession`` takes the handle, the DID or the e-mail with the app
  password; a wrong one is ``401 {"error": "AuthenticationRequired", "message": "Invalid
  identifier or password"}``. It is rate-limited per account (``login_limit``, 30 per 5
  minutes like bsky.social): past it, ``429 RateLimitExceeded`` with ``ratelimit-*`` headers.
  Tokens are JWTs (HS256 with the fake's own key; ``exp``, ``iat``, ``sub``, ``scope``,
  ``jti``): access tokens live ``access_ttl`` seconds (2 h), refresh tokens ``refresh_ttl``
  (90 days) and are single-use (``refreshSession`` rotates them; a used one is ``400
  InvalidToken "Token has been revoked"``). No token: ``401 AuthenticationRequired``; a bad
  signature or the wrong kind of token: ``400 InvalidToken``; an expired one (or one ended by
  :meth:`expire_sessions`): ``400 ExpiredToken "Token has expired"``.
* **Records** (``app.bsky.feed.post``, and ``app.bsky.feed.repost`` with its ``subject``
  strong reference and ``createdAt``, not checked to exist, as a PDS does not; validated as
  the lexicon says): ``repo`` must be
  the session's DID or handle; ``rkey`` a valid TID (``^[234567abcdefghij][2-7a-z]{12}$``);
  ``$type``; ``text`` at most 3,000 UTF-8 bytes and 300 graphemes; ``createdAt`` an RFC 3339
  datetime; ``langs`` at most 3 language tags; each facet's ``byteStart < byteEnd ≤`` the
  text's UTF-8 length, with known features (``link.uri``, ``mention.did``, ``tag.tag``);
  ``reply.root`` and ``reply.parent`` both present, each naming an existing post by URI *and*
  CID; ``embed.images``: 1 to 4 images, each with ``alt`` and a blob this account uploaded,
  an image type, at most 1,000,000 bytes, and an ``aspectRatio`` of positive integers. A
  violation is ``400 {"error": "InvalidRequest", "message": "Invalid app.bsky.feed.post
  record: …"}`` and is recorded in :attr:`rejections` (not in ``errors``: refusing is the
  fake's job). A create at an ``rkey`` already in the repository is, like bsky.social,
  ``500 InternalServerError`` (bluesky-social/atproto#3718); ``duplicate_rkey="explicit"``
  answers ``400 RecordAlreadyExists`` instead (the newer lexicon's error).
* ``uploadBlob``: the raw body, its type sniffed; over ``upload_limit`` (5 MB): ``413
  PayloadTooLarge``.

Endpoints: ``com.atproto.server.createSession``, ``refreshSession``, ``getSession``;
``com.atproto.identity.resolveHandle`` (``400 InvalidRequest "Unable to resolve handle"``);
``com.atproto.repo.uploadBlob``, ``createRecord``, ``getRecord`` (``400 RecordNotFound``),
``listRecords`` (by ``rkey`` descending, ``limit`` 1–100, ``cursor``, ``reverse``),
``deleteRecord`` (a missing record is no error). Any other method: ``501
MethodNotImplemented``, recorded in ``errors``. Every answer carries ``ratelimit-limit``,
``ratelimit-remaining``, ``ratelimit-reset`` and ``ratelimit-policy``.

Faults
------

``pds.fail_next(kind, count=1, *, nsid=None, reset=None)`` answers the next ``count``
requests (to ``nsid``, when given) with:

=======================  ======================================================================
``"429"``                ``429 RateLimitExceeded``, ``ratelimit-remaining: 0`` and
                         ``ratelimit-reset`` (epoch seconds: ``reset``, default now + 300)
``"401"``, ``"500"`` …   XRPC error body (``AuthenticationRequired``, ``InternalServerError``,
                         ``UpstreamFailure``…)
``"drop_after_store"``   process the request (a post IS stored), close without answering
``"drop"``               close without processing (nothing is stored)
``"hang"``               read the request, never answer
``"trickle"``            process the request (a post IS stored), then send the answer, status
                         line first, one byte every ``seconds``: no read timeout ever fires
=======================  ======================================================================

:meth:`revoke` changes an account's app password and ends its sessions (the app password was
revoked in the settings); :meth:`expire_sessions` ends the sessions only, :meth:`expire_access`
their access tokens only (as time does).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import regex
from requests.structures import CaseInsensitiveDict

from servers.translate import Call, FakeTranslationServer, Response

_JSON = "application/json; charset=utf-8"
POST = "app.bsky.feed.post"
REPOST = "app.bsky.feed.repost"
COLLECTIONS = (POST, REPOST)
_TID = re.compile(r"^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$")
_TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
_LANG = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")
_DID = re.compile(r"^did:[a-z]+:[a-zA-Z0-9._:%-]+$")
_PHRASES = {
    400: ("InvalidRequest", "Bad Request"),
    401: ("AuthenticationRequired", "Authentication Required"),
    403: ("AccountTakedown", "Account has been taken down"),
    500: ("InternalServerError", "Internal Server Error"),
    501: ("MethodNotImplemented", "Method Not Implemented"),
    502: ("UpstreamFailure", "Upstream Failure"),
    503: ("NotEnoughResources", "Service Unavailable"),
    504: ("UpstreamTimeout", "Upstream Timeout"),
}
IMAGE_MAX = 1_000_000  # app.bsky.embed.images#image: maxSize


@dataclass
class BlueskyAccount:
    name: str
    handle: str
    did: str
    password: str
    logins: list[float] = field(default_factory=list)  # createSession times
    sessions_valid_after: float = 0.0  # tokens issued before this are expired
    access_valid_after: float = 0.0  # access tokens issued before this are expired


@dataclass
class _Blob:
    cid: str
    account: str
    mime: str
    data: bytes


@dataclass
class _Record:
    account: str
    rkey: str
    cid: str
    value: dict[str, Any]
    created: float
    deleted: bool = False
    collection: str = POST

    def uri(self, did: str) -> str:
        return f"at://{did}/{self.collection}/{self.rkey}"


@dataclass(frozen=True)
class _Fault:
    kind: str
    nsid: str | None
    reset: int | None
    seconds: float = 1.0


class _Refusal(Exception):
    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.response = _xrpc_error(status, error, message)


def _xrpc_error(status: int, error: str, message: str) -> Response:
    body = json.dumps({"error": error, "message": message}).encode()
    return Response(status, body, _JSON)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _cid(data: bytes) -> str:
    """A CIDv1-looking string (``bafyrei`` + base32 of the digest)."""
    digest = base64.b32encode(hashlib.sha256(data).digest()).decode().lower().rstrip("=")
    return f"bafyrei{digest}"


def _sniff(data: bytes) -> str:
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return "application/octet-stream"


class BlueskyServer(FakeTranslationServer):
    """A PDS for the accounts given: test name → ``(handle, app_password)`` or ``(handle,
    app_password, did)``; the DID defaults to one derived from the name."""

    FAULTS: ClassVar[frozenset[str]] = frozenset(
        {"429", "drop_after_store", "drop", "hang", "trickle"}
    )

    def __init__(
        self,
        *,
        accounts: Mapping[str, tuple[str, str] | tuple[str, str, str]],
        access_ttl: float = 7200,
        refresh_ttl: float = 90 * 86400,
        login_limit: int = 30,
        login_window: float = 300,
        upload_limit: int = 5_000_000,
        duplicate_rkey: str = "500",
        others: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        self.login_limit = login_limit
        self.login_window = login_window
        self.upload_limit = upload_limit
        self.duplicate_rkey = duplicate_rkey
        self.key = secrets.token_bytes(32)
        self._accounts: dict[str, BlueskyAccount] = {}
        for name, spec in accounts.items():
            handle, password, *rest = spec
            did = rest[0] if rest else "did:plc:" + _b32(name)[:24]
            self._accounts[name] = BlueskyAccount(name, handle, did, password)
        # Handles of people mentioned, who are not our accounts: handle → DID.
        self.others = dict(others or {})
        self._records: dict[tuple[str, str], _Record] = {}  # posts: (account, rkey)
        self._reposts: dict[tuple[str, str], _Record] = {}  # reposts: (account, rkey)
        self._blobs: dict[str, _Blob] = {}
        self._used_refresh: set[str] = set()
        self._pds_faults: list[_Fault] = []
        self._last_tid = 0
        #: Requests refused by validation: (nsid, message); the fake's own bugs are in errors.
        self.rejections: list[tuple[str, str]] = []

    # -- configuration and inspection -------------------------------------------------------

    @property
    def url(self) -> str:
        return super().url.rstrip("/")

    def account(self, name: str) -> BlueskyAccount:
        return self._accounts[name]

    def posts(self, name: str) -> list[dict[str, Any]]:
        """The account's live posts, oldest first: ``uri``, ``cid``, ``rkey``, ``text``,
        ``langs``, ``facets`` (as stored), ``reply`` (``root``/``parent`` URIs), ``images``
        (``alt``, ``mime``, ``size``, ``data``, ``aspectRatio``), ``createdAt``."""
        account = self._accounts[name]
        with self._lock:
            live = [r for r in self._records.values() if r.account == name and not r.deleted]
            live.sort(key=lambda r: r.created)
            return [self._describe(r, account) for r in live]

    def reposts(self, name: str) -> list[str]:
        """The URIs of the posts account ``name`` reposts now (live repost records), oldest
        first."""
        with self._lock:
            live = [r for r in self._reposts.values() if r.account == name and not r.deleted]
            live.sort(key=lambda r: r.created)
            return [r.value["subject"]["uri"] for r in live]

    def _collection(self, name: Any) -> dict[tuple[str, str], _Record]:
        """Under the lock: the records of collection ``name``."""
        if name == POST:
            return self._records
        if name == REPOST:
            return self._reposts
        raise _Refusal(400, "InvalidRequest", "Unsupported collection")

    def logins(self, name: str) -> int:
        """How many sessions ``createSession`` made for the account."""
        return len(self._accounts[name].logins)

    def revoke(self, name: str) -> None:
        """The app password is revoked: it no longer logs in, and its sessions end."""
        with self._lock:
            account = self._accounts[name]
            account.password = secrets.token_hex(8)
            account.sessions_valid_after = time.time()

    def expire_sessions(self, name: str) -> None:
        """End the account's sessions (access and refresh tokens), as the PDS may."""
        with self._lock:
            self._accounts[name].sessions_valid_after = time.time()

    def expire_access(self, name: str) -> None:
        """End the account's access tokens (their refresh tokens still refresh)."""
        with self._lock:
            self._accounts[name].access_valid_after = time.time()

    def fail_next(
        self,
        kind: str,
        count: int = 1,
        *,
        nsid: str | None = None,
        reset: int | None = None,
        seconds: float = 1.0,
    ) -> None:
        if kind not in self.FAULTS and not (kind.isdigit() and 400 <= int(kind) <= 599):
            raise ValueError(f"unknown fault {kind!r}")
        with self._lock:
            self._pds_faults.extend([_Fault(kind, nsid, reset, seconds)] * count)

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self._pds_faults.clear()

    # -- serving ----------------------------------------------------------------------------

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:  # type: ignore[override]
        split = urlsplit(handler.path)
        query = {k: v[0] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length > 0 else b""
        headers: CaseInsensitiveDict[str] = CaseInsensitiveDict(dict(handler.headers.items()))
        nsid = split.path.removeprefix("/xrpc/")
        with self._lock:
            fault = next((f for f in self._pds_faults if f.nsid in (None, nsid)), None)
            if fault is not None:
                self._pds_faults.remove(fault)
            kind = fault.kind if fault else None
            body: Any = raw if nsid == "com.atproto.repo.uploadBlob" else _json(raw)
            self._calls.append(Call(handler.command, split.path, query, body, headers, kind))
        handler.close_connection = kind in ("drop", "drop_after_store", "hang", "trickle")
        if kind == "hang":
            self._stopping.wait()
            return
        if kind == "drop":
            return
        try:
            if fault is not None and kind not in ("drop_after_store", "trickle"):
                response = self._fault_response(fault)
            else:
                response = self._route(handler.command, nsid, query, raw, headers)
        except Exception as exc:
            self.errors.append(exc)
            response = Response(500, traceback.format_exc().encode(), "text/plain")
        if kind == "drop_after_store":
            return
        response.headers.update(self._limits(response))
        if kind == "trickle" and fault is not None:
            self._trickle(handler, response, fault.seconds)
            return
        self._write(handler, response)  # type: ignore[arg-type]

    def _trickle(self, handler: BaseHTTPRequestHandler, response: Response, seconds: float) -> None:
        """The whole answer, one byte every ``seconds`` (each well within a read timeout)."""
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
        except OSError:  # the client gave up
            pass

    def _limits(self, response: Response) -> dict[str, str]:
        if response.status == 429 and "ratelimit-reset" in response.headers:
            return {}
        return {
            "ratelimit-limit": "3000",
            "ratelimit-remaining": "2999",
            "ratelimit-reset": str(int(time.time()) + 300),
            "ratelimit-policy": "3000;w=300",
        }

    def _fault_response(self, fault: _Fault) -> Response:
        if fault.kind == "429":
            response = _xrpc_error(429, "RateLimitExceeded", "Rate Limit Exceeded")
            reset = fault.reset if fault.reset is not None else int(time.time()) + 300
            response.headers.update(
                {
                    "ratelimit-limit": "3000",
                    "ratelimit-remaining": "0",
                    "ratelimit-reset": str(reset),
                    "ratelimit-policy": "3000;w=300",
                }
            )
            return response
        status = int(fault.kind)
        error, message = _PHRASES.get(status, ("InvalidRequest", "Bad Request"))
        return _xrpc_error(status, error, message)

    def _route(
        self,
        method: str,
        nsid: str,
        query: dict[str, str],
        raw: bytes,
        headers: CaseInsensitiveDict[str],
    ) -> Response:
        routes = {
            ("POST", "com.atproto.server.createSession"): self._create_session,
            ("POST", "com.atproto.server.refreshSession"): self._refresh_session,
            ("GET", "com.atproto.server.getSession"): self._get_session,
            ("GET", "com.atproto.identity.resolveHandle"): self._resolve_handle,
            ("POST", "com.atproto.repo.uploadBlob"): self._upload_blob,
            ("POST", "com.atproto.repo.createRecord"): self._create_record,
            ("GET", "com.atproto.repo.getRecord"): self._get_record,
            ("GET", "com.atproto.repo.listRecords"): self._list_records,
            ("POST", "com.atproto.repo.deleteRecord"): self._delete_record,
        }
        handler = routes.get((method, nsid))
        if handler is None:
            self.errors.append(AssertionError(f"unexpected XRPC call {method} {nsid}"))
            return _xrpc_error(501, "MethodNotImplemented", "Method Not Implemented")
        try:
            with self._lock:
                return handler(_Req(nsid, query, raw, headers))
        except _Refusal as refusal:
            if refusal.response.status == 400 and nsid.startswith("com.atproto.repo."):
                self.rejections.append((nsid, str(refusal)))
            return refusal.response

    # -- auth -------------------------------------------------------------------------------

    def _token(self, account: BlueskyAccount, scope: str, ttl: float) -> str:
        now = time.time()
        payload = {
            "scope": scope,
            "sub": account.did,
            "aud": "did:web:bsky.social",
            "iat": int(now),
            "exp": int(now + ttl),
            "jti": secrets.token_hex(12),
            "iat_precise": now,
        }
        head = _b64(json.dumps({"typ": "at+jwt", "alg": "HS256"}).encode())
        body = _b64(json.dumps(payload).encode())
        sig = hmac.new(self.key, f"{head}.{body}".encode(), hashlib.sha256).digest()
        return f"{head}.{body}.{_b64(sig)}"

    def _session(self, account: BlueskyAccount) -> dict[str, Any]:
        return {
            "accessJwt": self._token(account, "com.atproto.appPass", self.access_ttl),
            "refreshJwt": self._token(account, "com.atproto.refresh", self.refresh_ttl),
            "handle": account.handle,
            "did": account.did,
            "didDoc": {
                "@context": ["https://www.w3.org/ns/did/v1"],
                "id": account.did,
                "alsoKnownAs": [f"at://{account.handle}"],
                "verificationMethod": [],
                "service": [
                    {
                        "id": "#atproto_pds",
                        "type": "AtprotoPersonalDataServer",
                        "serviceEndpoint": self.url,
                    }
                ],
            },
            "email": f"{account.name}@example.org",
            "emailConfirmed": True,
            "active": True,
        }

    def _authenticate(self, req: _Req, scope: str = "com.atproto.appPass") -> BlueskyAccount:
        auth = req.headers.get("Authorization") or ""
        if not auth.startswith("Bearer "):
            raise _Refusal(401, "AuthenticationRequired", "Authentication Required")
        token = auth.removeprefix("Bearer ").strip()
        try:
            head, body, sig = token.split(".")
            expected = hmac.new(self.key, f"{head}.{body}".encode(), hashlib.sha256).digest()
            if not hmac.compare_digest(expected, _unb64(sig)):
                raise ValueError("signature")
            payload = json.loads(_unb64(body))
        except ValueError:
            raise _Refusal(400, "InvalidToken", "Token could not be verified") from None
        if payload.get("scope") != scope:
            raise _Refusal(400, "InvalidToken", "Invalid token type")
        account = next((a for a in self._accounts.values() if a.did == payload.get("sub")), None)
        if account is None:
            raise _Refusal(400, "InvalidToken", "Token could not be verified")
        issued = payload["iat_precise"]
        if (
            payload["exp"] <= time.time()
            or issued <= account.sessions_valid_after
            or (scope != "com.atproto.refresh" and issued <= account.access_valid_after)
        ):
            raise _Refusal(400, "ExpiredToken", "Token has expired")
        if scope == "com.atproto.refresh":
            if payload["jti"] in self._used_refresh:
                raise _Refusal(400, "InvalidToken", "Token has been revoked")
            self._used_refresh.add(payload["jti"])
        return account

    def _create_session(self, req: _Req) -> Response:
        body = req.json()
        ident, password = body.get("identifier"), body.get("password")
        if not isinstance(ident, str) or not isinstance(password, str):
            raise _Refusal(400, "InvalidRequest", 'Input must have the property "identifier"')
        ident = ident.lower().removeprefix("@")
        account = next(
            (
                a
                for a in self._accounts.values()
                if ident in (a.handle.lower(), a.did, f"{a.name}@example.org")
            ),
            None,
        )
        now = time.time()
        if account is not None:
            account.logins[:] = [t for t in account.logins if t > now - self.login_window]
            if len(account.logins) >= self.login_limit:
                response = _xrpc_error(429, "RateLimitExceeded", "Rate Limit Exceeded")
                reset = int(account.logins[0] + self.login_window) + 1
                response.headers.update(
                    {
                        "ratelimit-limit": str(self.login_limit),
                        "ratelimit-remaining": "0",
                        "ratelimit-reset": str(reset),
                        "ratelimit-policy": f"{self.login_limit};w={int(self.login_window)}",
                    }
                )
                return response
        if account is None or not hmac.compare_digest(account.password, password):
            raise _Refusal(401, "AuthenticationRequired", "Invalid identifier or password")
        account.logins.append(now)
        return _ok(self._session(account))

    def _refresh_session(self, req: _Req) -> Response:
        account = self._authenticate(req, "com.atproto.refresh")
        return _ok(self._session(account))

    def _get_session(self, req: _Req) -> Response:
        account = self._authenticate(req)
        return _ok(
            {
                "handle": account.handle,
                "did": account.did,
                "email": f"{account.name}@example.org",
                "emailConfirmed": True,
                "active": True,
            }
        )

    def _resolve_handle(self, req: _Req) -> Response:
        handle = (req.query.get("handle") or "").lower()
        for account in self._accounts.values():
            if account.handle.lower() == handle:
                return _ok({"did": account.did})
        if handle in self.others:
            return _ok({"did": self.others[handle]})
        raise _Refusal(400, "InvalidRequest", "Unable to resolve handle")

    # -- repository -------------------------------------------------------------------------

    def _upload_blob(self, req: _Req) -> Response:
        account = self._authenticate(req)
        if len(req.raw) > self.upload_limit:
            raise _Refusal(413, "PayloadTooLarge", "request entity too large")
        mime = _sniff(req.raw)
        cid = _cid(req.raw)
        self._blobs[cid] = _Blob(cid, account.name, mime, req.raw)
        return _ok(
            {
                "blob": {
                    "$type": "blob",
                    "ref": {"$link": cid},
                    "mimeType": mime,
                    "size": len(req.raw),
                }
            }
        )

    def _repo(self, req: _Req, account: BlueskyAccount, repo: Any) -> None:
        if repo not in (account.did, account.handle):
            raise _Refusal(400, "InvalidRequest", f"Invalid repo: {repo}")

    def _create_record(self, req: _Req) -> Response:
        account = self._authenticate(req)
        body = req.json()
        self._repo(req, account, body.get("repo"))
        collection = body.get("collection")
        records = self._collection(collection)
        rkey = body.get("rkey")
        if rkey is None:
            rkey = self._next_tid()
        elif not isinstance(rkey, str) or not _TID.match(rkey):
            raise _Refusal(400, "InvalidRequest", f"Invalid record key: {rkey!r} is not a TID")
        record = body.get("record")
        if collection == POST:
            self._validate_post(account, record)
        else:
            self._validate_repost(record)
        existing = records.get((account.name, rkey))
        if existing is not None and not existing.deleted:
            if self.duplicate_rkey == "explicit":
                raise _Refusal(400, "RecordAlreadyExists", "Record already exists")
            return _xrpc_error(500, "InternalServerError", "Internal Server Error")
        cid = _cid(json.dumps(record, sort_keys=True).encode())
        stored = _Record(account.name, rkey, cid, record, time.time(), collection=collection)
        records[(account.name, rkey)] = stored
        return _ok(
            {
                "uri": stored.uri(account.did),
                "cid": cid,
                "commit": {"cid": _cid(cid.encode()), "rev": self._next_tid()},
                "validationStatus": "valid",
            }
        )

    @staticmethod
    def _validate_repost(record: Any) -> None:
        """An ``app.bsky.feed.repost`` record as its lexicon says: ``subject`` a strong
        reference (``uri`` an at:// URI, ``cid``), ``createdAt``. As a PDS, the fake does not
        check that the subject exists (the AppView ignores a dangling repost)."""

        def bad(message: str) -> _Refusal:
            return _Refusal(400, "InvalidRequest", f"Invalid {REPOST} record: {message}")

        if not isinstance(record, dict):
            raise bad("Record must be an object")
        if record.get("$type") != REPOST:
            raise bad(f"Record/$type must be {REPOST}")
        subject = record.get("subject")
        if not isinstance(subject, dict):
            raise bad('Record must have the property "subject"')
        uri, cid = subject.get("uri"), subject.get("cid")
        if not isinstance(uri, str) or not uri.startswith("at://") or len(uri.split("/")) != 5:
            raise bad("Record/subject/uri must be a valid at-uri")
        if not isinstance(cid, str) or not cid:
            raise bad('Record/subject must have the property "cid"')
        created = record.get("createdAt")
        if not isinstance(created, str) or not _DATETIME.match(created):
            raise bad("Record/createdAt must be an valid atproto datetime")

    def _validate_post(self, account: BlueskyAccount, record: Any) -> None:
        def bad(message: str) -> _Refusal:
            return _Refusal(400, "InvalidRequest", f"Invalid app.bsky.feed.post record: {message}")

        if not isinstance(record, dict):
            raise bad("Record must be an object")
        if record.get("$type") != "app.bsky.feed.post":
            raise bad('Record/$type must be "app.bsky.feed.post"')
        text = record.get("text")
        if not isinstance(text, str):
            raise bad('Record must have the property "text"')
        raw = text.encode("utf-8")
        if len(raw) > 3000:
            raise bad("Record/text must not be longer than 3000 characters")
        if len(regex.findall(r"\X", text)) > 300:
            raise bad("Record/text must not be longer than 300 graphemes")
        created = record.get("createdAt")
        if not isinstance(created, str) or not _DATETIME.match(created):
            raise bad("Record/createdAt must be an valid atproto datetime")
        langs = record.get("langs")
        if langs is not None and (
            not isinstance(langs, list)
            or len(langs) > 3
            or not all(isinstance(lang, str) and _LANG.match(lang) for lang in langs)
        ):
            raise bad("Record/langs must be at most 3 language tags")
        for n, facet in enumerate(record.get("facets") or []):
            index = facet.get("index") if isinstance(facet, dict) else None
            start = index.get("byteStart") if isinstance(index, dict) else None
            end = index.get("byteEnd") if isinstance(index, dict) else None
            if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end):
                raise bad(f"Record/facets/{n}/index must have byteStart < byteEnd")
            if end > len(raw):
                raise bad(f"Record/facets/{n}/index/byteEnd is past the end of the text")
            for feature in facet.get("features") or [None]:
                kind = feature.get("$type") if isinstance(feature, dict) else None
                ok = (
                    (kind == "app.bsky.richtext.facet#link" and isinstance(feature.get("uri"), str))
                    or (
                        kind == "app.bsky.richtext.facet#mention"
                        and _DID.match(str(feature.get("did")))
                    )
                    or (
                        kind == "app.bsky.richtext.facet#tag"
                        and isinstance(feature.get("tag"), str)
                        and 0 < len(feature["tag"].encode()) <= 640
                    )
                )
                if not ok:
                    raise bad(f"Record/facets/{n}/features has an invalid feature")
        reply = record.get("reply")
        if reply is not None:
            if not isinstance(reply, dict) or not all(
                isinstance(reply.get(k), dict) for k in ("root", "parent")
            ):
                raise bad('Record/reply must have the properties "root" and "parent"')
            for part in ("root", "parent"):
                ref = reply[part]
                target = self._by_uri(str(ref.get("uri")))
                if target is None:
                    raise bad(f"Record/reply/{part} does not exist: {ref.get('uri')}")
                if ref.get("cid") != target.cid:
                    raise bad(f"Record/reply/{part}/cid does not match the record")
        embed = record.get("embed")
        if embed is not None:
            if not isinstance(embed, dict) or embed.get("$type") != "app.bsky.embed.images":
                raise bad("Record/embed must be app.bsky.embed.images")
            images = embed.get("images")
            if not isinstance(images, list) or not 1 <= len(images) <= 4:
                raise bad("Record/embed/images must hold 1 to 4 images")
            for n, image in enumerate(images):
                where = f"Record/embed/images/{n}"
                if not isinstance(image, dict) or not isinstance(image.get("alt"), str):
                    raise bad(f'{where} must have the property "alt"')
                ref = image.get("image") if isinstance(image.get("image"), dict) else {}
                link = (ref.get("ref") or {}).get("$link") if isinstance(ref, dict) else None
                blob = self._blobs.get(str(link))
                if blob is None or blob.account != account.name:
                    raise bad(f"{where}/image: blob not found")
                if not blob.mime.startswith("image/"):
                    raise bad(f"{where}/image has mimetype {blob.mime}, an image is required")
                if len(blob.data) > IMAGE_MAX:
                    raise bad(f"{where}/image is too big ({len(blob.data)} > {IMAGE_MAX} bytes)")
                ratio = image.get("aspectRatio")
                if ratio is not None and not (
                    isinstance(ratio, dict)
                    and all(
                        isinstance(ratio.get(k), int) and ratio[k] >= 1 for k in ("width", "height")
                    )
                ):
                    raise bad(f"{where}/aspectRatio must have positive width and height")

    def _get_record(self, req: _Req) -> Response:
        repo, rkey = req.query.get("repo"), req.query.get("rkey")
        collection = req.query.get("collection")
        if collection not in COLLECTIONS or not repo or not rkey:
            raise _Refusal(
                400,
                "InvalidRequest",
                "Error: Params must have the properties repo, collection, rkey",
            )
        account = self._by_repo(repo)
        uri = f"at://{repo}/{collection}/{rkey}"
        stored = self._collection(collection).get((account.name, rkey)) if account else None
        if account is None or stored is None or stored.deleted:
            raise _Refusal(400, "RecordNotFound", f"Could not locate record: {uri}")
        return _ok({"uri": stored.uri(account.did), "cid": stored.cid, "value": stored.value})

    def _list_records(self, req: _Req) -> Response:
        repo = req.query.get("repo") or ""
        account = self._by_repo(repo)
        if account is None:
            raise _Refusal(400, "InvalidRequest", f"Could not find repo: {repo}")
        try:
            limit = int(req.query.get("limit") or 50)
        except ValueError:
            raise _Refusal(400, "InvalidRequest", "limit must be an integer") from None
        if not 1 <= limit <= 100:
            raise _Refusal(400, "InvalidRequest", "limit can not be greater than 100")
        reverse = req.query.get("reverse") == "true"
        cursor = req.query.get("cursor")
        records = self._collection(req.query.get("collection"))
        live = sorted(
            (r for r in records.values() if r.account == account.name and not r.deleted),
            key=lambda r: r.rkey,
            reverse=not reverse,
        )
        if cursor:
            live = [r for r in live if (r.rkey > cursor if reverse else r.rkey < cursor)]
        page = live[:limit]
        answer: dict[str, Any] = {
            "records": [{"uri": r.uri(account.did), "cid": r.cid, "value": r.value} for r in page]
        }
        if len(page) == limit and len(live) > limit:
            answer["cursor"] = page[-1].rkey
        return _ok(answer)

    def _delete_record(self, req: _Req) -> Response:
        account = self._authenticate(req)
        body = req.json()
        self._repo(req, account, body.get("repo"))
        rkey = body.get("rkey")
        stored = self._collection(body.get("collection")).get((account.name, str(rkey)))
        if stored is not None:
            stored.deleted = True
        return _ok({"commit": {"cid": _cid(str(rkey).encode()), "rev": self._next_tid()}})

    # -- helpers ----------------------------------------------------------------------------

    def _by_repo(self, repo: str) -> BlueskyAccount | None:
        return next((a for a in self._accounts.values() if repo in (a.did, a.handle.lower())), None)

    def _by_uri(self, uri: str) -> _Record | None:
        parts = uri.removeprefix("at://").split("/")
        if len(parts) != 3 or parts[1] != "app.bsky.feed.post":
            return None
        account = self._by_repo(parts[0])
        stored = self._records.get((account.name, parts[2])) if account else None
        return stored if stored is not None and not stored.deleted else None

    def _next_tid(self) -> str:
        micros = max(int(time.time() * 1_000_000), self._last_tid + 1)
        self._last_tid = micros
        value = (micros << 10) | 7
        return "".join(_TID_ALPHABET[(value >> (5 * (12 - i))) & 31] for i in range(13))

    def _describe(self, record: _Record, account: BlueskyAccount) -> dict[str, Any]:
        value = record.value
        reply = value.get("reply") or {}
        images = []
        for image in (value.get("embed") or {}).get("images") or []:
            blob = self._blobs[image["image"]["ref"]["$link"]]
            images.append(
                {
                    "alt": image["alt"],
                    "mime": blob.mime,
                    "size": len(blob.data),
                    "data": blob.data,
                    "aspectRatio": image.get("aspectRatio"),
                }
            )
        return {
            "uri": record.uri(account.did),
            "cid": record.cid,
            "rkey": record.rkey,
            "text": value["text"],
            "langs": value.get("langs"),
            "facets": value.get("facets") or [],
            "reply": {k: reply[k]["uri"] for k in ("root", "parent")} if reply else None,
            "images": images,
            "createdAt": datetime.fromisoformat(
                value["createdAt"].replace("Z", "+00:00")
            ).astimezone(UTC),
        }


@dataclass(frozen=True)
class _Req:
    nsid: str
    query: dict[str, str]
    raw: bytes
    headers: CaseInsensitiveDict[str]

    def json(self) -> dict[str, Any]:
        kind = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if kind != "application/json":
            raise _Refusal(
                400,
                "InvalidRequest",
                f"Wrong request encoding (Content-Type): {kind or 'none'}",
            )
        try:
            body = json.loads(self.raw or b"null")
        except ValueError:
            raise _Refusal(400, "InvalidRequest", "Request body is not JSON") from None
        if not isinstance(body, dict):
            raise _Refusal(400, "InvalidRequest", "Request body must be an object")
        return body


def _ok(payload: Any) -> Response:
    return Response(200, json.dumps(payload).encode(), _JSON)


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw.decode("utf-8", "replace")


def _b32(name: str) -> str:
    digest = hashlib.sha256(name.encode()).digest()
    return base64.b32encode(digest).decode().lower()
