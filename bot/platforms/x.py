"""Publish to X through tweepy's v2 ``AsyncClient`` (OAuth 1.0a user context, one token per
account), behind a synchronous interface.

Why the asynchronous client: when hundreds of deliveries fall due together, the process is
bound by the CPU cost of each HTTP request. aiohttp parses responses in C and one event loop
carries every request: 0.9 ms of CPU a post, against 1.4 ms with ``requests`` one at a time
and more from many threads (``docs/benchmarks.md``). The callers (the deliverer, ``post-now``,
the service's workers) stay synchronous: each call runs on one event-loop thread shared by the
process, and waits for its result.

Corrections to tweepy, made here:

- tweepy hard-codes ``https://api.twitter.com``, and signs with the OAuth client class its
  module names. Each account's client is a :class:`_RoutedClient`, a subclass whose
  ``request`` builds the URL on ``DIPLOBOT_X_API_URL`` and signs it for that URL, so the
  request goes where it was signed for (rewriting after signing would break OAuth 1.0a).
  Nothing in tweepy is changed: importing this module leaves tweepy as it is.
- tweepy sets no timeout: the shared aiohttp session has one (connect and read), and every
  request also has an overall deadline, ``DEADLINE_FACTOR`` × the timeout: an answer trickling
  one byte at a time never trips a read timeout, and would hold the publish lock.
- tweepy 4.17 only has the retired v1.1 media upload: images go through the v2 endpoints
  (``POST /2/media/upload``, then ``POST /2/media/metadata`` for the alt text), on the same
  session and loop, signed by the same OAuth 1.0a client.
- ``wait_on_rate_limit`` would sleep inside the call: it stays off, and a 429 becomes
  :class:`PublishRateLimited` carrying ``retry_at``.
- tweepy's ``HTTPException`` calls aiohttp's ``json()`` without awaiting it when an error
  answer's JSON is ``null`` (and fails on the coroutine, with a "never awaited" warning on
  the user's terminal): ``_RoutedClient`` raises none of tweepy's exceptions; a failure is
  classified by the status X answered.
- tweepy builds its ``Response`` objects by indexing the JSON, and raises ``TypeError`` or
  ``KeyError`` on answers X is not meant to send (``201 {}``, ``{"data": null}``), or
  ``AttributeError`` on an error answer whose JSON is not an object. The clients return the
  raw JSON (``return_type=dict``), read here field by field; and a failure is classified by
  the status X answered (seen through aiohttp's tracing), not by tweepy's exception.

Every outcome is a :class:`Receipt` or a :class:`PublishError`. A create that X may have acted
on (written, then no usable answer: a timeout, a lost connection, a 5xx, a 2xx without the
post's id) is :class:`PublishAmbiguous`; everything else is either final or retried.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import hashlib
import hmac
import mimetypes
import re
import ssl
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote, urlsplit

import aiohttp
import requests
import tweepy.asynchronous.client as tweepy_async
from oauthlib.common import generate_nonce, generate_timestamp
from oauthlib.oauth1 import SIGNATURE_HMAC_SHA1, SIGNATURE_TYPE_AUTH_HEADER
from oauthlib.oauth1 import Client as OAuthClient
from yarl import URL

from bot.envname import env_name
from bot.errors import (
    ConfigError,
    PublishAmbiguous,
    PublishAuthFailed,
    PublishDuplicate,
    PublishError,
    PublishHeld,
    PublishNoCredits,
    PublishRateLimited,
    PublishRejected,
)
from bot.instance import user_agent
from bot.platforms._json import dig, iso_time, loads
from bot.publish.base import MediaItem, Outgoing, Published, Receipt
from bot.publish.match import same_text
from bot.settings import DEFAULT_X_API_URL, Secret, XSettings

RATE_LIMIT_FALLBACK = timedelta(minutes=15)  # X's rate-limit window, when no reset header
RATE_LIMIT_LONGEST = timedelta(hours=24)  # X's longest window (the daily post cap)
FIND_PAGES = 3  # at most 300 recent posts are read when reconciling
DEADLINE_FACTOR = 3
"""An X request ends after this many times ``DIPLOBOT_X_TIMEOUT``, whatever happens."""
TIMELINE_FIELDS = ["created_at", "entities", "attachments", "referenced_tweets"]
"""What reconciliation reads of each post: t.co links expanded, media, the post replied to."""
_POST_ID = re.compile(r"[0-9]{1,20}")
_MEDIA_PAGE = re.compile(r"/status/[0-9]+/(?:photo|video)/[0-9]+$")  # a media link's target

T = TypeVar("T")


@dataclass
class _Progress:
    """How far the call's request got: written (X may act on it), answered (status)."""

    sent: bool = False
    response: aiohttp.ClientResponse | None = None


