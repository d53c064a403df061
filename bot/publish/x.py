"""Publish to X through tweepy's v2 ``AsyncClient`` (OAuth 1.0a user context, one token per
account), behind a synchronous interface.

Why the asynchronous client: when hundreds of deliveries fall due together, the process is
bound by the CPU cost of each HTTP request. aiohttp parses responses in C and one event loop
carries every request: 0.9 ms of CPU a post, against 1.4 ms with ``requests`` one at a time
and more from many threads (``docs/benchmarks.md``). The callers (the deliverer, ``post-now``,
the service's workers) stay synchronous: each call runs on one event-loop thread shared by the
process, and waits for its result.

Corrections to tweepy, made here:

- tweepy hard-codes ``https://api.twitter.com``. The OAuth client tweepy signs with is
  replaced by one that signs for ``DIPLOBOT_X_API_URL`` instead, and returns that URL, so the
  request goes where it was signed for (rewriting after signing would break OAuth 1.0a).
- tweepy sets no timeout: the shared aiohttp session has one (connect and read).
- tweepy 4.17 only has the retired v1.1 media upload: images go through the v2 endpoints
  (``POST /2/media/upload``, then ``POST /2/media/metadata`` for the alt text), with
  ``requests`` and the same OAuth 1.0a credentials.
- ``wait_on_rate_limit`` would sleep inside the call: it stays off, and a 429 becomes
  :class:`PublishRateLimited` carrying ``retry_at``.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import hashlib
import hmac
import io
import mimetypes
import os
import re
import ssl
import threading
from collections.abc import Awaitable, Callable, Coroutine
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote, urlsplit

import aiohttp
import requests
import tweepy
import tweepy.asynchronous.client as tweepy_async
from oauthlib.common import generate_nonce, generate_timestamp
from oauthlib.oauth1 import SIGNATURE_HMAC_SHA1, SIGNATURE_TYPE_AUTH_HEADER
from oauthlib.oauth1 import Client as OAuthClient
from requests_oauthlib import OAuth1

from bot.config import Secret, XSettings
from bot.errors import (
    ConfigError,
    PublishAmbiguous,
    PublishAuthFailed,
    PublishDuplicate,
    PublishError,
    PublishNoCredits,
    PublishRateLimited,
    PublishRejected,
)
from bot.publish.base import MediaItem, Outgoing, Receipt
from bot.publish.match import same_post_text

TWEEPY_HOST = "https://api.twitter.com"
DEFAULT_API_URL = "https://api.x.com"
RATE_LIMIT_FALLBACK = timedelta(minutes=15)  # X's rate-limit window, when no reset header
FIND_PAGES = 3  # at most 300 recent posts are read when reconciling

T = TypeVar("T")

_API_URL: ContextVar[str | None] = ContextVar("diplobot_x_api_url", default=None)
"""The API base of the call being made (each call runs in its own task, with its own value)."""


class _RoutedOAuthClient(OAuthClient):  # type: ignore[misc]
    """The OAuth 1.0a client tweepy's AsyncClient signs with, signing for our API base.

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
        base = _API_URL.get()
        if base is not None and uri.startswith(TWEEPY_HOST):
            uri = base + uri[len(TWEEPY_HOST) :]
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


tweepy_async.OAuthClient = _RoutedOAuthClient  # tweepy builds one per request from this name