_PROGRESS: ContextVar[_Progress | None] = ContextVar("diplobot_x_progress", default=None)


async def _on_sent(_session: aiohttp.ClientSession, _ctx: SimpleNamespace, _params: Any) -> None:
    """aiohttp trace: the request's head is being written (buffered, maybe not yet sent)."""
    progress = _PROGRESS.get()
    if progress is not None:
        progress.sent = True


async def _on_answer(
    _session: aiohttp.ClientSession, _ctx: SimpleNamespace, params: aiohttp.TraceRequestEndParams
) -> None:
    """aiohttp trace: X's status line and headers arrived (the body may still be coming)."""
    progress = _PROGRESS.get()
    if progress is not None:
        progress.response = params.response


class _Signer(OAuthClient):  # type: ignore[misc]
    """The OAuth 1.0a client of one account.

    tweepy's requests (no body, HMAC-SHA1, signature in the header) are signed here in a few
    lines: oauthlib's general path costs about 0.2 ms a request, a fifth of a post's CPU in a
    burst. Anything else goes to oauthlib. ``tests/publish/test_x_signing.py`` checks both give
    the same header, and the fake X verifies every signature with oauthlib."""

    def sign(
        self,
        uri: str,
        http_method: str = "GET",
        body: Any = None,
        headers: dict[str, str] | None = None,
        realm: str | None = None,
    ) -> tuple[str, dict[str, str], Any]:
        simple = (
            body is None
            and realm is None
            and self.realm is None
            and self.signature_method == SIGNATURE_HMAC_SHA1
            and self.signature_type == SIGNATURE_TYPE_AUTH_HEADER
            and self.callback_uri is None
            and self.verifier is None
            and self.resource_owner_key is not None
        )
        if not simple:
            return super().sign(uri, http_method, body, headers, realm)  # type: ignore[no-any-return]
        oauth = {
            "oauth_nonce": self.nonce or generate_nonce(),
            "oauth_timestamp": self.timestamp or generate_timestamp(),
            "oauth_version": "1.0",
            "oauth_signature_method": "HMAC-SHA1",
            "oauth_consumer_key": self.client_key,
            "oauth_token": self.resource_owner_key,
        }
        split = urlsplit(uri)
        pairs = [*parse_qsl(split.query, keep_blank_values=True), *oauth.items()]
        normalized = "&".join(f"{k}={v}" for k, v in sorted((_pct(k), _pct(v)) for k, v in pairs))
        host = split.hostname or ""
        port = split.port
        default = {"http": 80, "https": 443}.get(split.scheme.lower())
        netloc = host if port is None or port == default else f"{host}:{port}"
        base_uri = f"{split.scheme.lower()}://{netloc.lower()}{split.path or '/'}"
        text = "&".join((http_method.upper(), _pct(base_uri), _pct(normalized)))
        key = f"{_pct(self.client_secret or '')}&{_pct(self.resource_owner_secret or '')}"
        digest = hmac.new(key.encode(), text.encode(), hashlib.sha1).digest()
        oauth["oauth_signature"] = base64.b64encode(digest).decode()
        header = ", ".join(f'{k}="{_pct(v)}"' for k, v in oauth.items())
        return uri, {**(headers or {}), "Authorization": f"OAuth {header}"}, body


def _pct(value: str) -> str:
    """RFC 5849 percent-encoding: everything but unreserved characters, in UTF-8."""
    return quote(value, safe="~")


class _Refused(Exception):
    """X answered a status other than 2xx (``_failure`` tells what it means)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"X answered {status}")
        self.status = status


class _RoutedClient(tweepy_async.AsyncClient):  # type: ignore[misc]
    """tweepy's AsyncClient for one account: tweepy builds each request (route, parameters,
    JSON); ``request`` sends it to ``api_url``, signed for that URL by ``signer``, on the
    session set on the client, and raises :class:`_Refused` on an answer that is not 2xx."""

    def __init__(self, api_url: str, signer: _Signer) -> None:
        super().__init__(
            consumer_key=signer.client_key,
            consumer_secret=signer.client_secret,
            access_token=signer.resource_owner_key,
            access_token_secret=signer.resource_owner_secret,
            return_type=dict,  # the JSON as X sent it, checked here (see the module doc)
            wait_on_rate_limit=False,
        )
        self.api_url = api_url
        self.signer = signer
        # Which replica sent each request (X's side, and the fake X's log, can tell).
        self.user_agent = user_agent()

    def signed(
        self, method: str, route: str, params: dict[str, Any] | None, headers: dict[str, str]
    ) -> tuple[URL, dict[str, str]]:
        """The URL on our base and the headers, signed; the URL as tweepy builds it: query
        sorted, colons percent-encoded after signing (oauthlib expects them encoded; aiohttp
        would not encode them)."""
        url = str(URL(self.api_url + route).with_query(sorted((params or {}).items())))
        url, headers, _ = self.signer.sign(url, method, headers=headers)
        before, _, query = url.partition("?")
        return URL(f"{before}?{query.replace(':', '%3A')}", encoded=True), headers

    async def request(
        self,
        method: str,
        route: str,
        params: dict[str, Any] | None = None,
        json: Any = None,
        user_auth: bool = False,
    ) -> aiohttp.ClientResponse:
        headers = {"User-Agent": self.user_agent}
        if json is not None:
            headers["Content-Type"] = "application/json"
        url, headers = self.signed(method, route, params, headers)  # always user context
        session: aiohttp.ClientSession = self.session
        async with session.request(method, url, json=json, headers=headers) as response:
            await response.read()
        if not 200 <= response.status < 300:
            raise _Refused(response.status)
        return response


class _Loop:
    """One event loop on a daemon thread for the whole process, with one aiohttp session
    (a keep-alive connection pool) per API base and timeout. Closed at exit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sessions: dict[tuple[str, float, str | None], aiohttp.ClientSession] = {}

    def run(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run ``make()`` on the loop and wait for its result (or exception)."""
        return asyncio.run_coroutine_threadsafe(make(), self._start()).result()

    def session(self, base: str, timeout: float, bundle: str | None) -> aiohttp.ClientSession:
        """On the loop thread: the session for ``base``, created on first use. ``bundle``: an
        institution's own CA file (the settings' ``ca_bundle``), else the system's."""
        key = (base, timeout, bundle)
        session = self._sessions.get(key)
        if session is None or session.closed:
            context: ssl.SSLContext | bool = True  # aiohttp's default verification
            if bundle and base.startswith("https:"):
                context = ssl.create_default_context(cafile=bundle)
            # HTTPS_PROXY / NO_PROXY are read here, once: aiohttp's trust_env would read the
            # whole environment (and ~/.netrc) again on every request.
            proxies = requests.utils.get_environ_proxies(base)
            trace = aiohttp.TraceConfig()
            trace.on_request_headers_sent.append(_on_sent)
            trace.on_request_chunk_sent.append(_on_sent)
            trace.on_request_end.append(_on_answer)
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=context),
                timeout=aiohttp.ClientTimeout(sock_connect=timeout, sock_read=timeout),
                proxy=proxies.get(base.split(":", 1)[0]) or proxies.get("all"),
                trace_configs=[trace],
            )
            self._sessions[key] = session
        return session

    def warm(self, base: str, timeout: float, bundle: str | None) -> None:
        """Start the loop and create the session now, not when the first post is due."""

        async def create() -> None:
            self.session(base, timeout, bundle)

        self.run(create)

    def _start(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="x-api", daemon=True).start()
                self._loop = loop
                atexit.register(self.close)
            return self._loop

    def close(self) -> None:
        with self._lock:
            loop, self._loop = self._loop, None
        if loop is None:
            return

        async def close_sessions() -> None:
            for session in self._sessions.values():
                await session.close()
            self._sessions.clear()

        try:
            asyncio.run_coroutine_threadsafe(close_sessions(), loop).result(timeout=5)
        finally:
            loop.call_soon_threadsafe(loop.stop)