def _ca_bundle() -> str | None:
    """An institution's own CA, as requests would have read it."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")


class _Loop:
    """One event loop on a daemon thread for the whole process, with one aiohttp session
    (a keep-alive connection pool) per API base and timeout. Closed at exit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sessions: dict[tuple[str, float], aiohttp.ClientSession] = {}

    def run(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run ``make()`` on the loop and wait for its result (or exception)."""
        return asyncio.run_coroutine_threadsafe(make(), self._start()).result()

    def session(self, base: str, timeout: float) -> aiohttp.ClientSession:
        """On the loop thread: the session for ``base``, created on first use."""
        key = (base, timeout)
        session = self._sessions.get(key)
        if session is None or session.closed:
            bundle = _ca_bundle()
            context: ssl.SSLContext | bool = True  # aiohttp's default verification
            if bundle and base.startswith("https:"):
                context = ssl.create_default_context(cafile=bundle)
            # HTTPS_PROXY / NO_PROXY are read here, once: aiohttp's trust_env would read the
            # whole environment (and ~/.netrc) again on every request.
            proxies = requests.utils.get_environ_proxies(base)
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=context),
                timeout=aiohttp.ClientTimeout(sock_connect=timeout, sock_read=timeout),
                proxy=proxies.get(base.split(":", 1)[0]) or proxies.get("all"),
            )
            self._sessions[key] = session
        return session

    def warm(self, base: str, timeout: float) -> None:
        """Start the loop and create the session now, not when the first post is due."""

        async def create() -> None:
            self.session(base, timeout)

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


class _MediaSession(requests.Session):
    """``requests`` for the v2 media endpoints: a timeout on every request, and proxy
    settings read from the environment once, not on every request (requests does that per
    call, which costs more than signing the request)."""

    def __init__(self, base: str, timeout: float) -> None:
        super().__init__()
        self.timeout = timeout
        self.proxies.update(requests.utils.get_environ_proxies(base))
        bundle = _ca_bundle()
        if bundle:
            self.verify = bundle
        self.trust_env = False

    def request(
        self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        return super().request(method, url, *args, **kwargs)


@dataclass(frozen=True)
class XCredentials:
    access_token: Secret
    access_secret: Secret


def env_name(account: str) -> str:
    """``francediplo_EN`` → ``FRANCEDIPLO_EN``: the account's part of its variable names."""
    return re.sub(r"[^A-Za-z0-9]", "_", account).upper()


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
        api_url: str = DEFAULT_API_URL,
        timeout: float = 20.0,
    ) -> None:
        self.api_key = api_key
        self.api_secret = api_secret
        self.accounts = accounts
        self.handles = handles
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout
        self._clients: dict[str, tweepy_async.AsyncClient] = {}
        self._media_session: _MediaSession | None = None
        self._user_ids: dict[str, str] = {}
        _LOOP.warm(self.api_url, self.timeout)

    @classmethod
    def from_settings(cls, x: XSettings, handles: dict[str, str]) -> XPublisher | None:
        """A publisher for the accounts that have credentials; None when none has."""
        if not x.tokens or x.api_key is None or x.api_secret is None:
            return None
        accounts = {a: XCredentials(t, s) for a, (t, s) in x.tokens.items()}
        return cls(x.api_key, x.api_secret, accounts, handles, api_url=x.api_url, timeout=x.timeout)

    def client(self, account: str) -> tweepy_async.AsyncClient:
        if account not in self._clients:
            creds = self._creds(account)
            self._clients[account] = tweepy_async.AsyncClient(
                consumer_key=self.api_key.reveal(),
                consumer_secret=self.api_secret.reveal(),
                access_token=creds.access_token.reveal(),
                access_token_secret=creds.access_secret.reveal(),
                wait_on_rate_limit=False,
            )
        return self._clients[account]

    def _call(
        self, account: str, call: Callable[[tweepy_async.AsyncClient], Awaitable[T]], *, sent: bool
    ) -> T:
        """Run one tweepy call for ``account`` on the shared loop; failures become ours.
        ``sent``: whether the request, once written, may have had an effect."""
        client = self.client(account)

        async def run() -> T:
            _API_URL.set(self.api_url)
            client.session = _LOOP.session(self.api_url, self.timeout)
            try:
                return await call(client)
            except tweepy.HTTPException as exc:
                response = exc.response
                try:
                    body = await response.json(content_type=None)
                except (ValueError, aiohttp.ClientError):
                    body = None
                raise _from_status(response.status, response.headers, _detail(body)) from exc
            except aiohttp.ClientResponseError as exc:  # an answer that is not JSON
                if 200 <= exc.status < 300:
                    raise PublishAmbiguous(
                        f"X answered {exc.status} with a body that could not be read"
                    ) from exc
                raise _from_status(exc.status, exc.headers, "") from exc

        try:
            return _LOOP.run(run)
        except PublishError:
            raise
        except Exception as exc:
            raise _classify(exc, sent=sent) from exc

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
        media_ids = [self._upload(item.account, m) for m in item.media]
        response = self._call(
            item.account,
            lambda client: client.create_tweet(
                text=item.text,
                in_reply_to_tweet_id=item.reply_to,
                media_ids=media_ids or None,
                user_auth=True,
            ),
            sent=True,
        )
        tweet_id = str(response.data["id"])
        return Receipt(tweet_id, self._url(item.account, tweet_id))

    def _upload(self, account: str, media: MediaItem) -> str:
        """Upload one image (v2), then set its alt text; return the media id."""
        creds = self._creds(account)
        auth = OAuth1(
            self.api_key.reveal(),
            self.api_secret.reveal(),
            creds.access_token.reveal(),
            creds.access_secret.reveal(),
        )
        if self._media_session is None:
            self._media_session = _MediaSession(self.api_url, self.timeout)
        session = self._media_session
        mime = mimetypes.guess_type(media.path.name)[0] or "application/octet-stream"
        try:
            with open(media.path, "rb") if media.data is None else io.BytesIO(media.data) as handle:
                response = session.post(
                    f"{self.api_url}/2/media/upload",
                    files={"media": (media.path.name, handle, mime)},
                    data={"media_category": "tweet_image"},
                    auth=auth,
                )
            _raise_for(response)
            media_id = str(response.json()["data"]["id"])
            if media.alt:
                response = session.post(
                    f"{self.api_url}/2/media/metadata",
                    json={"id": media_id, "metadata": {"alt_text": {"text": media.alt}}},
                    auth=auth,
                )
                _raise_for(response)
        except OSError as exc:
            raise PublishRejected(f"cannot read image {media.path.name}: {exc.strerror}") from exc
        except PublishError:
            raise
        except Exception as exc:
            # Nothing is public until the post is created: an upload failure is retryable.
            err = _classify(exc, sent=False)
            raise (
                err
                if not isinstance(err, PublishAmbiguous)
                else PublishError(f"media upload failed: {err}")
            ) from exc
        return media_id

    def find(self, account: str, text: str, since: datetime) -> Receipt | None:
        try:
            user_id = self._user_id(account)
            token = None
            for _ in range(FIND_PAGES):
                page_token = token
                response = self._call(
                    account,
                    lambda client: client.get_users_tweets(
                        user_id,
                        max_results=100,
                        start_time=since.astimezone(UTC),
                        pagination_token=page_token,  # noqa: B023 (awaited in this iteration)
                        tweet_fields=["created_at"],
                        user_auth=True,
                    ),
                    sent=False,
                )
                for tweet in response.data or []:
                    if same_post_text(tweet.text, text):
                        return Receipt(str(tweet.id), self._url(account, str(tweet.id)))
                token = (response.meta or {}).get("next_token")
                if not token:
                    return None
        except PublishError as exc:
            raise PublishError(
                f"reading @{self.handles.get(account, account)}'s timeline failed: {exc}"
            ) from exc
        return None

    def delete(self, account: str, remote_id: str) -> None:
        async def delete(client: tweepy_async.AsyncClient) -> None:
            try:
                await client.delete_tweet(remote_id, user_auth=True)
            except tweepy.NotFound:
                return  # already gone

        self._call(account, delete, sent=False)

    def whoami(self, account: str) -> str:
        """The handle the account's credentials belong to (``accounts check``)."""
        response = self._call(account, lambda client: client.get_me(user_auth=True), sent=False)
        self._user_ids[account] = str(response.data.id)
        return str(response.data.username)

    def _user_id(self, account: str) -> str:
        if account not in self._user_ids:
            self.whoami(account)
        return self._user_ids[account]

    def _url(self, account: str, tweet_id: str) -> str:
        return f"https://x.com/{self.handles.get(account, account)}/status/{tweet_id}"