_LOOP = _Loop()


@dataclass(frozen=True)
class XCredentials:
    access_token: Secret
    access_secret: Secret


class XPublisher:
    """X API v2 for every account it has a token for."""

    name = "x"

    def __init__(
        self,
        api_key: Secret,
        api_secret: Secret,
        accounts: dict[str, XCredentials],
        handles: dict[str, str],
        *,
        api_url: str = DEFAULT_X_API_URL,
        timeout: float = 20.0,
        ca_bundle: str | None = None,
    ) -> None:
        self.api_key = api_key
        self.api_secret = api_secret
        self.accounts = accounts
        self.handles = handles
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout
        self.ca_bundle = ca_bundle
        self.deadline = DEADLINE_FACTOR * timeout
        self._clients: dict[str, _RoutedClient] = {}
        self._user_ids: dict[str, str] = {}
        self._usernames: dict[str, str] = {}  # account → @username its credentials belong to
        _LOOP.warm(self.api_url, self.timeout, self.ca_bundle)

    @classmethod
    def from_settings(cls, x: XSettings, handles: dict[str, str]) -> XPublisher | None:
        """A publisher for the accounts that have credentials; None when none has."""
        if not x.tokens or x.api_key is None or x.api_secret is None:
            return None
        accounts = {a: XCredentials(t, s) for a, (t, s) in x.tokens.items()}
        return cls(
            x.api_key,
            x.api_secret,
            accounts,
            handles,
            api_url=x.api_url,
            timeout=x.timeout,
            ca_bundle=x.ca_bundle,
        )

    def client(self, account: str) -> _RoutedClient:
        if account not in self._clients:
            self._clients[account] = _RoutedClient(self.api_url, self._signer(account))
        return self._clients[account]

    def _signer(self, account: str) -> _Signer:
        creds = self._creds(account)
        return _Signer(
            self.api_key.reveal(),
            self.api_secret.reveal(),
            creds.access_token.reveal(),
            creds.access_secret.reveal(),
        )

    def _run(self, work: Callable[[aiohttp.ClientSession], Awaitable[T]], *, sent: bool) -> T:
        """Run one request on the shared loop, within the deadline; failures become ours.
        ``sent``: whether the request, once written, may have had an effect (a create)."""

        async def run() -> T:
            progress = _Progress()
            _PROGRESS.set(progress)
            deadline = asyncio.timeout(self.deadline)
            try:
                async with deadline:
                    return await work(_LOOP.session(self.api_url, self.timeout, self.ca_bundle))
            except PublishError:
                raise
            except Exception as exc:
                failure = await _failure(
                    exc, progress, sent=sent, expired=deadline.expired(), seconds=self.deadline
                )
                raise failure from exc

        try:
            return _LOOP.run(run)
        except PublishError:
            raise
        except Exception as exc:
            raise _classify(exc, sent=sent) from exc

    def _call(
        self, account: str, call: Callable[[_RoutedClient], Awaitable[T]], *, sent: bool
    ) -> T:
        """One tweepy call for ``account`` (see :meth:`_run`)."""
        client = self.client(account)

        async def work(session: aiohttp.ClientSession) -> T:
            client.session = session
            return await call(client)

        return self._run(work, sent=sent)

    def _creds(self, account: str) -> XCredentials:
        try:
            return self.accounts[account]
        except KeyError:
            raise ConfigError(
                f"X credentials for account '{account}' missing: set "
                f"DIPLOBOT_{env_name(account)}_ACCESS_TOKEN and "
                f"DIPLOBOT_{env_name(account)}_ACCESS_SECRET"
            ) from None

    # -- publishing ----------------------------------------------------------------------

    def publish(self, item: Outgoing) -> Receipt:
        self._check_account(item.account)
        media_ids = [self._upload(item.account, m) for m in item.media]

        async def create(client: _RoutedClient) -> Any:
            # On the loop, right before the request: a replica frozen since its claim (or
            # since an upload) sends nothing once it may not publish any more.
            if not item.may_send():
                raise PublishHeld("not sent: this service lost its lease")
            return await client.create_tweet(
                text=item.text,
                in_reply_to_tweet_id=item.reply_to_id,
                media_ids=media_ids or None,
                user_auth=True,
            )

        body = self._call(item.account, create, sent=True)
        tweet_id = dig(body, "data", "id")
        if not isinstance(tweet_id, str) or not _POST_ID.fullmatch(tweet_id):
            # X accepted the request: the post may well exist. Only the timeline can tell.
            raise PublishAmbiguous("X accepted the post but its answer gives no post id")
        return item.receipt(tweet_id, self._url(item.account, tweet_id))

    # -- reposts (amplification) ---------------------------------------------------------

    def repost(self, item: Outgoing) -> Receipt:
        """``POST /2/users/:id/retweets`` ``{"tweet_id": original}``. X keeps one repost of a
        post per account, named by the original's id (``DELETE
        /2/users/:id/retweets/:source_tweet_id`` undoes it): the receipt's ``remote_id`` is
        the original's, its URL the original's. A second repost changes nothing: X answers as
        it did the first time, or (as v1.1 did) 403 "already retweeted", taken as done."""
        original = _original(item)
        self._check_account(item.account)
        user_id = self._user_id(item.account)
        route = f"/2/users/{user_id}/retweets"

        async def repost(client: _RoutedClient) -> Any:
            if not item.may_send():  # as for a post: right before the request
                raise PublishHeld("not sent: this service lost its lease")
            return await client._make_request(
                "POST", route, json={"tweet_id": original.remote_id}, user_auth=True
            )

        try:
            body = self._call(item.account, repost, sent=True)
        except PublishAuthFailed as exc:
            text = str(exc).lower()
            if "already" in text and ("retweet" in text or "repost" in text):
                return Receipt(original.remote_id, original.url)
            raise
        except PublishRejected as exc:
            raise PublishRejected(
                f"X refused the repost of {original.url or original.remote_id}: {exc} (was "
                "the original deleted?)"
            ) from exc
        if dig(body, "data", "retweeted") is not True:
            # X accepted the request: the repost may well exist. Only X can tell.
            raise PublishAmbiguous("X accepted the repost but its answer does not confirm it")
        return Receipt(original.remote_id, original.url)

    def find_repost(self, item: Outgoing, since: datetime) -> Receipt | None:
        """The account's repost of the original, from its timeline since ``since`` (a
        repost is a post there whose ``referenced_tweets`` say ``retweeted``)."""
        original = _original(item)
        try:
            for posts in self._timeline(item.account, since):
                if any(post.reposts == original.remote_id for post in posts):
                    return Receipt(original.remote_id, original.url)
        except PublishError as exc:
            raise self._unreadable(item.account, exc) from exc
        return None

    def unrepost(self, account: str, remote_id: str, original_id: str) -> None:
        """``DELETE /2/users/:id/retweets/:source_tweet_id`` (X's repost is named by its
        original: ``remote_id`` is that id)."""
        source = original_id or remote_id
        if not _POST_ID.fullmatch(source):
            raise PublishError(f"{source!r} is not an X post id: a defect to report")
        route = f"/2/users/{self._user_id(account)}/retweets/{source}"

        async def unrepost(client: _RoutedClient) -> Any:
            return await client._make_request("DELETE", route, user_auth=True)

        if dig(self._call(account, unrepost, sent=False), "data", "retweeted") is not False:
            raise PublishError(f"X did not confirm that the repost of {source} was undone")

    def _check_account(self, account: str) -> None:
        """Before the first post to ``account`` from this publisher: its credentials must
        belong to the handle accounts.yaml gives it (two account ids may share variables)."""
        expected = self.handles.get(account)
        if expected is None:
            return
        actual = self._usernames.get(account) or self.whoami(account)
        if actual.lstrip("@").lower() != expected.lstrip("@").lower():
            name = env_name(account)
            raise PublishAuthFailed(
                f"the X credentials of account '{account}' belong to @{actual}, but "
                f"schedules/accounts.yaml gives it the handle @{expected}; nothing was sent: "
                f"set DIPLOBOT_{name}_ACCESS_TOKEN and DIPLOBOT_{name}_ACCESS_SECRET to "
                f"@{expected}'s tokens (or correct the handle)"
            )

    def _upload(self, account: str, media: MediaItem) -> str:
        """Upload one image (v2), then set its alt text; return the media id.

        Nothing is public until the post is created, so a failed upload is never ambiguous:
        it is retried (or final, when X refuses the image)."""
        name = media.path.name
        try:
            data = media.data if media.data is not None else media.path.read_bytes()
        except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise PublishRejected(f"cannot read image {name}: {reason}") from exc
        signer = self.client(account).signer
        mime = mimetypes.guess_type(name)[0] or "application/octet-stream"

        async def upload(session: aiohttp.ClientSession) -> Any:
            form = aiohttp.FormData()
            form.add_field("media", data, filename=name, content_type=mime)
            form.add_field("media_category", "tweet_image")
            return await _post(session, signer, f"{self.api_url}/2/media/upload", data=form)

        try:
            media_id = dig(self._run(upload, sent=False), "data", "id")
            if not isinstance(media_id, str) or not _POST_ID.fullmatch(media_id):
                raise PublishError("X's answer gives no media id")
            if media.alt:
                metadata = {"id": media_id, "metadata": {"alt_text": {"text": media.alt}}}

                async def describe(session: aiohttp.ClientSession) -> Any:
                    url = f"{self.api_url}/2/media/metadata"
                    return await _post(session, signer, url, json=metadata)

                self._run(describe, sent=False)
        except PublishRateLimited:
            raise
        except PublishError as exc:
            raise type(exc)(f"uploading image {name} to X failed: {exc}") from exc
        return media_id

    def find(self, item: Outgoing, since: datetime) -> Receipt | None:
        """The account's post that is this delivery, published after ``since``: the same text
        (t.co links expanded, HTML unescaped, the trailing media link dropped), the same
        number of images, replying to the same post."""
        try:
            for posts in self._timeline(item.account, since):
                for post in posts:
                    if (
                        post.reposts is None
                        and post.reply_to == item.reply_to_id
                        and post.media == len(item.media)
                        and same_text(post.text, item.text)
                    ):
                        return item.receipt(post.id, self._url(item.account, post.id))
        except PublishError as exc:
            raise self._unreadable(item.account, exc) from exc
        return None

    def recent(self, account: str, since: datetime) -> list[Published]:
        """The account's posts since ``since``, newest first, as they were sent (at most
        ``FIND_PAGES`` pages of 100: the most recent ones)."""
        try:
            return [
                Published(
                    post.id,
                    post.text,
                    post.reply_to,
                    post.media,
                    post.created_at,
                    self._url(account, post.id),
                )
                for posts in self._timeline(account, since)
                for post in posts
            ]
        except PublishError as exc:
            raise self._unreadable(account, exc) from exc

    def _timeline(self, account: str, since: datetime) -> Iterator[list[_Seen]]:
        """The account's posts since ``since`` (GET /2/users/:id/tweets), page by page, newest
        first; at most ``FIND_PAGES`` pages."""
        user_id = self._user_id(account)
        token = None
        for _ in range(FIND_PAGES):
            page_token = token
            body = self._call(
                account,
                lambda client: client.get_users_tweets(
                    user_id,
                    max_results=100,
                    start_time=since.astimezone(UTC),
                    pagination_token=page_token,  # noqa: B023 (awaited in this iteration)
                    tweet_fields=TIMELINE_FIELDS,
                    user_auth=True,
                ),
                sent=False,
            )
            posts, token = _timeline_page(body)
            yield posts
            if not token:
                return

    def _unreadable(self, account: str, exc: PublishError) -> PublishError:
        return PublishError(
            f"reading @{self.handles.get(account, account)}'s timeline failed: {exc}"
        )

    def delete(self, account: str, remote_id: str) -> None:
        async def delete(client: _RoutedClient) -> Any:
            try:
                return await client.delete_tweet(remote_id, user_auth=True)
            except _Refused as exc:
                if exc.status != 404:
                    raise
                return {"data": {"deleted": True}}  # already gone

        if dig(self._call(account, delete, sent=False), "data", "deleted") is not True:
            raise PublishError(
                f"X did not confirm the deletion of {self._url(account, remote_id)}: check it"
            )

    def whoami(self, account: str) -> str:
        """The handle the account's credentials belong to (``accounts check``, and the check
        before the first post)."""
        body = self._call(account, lambda client: client.get_me(user_auth=True), sent=False)
        user_id, username = dig(body, "data", "id"), dig(body, "data", "username")
        if not isinstance(user_id, str) or not _POST_ID.fullmatch(user_id):
            raise PublishError("X's answer to GET /2/users/me gives no user id")
        if not isinstance(username, str) or not username:
            raise PublishError("X's answer to GET /2/users/me gives no username")
        self._user_ids[account] = user_id
        self._usernames[account] = username
        return username

    def _user_id(self, account: str) -> str:
        if account not in self._user_ids:
            self.whoami(account)
        return self._user_ids[account]

    def _url(self, account: str, tweet_id: str) -> str:
        return f"https://x.com/{self.handles.get(account, account)}/status/{tweet_id}"


async def _post(session: aiohttp.ClientSession, signer: OAuthClient, url: str, **body: Any) -> Any:
    """POST to X signed with OAuth 1.0a (a JSON or multipart body is not part of the
    signature); the JSON answer, or None when the answer is not JSON."""
    _, headers, _ = signer.sign(url, "POST", headers={"User-Agent": user_agent()})
    async with session.post(url, headers=headers, **body) as response:
        raw = await response.read()
    answer = loads(raw)
    if not 200 <= response.status < 300:
        raise _from_status(response.status, response.headers, _detail(answer), sent=False)
    return answer


@dataclass(frozen=True)
class _Seen:
    """A post of the timeline, as it was sent: what identifies a delivery."""

    id: str
    text: str
    reply_to: str | None
    media: int
    created_at: datetime | None = None
    reposts: str | None = None  # a repost: the id of the post it reposts


def _original(item: Outgoing) -> Receipt:
    """The post ``item`` reposts.

    Raises:
        PublishError: ``item`` is no repost, or its original's id is not X's.
    """
    original = item.repost_of
    if original is None or not _POST_ID.fullmatch(original.remote_id):
        shown = original.remote_id if original is not None else None
        raise PublishError(f"a repost of {shown!r}, not an X post id: a defect to report")
    return original


_UNREADABLE = "X's timeline answer is not what its API documents"