def _raise_for(response: requests.Response) -> None:
    if response.status_code >= 400:
        try:
            body = response.json()
        except ValueError:
            body = None
        raise _from_status(response.status_code, response.headers, _detail(body))


def _detail(body: Any) -> str:
    """The message of an X error body (a problem document, or a list of errors)."""
    if not isinstance(body, dict):
        return ""
    detail = body.get("detail") or body.get("title") or ""
    errors = body.get("errors")
    if not detail and isinstance(errors, list) and errors and isinstance(errors[0], dict):
        detail = errors[0].get("message") or errors[0].get("detail") or ""
    return str(detail)[:300]


def _classify(exc: BaseException, *, sent: bool) -> PublishError:
    """Map aiohttp's and requests' exceptions to ours. ``sent``: the request may have arrived."""
    if isinstance(exc, PublishError):
        return exc
    if isinstance(exc, requests.ConnectTimeout | aiohttp.ConnectionTimeoutError):
        return PublishError("could not connect to X in time (nothing was sent)")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return PublishError(f"could not connect to X (nothing was sent): {exc.os_error}")
    if isinstance(exc, requests.Timeout | TimeoutError):
        return (PublishAmbiguous if sent else PublishError)("X did not answer in time")
    if isinstance(exc, requests.ConnectionError | aiohttp.ClientError | ConnectionError):
        return (PublishAmbiguous if sent else PublishError)("the connection to X was lost")
    return PublishError(f"unexpected error talking to X ({type(exc).__name__})")


def _from_status(status: int, headers: Any, detail: str) -> PublishError:
    if status == 429:
        reset = headers.get("x-rate-limit-reset") if headers is not None else None
        now = datetime.now(UTC)
        try:
            retry_at = (
                datetime.fromtimestamp(int(reset), UTC) if reset else now + (RATE_LIMIT_FALLBACK)
            )
        except (TypeError, ValueError, OverflowError):
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
        return PublishAmbiguous(f"X answered {status}: the post may or may not exist")
    if 400 <= status < 500:
        return PublishRejected(f"X refused the post ({status}): {detail or 'bad request'}")
    return PublishError(f"X answered {status}")