def _timeline_page(body: Any) -> tuple[list[_Seen], str | None]:
    """The posts of one timeline page, and the token of the next page."""
    data = dig(body, "data")
    if not isinstance(body, dict) or not isinstance(data, list | None):
        raise PublishError(_UNREADABLE)
    token = dig(body, "meta", "next_token")
    return [_seen(post) for post in data or []], token if isinstance(token, str) else None


def _seen(post: Any) -> _Seen:
    """One post of the timeline as it was sent.

    X gives ``text`` HTML-escaped (``&amp;``, ``&lt;``, ``&gt;``), with every URL as a t.co
    link (``entities.urls[].expanded_url`` gives it back) and, on a post with media, a t.co
    link to the media appended (its entity has a ``media_key``). A post that cannot be read
    is an error, not a miss: a miss would send the post again."""
    if not isinstance(post, dict):
        raise PublishError(_UNREADABLE)
    post_id, text = post.get("id"), post.get("text")
    urls = dig(post, "entities", "urls") or []
    refs = post.get("referenced_tweets") or []
    keys = dig(post, "attachments", "media_keys") or []
    if not (
        isinstance(post_id, str)
        and _POST_ID.fullmatch(post_id)
        and isinstance(text, str)
        and isinstance(urls, list)
        and all(isinstance(u, dict) for u in urls)
        and isinstance(refs, list)
        and all(isinstance(r, dict) for r in refs)
        and isinstance(keys, list)
    ):
        raise PublishError(_UNREADABLE)
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    for url in urls:
        link, expanded = url.get("url"), url.get("expanded_url")
        if not isinstance(link, str) or not link:
            continue
        if url.get("media_key") is not None or (
            isinstance(expanded, str) and _MEDIA_PAGE.search(expanded) and text.endswith(link)
        ):  # the media link X appends: not part of our text
            text = text.replace(f" {link}", "").replace(link, "")
        elif isinstance(expanded, str) and expanded:
            text = text.replace(link, expanded)
    replied = [r.get("id") for r in refs if r.get("type") == "replied_to"]
    reply_to = replied[0] if replied and isinstance(replied[0], str) else None
    reposted = [r.get("id") for r in refs if r.get("type") == "retweeted"]
    reposts = reposted[0] if reposted and isinstance(reposted[0], str) else None
    created_at = iso_time(post.get("created_at"))
    return _Seen(post_id, text, reply_to, len(keys), created_at, reposts)


def _detail(body: Any) -> str:
    """The message of an X error body (a problem document, or a list of errors)."""
    if not isinstance(body, dict):
        return ""
    detail = body.get("detail") or body.get("title") or ""
    errors = body.get("errors")
    if not detail and isinstance(errors, list) and errors and isinstance(errors[0], dict):
        detail = errors[0].get("message") or errors[0].get("detail") or ""
    return str(detail)[:300]


async def _failure(
    exc: Exception, progress: _Progress, *, sent: bool, expired: bool, seconds: float
) -> PublishError:
    """What a failed request means, from how far it got: X's status when it answered one
    (whatever tweepy made of the body), else the deadline, else the network error."""
    response = progress.response
    if response is not None and not 200 <= response.status < 300:
        answer = None
        if not expired:  # the body was read (tweepy reads it whole); else do not wait for it
            try:  # json(), not read(): read() refuses once the connection is released
                answer = await response.json(content_type=None)
            except Exception:  # not JSON, or the connection is gone: the status says enough
                answer = None
        return _from_status(response.status, response.headers, _detail(answer), sent=sent)
    if response is not None:  # a 2xx whose body could not be read (cut off, not JSON, late)
        problem = (
            f"X did not finish its answer within {seconds:g} s"
            if expired
            else f"X answered {response.status} with a body diplobot cannot read"
        )
        return PublishAmbiguous(f"{problem}: the post may exist") if sent else PublishError(problem)
    if expired:
        if not progress.sent:
            return PublishError(f"could not reach X within {seconds:g} s (nothing was sent)")
        return (PublishAmbiguous if sent else PublishError)(
            f"X did not answer within {seconds:g} s"
        )
    return _classify(exc, sent=sent)


def _classify(exc: BaseException, *, sent: bool) -> PublishError:
    """Map a network error to ours. ``sent``: the request may have arrived and had an effect."""
    if isinstance(exc, PublishError):
        return exc
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return PublishError("could not connect to X in time (nothing was sent)")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return PublishError(f"could not connect to X (nothing was sent): {exc.os_error}")
    if isinstance(exc, TimeoutError):
        return (PublishAmbiguous if sent else PublishError)("X did not answer in time")
    if isinstance(exc, aiohttp.ClientError | ConnectionError):
        return (PublishAmbiguous if sent else PublishError)("the connection to X was lost")
    # Anything else (a library's own bug on an odd answer): X may have acted on a create.
    return (PublishAmbiguous if sent else PublishError)(
        f"unexpected error talking to X ({type(exc).__name__})"
    )


def _from_status(status: int, headers: Any, detail: str, *, sent: bool = True) -> PublishError:
    """The error an HTTP status means; ``sent``: the request may have had an effect."""
    if status == 429:
        reset = headers.get("x-rate-limit-reset") if headers is not None else None
        now = datetime.now(UTC)
        try:
            retry_at = datetime.fromtimestamp(int(reset), UTC) if reset else None
        except (TypeError, ValueError, OverflowError, OSError):
            retry_at = None
        # A reset that is missing, unreadable or beyond X's longest window is not believed.
        if retry_at is None or retry_at > now + RATE_LIMIT_LONGEST:
            retry_at = now + RATE_LIMIT_FALLBACK
        return PublishRateLimited("X rate limit reached (429)", max(retry_at, now))
    if status == 402:
        return PublishNoCredits(
            "X answered 402: the developer account has no credits left; top up at developer.x.com"
        )
    if status == 401:
        return PublishAuthFailed(
            "X refused the credentials (401): check the account's access token and secret"
        )
    if status == 403:
        if "duplicate" in detail.lower():
            return PublishDuplicate("X refused the text as a duplicate (403)")
        return PublishAuthFailed(f"X refused the request (403): {detail or 'forbidden'}")
    if status >= 500:
        if sent:
            return PublishAmbiguous(f"X answered {status}: the post may or may not exist")
        return PublishError(f"X answered {status}: try again later")
    if 400 <= status < 500:
        return PublishRejected(f"X refused the post ({status}): {detail or 'bad request'}")
    return PublishError(f"X answered {status}")
